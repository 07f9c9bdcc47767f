# amaranth: UnusedElaboratable=no
"""Run control alone (``boards.link.run``): RUN and INPUT items with random stalls against a
core model that takes input with random stalls; results, strobes, counters and the run's
cycle count checked against the protocol (``docs/host_link.md`` section 5)."""

import numpy as np
import pytest

from boards.link.ports import Op, Word
from boards.link.run import RunControl
from boards.protocol import Status

from ..support.link_stages import execute, items, stall_timer
from ..support.streams import run

STALL = 40                          # cycles the stand-in stall timer waits


class Core:
    """A core model: busy from the cycle after ``start`` until it strobes ``done``; takes input
    bytes with random stalls (never, while ``hold`` is set)."""

    def __init__(self, dut, rng):
        self.dut, self.rng = dut, rng
        self.inputs, self.starts, self.segments = [], [], []
        self.finish = self.hold = False
        self.done_at = None

    async def testbench(self, ctx):
        dut = self.dut
        busy = ready = False
        cycle = 0
        async for _, _, valid, payload, start, segment in ctx.tick().sample(
                dut.act_in.valid, dut.act_in.payload, dut.start, dut.segment):
            if ready and valid:
                self.inputs.append(payload)
            if start:
                self.starts.append(cycle)
                self.segments.append(segment)
                busy = True
            cycle += 1
            ctx.set(dut.core_done, 0)
            if busy and self.finish:
                ctx.set(dut.core_done, 1)
                self.done_at, busy, self.finish = cycle, False, False
            ctx.set(dut.core_busy, busy)
            ready = busy and not self.hold and self.rng.random() < 0.5
            ctx.set(dut.act_in.ready, ready)


def board(seed):
    dut = RunControl(count_bits=16, max_payload=64)
    return dut, Core(dut, np.random.default_rng(seed)), np.random.default_rng(seed + 100)


def test_constructor_checks():
    with pytest.raises(ValueError, match="count_bits"):
        RunControl(count_bits=4, max_payload=64)
    with pytest.raises(TypeError, match="max_payload"):
        RunControl(count_bits=16, max_payload=64.0)


@pytest.mark.parametrize("seed", [1, 2])
def test_run_input_done(seed):
    """A run takes input in chunks, in order; wrong offsets, a second RUN and input after the
    run are refused; STATUS's counters follow."""
    dut, core, rng = board(seed)
    x = bytes(rng.integers(0, 256, 40, dtype=np.uint8))
    strobes = {"restart": 0, "started": 0, "carry": 0}

    async def count_strobes(ctx):
        async for _, _, *values in ctx.tick().sample(dut.restart, dut.started, dut.carry):
            for name, value in zip(strobes, values):
                strobes[name] += value

    async def testbench(ctx):
        port, state = dut.command, dut.state
        ctx.set(dut.model_valid, 1)
        result, _ = await execute(ctx, port, items(Op.RUN, 7 << 24), rng)
        assert (result.status, result.word) == (Status.OK, Word.RUNS)
        await ctx.tick()
        assert ctx.get(state.busy) and ctx.get(state.active) and not ctx.get(state.done)
        for offset in range(0, len(x), 12):
            chunk = x[offset:offset + 12]
            result, taken = await execute(ctx, port, items(Op.INPUT, offset, data=chunk), rng)
            assert (result.status, result.word, taken) == (Status.OK, Word.IN_COUNT,
                                                           1 + len(chunk))
            assert ctx.get(state.in_count) == offset + len(chunk)
        refusals = [(items(Op.INPUT, 3, data=b"ab"), Status.ERR_SEQUENCE, Word.IN_COUNT, 1),
                    (items(Op.INPUT, len(x) + (1 << 16)), Status.ERR_SEQUENCE, Word.IN_COUNT,
                     1),
                    (items(Op.RUN, 0), Status.ERR_BUSY, Word.ARG, 1)]
        for command, status, word, n in refusals:
            result, taken = await execute(ctx, port, command, rng)
            assert (result.status, result.word, taken) == (status, word, n)
        result, _ = await execute(ctx, port, items(Op.INPUT, len(x)), rng)    # no data
        assert (result.status, result.word) == (Status.OK, Word.IN_COUNT)
        await ctx.tick().repeat(300)            # a carry into the ledger's count
        core.finish = True
        await ctx.tick().until(state.done)
        assert not ctx.get(state.busy)
        cycles = 256 * strobes["carry"] + ctx.get(state.cycles)
        assert cycles == core.done_at - core.starts[0] and strobes["carry"] > 0
        result, _ = await execute(ctx, port, items(Op.INPUT, len(x), data=b"z"), rng)
        assert (result.status, result.word) == (Status.ERR_NOT_RUNNING, Word.ARG)
        result, _ = await execute(ctx, port, items(Op.RUN, 9 << 24), rng)    # the next run
        assert result.status == Status.OK
        await ctx.tick().repeat(2)
        assert ctx.get(state.in_count) == 0 and not ctx.get(state.done)

    run(dut, testbench, background=[core.testbench, count_strobes,
                                    stall_timer(dut.command, STALL)])
    assert bytes(v & 0xFF for v in core.inputs) == x
    assert core.segments == [7, 9]
    assert (strobes["restart"], strobes["started"]) == (2, 2)


def test_refused_without_model_or_while_busy():
    dut, core, rng = board(3)

    async def testbench(ctx):
        port = dut.command
        result, _ = await execute(ctx, port, items(Op.RUN, 0), rng)
        assert result.status == Status.ERR_NO_MODEL
        result, _ = await execute(ctx, port, items(Op.INPUT, 0, data=b"ab"), rng)
        assert result.status == Status.ERR_NOT_RUNNING
        ctx.set(dut.model_valid, 1)
        ctx.set(dut.core_busy, 1)               # the core still busy: no RUN
        result, _ = await execute(ctx, port, items(Op.RUN, 0), rng)
        assert result.status == Status.ERR_BUSY

    run(dut, testbench)
    assert core.starts == []


def test_input_stall():
    """Input the core does not take: ERR_STALL at the stall timeout, with the bytes taken."""
    dut, core, rng = board(4)

    async def testbench(ctx):
        port, state = dut.command, dut.state
        ctx.set(dut.model_valid, 1)
        await execute(ctx, port, items(Op.RUN, 0), rng)
        await ctx.tick().until(dut.core_busy)
        result, _ = await execute(ctx, port, items(Op.INPUT, 0, data=b"abc"), rng)
        assert result.status == Status.OK
        core.hold = True
        result, taken = await execute(ctx, port, items(Op.INPUT, 3, data=b"defg"), rng)
        assert (result.status, result.word, taken) == (Status.ERR_STALL, Word.IN_COUNT, 2)
        assert ctx.get(state.stalled) and ctx.get(state.in_count) == 3

    run(dut, testbench, background=[core.testbench, stall_timer(dut.command, STALL)])
