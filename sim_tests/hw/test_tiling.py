"""The memory model of job-by-job execution (``sps_hw.tiling``)."""

import json
import math

import numpy as np
import pytest

from sps_hw import jobs, tiling
from sps_hw.config import Config
from sps_hw.model import plan_layer

CFG = Config(rows=8, cols=8, max_hw=256, max_width=32, fmap_depth=512, weight_depth=1024,
             param_depth=8)
FAST = tiling.Memory(1e9, 0)


def conv(ci, co, h, w, k=3, keep=4, pool=False):
    out = [co, h // 2, w // 2] if pool else [co, h, w]
    return {"name": "L", "op": "conv", "inputs": ["input"], "in_shape": [ci, h, w],
            "out_shape": out, "kernel": k, "stride": 1, "pad": k // 2,
            "keep": keep if k == 3 else 1, "relu": True,
            "pool": {"k": 2, "s": 2, "p": 0} if pool else None}


@pytest.mark.parametrize("seed", range(10))
def test_bytes_follow_the_jobs(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.choice([1, 3]))
    pool = bool(rng.integers(2))
    h, w = (int(v) for v in rng.integers(6, 40, 2))
    ci, co = (int(v) for v in rng.integers(1, 70, 2))
    layer = conv(ci, co, h, w, k, keep=int(rng.integers(1, 10)), pool=pool)
    traffic = tiling.layer_traffic(layer, layer["in_shape"], CFG, FAST)
    assert not isinstance(traffic, str), traffic
    work = jobs.plan_jobs(layer, None, layer["in_shape"], CFG)
    tiles = {(j.rows.start, j.rows.stop, j.cols.start, j.cols.stop) for j in work}
    assert traffic.jobs == len(work) and traffic.tiles == len(tiles)
    # Each tile's input once, with its halo: at least the map, at most every tile's window.
    loaded = sum(ci * (y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in tiles)
    assert traffic.read_bytes["input"] == loaded >= ci * (h - h % 2 * pool) * (w - w % 2 * pool)
    # A chunk's weights are staged when the chunk changes from one job to the next.
    staged = [j for i, j in enumerate(work) if i == 0 or j.channels != work[i - 1].channels]
    assert traffic.read_bytes["weights"] == sum(j.plan.total * 8 * 8 for j in staged)
    assert traffic.write_bytes == math.prod(layer["out_shape"])
    assert traffic.drained_bytes >= traffic.write_bytes
    assert traffic.compute_cycles == sum(j.plan.cycles for j in work)


def test_one_job_by_hand():
    """A layer that fits, by hand from the engine's sequence (sps_hw.tiling): read the record
    and stage every image (each read: its bytes, READ_OVERHEAD, the latency beyond one
    cycle), commit, load the input, compute, drain through the writer, whose last response
    ends the run."""
    layer = conv(16, 8, 8, 8)
    memory = tiling.Memory(1, 7)
    traffic = tiling.layer_traffic(layer, [16, 8, 8], CFG, memory)
    plan = plan_layer(layer, (16, 8, 8), CFG)
    words = tiling._word_bytes(CFG)
    images = [plan.total * 8 * words["weights"], words["index"], words["library"],
              plan.groups * words["params"], 2 * CFG.layer_words * words["layers"]]

    def read(n):
        return n + tiling.READ_OVERHEAD + 6

    commit = 1 + 1 + read(tiling.RECORD_BYTES) + 1 + sum(read(n) for n in images)
    prep = commit + 1 + read(16 * 64)
    drained = prep + plan.cycles - 2 + tiling.DRAIN_OVERHEAD + 8 * 64 + \
        tiling.DRAIN_PER_CHANNEL * 8
    assert traffic.jobs == 1
    assert traffic.compute_cycles == plan.cycles
    assert traffic.cycles == drained + 3 + 7


def test_stall_grows_as_bandwidth_falls():
    """Below one byte a cycle (the engine's rate) the memory slows every read; above it,
    only its latency counts."""
    layer = conv(64, 64, 32, 32)
    stalls = [tiling.layer_traffic(layer, layer["in_shape"], CFG, tiling.Memory(b, lat))
              .stall_cycles for b, lat in ((64, 8), (2, 8), (1, 8), (0.5, 8), (0.1, 8),
                                           (1, 40))]
    assert stalls[0] == stalls[1] == stalls[2] < stalls[3] < stalls[4]
    assert stalls[2] < stalls[5]


def test_sps_moves_four_ninths_of_the_dense_weights():
    sps, dense = (tiling.layer_traffic(conv(64, 64, 16, 16, keep=keep), [64, 16, 16], CFG, FAST)
                  for keep in (4, 9))
    assert sps.tiles == dense.tiles and sps.jobs < dense.jobs     # dense needs smaller chunks
    assert sps.read_bytes["weights"] * 9 == dense.read_bytes["weights"] * 4


def test_host_layers_say_why():
    pool = {"name": "p", "op": "maxpool", "in_shape": [8, 8, 8], "out_shape": [8, 4, 4]}
    assert "maxpool" in tiling.layer_traffic(pool, [8, 8, 8], CFG, FAST)
    assert "weight words" in tiling.layer_traffic(conv(4096, 8, 8, 8), [4096, 8, 8], CFG, FAST)
    assert "no tile" in tiling.layer_traffic(conv(600, 8, 8, 8, keep=1), [600, 8, 8], CFG, FAST)


def test_report_totals_add_up():
    report = tiling.memory_report("vgg16", CFG.replace(
        max_width=256, fmap_depth=8192, max_hw=4096, weight_depth=4096, param_depth=64),
        tiling.sdram_memory("sdr16", 90))
    hw = [r for r in report["layers"] if r["runs"] == "hardware"]
    # Every layer: fc6's output group needs more weight words than the weight memory holds,
    # so it runs as reduction chunks (7 of 3,584 inputs per group of 8 outputs).
    assert len(hw) == 16 == len(report["layers"])
    fc6 = next(r for r in hw if r["name"] == "fc6")
    assert fc6["kind"] == "fc" and fc6["jobs"] == 512 * 7
    assert fc6["read_bytes"]["weights"] == 25088 * 4096
    totals = report["totals"]
    assert totals["cycles"] == sum(r["cycles"] for r in hw)
    assert totals["write_bytes"] == sum(r["write_bytes"] for r in hw)


def test_bad_arguments():
    with pytest.raises(ValueError, match="bytes_per_cycle"):
        tiling.Memory(0)
    with pytest.raises(ValueError, match="latency"):
        tiling.Memory(2, -1)
    with pytest.raises(TypeError, match="Config"):
        tiling.layer_traffic(conv(8, 8, 8, 8), [8, 8, 8], None, FAST)
    with pytest.raises(TypeError, match="Memory"):
        tiling.layer_traffic(conv(8, 8, 8, 8), [8, 8, 8], CFG, 2)
    with pytest.raises(ValueError, match="memory kind"):
        tiling.sdram_memory("hbm", 90)


def test_report_cycles_from_external_memory(capsys):
    from sps.cli import main
    assert main(["report", "cycles", "vgg16", "--dram-bytes-per-cycle", "2",
                 "--dram-latency", "10", "--json"]) in (0, None)
    report = json.loads(capsys.readouterr().out)
    assert report["memory"]["bytes_per_cycle"] == 2 and report["memory"]["latency"] == 10
    conv = next(r for r in report["layers"] if r["name"] == "conv3_1")
    assert conv["runs"] == "hardware" and conv["stall_cycles"] > 0
    assert main(["report", "cycles", "vgg16", "--dram-bytes-per-cycle", "-1"]) == 2
    assert "bytes_per_cycle must be a positive number" in capsys.readouterr().err
    assert main(["report", "cycles", "vgg16", "--dram-latency", "3"]) == 2
    assert "--dram-latency needs --dram-bytes-per-cycle" in capsys.readouterr().err
