# amaranth: UnusedElaboratable=no
"""The response sender alone (``boards.link.response``): every response script, its ops run by
a stand-in ledger (the Python model, random delays) with random words and registers, OUTPUT's
data with random stalls, a UART that takes bytes with random stalls; each frame compared with
``boards.protocol.encode_frame`` of the words the protocol names (the CRC-16 included)."""

import struct

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring

from boards.link import MemoryMap
from boards.link.ports import OUTPUT_HEADER, Source
from boards.link.response import ResponseSender
from boards.link.scripts import Script
from boards.link.serial import SerialCRC
from boards.link.words import WordShifter
from boards.protocol import REGIONS, RESPONSE, encode_frame

from ..support.link_stages import LedgerModel, LedgerStandIn, expected_response, ledger_image
from ..support.streams import run, take

MAX_PAYLOAD = 64
MM = MemoryMap(weights=(16, 32), index=(4, 8), library=(9, 4), params=(20, 2), layers=(32, 2))
REGIONAL = (Script.OK_CAPACITY, Script.ERR_TOO_LARGE_CAPACITY, Script.ERR_LENGTH_WORD_BYTES)
SCRIPTS = [int(s) for s in Script if s not in REGIONAL and s != Script.CRC] + [
    s + 2 * r for s in REGIONAL for r in range(len(REGIONS))]
#: The registers a response can carry, with their widths in the link.
REGISTERS = {Source.ARG8: 8, Source.CORE: 32, Source.IMAGE_CRC: 32, Source.RUN_LOW: 9,
             Source.WRITTEN_LOW: 7, Source.VERIFIED: 5}


class Board(Elaboratable):
    """The sender with the CRC-16 register and the shift register it uses."""

    def __init__(self):
        self.sender = ResponseSender(max_payload=MAX_PAYLOAD)
        self.crc = SerialCRC(16, 0x1021, 0xFFFF, reflect=False)
        self.words = WordShifter()

    def elaborate(self, platform):
        m = Module()
        m.submodules.sender, m.submodules.crc = self.sender, self.crc
        m.submodules.words = self.words
        wiring.connect(m, self.sender.crc, self.crc)
        wiring.connect(m, self.sender.words, self.words.words)
        return m


def test_constructor_checks():
    with pytest.raises(ValueError, match="max_payload"):
        ResponseSender(max_payload=OUTPUT_HEADER)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_frames(seed):
    board = Board()
    dut = board.sender
    rng = np.random.default_rng(seed)
    ledger = LedgerModel(ledger_image(MM, rng), ring_bit=7)
    data = []                               # OUTPUT's bytes still to offer
    counts = {"error": 0, "responses": 0}
    regs = {"flags": 0, "ndata": 0, **dict.fromkeys(REGISTERS, 0)}

    def crc16(ctx):
        value = ctx.get(board.crc.value)
        return value >> 8 | (value & 0xFF) << 8
    sources = {s: lambda ctx, s=s: regs[s] for s in REGISTERS}
    sources.update({
        Source.HEADER: lambda ctx: ctx.get(dut.response.payload.cmd) & 0x7F,
        Source.NDATA: lambda ctx: regs["ndata"] << 8, Source.CRC16: crc16,
        Source.STATUS0: lambda ctx: regs["flags"] | ctx.get(dut.last_error) << 16})
    stand_in = LedgerStandIn(dut.ledger, ledger, sources, rng)

    async def data_source(ctx):
        async for _, _, valid, ready in ctx.tick().sample(dut.data.valid, dut.data.ready):
            if valid and ready:
                data.pop(0)
            offer = bool(data) and (valid or rng.random() < 0.6)   # valid stays until taken
            ctx.set(dut.data.valid, offer)
            ctx.set(dut.more, bool(data))
            if data:
                ctx.set(dut.data.payload, data[0])

    async def count_strobes(ctx):
        async for _, _, error, valid, ready in ctx.tick().sample(
                dut.error, dut.response.valid, dut.response.ready):
            counts["error"] += error
            counts["responses"] += valid and ready

    async def testbench(ctx):
        last_error = errors = 0
        sent = set()
        for n in range(60):
            script = int(rng.choice(SCRIPTS)) if n >= len(SCRIPTS) else SCRIPTS[n]
            regs.update({s: int(rng.integers(1 << w)) for s, w in REGISTERS.items()})
            regs["flags"] = int(rng.integers(1 << 16))
            regs["ndata"] = (int(rng.integers(MAX_PAYLOAD - OUTPUT_HEADER + 1))
                             if script == Script.OUTPUT else 0)
            out = bytes(rng.integers(0, 256, regs["ndata"], dtype=np.uint8))
            data.extend(out)
            cmd = int(rng.integers(256))
            status, _ = expected_response(script, ledger.words,
                                          {**regs, Source.STATUS0: 0}.__getitem__)
            last_error = status or last_error   # its own status, if an error
            errors += status != 0
            registers = {**regs, Source.STATUS0: regs["flags"] | last_error << 16}
            _, words = expected_response(script, ledger.words, registers.__getitem__)
            payload = bytes([status]) + struct.pack(f"<{len(words)}I", *words) + out
            want = encode_frame(cmd | RESPONSE, payload)
            ctx.set(dut.response.payload, {"cmd": cmd, "script": script})
            ctx.set(dut.response.valid, 1)
            got = await take(ctx, dut.o, len(want), rng, ready=0.8)
            ctx.set(dut.response.valid, 0)      # taken with the last byte
            assert bytes(got) == want, f"response {n}: script {script}"
            await ctx.tick()                    # the strobe counter has seen that cycle
            assert counts == {"error": errors, "responses": n + 1}
            assert ctx.get(dut.last_error) == last_error and not data
            sent.add(script)
        assert sent == set(SCRIPTS) and errors

    run(board, testbench, background=[stand_in.testbench, data_source, count_strobes])
