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


@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 5), (4, 4), (6, 2)])
def test_array_matches_matmul(rows, cols):
    """A stream of pixels with random bank bits gives ``sum_r W[bank][r][c] * x[r]``."""
    dut = SystolicArray(rows, cols)
    rng = np.random.default_rng(rows * 10 + cols)
    weights = rng.integers(-128, 128, size=(2, rows, cols))
    n = 24
    x = rng.integers(-128, 128, size=(n, rows))
    x[0], x[1] = -128, 127                         # extreme products
    banks = rng.integers(0, 2, size=n)
    expect = np.einsum("nrc,nr->nc", weights[banks], x)
    latency = SystolicArray.latency(rows, cols)

    async def testbench(ctx):
        for b in range(2):
            for r in range(rows):
                ctx.set(dut.load.en, 1)
                ctx.set(dut.load.row, r)
                ctx.set(dut.load.bank, b)
                ctx.set(dut.load.data, [int(v) for v in weights[b, r]])
                await ctx.tick()
        ctx.set(dut.load.en, 0)
        got = []
        for t in range(n + latency):
            if t < n:
                ctx.set(dut.acts, [{"value": int(v), "bank": int(banks[t])} for v in x[t]])
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
    gc.collect()
