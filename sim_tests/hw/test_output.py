"""amaranth.sim tests of the output side (accumulate, requantize, pool, write) against
``compiler.golden`` / ``compiler.kernels``."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from compiler import golden, kernels
from sps_hw.output import (
    Accumulator,
    MaxPool2,
    OutputSequencer,
    OutputWriter,
    Requantizer,
    round_clamp,
)


def simulate(dut, testbench, processes=()):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    for p in processes:
        sim.add_process(p)
    sim.run()


def test_requantizer_matches_golden():
    cols = 4
    dut = Requantizer(cols=cols)
    rng = np.random.default_rng(0)
    n = 60
    acc = rng.integers(-2**31, 2**31, size=(n, cols))
    mult = rng.integers(1, 2**31, size=(n, cols))
    shift = rng.integers(1, 64, size=(n, cols))
    # Corners: extreme accumulators and multipliers, shifts 1 and 63, small values near 0.
    acc[0], mult[0], shift[0] = [-2**31, 2**31 - 1, -1, 0], 2**31 - 1, [1, 1, 63, 62]
    acc[1], mult[1], shift[1] = [-2**31, 2**31 - 1, 5, -5], 1, [1, 31, 1, 2]
    acc[2:6] = rng.integers(-300, 300, size=(4, cols))
    mult[2:6], shift[2:6] = rng.integers(1, 2**15, size=(4, cols)), rng.integers(1, 20, (4, cols))
    relu = rng.integers(0, 2, size=n)
    want = np.stack([golden.requantize(acc[i], mult[i], shift[i], bool(relu[i]))
                     for i in range(n)])

    async def testbench(ctx):
        got = []
        for t in range(n + Requantizer.latency):
            if t < n:
                ctx.set(dut.valid, 1)
                ctx.set(dut.acc, [int(v) for v in acc[t]])
                ctx.set(dut.mult, [int(v) for v in mult[t]])
                ctx.set(dut.shift, [int(v) for v in shift[t]])
                ctx.set(dut.relu, int(relu[t]))
            else:
                ctx.set(dut.valid, 0)
            await ctx.tick()
            if ctx.get(dut.out_valid):
                got.append([ctx.get(dut.out[c]) for c in range(cols)])
        np.testing.assert_array_equal(np.array(got), want)

    simulate(dut, testbench)


@pytest.mark.parametrize("hw, stall, read_latency", [(5, 0.3, 2), (1, 0.0, 2), (1, 0.3, 1),
                                                     (4, 0.0, 2), (3, 0.0, 1)])
def test_accumulator_sums_passes_with_bias(hw, stall, read_latency):
    """Passes of a pixel as close as the accumulator allows (``rmw_cycles`` apart: hw = 4
    without stalls, or hw = 1 padded) read the total written just before."""
    cols, depth, passes = 3, 16, 4
    dut = Accumulator(cols=cols, depth=depth, read_latency=read_latency)
    rng = np.random.default_rng(hw)
    sums = rng.integers(-2**20, 2**20, size=(2, passes, hw, cols))     # two groups
    bias = rng.integers(-2**20, 2**20, size=(2, cols))
    want = bias[:, None, :] + sums.sum(axis=1)

    async def testbench(ctx):
        got = []
        schedule = [(g, p, i) for g in range(2) for p in range(passes) for i in range(hw)]
        timeline, seen = [], {}
        for item in schedule:
            while rng.random() < stall or \
                    len(timeline) - seen.get(item[2], -99) < dut.rmw_cycles:
                timeline.append(None)
            seen[item[2]] = len(timeline)
            timeline.append(item)
        # The sums of an item arrive read_latency cycles after its control.
        arriving = [None] * read_latency
        for item in timeline + [None] * (read_latency + 2):
            if item is not None:
                g, p, i = item
                ctx.set(dut.valid, 1)
                ctx.set(dut.pixel, i)
                ctx.set(dut.first, p == 0)
                ctx.set(dut.last, p == passes - 1)
            else:
                ctx.set(dut.valid, 0)
            arriving.append(item)
            data = arriving.pop(0)
            if data is not None:
                g, p, i = data
                ctx.set(dut.sums, [int(v) for v in sums[g, p, i]])
                ctx.set(dut.bias, [int(v) for v in bias[g]])
            await ctx.tick()
            if ctx.get(dut.result_valid):
                got.append([ctx.get(dut.result[c]) for c in range(cols)])
        np.testing.assert_array_equal(np.array(got).reshape(2, hw, cols), want)

    simulate(dut, testbench)


@pytest.mark.parametrize("h, w, enable", [(4, 4, 1), (5, 7, 1), (6, 2, 1), (3, 5, 0), (8, 8, 1)])
def test_maxpool_matches_kernels(h, w, enable):
    cols = 3
    dut = MaxPool2(cols=cols, max_width=8, hw_bits=7)
    rng = np.random.default_rng(h * 10 + w)
    images = rng.integers(-128, 128, size=(2, cols, h, w))        # two images back to back
    if enable:
        want = np.concatenate([kernels.maxpool(img.astype(np.int8), 2, 2, 0)
                               .reshape(cols, -1).T for img in images])
    else:
        want = np.concatenate([img.reshape(cols, -1).T for img in images])

    async def testbench(ctx):
        for name, value in (("pool", enable), ("hw", h * w), ("width", w)):
            ctx.set(getattr(dut.layer, name), value)
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        got, first = [], []
        pixels = [(n, y, x) for n in range(2) for y in range(h) for x in range(w)]
        k, tail = 0, 0
        while tail < MaxPool2.latency + 1:
            tail += k == len(pixels)
            if k < len(pixels) and rng.random() < 0.7:
                n, y, x = pixels[k]
                ctx.set(dut.valid, 1)
                ctx.set(dut.values, [int(v) for v in images[n, :, y, x]])
                k += 1
            else:
                ctx.set(dut.valid, 0)
            await ctx.tick()
            if ctx.get(dut.out_valid):
                got.append([ctx.get(dut.out[c]) for c in range(cols)])
                first.append(ctx.get(dut.out_first))
        ctx.set(dut.valid, 0)
        np.testing.assert_array_equal(np.array(got), want)
        per_image = len(want) // 2
        assert first == ([1] + [0] * (per_image - 1)) * 2

    simulate(dut, testbench)


@pytest.mark.parametrize("cols, banks, channels, out_hw", [(3, 4, 7, 5), (4, 4, 8, 3),
                                                           (2, 5, 9, 1), (5, 5, 5, 2)])
def test_writer_bank_layout(cols, banks, channels, out_hw):
    dut = OutputWriter(cols=cols, banks=banks, addr_bits=8)
    rng = np.random.default_rng(channels)
    groups = -(-channels // cols)
    values = rng.integers(-128, 128, size=(groups, out_hw, cols))
    memory = {}

    async def testbench(ctx):
        ctx.set(dut.layer.channels, channels)
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        for g in range(groups):
            for i in range(out_hw):
                # A group starts at least two cycles after the last (and after a restart).
                gap = i == 0
                while gap or rng.random() < 0.3:
                    gap = False
                    ctx.set(dut.valid, 0)
                    await ctx.tick()
                ctx.set(dut.valid, 1)
                ctx.set(dut.first, i == 0)
                ctx.set(dut.values, [int(v) for v in values[g, i]])
                await ctx.tick()
        ctx.set(dut.valid, 0)
        await ctx.tick().repeat(OutputWriter.latency + 1)

    async def monitor(ctx):
        ports = [(p.en, p.addr, p.data) for p in dut.write]
        async for _, _, *sampled in ctx.tick().sample(*(s for p in ports for s in p)):
            for b in range(banks):
                en, addr, value = sampled[3 * b:3 * b + 3]
                if en:
                    assert (b, addr) not in memory, f"bank {b} word {addr} written twice"
                    memory[b, addr] = value

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.add_process(monitor)
    sim.run()
    flat = values.transpose(0, 2, 1).reshape(groups * cols, out_hw)[:channels]
    want = {(c % banks, (c // banks) * out_hw + i): int(flat[c, i])
            for c in range(channels) for i in range(out_hw)}
    assert memory == want


def test_sequencer_counts_passes_and_groups():
    """Two layers one after the other: each counter starts over at the restart."""
    dut = OutputSequencer(hw_bits=6)

    async def testbench(ctx):
        for hw, passes, subs, groups in ((6, 2, 3, 2), (3, 1, 2, 3)):
            for name, v in (("hw", hw), ("passes", passes), ("subs", subs), ("groups", groups)):
                ctx.set(getattr(dut.layer, name), v)
            ctx.set(dut.restart, 1)
            await ctx.tick()
            ctx.set(dut.restart, 0)
            for g in range(groups):
                for sub in range(subs):
                    for p in range(passes):
                        for i in range(hw):
                            ctx.set(dut.valid, 1)
                            got = (ctx.get(dut.group), ctx.get(dut.pixel), ctx.get(dut.first),
                                   ctx.get(dut.last), ctx.get(dut.end))
                            want = (g, i, int(sub == 0 and p == 0),
                                    int(sub == subs - 1 and p == passes - 1),
                                    int(g == groups - 1 and sub == subs - 1
                                        and p == passes - 1 and i == hw - 1))
                            assert got == want
                            await ctx.tick()
                            ctx.set(dut.valid, 0)
                            await ctx.tick()

    simulate(dut, testbench)


@pytest.mark.parametrize("width", [33, 48, 64])
def test_round_clamp_boundaries(width):
    """Every shift 1..63 at the rounding and saturation edges (h = 2p >> s around -258..257),
    random products of every size, and shift 0 (gives 0, as before)."""
    m = Module()
    p, s, relu, out = Signal(signed(width)), Signal(6), Signal(), Signal(signed(8))
    m.d.comb += out.eq(round_clamp(m, p, s, relu, "rq"))
    top = 2 ** min(width - 1, 62)                # int32 * int32 products stay below 2**62
    rng = np.random.default_rng(width)
    cases = [(v, sh, r) for sh in range(1, 64)
             for base in (-258, -257, -256, -255, -129, -128, -3, -2, -1, 0, 1, 253, 254, 255, 256)
             for v in (base * 2 ** (sh - 1) - 1, base * 2 ** (sh - 1), base * 2 ** (sh - 1) + 1)
             for r in (0, 1) if -top <= v < top]
    cases += [(v, sh, sh % 2) for sh in range(1, 64) for v in (-top, -top + 1, top - 1, 0)]
    bits = rng.integers(1, width + 1, size=600)
    cases += [(int(rng.integers(-2 ** (b - 1), 2 ** (b - 1))) if b < 63 else
               int(rng.integers(-top, top)), int(rng.integers(1, 64)), int(rng.integers(0, 2)))
              for b in bits]

    async def testbench(ctx):
        got = []
        for v, sh, r in cases:
            ctx.set(p, v)
            ctx.set(s, sh)
            ctx.set(relu, r)
            got.append(ctx.get(out))
        want = [int(golden.clamp(golden.rounding_shift(v, sh), r)) for v, sh, r in cases]
        assert got == want
        for v in (-top, -5, 0, 7, top - 1):
            ctx.set(p, v)
            ctx.set(s, 0)
            assert ctx.get(out) == 0

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
