"""amaranth.sim tests of the indexing unit and the pass walker against numpy."""

import gc

import numpy as np
import pytest
from amaranth import Elaboratable, Module, unsigned
from amaranth.lib import memory, wiring
from amaranth.sim import Simulator

from compiler import pps
from sps_hw.indexing import SLOTS, TAP_LIST_BITS, ZERO_TAP, IndexingUnit, PassWalker, tap_list
from sps_hw.memories import ROM


def simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def tap_value(window, t):
    """Tap ``t`` of a window kept as (``column[0..2]``, ``left[0]``, ``left[1]``): the column
    for ``kx = 2``, else ``left[1 - kx]`` (sps_hw.window.Window)."""
    ky, kx = divmod(t, 3)
    return window[ky] if kx == 2 else window[4 - kx]


@pytest.mark.parametrize("rows", [1, 3, 8])
def test_indexing_unit_selects_masked_taps(rows):
    dut = IndexingUnit(rows)
    rng = np.random.default_rng(rows)
    taps = rng.integers(0, 10, size=(SLOTS, rows))
    taps[taps == 9] = ZERO_TAP

    async def testbench(ctx):
        for slot in range(SLOTS):
            for r in range(rows):
                ctx.set(dut.config.en, 1)
                ctx.set(dut.config.row, r)
                ctx.set(dut.config.slot, slot)
                ctx.set(dut.config.tap, int(taps[slot, r]))
                await ctx.tick()
        ctx.set(dut.config.en, 0)
        # Pixel i's slot and inside mask are set a cycle ahead of its windows.
        n = 40
        slots, insides = rng.integers(0, SLOTS, n + 1), rng.integers(0, 512, n + 1)
        ctx.set(dut.slot, int(slots[0]))
        ctx.set(dut.inside, int(insides[0]))
        await ctx.tick()
        for i in range(n):
            # Per row the window's column (kx = 2) and the picked row's kx = 1, 0.
            win = rng.integers(-128, 128, size=(rows, 5))
            bank = int(rng.integers(0, 2))
            ctx.set(dut.windows, [{"column": [int(v) for v in w[:3]],
                                   "left": [int(v) for v in w[3:]]} for w in win])
            ctx.set(dut.bank, bank)
            ctx.set(dut.slot, int(slots[i + 1]))
            ctx.set(dut.inside, int(insides[i + 1]))
            for r in range(rows):               # the row of the next pixel's tap
                t = taps[slots[i + 1], r]
                if t < 9:
                    assert ctx.get(dut.ky[r]) == t // 3
            await ctx.tick()
            for r in range(rows):
                t = int(taps[slots[i], r])
                want = tap_value(win[r], t) if t < 9 and insides[i] >> t & 1 else 0
                assert ctx.get(dut.acts[r].value) == want
                assert ctx.get(dut.acts[r].bank) == bank

    simulate(dut, testbench)


class WalkerBench(Elaboratable):
    """A :class:`PassWalker` with its index and library ROMs."""

    def __init__(self, rows, banks, assignment, library, read_latency):
        # The packed ROMs: library addresses per phase, tap lists per pattern.
        self.index = ROM(shape=unsigned(4), depth=16, init=assignment, read_latency=read_latency)
        self.library = ROM(shape=unsigned(TAP_LIST_BITS), depth=16,
                           init=[tap_list(mask) for mask in library], read_latency=read_latency)
        self.walker = PassWalker(
            rows=rows, banks=banks, addr_bits=12, hw_bits=8,
            index_rom=memory.ReadPort.Signature(addr_width=4, shape=unsigned(4)),
            library_rom=memory.ReadPort.Signature(addr_width=4, shape=unsigned(TAP_LIST_BITS)),
            read_latency=read_latency)

    def elaborate(self, platform):
        m = Module()
        m.submodules.index, m.submodules.library = self.index, self.library
        m.submodules.walker = self.walker
        wiring.connect(m, self.walker.index_rom, self.index.read)
        wiring.connect(m, self.walker.library_rom, self.library.read)
        return m


@pytest.mark.parametrize("rows, banks, keep, ci, period, read_latency", [
    (4, 4, 4, 5, 4, 2), (8, 8, 9, 3, 1, 2), (5, 7, 4, 9, 3, 1), (6, 6, 1, 13, 1, 2),
    (16, 16, 4, 8, 8, 2), (3, 4, 2, 4, 2, 1)])
def test_walker_matches_reduction_order(rows, banks, keep, ci, period, read_latency):
    rng = np.random.default_rng(rows + keep * 7 + ci)
    patterns = 1 if keep == 9 else 4
    library = [int(v) for v in rng.choice(pps.candidate_masks(keep), patterns, replace=False)]
    assignment = [int(v) for v in rng.integers(0, patterns, period)]
    hw = 7
    q_total = ci * keep
    passes = -(-q_total // rows)
    bench = WalkerBench(rows, banks, assignment, library, read_latency)
    dut = bench.walker
    routes, taps, bases = {}, {}, {}

    async def testbench(ctx):
        ctx.set(dut.layer.keep, keep)
        ctx.set(dut.layer.period, period)
        ctx.set(dut.layer.reduction, q_total)
        ctx.set(dut.layer.hw, hw)
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        n = 0
        for group in range(2):                  # two reductions: the walk must restart
            for p in range(passes):
                for r in range(rows):
                    ctx.set(dut.start, 1)
                    ctx.set(dut.first, p == 0 and r == 0)
                    ctx.set(dut.pixel, 3 + group)
                    await ctx.tick()
                ctx.set(dut.start, 0)
                for _ in range(int(rng.integers(0, 3))):
                    await ctx.tick()
                n += 1

    async def monitor(ctx):
        async for _, _, r_en, r_row, r_slot, r_bank, t_en, t_row, t_slot, t_tap, b_en, \
                b_slot, b_bank, b_block, b_next, b_pixel in ctx.tick().sample(
                    dut.routes.en, dut.routes.row, dut.routes.slot, dut.routes.bank,
                    dut.taps.en, dut.taps.row, dut.taps.slot, dut.taps.tap,
                    dut.bases.en, dut.bases.slot, dut.bases.first_bank, dut.bases.block,
                    dut.bases.block_next, dut.bases.pixel):
            if r_en:
                routes.setdefault(r_slot, []).append((r_row, r_bank))
            if t_en:
                taps.setdefault(t_slot, []).append((t_row, t_tap))
            if b_en:
                assert b_next == b_block + hw           # the next channel block's word
                bases.setdefault(b_slot, []).append((b_bank, b_block, b_pixel))

    sim = Simulator(bench)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.add_process(monitor)
    sim.run_until(1e-6 * (2 * passes * (rows + 3) + 10 + dut.tap_latency))

    # Reference: pass n (global) is pass p = n % passes of reduction n // passes, slot n % 3.
    total = 2 * passes
    seen = dict.fromkeys(range(SLOTS), 0)
    for n in range(total):
        p, group, slot = n % passes, n // passes, n % SLOTS
        k = seen[slot]
        seen[slot] += 1
        q = p * rows + np.arange(rows)
        c, s = q // keep, q % keep
        want_taps = [pps.mask_taps(library[assignment[ch % period]])[si] if qi < q_total
                     else ZERO_TAP for qi, ch, si in zip(q, c, s)]
        assert taps[slot][k * rows:(k + 1) * rows] == list(enumerate(want_taps))
        got_routes = routes[slot][k * rows:(k + 1) * rows]
        assert [row for row, _ in got_routes] == list(range(rows))
        assert [b for (_, b), qi in zip(got_routes, q) if qi < q_total] == \
            [int(ch % banks) for ch, qi in zip(c, q) if qi < q_total]
        c0 = p * rows // keep
        assert bases[slot][k] == (c0 % banks, (c0 // banks) * hw, 3 + group)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_constructors_reject_bad_parameters():
    sig = memory.ReadPort.Signature(addr_width=4, shape=unsigned(9))
    with pytest.raises(ValueError, match="rows must be at least 1"):
        IndexingUnit(0)
    with pytest.raises(TypeError, match=r"index_rom must be a memory\.ReadPort\.Signature"):
        PassWalker(rows=2, banks=2, addr_bits=4, hw_bits=4, index_rom=None, library_rom=sig)
    with pytest.raises(ValueError, match="library_rom must read 32-bit tap lists"):
        PassWalker(rows=2, banks=2, addr_bits=4, hw_bits=4, index_rom=sig,
                   library_rom=memory.ReadPort.Signature(addr_width=4, shape=unsigned(8)))
    gc.collect()
