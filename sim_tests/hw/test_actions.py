"""Action counts (``sps_hw.actions``): the model's invariants on any plan."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sps_hw.actions import ACTION_KINDS, predict
from sps_hw.config import Config
from sps_hw.model import plan_layer

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
    assert counts["acc_reads"] == counts["param_reads"] == counts["active_cycles"]
    assert counts["acc_writes"] + plan.groups * plan.hw == counts["acc_reads"]
    assert counts["requant_ops"] >= plan.out_channels * plan.hw
    assert counts["dram_read_bytes"] == counts["dram_write_bytes"] == 0
    return counts


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), ci=st.integers(1, 300),
       co=st.integers(1, 300), h=st.integers(2, 40), w=st.integers(1, 40),
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
