# amaranth: UnusedElaboratable=no
"""The command dispatcher alone (``boards.link.dispatch``): checked frames of every command
(and damaged, unknown and wrongly sized ones) with their payload streamed with random stalls;
the items each executor receives compared with the payload, executors answering at random
items with random scripts, the forwarded responses (the dispatcher's own scripts and
arguments, or the executor's script) compared with the protocol's (``docs/host_link.md``
section 2)."""

import struct

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring

from boards.link.dispatch import EXECUTORS, PORTS, CommandDispatcher
from boards.link.scripts import Script
from boards.link.words import WordShifter
from boards.protocol import MIN_PAYLOAD_LENGTH, PAYLOAD_LENGTH, Cmd, Status

from ..support.streams import run

MAX_PAYLOAD = 64
LENGTHS = {**PAYLOAD_LENGTH, **MIN_PAYLOAD_LENGTH}
WORD, BYTE, HALF = 0xFFFFFFFF, 0xFF000000, 0xFFFF0000


class Board(Elaboratable):
    """The dispatcher with its shift register."""

    def __init__(self):
        self.dispatcher = CommandDispatcher(max_payload=MAX_PAYLOAD)
        self.words = WordShifter()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dispatcher, m.submodules.words = self.dispatcher, self.words
        wiring.connect(m, self.dispatcher.arguments, self.words.arguments)
        return m


def expected_items(cmd, payload):
    """The items of a well-formed request: (bits of ``arg`` that matter, their value)."""
    if cmd == Cmd.LOAD_BEGIN:
        region, length, crc = struct.unpack("<BII", payload)
        return [(BYTE, region << 24), (WORD, length), (WORD, crc)]
    if cmd in (Cmd.LOAD_DATA, Cmd.INPUT):
        return [(WORD, struct.unpack("<I", payload[:4])[0])] + [(BYTE, b << 24)
                                                                for b in payload[4:]]
    if cmd == Cmd.COMMIT:
        return [(WORD, struct.unpack("<I", payload)[0])]
    if cmd == Cmd.RUN:
        return [(BYTE, payload[0] << 24)]
    if cmd == Cmd.OUTPUT:
        offset, limit = struct.unpack("<IH", payload)
        return [(WORD, offset), (HALF, limit << 16)]
    return [(0, 0)]                         # DISCARD, LOAD_END


FRAME_ERRORS = {Status.ERR_CRC: Script.ERR_CRC_ZERO, Status.ERR_TIMEOUT: Script.ERR_TIMEOUT_ZERO,
                Status.ERR_LENGTH: Script.ERR_LENGTH_MAX_PAYLOAD}


def random_request(rng):
    """A frame (cmd, payload, status) and what the dispatcher should do with it: its own reply
    (script, and ``arg`` if the script sends it) or None for an executor's command."""
    pick = rng.random()
    if pick < 0.1:
        status = int(rng.choice(list(FRAME_ERRORS)))
        return int(rng.integers(256)), b"", status, (FRAME_ERRORS[status], None)
    if pick < 0.15:
        cmd = int(rng.choice([c for c in range(256) if c not in LENGTHS]))
        return cmd, b"xy", Status.OK, (Script.ERR_UNKNOWN_ARG, cmd)
    cmd = Cmd(int(rng.choice(list(LENGTHS))))
    n = LENGTHS[cmd]
    if pick < 0.25:                         # a wrong length
        n = int(rng.choice([m for m in range(MAX_PAYLOAD + 1)
                            if (m != n if cmd in PAYLOAD_LENGTH else m < n)][:12]))
        return cmd, bytes(n), Status.OK, (Script.ERR_LENGTH_ARG, LENGTHS[cmd])
    if cmd in MIN_PAYLOAD_LENGTH:
        n += int(rng.integers(0, MAX_PAYLOAD - 3))
    payload = bytes(rng.integers(0, 256, n, dtype=np.uint8))
    if cmd in (Cmd.INFO, Cmd.STATUS):
        return cmd, payload, Status.OK, (Script[cmd.name], None)
    return cmd, payload, Status.OK, None


def test_constructor_checks():
    with pytest.raises(ValueError, match="max_payload"):
        CommandDispatcher(max_payload=8)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_requests(seed):
    board = Board()
    dut = board.dispatcher
    rng = np.random.default_rng(seed)
    received = {name: [] for name in PORTS}     # items taken, per executor
    answers = {name: [] for name in PORTS}      # results given
    responses = []
    frame_errors = []

    def executor(name):
        port = getattr(dut, name)

        async def testbench(ctx):
            async for _ in ctx.tick():
                ctx.set(port.result.valid, 0)
                ctx.set(port.result.payload, {})
                ready = rng.random() < 0.6
                ctx.set(port.command.ready, ready)
                if not (ready and ctx.get(port.command.valid)):
                    continue
                item = ctx.get(port.command.payload)
                received[name].append(item)
                if item.last or rng.random() < 0.1:     # answer: the command ends here
                    result = {"script": int(rng.integers(1, 256))}
                    answers[name].append(result["script"])
                    ctx.set(port.result.valid, 1)
                    ctx.set(port.result.payload, result)
        return testbench

    async def sender(ctx):
        async for _, _, valid, ready, payload, arg, error in ctx.tick().sample(
                dut.response.valid, dut.response.ready, dut.response.payload, dut.arg,
                dut.frame_error):
            frame_errors.extend([1] * error)
            if valid and ready:
                responses.append((payload, arg))
            ctx.set(dut.response.ready, rng.random() < 0.3)

    frame = {"payload": b"", "taken": 0}        # the held frame's payload, bytes taken

    async def payload_source(ctx):
        """Offers the held frame's payload bytes in turn (the rest go with the frame)."""
        port = dut.payload
        async for _, _, valid, ready in ctx.tick().sample(port.valid, port.ready):
            if valid and ready:
                frame["taken"] += 1
            n = frame["taken"]
            offer = n < len(frame["payload"]) and (valid or rng.random() < 0.6)
            ctx.set(port.valid, offer)
            if offer:
                ctx.set(port.payload, {"data": frame["payload"][n],
                                       "last": n == len(frame["payload"]) - 1})

    async def testbench(ctx):
        damaged = 0
        for n in range(50):
            cmd, payload, status, reply = random_request(rng)
            damaged += status != Status.OK
            before = {name: len(received[name]) for name in PORTS}
            frame.update(payload=payload, taken=0)
            ctx.set(dut.frame.payload, {"cmd": cmd, "length": len(payload), "status": status})
            ctx.set(dut.frame.valid, 1)
            await ctx.tick().until(dut.frame.ready)
            ctx.set(dut.frame.valid, 0)
            read = frame["taken"]
            frame.update(payload=b"", taken=0)
            await ctx.tick()
            response, arg = responses[-1]
            assert len(responses) == n + 1 and response.cmd == cmd
            new = {name: received[name][before[name]:] for name in PORTS}
            if reply is not None:
                script, want_arg = reply
                assert response.script == script, f"request {n}: {cmd:#x}"
                assert want_arg is None or arg == want_arg, f"request {n}: {cmd:#x}"
                assert not any(new.values())
                continue
            assert read == len(payload)             # all taken, the unused ones dropped
            port, op = EXECUTORS[cmd]
            want = expected_items(cmd, payload)
            taken = new.pop(port)
            assert not any(new.values()) and 0 < len(taken) <= len(want)
            for i, (item, (mask, value)) in enumerate(zip(taken, want)):
                assert (item.op, item.arg & mask, item.last) == (op, value, i == len(want) - 1)
                if cmd in MIN_PAYLOAD_LENGTH:
                    assert item.count == len(payload) - 4
            assert response.script == answers[port][-1]
        assert len(frame_errors) == damaged

    run(board, testbench, background=[sender, payload_source, *map(executor, PORTS)])


def test_stall_timer():
    """Any executor waiting counts on the receiver's timer; its expiry reaches every one."""
    dut = CommandDispatcher(max_payload=MAX_PAYLOAD)

    async def testbench(ctx):
        for name in PORTS:
            ctx.set(getattr(dut, name).waiting, 1)
            assert ctx.get(dut.hold.count)
            ctx.set(getattr(dut, name).waiting, 0)
            assert not ctx.get(dut.hold.count)
        ctx.set(dut.hold.expired, 1)
        assert all(ctx.get(getattr(dut, name).stalled) for name in PORTS)

    run(dut, testbench)
