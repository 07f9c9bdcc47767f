"""Action counts: the model's invariants on any plan (``sps_hw.actions``), and the RTL's
event counters (``sps_hw.counters``) equal to it on every layer they run, in amaranth.sim
and through ``sps sim --stats``."""

import gc
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import golden, images
from sps import cli
from sps_hw import program as prog
from sps_hw.actions import ACTION_KINDS, predict
from sps_hw.config import Config
from sps_hw.indexing import IndexingUnit
from sps_hw.model import plan_layer
from sps_hw.top import Accelerator

from ..support.accelerator import run_accelerator
from ..support.layers import layer, random_model, random_specs, sample_input
from ..support.simulators import require_simulator

BIG = {"max_hw": 2**16, "max_width": 2**10, "fmap_depth": 2**24}


def conv(ci, co, h, w, keep=4, k=3, pool=None):
    return {"name": "l", "op": "conv", "inputs": ["input"], "in_shape": [ci, h, w],
            "out_shape": [co, h, w], "kernel": k, "stride": 1, "pad": k // 2, "keep": keep,
            "relu": True, "pool": {"k": 2, "s": 2, "p": 0} if pool else None}


def fc(source, co):
    ci = source[0] * source[1] * source[2]
    return {"name": "fc", "op": "conv", "inputs": ["input"], "in_shape": [ci, 1, 1],
            "out_shape": [co, 1, 1], "kernel": 1, "stride": 1, "pad": 0, "keep": 1,
            "relu": False, "pool": None}


def check_invariants(cfg, plan):
    counts = predict(cfg, plan)
    assert tuple(counts) == ACTION_KINDS
    assert all(isinstance(v, int) and v >= 0 for v in counts.values())
    assert counts["active_cycles"] + counts["idle_cycles"] == plan.cycles
    assert counts["mac_useful"] == plan.macs
    assert counts["mac_useful"] + counts["mac_padding"] == \
        cfg.rows * cfg.cols * counts["active_cycles"]
    assert counts["weight_read_bits"] == counts["weight_reads"] * 8 * cfg.cols
    assert counts["weight_reads"] == counts["index_reads"] == counts["library_reads"] == \
        plan.total * cfg.rows
    assert counts["acc_reads"] == counts["active_cycles"]
    # Parameters: every pixel of a group's first and last pass (one pass: read once).
    one_pass = plan.total == plan.groups
    assert counts["param_reads"] == plan.groups * plan.hw * (1 if one_pass else 2)
    assert counts["acc_writes"] + plan.groups * plan.hw == counts["acc_reads"]
    assert counts["requant_ops"] >= plan.out_channels * plan.hw
    assert counts["dram_read_bytes"] == counts["dram_write_bytes"] == 0
    return counts


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), ci=st.integers(1, 300),
       co=st.integers(1, 300), h=st.integers(2, 40), w=st.integers(2, 40),
       keep=st.integers(1, 9), pool=st.booleans())
def test_invariants_on_random_conv3_layers(rows, cols, ci, co, h, w, keep, pool):
    cfg = Config(rows=rows, cols=cols, **BIG)
    plan = plan_layer(conv(ci, co, h, w, keep=keep, pool=pool and w >= 2), (ci, h, w),
                      cfg)
    counts = check_invariants(cfg, plan)
    if rows * cols == 1 and keep == 9:
        assert counts["mac_padding"] == 0


def test_conv1_fc_and_a_full_array():
    cfg = Config(rows=8, cols=4, **BIG)
    plan = plan_layer(fc(source=(20, 3, 3), co=10), (20, 3, 3), cfg)
    counts = check_invariants(cfg, plan)
    assert counts["feature_reads"] == 8 * plan.total            # one pixel per pass
    assert counts["feature_writes"] == 10
    plan = plan_layer(conv(16, 8, 5, 5, k=1), (16, 5, 5), cfg)
    counts = check_invariants(cfg, plan)
    assert counts["mac_padding"] == 0 and counts["requant_ops"] == 8 * 25


def test_large_vgg16_layers_and_dense_plans():
    """Pure arithmetic: VGG16's largest layers on a big array, keep 4 and 9."""
    cfg = Config(rows=32, cols=32, **BIG)
    for keep in (4, 9):
        plan = plan_layer(conv(512, 512, 224, 224, keep=keep), (512, 224, 224), cfg)
        counts = check_invariants(cfg, plan)
        assert counts["mac_useful"] > 10**10 and counts["mac_padding"] == 0
    for keep in (4, 9):
        plan = plan_layer(conv(256, 512, 28, 28, keep=keep), (256, 28, 28), cfg)
        assert check_invariants(cfg, plan)["mac_padding"] == 0    # the array is full


def test_rejects_what_is_not_a_config_and_a_plan():
    cfg = Config(rows=2, cols=2)
    plan = plan_layer(conv(4, 4, 4, 4), (4, 4, 4), cfg)
    with pytest.raises(TypeError, match="cfg must be"):
        predict({"rows": 2}, plan)
    with pytest.raises(TypeError, match="plan must be"):
        predict(cfg, "host")



@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_counters_are_a_generator_option():
    """``Config.counters`` (a bool) adds the ``actions`` port; the boards leave it out."""
    with pytest.raises(TypeError, match="counters must be a bool"):
        Config(counters=1)
    assert "actions" in Accelerator(Config()).signature.members
    assert "actions" not in Accelerator(Config(counters=False)).signature.members
    with pytest.raises(TypeError, match="used must be a bool"):
        IndexingUnit(2, used=1)
    with pytest.raises(TypeError, match="bypass must be a bool"):
        IndexingUnit(2, bypass=None)
    gc.collect()                                     # the components above, while ignored
    pytest.importorskip("amaranth_boards")           # the [boards] extra
    from boards.platforms import BOARDS
    assert all(not spec.config.counters for spec in BOARDS.values())

# --- the RTL's counters against the model ---------------------------------------------------

#: A chain with every kind of layer: PPS keep 4 with a pool, dense keep 9, 3x3 and 1x1 at
#: stride 2, FC; channel counts that are not multiples of any array here.
CHAIN = [layer("conv3", ci=3, h=10, w=12, co=5, keep=4, patterns=3, period=2, pool=True),
         layer("conv3", co=7, keep=9), layer("conv3", co=6, keep=4, stride=2),
         layer("conv1", co=4, stride=2), layer("fc", co=3, relu=False)]


def check_counters(model, cfg, seed, read_latency=2):
    """Run ``model`` (one segment) in amaranth.sim with random stalls; every layer's
    action counts (and cycles) equal the model's."""
    cfg = prog.fit_config(model, rows=cfg[0], cols=cfg[1], read_latency=read_latency)
    program = prog.build(model, cfg)
    assert not program.host and len(program.segments) == 1
    x = sample_input(model, seed)
    got, _, stats, actions = run_accelerator(cfg, program, x, seed=seed, valid_prob=0.6,
                                             ready_prob=0.5)
    np.testing.assert_array_equal(got, golden.infer(model, x))
    plans = [program.plans[entry["name"]] for entry in model.layers]
    assert stats == [(i, plan.cycles) for i, plan in enumerate(plans)]
    assert actions == [(i, predict(cfg, plan)) for i, plan in enumerate(plans)]


@pytest.mark.parametrize("array", [(2, 2), (4, 3), (8, 8), (1, 1), (3, 5)], ids=str)
def test_every_kind_of_layer(array):
    check_counters(random_model(CHAIN, seed=sum(array)), array, seed=sum(array))


@pytest.mark.parametrize("array, seed, read_latency", [
    ((2, 2), 0, 2), ((2, 2), 1, 1), ((4, 3), 2, 2), ((4, 3), 3, 1), ((8, 8), 4, 2),
    ((5, 2), 5, 2)], ids=str)
def test_random_layers_with_stalls(array, seed, read_latency):
    model = random_model(random_specs(np.random.default_rng(seed)), seed=seed)
    check_counters(model, array, seed, read_latency)


def test_held_out_layers_through_sps_sim_stats(tmp_path, sim_build_root):
    """Layers of shapes no other test runs, compiled to a directory and run by ``sps sim
    --stats`` on the Verilog (Verilator): every hardware layer's ``actions`` equal its
    ``model_actions`` (every kind, in order); the host layer has null for both."""
    require_simulator("verilator")
    specs = [layer("conv3", ci=6, h=7, w=5, co=9, keep=5, patterns=3, period=5, name="a"),
             layer("maxpool", name="down"),
             layer("conv3", co=10, keep=3, patterns=2, period=4, pool=True, name="b"),
             layer("fc", co=4, relu=False, name="fc")]
    model = random_model(specs, seed=23)
    out, x_path, stats_path = tmp_path / "model", tmp_path / "x.npy", tmp_path / "s.json"
    images.write(model, out)
    x = sample_input(model, 23)
    np.save(x_path, x)
    assert cli.main(["sim", str(out), "--input", str(x_path), "-o", str(tmp_path / "y.npy"),
                     "--rows", "4", "--cols", "3", "--stats", str(stats_path),
                     "--build-dir", str(sim_build_root / "actions-cli")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), golden.infer(model, x))
    layers = {row["name"]: row for row in json.loads(stats_path.read_text())["layers"]}
    assert layers["down"]["ran"] == "host"
    assert layers["down"]["actions"] is layers["down"]["model_actions"] is None
    for name in ("a", "b", "fc"):
        row = layers[name]
        assert row["ran"] == "hardware" and list(row["actions"]) == list(ACTION_KINDS)
        assert row["actions"] == row["model_actions"], name
        assert row["actions"]["mac_useful"] == row["macs"]


def test_stride_two_on_a_wide_map_mid_segment():
    """A stride-2 layer whose pass goes on for more slots after its last output than the
    pipeline is long (W + 1 = 41 on a 2 x 2 array): it stops issuing at its last output, so
    the layers after it in the segment start clean (a stride-2 layer that streamed to the end
    of its pass ran into the next layer on ResNet-18's 56-wide maps)."""
    model = random_model([layer("conv3", ci=2, h=12, w=40, co=3, keep=4, stride=2),
                          layer("conv3", co=3, keep=4), layer("conv1", co=2, stride=2),
                          layer("conv3", co=2)], seed=5)
    check_counters(model, (2, 2), seed=5)
