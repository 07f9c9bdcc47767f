# amaranth: UnusedElaboratable=no
"""Output readback alone (``boards.link.readback``): a core producing bytes with random stalls
into the ring, OUTPUT requests at every kind of offset, the answered bytes read back with
random stalls, against a Python model of the ring (``docs/host_link.md`` section 5)."""

import numpy as np
import pytest

from boards.link.ports import OUTPUT_HEADER, Kind, Op, Word
from boards.link.readback import OutputReadback
from boards.protocol import Status

from ..support.link_stages import execute, items
from ..support.streams import run, take

DEPTH, COUNT_BITS, MAX_PAYLOAD = 16, 12, 64
ROOM = MAX_PAYLOAD - OUTPUT_HEADER


def test_constructor_checks():
    with pytest.raises(ValueError, match="power of two"):
        OutputReadback(out_depth=24, count_bits=12, max_payload=64)
    with pytest.raises(ValueError, match="needs count_bits"):
        OutputReadback(out_depth=1 << 12, count_bits=12, max_payload=64)
    with pytest.raises(ValueError, match="max_payload"):
        OutputReadback(out_depth=16, count_bits=12, max_payload=OUTPUT_HEADER)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_output_requests(seed):
    dut = OutputReadback(out_depth=DEPTH, count_bits=COUNT_BITS, max_payload=MAX_PAYLOAD)
    rng = np.random.default_rng(seed)
    produced = bytes(rng.integers(0, 256, 400, dtype=np.uint8))
    core = {"producing": False, "written": 0, "released": 0}

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

    async def testbench(ctx):
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        answers = set()
        for _ in range(60):
            core["producing"] = True
            await ctx.tick().repeat(int(rng.integers(1, 40)))
            core["producing"] = False
            await ctx.tick().repeat(2)
            written, released = core["written"], core["released"]
            assert ctx.get(dut.state.written) == written
            assert ctx.get(dut.state.released) == released
            offset = int(rng.choice([released - 1, released, rng.integers(released, written + 1),
                                     written, written + 1, written + (1 << COUNT_BITS), -1]))
            offset &= 0xFFFFFFFF
            limit = int(rng.integers(0, 70))
            result, taken = await execute(ctx, dut.command,
                                          items(Op.OUTPUT, offset, limit << 16), rng)
            if offset < released:
                want = (Status.ERR_SEQUENCE, Kind.GENERIC, Word.RELEASED, 0)
            elif offset > written:
                want = (Status.ERR_SEQUENCE, Kind.GENERIC, Word.WRITTEN, 0)
            else:
                want = (Status.OK, Kind.OUTPUT, Word.ARG, min(written - offset, limit, ROOM))
            assert (result.status, result.kind, result.word, result.ndata) == want
            answers.add(want[2])
            if want[0] != Status.OK:
                assert taken == 1
                continue
            assert taken == 2
            core["released"] = offset
            core["producing"] = True        # the core goes on while the bytes go out
            data = await take(ctx, dut.data, want[3], rng)
            assert bytes(data) == produced[offset:offset + want[3]]
        assert answers == {Word.RELEASED, Word.WRITTEN, Word.ARG}

    run(dut, testbench, background=[producer])
