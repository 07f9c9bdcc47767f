"""The analytical model: which layers the hardware runs, pass counts, the 9/keep ratio on
VGG16's channel counts, utilization, and the whole-network report. (Its exactness against the
RTL's cycle counter is checked by every amaranth.sim and cocotb system test.)"""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sps import cli
from sps_hw.config import Config
from sps_hw.controller import fetch_cycles
from sps_hw.model import cycle_report, layer_cycles, min_pass_cycles, plan_layer
from sps_hw.top import Stages

BIG = {"max_hw": 2**16, "max_width": 2**10, "fmap_depth": 2**24}


def conv(ci, co, h, w, keep=4, k=3, stride=1, pad=None, pool=None, name="l"):
    pad = k // 2 if pad is None else pad
    return {"name": name, "op": "conv", "inputs": ["input"], "in_shape": [ci, h, w],
            "out_shape": [co, h // stride, w // stride], "kernel": k, "stride": stride,
            "pad": pad, "keep": keep, "relu": True, "pool": pool}


@pytest.mark.parametrize("layer, source, reason", [
    (conv(8, 8, 16, 16, stride=3), None, "stride 3"),
    (conv(8, 8, 16, 16, stride=2, pool={"k": 2, "s": 2, "p": 0}), None,
     "stride 2 with a fused pool"),
    (conv(3, 64, 32, 32, k=7, pad=3, keep=49), None, "7x7 kernel"),
    (conv(8, 8, 1, 16), None, "needs at least 2 rows"),
    (conv(8, 8, 16, 1), None, "and 2 columns"),
    (conv(8, 8, 16, 40), None, "width 40 > max_width 32"),
    (conv(8, 8, 16, 16, pool={"k": 3, "s": 2, "p": 1}), None, "fused pool"),
    ({"name": "a", "op": "add", "inputs": ["x", "y"]}, None, "add runs on the host"),
    (conv(4096, 8, 16, 16), None, "input tensor needs"),
])
def test_host_layers_and_reasons(layer, source, reason):
    cfg = Config(rows=4, cols=4, max_hw=1024, max_width=32, fmap_depth=4096)
    source = source or tuple(layer.get("in_shape", (1, 1, 1)))
    plan = plan_layer(layer, source, cfg)
    assert isinstance(plan, str) and reason in plan


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("h, w", [(8, 8), (7, 5), (2, 9)])
def test_stride_two_issues_the_even_positions(k, h, w):
    """Stride 2 streams every input pixel and issues the outputs at even rows and columns:
    the layer ends with the last of them, not with the pass."""
    cfg = Config(rows=4, cols=4, **BIG)
    layer = conv(6, 5, h, w, k=k, keep=4 if k == 3 else 1, stride=2)
    layer["out_shape"] = [5, (h + 1) // 2, (w + 1) // 2]
    plan = plan_layer(layer, (6, h, w), cfg)
    one = plan_layer(conv(6, 5, h, w, k=k, keep=4 if k == 3 else 1), (6, h, w), cfg)
    assert (plan.hw, plan.acc_hw, plan.out_hw) == (h * w, ((h + 1) // 2) * ((w + 1) // 2),
                                                   ((h + 1) // 2) * ((w + 1) // 2))
    last = ((h - 1) // 2 * 2) * w + (w - 1) // 2 * 2       # the last even position
    assert plan.cycles == one.cycles - (h * w - 1 - last)
    assert plan.macs * h * w == one.macs * plan.acc_hw


def test_fc_on_a_flattened_tensor():
    cfg = Config(rows=8, cols=4, **BIG)
    fc = {"name": "fc", "op": "conv", "inputs": ["c"], "in_shape": [20 * 9, 1, 1],
          "out_shape": [10, 1, 1], "kernel": 1, "stride": 1, "pad": 0, "keep": 1,
          "relu": False, "pool": None}
    plan = plan_layer(fc, (20, 3, 3), cfg)
    assert (plan.kind, plan.subs, plan.passes, plan.groups) == ("fc", 9, 3, 3)
    assert plan.total == 3 * 9 * 3 and plan.cycle == 8 and plan.macs == 10 * 180


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), ci=st.integers(1, 300),
       co=st.integers(1, 300), h=st.integers(2, 40), w=st.integers(2, 40),
       keep=st.integers(1, 9))
def test_pass_count_and_cycle_formula(rows, cols, ci, co, h, w, keep):
    cfg = Config(rows=rows, cols=cols, **BIG)
    plan = plan_layer(conv(ci, co, h, w, keep=keep), (ci, h, w), cfg)
    assert plan.passes == math.ceil(ci * keep / rows)       # packed across channels
    assert plan.groups == math.ceil(co / cols)
    hw = h * w
    assert plan.cycle == max(hw, rows, cols - 1, min_pass_cycles(cfg))
    assert plan.cycles == (fetch_cycles(cfg) + max(0, rows + w + 1 - hw)
                           + plan.total * plan.cycle + hw + Stages.of(cfg).latency)
    assert 0 < plan.utilization(cfg) <= 1


VGG = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
       (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]


@pytest.mark.parametrize("size", [16, 32])
def test_vgg16_ratio_is_nine_fourths(size):
    """SPS (keep 4) against dense (keep 9) on the same array: exactly 9/4 the passes on
    every VGG16 layer with 64+ input channels, cycles within 5% at 28x28, and at least
    90% multiplier utilization there."""
    cfg = Config(rows=size, cols=size, **BIG)
    for ci, co in VGG[1:]:
        sps = plan_layer(conv(ci, co, 28, 28, keep=4), (ci, 28, 28), cfg)
        dense = plan_layer(conv(ci, co, 28, 28, keep=9), (ci, 28, 28), cfg)
        assert dense.total * 4 == sps.total * 9
        assert abs(dense.cycles / sps.cycles / 2.25 - 1) < 0.05
        assert sps.utilization(cfg) >= 0.9 and dense.utilization(cfg) >= 0.9


@pytest.mark.parametrize("read_latency, fetch, latency", [(2, 5, 17), (1, 4, 13), (3, 6, 19)])
def test_layer_cycles_closed_form(read_latency, fetch, latency):
    """``cycles = fetch + t_feed + N * S + HW + R + C + latency`` with the constants of
    docs/hardware.md section 4, and the shortest pass on a tiny array (5 cycles with reads
    of 3). A pass's taps, two ROM reads after its last row's walk (``R`` cycles before its
    first pixel's read), are in place when its first window is selected (``p`` cycles after
    that read)."""
    cfg = Config(rows=4, cols=3, read_latency=read_latency)
    assert (fetch_cycles(cfg), Stages.of(cfg).latency) == (fetch, 4 + 3 + latency)
    period = max(4, read_latency + 2)
    assert layer_cycles(cfg, hw=1, lead=0, total=10) == (
        period, 3, 0, fetch + 3 + 10 * period + 1 + 4 + 3 + latency)
    assert 2 * read_latency + (read_latency > 1) - (read_latency < 2) <= Stages.of(cfg).pixel
    tiny = Config(rows=1, cols=2, read_latency=read_latency)
    assert layer_cycles(tiny, hw=1, lead=0, total=3)[0] == min_pass_cycles(tiny) == \
        read_latency + 2


def test_read_latency_is_checked():
    with pytest.raises(ValueError, match=r"read_latency must be in 1\.\.3, not 4"):
        Config(read_latency=4)


def test_report_on_resnet18(capsys):
    report = cycle_report("resnet18", Config(rows=16, cols=16, **BIG))
    runs = {layer["name"]: layer["runs"] for layer in report["layers"]}
    assert runs["conv1"] == "host" and runs["layer1.0.conv1"] == "hardware"
    assert runs["layer2.0.conv1"] == "hardware" and runs["layer1.0.add"] == "host"  # stride 2
    assert runs["fc"] == "hardware"
    assert report["total_cycles"] == sum(layer["cycles"] for layer in report["layers"]
                                         if layer["runs"] == "hardware")
    assert 0.5 < report["utilization"] <= 1
    assert cli.main(["report", "cycles", "resnet18", "--rows", "8", "--cols", "8",
                     "--json"]) == 0
    assert '"total_cycles"' in capsys.readouterr().out
    assert cli.main(["report", "cycles", "nonexistent"]) == 2
