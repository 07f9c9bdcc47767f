# amaranth: UnusedElaboratable=no
"""Output readback alone (``boards.link.readback``): a core producing bytes with random stalls
into the ring, OUTPUT requests at every kind of offset, the answered bytes read back with
random stalls, and a stand-in ledger that runs the readback's programs and adds its carries
in the Python model with random delays; answers (their scripts, sent as the sender would)
against a Python model of the ring (``docs/host_link.md`` section 5)."""

import numpy as np
import pytest

from boards.link.ports import OUTPUT_HEADER, Op, Source
from boards.link.readback import OutputReadback
from boards.link.scripts import Data, Program
from boards.protocol import Status

from ..support.link_stages import LedgerModel, LedgerStandIn, execute, items, ledger_image
from ..support.streams import run, take

DEPTH, MAX_PAYLOAD = 16, 64
ROOM = MAX_PAYLOAD - OUTPUT_HEADER
STATUS0 = 0x0A1F05                      # STATUS word 0, as the link would give it
U32 = (1 << 32) - 1


def test_constructor_checks():
    with pytest.raises(ValueError, match="power of two"):
        OutputReadback(out_depth=24, max_payload=64)
    with pytest.raises(ValueError, match="out_depth"):
        OutputReadback(out_depth=8, max_payload=64)
    with pytest.raises(ValueError, match="max_payload"):
        OutputReadback(out_depth=16, max_payload=OUTPUT_HEADER)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_output_requests(seed):
    dut = OutputReadback(out_depth=DEPTH, max_payload=MAX_PAYLOAD)
    rng = np.random.default_rng(seed)
    produced = bytes(rng.integers(0, 256, 600, dtype=np.uint8))
    core = {"producing": False, "written": 0, "released": 0}
    ledger = LedgerModel(ledger_image(), ring_bit=dut.ring_bit)
    command = dut.command.command

    def argument(ctx):
        assert ctx.get(command.valid), "ARG read without an item"
        return ctx.get(command.payload.arg)
    sources = {Source.ARG: argument, Source.NARG: lambda ctx: ~argument(ctx) & U32,
               Source.WRITTEN_LOW: lambda ctx: ctx.get(dut.written),
               Source.NDATA: lambda ctx: ctx.get(dut.ndata) << 8,
               Source.HEADER: lambda ctx: 0x22, Source.STATUS0: lambda ctx: STATUS0}
    written_carry = dut.ring_bit                # bit of ``written`` the ledger adds
    stand_in = LedgerStandIn(
        dut.ledger, ledger, sources, rng,
        counters=[(lambda ctx: ctx.get(dut.written) >> written_carry, dut.written_ack,
                   Program.WRITTEN)])

    async def producer(ctx):
        valid = False
        async for _, _, ready in ctx.tick().sample(dut.act_out.ready):
            if valid and ready:
                core["written"] += 1
                assert core["written"] - core["released"] <= DEPTH, "the ring overflowed"
            n = core["written"]
            valid = core["producing"] and n < len(produced) and rng.random() < 0.6
            ctx.set(dut.act_out.valid, valid)
            byte = produced[n % len(produced)]
            ctx.set(dut.act_out.payload, byte - 256 if byte & 0x80 else byte)

    def totals(ctx):
        return (ledger.words[Data.WRITTEN] + ctx.get(dut.written),
                ledger.words[Data.RELEASED])

    async def restart(ctx):
        """A RUN: the ring empties, and the ledger's counts are cleared."""
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)

        def clear(ctx):
            ledger.words[Data.WRITTEN] = ledger.words[Data.RELEASED] = 0
        await stand_in.query(ctx, clear)
        core.update(written=0, released=0)

    async def testbench(ctx):
        await restart(ctx)
        answers = set()
        for n in range(80):
            if n == 50:                         # a second run
                await restart(ctx)
            core["producing"] = True
            await ctx.tick().repeat(int(rng.integers(1, 40)))
            core["producing"] = False
            await ctx.tick().repeat(2)
            written, released = core["written"], core["released"]
            assert await stand_in.query(ctx, totals) == (written, released)
            offset = int(rng.choice([
                released - 1, released, rng.integers(released, written + 1), written,
                written + 1, released + 2 * DEPTH, released + 2 * DEPTH + 1,
                written + 2 * DEPTH, -1, 1 << 31]))
            offset &= U32
            limit = int(rng.integers(0, 70))
            result, taken = await execute(ctx, dut.command,
                                          items(Op.OUTPUT, offset, limit << 16), rng)
            _, length, status, words = await stand_in.response(ctx, result.script)
            if offset < released:
                kind, want = "released", (Status.ERR_SEQUENCE, [released], 0)
            elif offset > written:
                kind, want = "written", (Status.ERR_SEQUENCE, [written], 0)
            else:
                kind, want = "data", (Status.OK, [STATUS0, written],
                                      min(written - offset, limit, ROOM))
            assert (status, words, length - 1 - 4 * len(words)) == want, kind
            answers.add(kind)
            if status != Status.OK:
                assert taken == 1
                assert ctx.get(dut.ndata) == 0 and not ctx.get(dut.more)
                continue
            assert taken == 2
            assert ledger.words[Data.RELEASED] == offset
            core["released"] = offset
            core["producing"] = True        # the core goes on while the bytes go out
            data = await take(ctx, dut.data, want[2], rng)
            assert bytes(data) == produced[offset:offset + want[2]]
            await ctx.tick()
            assert not ctx.get(dut.more)
        assert len(answers) == 3                # both refusals, and data

    run(dut, testbench, background=[producer, stand_in.testbench])
    assert core["written"] > 4 * DEPTH
