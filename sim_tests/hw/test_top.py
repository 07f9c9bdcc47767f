"""amaranth.sim tests of the whole accelerator: small networks against ``compiler.golden``,
with random stalls on both streams, and every layer's cycle count against the model."""

import gc

import numpy as np
import pytest

from compiler import golden
from sps_hw import program as prog
from sps_hw.config import Config
from sps_hw.top import Accelerator

from ..support.accelerator import run_accelerator
from ..support.layers import layer, random_model

CASES = {
    # name: (rows, cols, layer specs)
    "pps_pool": (2, 3, [layer("conv3", ci=3, h=4, w=6, co=4, keep=4, pool=True)]),
    "dense_odd": (3, 2, [layer("conv3", ci=2, h=5, w=3, co=3, keep=9, relu=False)]),
    "conv1_fc": (3, 3, [layer("conv1", ci=5, h=3, w=3, co=4),
                        layer("fc", co=5, relu=False)]),
    "chain": (4, 2, [layer("conv3", ci=1, h=6, w=6, co=3, keep=9, pool=True),
                     layer("conv3", co=5, keep=4, patterns=2, period=3),
                     layer("fc", co=3)]),
    "one_pe": (1, 1, [layer("conv3", ci=2, h=3, w=3, co=2, keep=4),
                      layer("conv1", co=2)]),
}


@pytest.mark.parametrize("case, read_latency", [*((c, 2) for c in sorted(CASES)),
                                                 ("chain", 1), ("conv1_fc", 1), ("one_pe", 1),
                                                 *((c, 3) for c in sorted(CASES))])
def test_network_matches_golden(case, read_latency):
    """Block-RAM reads of 2 cycles (the 100 MHz pipeline), of 3 (a register beside each
    block RAM as well: the largest ECP5 core) and of 1 (the small one)."""
    rows, cols, specs = CASES[case]
    model = random_model(specs, seed=len(case))
    cfg = prog.fit_config(model, rows=rows, cols=cols, read_latency=read_latency)
    program = prog.build(model, cfg)
    assert not program.host and len(program.segments) == 1
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=tuple(model.manifest["input"]["shape"])).astype(np.int8)
    want = golden.infer(model, x)
    got, last, stats, _ = run_accelerator(cfg, program, x, seed=1, valid_prob=0.7, ready_prob=0.6)
    np.testing.assert_array_equal(got, want)
    assert last == [0] * (want.size - 1) + [1]
    assert stats == [(i, program.plans[entry["name"]].cycles)
                     for i, entry in enumerate(model.layers)]


def test_saturating_corners():
    """Extreme weights and biases at the int32 headroom: accumulators near the int32 limits,
    requantization with shifts up to 63 and multipliers near 2**31."""
    specs = [layer("conv3", ci=4, h=3, w=4, co=3, keep=9), layer("conv1", co=2)]
    model = random_model(specs, seed=5, extreme=True)
    cfg = prog.fit_config(model, rows=4, cols=2)
    program = prog.build(model, cfg)
    for v in (-128, 127):
        x = np.full(tuple(model.manifest["input"]["shape"]), v, np.int8)
        got, *_ = run_accelerator(cfg, program, x)
        np.testing.assert_array_equal(got, golden.infer(model, x))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_accelerator_rejects_bad_arguments():
    with pytest.raises(TypeError, match=r"cfg must be a sps_hw\.config\.Config"):
        Accelerator({"rows": 2})
    with pytest.raises(ValueError, match="unknown ROMs"):
        Accelerator(Config(), {"weight": [1]})
    gc.collect()
