"""amaranth.sim tests of the processing element and the systolic array against numpy."""

import gc

import numpy as np
import pytest
from amaranth.sim import Simulator

from sps_hw.pe import ProcessingElement, SystolicArray


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_pe_operands_accumulate_and_banks():
    """The operands are the next activation and its bank's weight (a weight written in this
    cycle counts from the next); the product coming back is added to ``psum_in``."""
    dut = ProcessingElement()
    rng = np.random.default_rng(1)
    cases = [(-128, -128, 2**31 - 2**14 - 1), (127, -128, -2**31 + 2**14 + 2), (-128, 127, 0)]
    cases += [(*(int(v) for v in rng.integers(-128, 128, 2)), int(rng.integers(-2**30, 2**30)))
              for _ in range(20)]

    async def testbench(ctx):
        weights = [0, 0]
        for i, (w, x, psum) in enumerate(cases):
            bank = i % 2
            ctx.set(dut.load.en, 1)
            ctx.set(dut.load.bank, bank)
            ctx.set(dut.load.data, w)
            ctx.set(dut.act_next, {"value": x, "bank": bank})
            assert ctx.get(dut.operands.b) == weights[bank]     # written at the clock edge
            await ctx.tick()
            weights[bank] = w
            ctx.set(dut.load.en, 0)
            for b in (0, 1):
                ctx.set(dut.act_next, {"value": x, "bank": b})
                ctx.set(dut.act_in, {"value": x, "bank": b})
                assert (ctx.get(dut.operands.a), ctx.get(dut.operands.b)) == (x, weights[b])
                product = weights[b] * x
                ctx.set(dut.product, product)
                ctx.set(dut.psum_in, psum)
                await ctx.tick()
                assert ctx.get(dut.psum_out) == psum + product
                assert ctx.get(dut.act_out.value) == x and ctx.get(dut.act_out.bank) == b

    run(dut, testbench)


@pytest.mark.parametrize("rows, cols, load_latency",
                         [(1, 1, 0), (3, 5, 0), (4, 4, 2), (6, 2, 1), (3, 5, 2), (5, 3, 3)])
def test_array_matches_matmul(rows, cols, load_latency):
    """Passes of random pixels, each with weights of its own in the bank of its parity, give
    ``sum_r W[pass][r][c] * x[r]``. Each pass's rows are loaded, one per cycle, as late as
    the array allows (written two cycles before the pass's first activation reaches the
    row's first PE, ``load_latency`` cycles after ``load``): a later write, or a bank taken
    from the wrong pass, changes sums."""
    dut = SystolicArray(rows, cols, load_latency=load_latency)
    rng = np.random.default_rng(rows * 100 + cols * 10 + load_latency)
    cycle = max(rows, cols + load_latency)             # the pixels of a pass
    passes = 4
    weights = rng.integers(-128, 128, size=(passes, rows, cols))
    n = passes * cycle
    x = rng.integers(-128, 128, size=(n, rows))
    x[0], x[1] = -128, 127                         # extreme products
    weights[0, :, :] = -128
    pass_of = np.arange(n) // cycle
    expect = np.einsum("nrc,nr->nc", weights[pass_of], x)
    latency = SystolicArray.latency(rows, cols)
    # Pass p's row r: its first activation is on the array's input at p * cycle and on the
    # row's first act_in r + 1 cycles later.
    loads = {p * cycle + r + 1 - 2 - load_latency: (p, r)
             for p in range(1, passes) for r in range(rows)}

    def load(ctx, p, r):
        for name, value in (("en", 1), ("row", r), ("bank", p % 2),
                            ("data", [int(v) for v in weights[p, r]])):
            ctx.set(getattr(dut.load, name), value)

    async def testbench(ctx):
        for r in range(rows):                      # pass 0, before the stream
            load(ctx, 0, r)
            await ctx.tick()
        ctx.set(dut.load.en, 0)
        for _ in range(load_latency):
            await ctx.tick()
        got = []
        for t in range(n + latency):
            if t in loads:
                load(ctx, *loads[t])
            else:
                ctx.set(dut.load.en, 0)
            if t < n:
                ctx.set(dut.acts, [{"value": int(v), "bank": int(pass_of[t] % 2)}
                                   for v in x[t]])
            if t >= latency:
                got.append([ctx.get(dut.sums[c]) for c in range(cols)])
            await ctx.tick()
        np.testing.assert_array_equal(np.array(got), expect)

    run(dut, testbench)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_array_rejects_bad_sizes():
    with pytest.raises(TypeError, match="rows must be an int"):
        SystolicArray(2.0, 3)
    with pytest.raises(ValueError, match="cols must be at least 1"):
        SystolicArray(2, 0)
    with pytest.raises(ValueError, match="load_latency must be at least 0"):
        SystolicArray(2, 2, load_latency=-1)
    gc.collect()
