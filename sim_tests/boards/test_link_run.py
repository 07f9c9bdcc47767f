# amaranth: UnusedElaboratable=no
"""Run control alone (``boards.link.run``): RUN and INPUT items with random stalls against a
core model that takes input with random stalls and a stand-in ledger that runs the run
control's programs and adds its cycle carries in the Python model with random delays;
answers (their scripts, sent as the sender would), strobes, flags, the ledger's counters and
the run's cycle count checked against the protocol (``docs/host_link.md`` section 5)."""

import numpy as np
import pytest

from boards.link.ports import Op, Source
from boards.link.run import RunControl
from boards.link.scripts import Data, Program
from boards.protocol import Status

from ..support.link_stages import (
    LedgerModel,
    LedgerStandIn,
    execute,
    items,
    ledger_image,
    stall_timer,
)
from ..support.streams import run

STALL = 40                          # cycles the stand-in stall timer waits
CLEARED_BY_RUN = (Data.RUN_CYCLES, Data.WRITTEN, Data.RELEASED, Data.IN_COUNT)


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


class Surroundings:
    """The core, the stand-in ledger (adding the cycle count's carries) and the stall timer."""

    def __init__(self, seed):
        self.dut = dut = RunControl(max_payload=64)
        self.core = Core(dut, np.random.default_rng(seed))
        self.rng = rng = np.random.default_rng(seed + 100)
        self.ledger = LedgerModel(ledger_image(None, rng), ring_bit=5)
        command = dut.command.command

        def argument(ctx):
            assert ctx.get(command.valid), "ARG read without an item"
            return ctx.get(command.payload.arg)
        sources = {Source.ARG: argument,
                   Source.NARG: lambda ctx: ~argument(ctx) & 0xFFFFFFFF,
                   Source.HEADER: lambda ctx: 0x21}
        self.stand_in = LedgerStandIn(
            dut.ledger, self.ledger, sources, rng,
            counters=[(lambda ctx: ctx.get(dut.cycles) >> 8, dut.cycles_ack, Program.CYCLES)])

    def background(self):
        return [self.core.testbench, self.stand_in.testbench,
                stall_timer(self.dut.command, STALL)]

    async def command(self, ctx, command):
        """Run ``command``; returns its response's (status, first word) and the items taken."""
        result, taken = await execute(ctx, self.dut.command, command, self.rng)
        _, _, status, words = await self.stand_in.response(ctx, result.script)
        return (status, words[0]), taken

    async def run_cycles(self, ctx):
        """The run's cycle count as STATUS reads it: the ledger's word and the low count."""
        return await self.stand_in.query(
            ctx, lambda ctx: self.ledger.words[Data.RUN_CYCLES] + ctx.get(self.dut.cycles))


def test_constructor_checks():
    with pytest.raises(ValueError, match="max_payload"):
        RunControl(max_payload=8)
    with pytest.raises(TypeError, match="max_payload"):
        RunControl(max_payload=64.0)


@pytest.mark.parametrize("seed", [1, 2])
def test_run_input_done(seed):
    """A run takes input in chunks, in order; wrong offsets, a second RUN and input after the
    run are refused; the ledger counts the run, clears its counters and counts the input;
    the run's cycles are counted start to done."""
    env = Surroundings(seed)
    dut, core, rng, ledger = env.dut, env.core, env.rng, env.ledger
    x = bytes(rng.integers(0, 256, 40, dtype=np.uint8))
    starts = []

    async def count_starts(ctx):
        async for _, _, start in ctx.tick().sample(dut.start):
            starts.extend([1] * start)

    async def testbench(ctx):
        ctx.set(dut.model_valid, 1)
        runs, errors = ledger.words[Data.RUNS], ledger.words[Data.ERRORS]
        assert all(ledger.words[w] for w in CLEARED_BY_RUN)
        got, _ = await env.command(ctx, items(Op.RUN, 7 << 24))
        assert got == (Status.OK, runs + 1)
        assert [ledger.words[w] for w in CLEARED_BY_RUN] == [0] * len(CLEARED_BY_RUN)
        assert ledger.words[Data.ERRORS] == errors
        assert ctx.get(dut.busy) and ctx.get(dut.active) and not ctx.get(dut.done)
        for offset in range(0, len(x), 12):
            chunk = x[offset:offset + 12]
            got, taken = await env.command(ctx, items(Op.INPUT, offset, data=chunk))
            assert (got, taken) == ((Status.OK, offset + len(chunk)), 1 + len(chunk))
            assert ledger.words[Data.IN_COUNT] == offset + len(chunk)
        refusals = [(items(Op.INPUT, 3, data=b"ab"), (Status.ERR_SEQUENCE, len(x))),
                    (items(Op.INPUT, len(x) + (1 << 16)), (Status.ERR_SEQUENCE, len(x))),
                    (items(Op.INPUT, len(x) - 1 & 0xFFFFFFFF), (Status.ERR_SEQUENCE, len(x))),
                    (items(Op.RUN, 0), (Status.ERR_BUSY, 0))]
        for command, want in refusals:
            assert await env.command(ctx, command) == (want, 1)
        got, _ = await env.command(ctx, items(Op.INPUT, len(x)))           # no data
        assert got == (Status.OK, len(x))
        await ctx.tick().repeat(700)            # carries into the ledger's count
        core.finish = True
        await ctx.tick().until(dut.done)
        assert not ctx.get(dut.busy)
        assert await env.run_cycles(ctx) == core.done_at - core.starts[0]
        assert ledger.words[Data.RUN_CYCLES] >= 512
        await ctx.tick().repeat(300)            # done: the count stays
        assert await env.run_cycles(ctx) == core.done_at - core.starts[0]
        got, _ = await env.command(ctx, items(Op.INPUT, len(x), data=b"z"))
        assert got == (Status.ERR_NOT_RUNNING, 0)
        got, _ = await env.command(ctx, items(Op.RUN, 9 << 24))            # the next run
        assert got == (Status.OK, runs + 2)
        assert ledger.words[Data.IN_COUNT] == 0 and not ctx.get(dut.done)
        assert await env.run_cycles(ctx) < 100

    run(dut, testbench, background=[*env.background(), count_starts])
    assert bytes(v & 0xFF for v in core.inputs) == x
    assert core.segments == [7, 9] and len(starts) == 2


def test_refused_without_model_or_while_busy():
    env = Surroundings(3)
    dut = env.dut

    async def testbench(ctx):
        assert await env.command(ctx, items(Op.RUN, 0)) == ((Status.ERR_NO_MODEL, 0), 1)
        got, taken = await env.command(ctx, items(Op.INPUT, 0, data=b"ab"))
        assert (got, taken) == ((Status.ERR_NOT_RUNNING, 0), 1)
        ctx.set(dut.model_valid, 1)
        ctx.set(dut.core_busy, 1)               # the core still busy: no RUN
        assert await env.command(ctx, items(Op.RUN, 0)) == ((Status.ERR_BUSY, 0), 1)
        assert ctx.get(dut.active) and not ctx.get(dut.busy)

    run(dut, testbench, background=[env.stand_in.testbench])
    assert env.core.starts == [] and env.stand_in.programs == []


def test_input_stall():
    """Input the core does not take: ERR_STALL at the stall timeout, with the bytes taken."""
    env = Surroundings(4)
    dut, core = env.dut, env.core

    async def testbench(ctx):
        ctx.set(dut.model_valid, 1)
        await env.command(ctx, items(Op.RUN, 0))
        await ctx.tick().until(dut.core_busy)
        got, _ = await env.command(ctx, items(Op.INPUT, 0, data=b"abc"))
        assert got == (Status.OK, 3)
        core.hold = True
        got, taken = await env.command(ctx, items(Op.INPUT, 3, data=b"defg"))
        assert (got, taken) == ((Status.ERR_STALL, 3), 2)
        assert ctx.get(dut.stalled) and env.ledger.words[Data.IN_COUNT] == 3

    run(dut, testbench, background=env.background())
    assert bytes(v & 0xFF for v in env.core.inputs) == b"abc"
