"""amaranth.sim tests of the line-buffer 3x3 window generator against numpy."""

import gc

import numpy as np
import pytest
from amaranth.sim import Simulator

from sps_hw.window import WindowGenerator


def expected_windows(stream, width):
    """``window[i][ky*3+kx] = stream[i - (2-ky)*width - (2-kx)]`` where that index exists."""
    n = len(stream)
    idx = np.arange(n)[:, None] - np.array([(2 - t // 3) * width + (2 - t % 3)
                                            for t in range(9)])[None, :]
    return np.where(idx >= 0, stream[np.clip(idx, 0, None)], 0), idx >= 0


@pytest.mark.parametrize("max_width, width, gap_prob", [
    (1, 1, 0.0), (4, 1, 0.3), (4, 3, 0.0), (8, 5, 0.4), (8, 8, 0.2), (16, 7, 0.0)])
def test_windows_match_numpy(max_width, width, gap_prob):
    dut = WindowGenerator(max_width=max_width)
    rng = np.random.default_rng(max_width * 100 + width)
    stream = rng.integers(-128, 128, size=6 * width + 7)
    want, known = expected_windows(stream, width)

    async def testbench(ctx):
        ctx.set(dut.layer.length, width)
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        issue = []                          # issue[t]: stream index issued in cycle t, or None
        nxt = 0
        while nxt < len(stream) or issue[-1] is not None or issue[-2] is not None:
            if nxt < len(stream) and rng.random() >= gap_prob:
                issue.append(nxt)
                nxt += 1
            else:
                issue.append(None)
        issue += [None, None]
        got = {}
        for t, i in enumerate(issue):
            ctx.set(dut.advance, i is not None)
            prev = issue[t - 1] if t else None
            if prev is not None:
                ctx.set(dut.pixel, int(stream[prev]))     # data arrives the cycle after issue
            await ctx.tick()
            if prev is not None:                           # shifted in at the end of cycle t
                got[prev] = [ctx.get(dut.window[k]) for k in range(9)]
        assert sorted(got) == list(range(len(stream)))
        win = np.array([got[i] for i in range(len(stream))])
        np.testing.assert_array_equal(np.where(known, win, 0), want)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_width():
    with pytest.raises(ValueError, match="max_width must be at least 1"):
        WindowGenerator(max_width=0)
    gc.collect()
