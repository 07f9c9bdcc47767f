"""The tile planner and memory model (``sps_hw.tiling``) against brute-force enumeration."""

import math

import numpy as np
import pytest

from sps_hw import tiling
from sps_hw.config import Config

CFG = Config(rows=8, cols=8, max_hw=1024, max_width=64, fmap_depth=1024)
FAST = tiling.Memory(1e9, 0)


def conv(ci, co, h, w, k=3, stride=1, keep=4, pool=False):
    pad = k // 2
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    if pool:
        ho, wo = ho // 2, wo // 2
    return {"name": "L", "op": "conv", "in_shape": [ci, h, w], "out_shape": [co, ho, wo],
            "kernel": k, "stride": stride, "pad": pad, "keep": keep if k == 3 else 1,
            "relu": True, "pool": {"k": 2, "s": 2, "p": 0} if pool else None}


def loaded_pixels(layer, th, tw):
    """Input pixels all tiles of ``th x tw`` outputs load: the pixels their windows reach
    (3x3), or the rows they use with the run of columns between their first and last (1x1:
    the memory is read in contiguous runs), counted by marking them."""
    _, h, w = layer["in_shape"]
    k, s, p = layer["kernel"], layer["stride"], layer["pad"]
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    total = 0
    for y0 in range(0, ho, th):
        for x0 in range(0, wo, tw):
            seen = np.zeros((h, w), bool)
            for y in range(y0, min(y0 + th, ho)):
                for x in range(x0, min(x0 + tw, wo)):
                    seen[max(0, y * s - p):y * s - p + k, max(0, x * s - p):x * s - p + k] = 1
            if k == 1:
                cols = np.flatnonzero(seen.any(axis=0))
                seen[np.ix_(seen.any(axis=1), np.arange(cols[0], cols[-1] + 1))] = 1
            total += int(seen.sum())
    return total


@pytest.mark.parametrize("seed", range(12))
def test_bytes_match_enumeration(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.choice([1, 3]))
    stride = int(rng.choice([1, 2]))
    pool = bool(rng.integers(2)) and stride == 1
    h, w = (int(v) for v in rng.integers(4, 40, 2) * (2 if pool else 1))
    ci, co = (int(v) for v in rng.integers(1, 70, 2))
    layer = conv(ci, co, h, w, k, stride, keep=int(rng.integers(1, 10)), pool=pool)
    plan = tiling.plan_tiles(layer, layer["in_shape"], CFG, FAST)
    assert not isinstance(plan, str), plan
    th, tw = plan.tile
    _, ho, wo = layer["out_shape"]
    per_channel = math.ceil(ci / CFG.banks)
    # Every tile fits: its outputs in the accumulator, its loaded input in a feature buffer.
    assert th * tw <= CFG.max_hw
    assert per_channel * min(h, (th - 1) * stride + k) * min(w, (tw - 1) * stride + k) \
        <= CFG.fmap_depth
    if pool:
        assert th % 2 == 0 and tw % 2 == 0
    conv_h, conv_w = (ho * 2, wo * 2) if pool else (ho, wo)
    assert plan.tiles == math.ceil(conv_h / th) * math.ceil(conv_w / tw)
    assert plan.read_bytes["input"] == ci * loaded_pixels(layer, th, tw)
    assert plan.write_bytes == co * ho * wo
    groups = math.ceil(co / CFG.cols)
    passes = groups * math.ceil(ci * layer["keep"] / CFG.rows)
    assert plan.passes == passes
    assert plan.read_bytes["weights"] == plan.tiles * passes * CFG.rows * CFG.cols
    assert 0 < plan.pixel_efficiency <= 1


def test_stall_grows_as_bandwidth_falls():
    layer = conv(64, 64, 32, 32)
    stalls = [tiling.plan_tiles(layer, layer["in_shape"], CFG, tiling.Memory(b, 8))
              .stall_cycles for b in (64, 8, 1, 0.25)]
    assert stalls == sorted(stalls) and stalls[0] < stalls[-1]
    plan = tiling.plan_tiles(layer, layer["in_shape"], CFG, tiling.Memory(0.25, 8))
    moved = sum(plan.read_bytes.values()) + plan.write_bytes
    # Memory-bound: the layer takes at least as long as moving its bytes.
    assert plan.cycles >= moved / 0.25


def test_sps_moves_four_ninths_of_the_dense_weights():
    sps, dense = (tiling.plan_tiles(conv(64, 64, 16, 16, keep=keep), [64, 16, 16], CFG, FAST)
                  for keep in (4, 9))
    assert sps.tile == dense.tile
    assert sps.read_bytes["weights"] * 9 == dense.read_bytes["weights"] * 4


def test_fc_reads_each_weight_once():
    layer = {"name": "fc", "op": "conv", "in_shape": [32 * 7 * 7, 1, 1], "out_shape": [10, 1, 1],
             "kernel": 1, "stride": 1, "pad": 0, "keep": 1, "relu": False, "pool": None}
    plan = tiling.plan_tiles(layer, (32, 7, 7), CFG, FAST)
    assert plan.kind == "fc" and plan.tiles == 1
    assert plan.read_bytes["input"] == 32 * 49
    assert plan.read_bytes["weights"] == 2 * 49 * 4 * 64      # groups x subs x passes x R*C


def test_host_layers_say_why():
    assert "7x7" in tiling.plan_tiles(conv(3, 8, 32, 32, k=7, stride=2) | {"pad": 3},
                                      [3, 32, 32], CFG, FAST)
    pool = {"name": "p", "op": "maxpool", "in_shape": [8, 8, 8], "out_shape": [8, 4, 4]}
    assert "maxpool" in tiling.plan_tiles(pool, [8, 8, 8], CFG, FAST)
    assert "not even one output row" in tiling.plan_tiles(conv(4096, 8, 8, 8), [4096, 8, 8],
                                                          CFG, FAST)


def test_report_totals_add_up():
    report = tiling.memory_report("vgg16", CFG.replace(max_width=256, fmap_depth=8192,
                                                       max_hw=4096),
                                  tiling.sdram_memory("sdr16", 90))
    hw = [r for r in report["layers"] if r["runs"] == "hardware"]
    assert len(hw) == 16                     # 13 convolutions and 3 FC layers
    totals = report["totals"]
    assert totals["cycles"] == sum(r["cycles"] for r in hw)
    assert totals["write_bytes"] == sum(r["write_bytes"] for r in hw)


def test_bad_arguments():
    with pytest.raises(ValueError, match="bytes_per_cycle"):
        tiling.Memory(0)
    with pytest.raises(ValueError, match="latency"):
        tiling.Memory(2, -1)
    with pytest.raises(TypeError, match="Config"):
        tiling.plan_tiles(conv(8, 8, 8, 8), [8, 8, 8], None, FAST)
    with pytest.raises(TypeError, match="Memory"):
        tiling.plan_tiles(conv(8, 8, 8, 8), [8, 8, 8], CFG, 2)
    with pytest.raises(ValueError, match="memory kind"):
        tiling.sdram_memory("hbm", 90)
