# amaranth: UnusedElaboratable=no
"""The status ledger alone (``boards.link.ledger``): programs and single ops of its layout and
random ones run through its adder with random sources, against the Python model
(``sim_tests/support/link_stages.LedgerModel``); counter updates beside them with random
timing; saturation; a reset in the middle of a program."""

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal

from boards.link import MemoryMap
from boards.link.ledger import COUNTERS, StatusLedger
from boards.link.ports import LEDGER_DEPTH, Source
from boards.link.scripts import Data, Program, Script, op
from boards.protocol import REGIONS

from ..support.link_stages import LedgerModel, ledger_image
from ..support.streams import run

MM = MemoryMap(weights=(16, 32), index=(4, 8), library=(9, 4), params=(20, 2), layers=(32, 2))
RING_BIT = 6
U32 = (1 << 32) - 1
CONSTANTS = (Source.ONE, Source.C256, Source.C64K, Source.RING)
#: The first word after the layout: the test's own ops and words from here.
FREE = max(Program) + len(REGIONS)
POKE = FREE                             # stores ARG (an op) at SLOT
SLOT = FREE + 1                         # an op the test writes, then runs
AREA = range(FREE + 2, LEDGER_DEPTH - 16)   # random programs, at most MAX_OPS ops each
SCRATCH = range(LEDGER_DEPTH - 16, LEDGER_DEPTH)   # words the random ops write
MAX_OPS = 4
#: The counters the ledger updates itself.
COUNTED = (Data.ERRORS, Data.RUN_CYCLES, Data.WRITTEN)


class Board(Elaboratable):
    """The ledger with a reset input."""

    def __init__(self, init):
        self.ledger = StatusLedger(init, ring_bit=RING_BIT)
        self.rst = Signal()

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain()
        m.d.comb += cd.rst.eq(self.rst)
        m.submodules.ledger = self.ledger
        return m


def random_op(rng, *, last, avoid=()):
    """An op on any word, writing (if at all) to the scratch words or the data words."""
    writable = [*SCRATCH, *(w for w in range(Data.TAG, Data.CAPACITY) if w not in avoid)]
    write = rng.random() < 0.5
    addr = int(rng.choice(writable)) if write else int(rng.integers(LEDGER_DEPTH))
    if avoid and addr in avoid:
        addr = SCRATCH[0]
    sources = [s for s in Source if rng.random() < 0.2]
    return op(addr, *sources, cin=rng.random() < 0.5, write=write, zero_a=rng.random() < 0.3,
              sat=rng.random() < 0.3, last=last)


def image_with_area(rng, avoid=()):
    """The layout with random words, a POKE op, random programs in AREA and random scratch
    words."""
    words = ledger_image(MM, rng)
    assert not any(words[FREE:]), "the layout has grown into the test's words"
    words[POKE] = op(SLOT, Source.ARG, zero_a=True, write=True)
    for i, addr in enumerate(AREA):
        last = (i + 1) % MAX_OPS == 0 or addr == AREA[-1] or rng.random() < 0.4
        words[addr] = random_op(rng, last=last, avoid=avoid)
    for addr in SCRATCH:
        words[addr] = int(rng.integers(1 << 32))
    return words


def random_sources(rng):
    return {s: int(rng.integers(1 << 32)) for s in Source}


class Caller:
    """Runs programs on the ledger's ``call`` port and the model side by side."""

    def __init__(self, ledger, model, rng):
        self.ledger, self.model, self.rng = ledger, model, rng

    async def call(self, ctx, addr, sources=None, *, single=False, check_hold=False,
                   check=True):
        """Request the program at ``addr``, wait for it, compare its outputs with the model's
        (unless not ``check``: it reads a word the ledger counts); returns the result. The
        ledger must be busy for six cycles an op."""
        ledger, model, rng = self.ledger, self.model, self.rng
        sources = random_sources(rng) if sources is None else sources
        for s in Source:                # the constants' inputs are noise, ignored
            ctx.set(ledger.sources[s], sources.get(s, 0) if s not in CONSTANTS
                    else int(rng.integers(1 << 32)))
        call = ledger.call
        ctx.set(call.program.valid, 1)
        ctx.set(call.program.payload, {"addr": addr, "single": single})
        await ctx.tick().until(call.program.ready)
        ctx.set(call.program.valid, 0)
        ctx.set(call.program.payload, {"addr": int(rng.integers(LEDGER_DEPTH)), "single": 0})
        busy = 0
        while ctx.get(call.busy):
            busy += 1
            await ctx.tick()
        ops = model.run(addr, lambda s: sources.get(s, 0), single=single)
        want = (model.result, model.carry, model.zero, model.last)
        got = tuple(ctx.get(x) for x in (call.result, call.carry, call.zero, call.last))
        assert got == want or not check, f"program at {addr}"
        assert busy == 6 * ops
        if check_hold:                  # nothing else runs: the outputs stay
            await ctx.tick().repeat(int(rng.integers(1, 4)))
            assert tuple(ctx.get(x) for x in (call.result, call.carry, call.zero,
                                               call.last)) == want
        return got[0]

    async def poke(self, ctx, addr, value):
        await self.call(ctx, POKE, {Source.ARG: op(addr, Source.ARG, zero_a=True, write=True)})
        await self.call(ctx, SLOT, {Source.ARG: value})

    async def peek(self, ctx, addr, *, check=True):
        await self.call(ctx, POKE, {Source.ARG: op(addr)})
        return await self.call(ctx, SLOT, {}, check=check)


def reset_ledger(rng, avoid=()):
    """A board with a random ledger image, its model after the reset program, and a caller."""
    words = image_with_area(rng, avoid)
    board = Board(words)
    model = LedgerModel(words, ring_bit=RING_BIT)
    model.run(Program.RESET, None)
    return board, model, Caller(board.ledger, model, rng)


def test_constructor_checks():
    with pytest.raises(ValueError, match=f"at most {LEDGER_DEPTH} words"):
        StatusLedger([0] * (LEDGER_DEPTH + 1), ring_bit=5)
    with pytest.raises(ValueError, match=r"init\[2\]"):
        StatusLedger([0, 0, 1 << 32], ring_bit=5)
    with pytest.raises(TypeError, match=r"init\[0\]"):
        StatusLedger(["x"], ring_bit=5)
    for ring_bit in (0, 32):
        with pytest.raises(ValueError, match="ring_bit"):
            StatusLedger([0], ring_bit=ring_bit)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_programs(seed):
    """After the reset program: random programs, the layout's programs, single ops of its
    scripts (as the sender runs them), with random sources; every result, carry, zero and
    last as the model's, held afterwards; at the end every word as the model's."""
    rng = np.random.default_rng(seed)
    board, model, caller = reset_ledger(rng)
    programs = [*Program, *(Program.CHECK_CAPACITY + r for r in range(1, len(REGIONS)))]

    async def testbench(ctx):
        for _ in range(120):
            pick = rng.random()
            if pick < 0.4:
                await caller.call(ctx, int(rng.choice(AREA)), single=rng.random() < 0.3,
                                  check_hold=True)
            elif pick < 0.7:
                await caller.call(ctx, int(rng.choice(programs)), check_hold=True)
            else:                       # a word of a response
                await caller.call(ctx, int(rng.integers(min(Script), max(Script) + 1)),
                                  single=True, check_hold=True)
        for addr in [*range(Data.CAPACITY), *SCRATCH]:
            assert await caller.peek(ctx, addr) == model.words[addr], f"word {addr}"

    run(board, testbench)


@pytest.mark.parametrize("seed", [1, 2])
def test_counters(seed):
    """Damaged frames and UART errors (strobes) and the carries of the run's cycles and of the
    output count (levels held until acknowledged) at random, beside random programs: each
    update is made once, soon, and the counters hold their sums."""
    rng = np.random.default_rng(seed)
    board, model, caller = reset_ledger(rng, avoid=COUNTED)
    ledger = board.ledger
    counts = {name: 0 for name, *_ in COUNTERS}
    latency = []
    state = {"on": True}

    async def strobes(ctx):
        last = {"frame_error": -100, "rx_error": -100}
        cycle = 0
        async for _ in ctx.tick():
            cycle += 1
            for name in last:
                fire = state["on"] and cycle - last[name] >= 80 and rng.random() < 0.05
                ctx.set(getattr(ledger, name), fire)
                if fire:
                    last[name] = cycle
                    counts[name] += 1

    def level(name):
        async def owner(ctx):
            raised = None
            cycle = 0
            async for _, _, ack in ctx.tick().sample(getattr(ledger, f"{name}_ack")):
                cycle += 1
                if ack:
                    assert raised is not None, f"{name}_ack without a carry"
                    latency.append(cycle - raised)
                    counts[name] += 1
                    raised = None
                elif raised is None and state["on"] and rng.random() < 0.02:
                    raised = cycle
                ctx.set(getattr(ledger, name), raised is not None)
        return owner

    async def testbench(ctx):
        for _ in range(150):
            if rng.random() < 0.7:
                await caller.call(ctx, int(rng.choice(AREA)), single=rng.random() < 0.3)
            else:
                await caller.call(ctx, int(rng.choice([Program.CHECK_FILL, Program.DATA_BYTE,
                                                       Program.STORE_TAG, Program.BEGIN_LENGTH,
                                                       Program.CHECK_RELEASED])))
        state["on"] = False
        await ctx.tick().repeat(200)
        assert await caller.peek(ctx, Data.ERRORS, check=False) == \
            counts["rx_error"] << 16 | counts["frame_error"]
        assert await caller.peek(ctx, Data.RUN_CYCLES, check=False) == 256 * counts["cycles"]
        assert await caller.peek(ctx, Data.WRITTEN, check=False) == \
            counts["written"] << RING_BIT
        for addr in [*range(Data.CAPACITY), *SCRATCH]:
            if addr not in COUNTED:
                assert await caller.peek(ctx, addr) == model.words[addr], f"word {addr}"

    run(board, testbench, background=[strobes, level("cycles"), level("written")])
    assert min(counts.values()) > 10
    # A carry waits for at most one program of the caller's and the other counters.
    assert max(latency) <= 7 * (MAX_OPS + len(COUNTERS))


def test_error_counters_saturate():
    """Each half of the error word stops at 0xFFFF without touching the other."""
    rng = np.random.default_rng(7)
    board, _, caller = reset_ledger(rng)
    ledger = board.ledger

    async def strobe(ctx, name, n):
        for _ in range(n):
            ctx.set(getattr(ledger, name), 1)
            await ctx.tick()
            ctx.set(getattr(ledger, name), 0)
            await ctx.tick().repeat(10)

    async def testbench(ctx):
        for start, frames, rxs, want in [(0x0000_FFFD, 4, 2, 0x0002_FFFF),
                                         (0xFFFD_0000, 1, 4, 0xFFFF_0001),
                                         (0xFFFF_FFFE, 3, 3, 0xFFFF_FFFF)]:
            await caller.poke(ctx, Data.ERRORS, start)
            await strobe(ctx, "frame_error", frames)
            await strobe(ctx, "rx_error", rxs)
            assert await caller.peek(ctx, Data.ERRORS, check=False) == want, hex(start)

    run(board, testbench)


def test_reset():
    """A reset in the middle of a program: the ledger runs its reset program first (programs
    wait), which clears the counters; the tag and every other word survive."""
    rng = np.random.default_rng(11)
    board, model, caller = reset_ledger(rng)
    ledger = board.ledger
    cleared = (Data.RUNS, Data.RUN_CYCLES, Data.ERRORS, Data.WRITTEN, Data.RELEASED,
               Data.IN_COUNT)

    async def testbench(ctx):
        for word in (*cleared, Data.TAG, Data.FILL, SCRATCH[3]):
            await caller.poke(ctx, word, int(rng.integers(1, 1 << 32)))
        ctx.set(ledger.call.program.valid, 1)
        ctx.set(ledger.call.program.payload, {"addr": Program.RUN, "single": 0})
        await ctx.tick().until(ledger.call.program.ready)
        ctx.set(ledger.call.program.valid, 0)
        await ctx.tick().repeat(8)          # RUN has counted the run, cleared nothing yet
        ctx.set(board.rst, 1)
        await ctx.tick()
        ctx.set(board.rst, 0)
        ctx.set(ledger.call.program.valid, 1)
        ctx.set(ledger.call.program.payload, {"addr": Program.CHECK_COMPLETE, "single": 0})
        waited = 0
        while not ctx.get(ledger.call.program.ready):
            assert not ctx.get(ledger.call.busy)
            waited += 1
            await ctx.tick()
        ctx.set(ledger.call.program.valid, 0)
        assert waited >= 6 * len(cleared)
        await ctx.tick().until(~ledger.call.busy)
        for word in cleared:
            model.words[word] = 0
        for word in (*cleared, Data.TAG, Data.FILL, SCRATCH[3]):
            assert await caller.peek(ctx, word) == model.words[word], f"word {word}"

    run(board, testbench)
