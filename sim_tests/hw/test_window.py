"""amaranth.sim tests of the line-buffer 3x3 window generator against numpy."""

import gc

import numpy as np
import pytest
from amaranth.sim import Simulator

from sps_hw.window import WindowGenerator

from ..support.synthesis import cell_counts


def expected_windows(stream, width, ky):
    """Per stream index ``i`` (shifted in with row ``ky[i]``), the five values a window keeps
    (``column[0..2]``, ``left[0]``, ``left[1]``): ``column[r] = stream[i - (2-r)*width]``,
    ``left[0] = stream[i - (2-ky[i])*width - 1]``, ``left[1] = stream[i - (2-ky[i-1])*width
    - 2]``; and where that index exists (with ``width`` 1 only ``column[2]``)."""
    i = np.arange(len(stream))
    before = np.concatenate([[0], ky[:-1]])
    idx = np.stack([i - 2 * width, i - width, i, i - (2 - ky) * width - 1,
                    i - (2 - before) * width - 2], axis=1)
    known = idx >= 0
    if width == 1:                      # a 1x1 layer's ring: only the newest pixel is used
        known[:, [0, 1, 3, 4]] = False
    return np.where(known, stream[np.clip(idx, 0, None)], 0), known


@pytest.mark.parametrize("max_width, width, gap_prob", [
    (1, 1, 0.0), (4, 1, 0.3), (4, 3, 0.0), (8, 5, 0.4), (8, 8, 0.2), (16, 7, 0.0)])
def test_windows_match_numpy(max_width, width, gap_prob):
    dut = WindowGenerator(max_width=max_width)
    rng = np.random.default_rng(max_width * 100 + width)
    stream = rng.integers(-128, 128, size=6 * width + 7)
    # The row the consumer picks: held for a run of pixels (a pass), then another.
    ky = np.repeat(rng.integers(0, 3, size=len(stream)), rng.integers(1, 2 * width + 2,
                                                                      size=len(stream)))
    ky = ky[:len(stream)]
    want, known = expected_windows(stream, width, ky)

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
            if prev is not None:                # data arrives the cycle after issue, with ky
                ctx.set(dut.pixel, int(stream[prev]))
                ctx.set(dut.ky, int(ky[prev]))
            await ctx.tick()
            if prev is not None:                           # shifted in at the end of cycle t
                window = ctx.get(dut.window)
                got[prev] = [*window.column, *window.left]
        assert sorted(got) == list(range(len(stream)))
        win = np.array([got[i] for i in range(len(stream))])
        np.testing.assert_array_equal(np.where(known, win, 0), want)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_ring_is_a_block_ram_on_ecp5(tmp_path):
    """The ring is a DP16KD, not distributed RAM (93 LUT4, 30 PFUMX and 16 TRELLIS_DPR16X4
    for 64 entries), and its read has no read-during-write logic."""
    cells = cell_counts(tmp_path, WindowGenerator(max_width=64), "synth_ecp5 -top top")
    assert cells["DP16KD"] == 1 and "TRELLIS_DPR16X4" not in cells, cells
    assert cells["LUT4"] <= 40, cells


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_width():
    with pytest.raises(ValueError, match="max_width must be at least 1"):
        WindowGenerator(max_width=0)
    gc.collect()
