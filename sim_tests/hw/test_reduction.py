"""Reduction chunks (``sps_hw.jobs``): an FC layer whose output group needs more weight words
than the core holds runs as consecutive jobs of one output group over slices of its
flattened input, which leave their sums in the accumulator (descriptor flags
``acc_continue`` and ``acc_partial``); stitched, bit-exact with the layer, in the golden
model and on the tile engine's RTL, every job's figures equal to the model's."""

import itertools
import math

import numpy as np
import pytest

from compiler import golden
from compiler.errors import SPSError
from sim_tests.support.layers import layer, random_model, sample_input
from sim_tests.support.simulators import require_simulator
from sps_hw import dram, engine_sim, jobs, program, tiling
from sps_hw.actions import predict
from sps_hw.config import Config
from sps_hw.model import plan_layer

from .test_engine import check

#: A core whose weight memory holds 64 words: 16 passes of a 4-row array.
CORE = Config(rows=4, cols=3, max_hw=64, max_width=12, fmap_depth=128, weight_depth=64,
              param_depth=2, layer_depth=2)


def descriptor(cfg, value):
    """``{field: value}`` of a descriptor word."""
    return {name: (value >> f.offset) & ((1 << f.width) - 1)
            for name, f in program.descriptor_layout(cfg)}


def fc_model(ci, h, w, co, relu, seed):
    return random_model([layer("fc", ci=ci, h=h, w=w, co=co, relu=relu)], seed=seed)


@pytest.mark.parametrize("seed", range(24))
def test_stitched_chunks_equal_the_layer(seed):
    """Random FC layers on random small cores: the chunks of each output group in order,
    each one group, the slices covering the flattened input once; through a model of the
    accumulator (int64 sums carried from job to job), bit-exact with the layer."""
    rng = np.random.default_rng(seed)
    ci, h, w = (int(v) for v in rng.integers(1, 10, 3))
    co = int(rng.integers(1, 14))
    rows, cols = (int(v) for v in rng.integers(1, 6, 2))
    cfg = Config(rows=rows, cols=cols, max_hw=64, max_width=8, fmap_depth=64,
                 weight_depth=int(rng.integers(rows, 80)), param_depth=2)
    model = fc_model(ci, h, w, co, bool(rng.integers(2)), seed)
    entry, weight = model.layers[0], model.weights["l0"]
    x = sample_input(model, seed)
    work = jobs.plan_jobs(entry, weight, x.shape, cfg)
    got = jobs.run_jobs(entry, work, x, jobs.golden_runner())
    assert np.array_equal(got, golden.run_layer(entry, weight, [x]))
    n = ci * h * w
    if work[0].reduction is None:
        return
    groups = [work[i:i + len(work) // math.ceil(co / cols)]
              for i in range(0, len(work), len(work) // math.ceil(co / cols))]
    for g, chunks in enumerate(groups):
        assert {j.channels.start for j in chunks} == {g * cols}
        assert chunks[0].reduction[0] == 0 and chunks[-1].reduction[1] == n
        assert all(a.reduction[1] == b.reduction[0] for a, b in itertools.pairwise(chunks))
        assert [(j.first, j.last) for j in chunks] == \
            [(i == 0, i == len(chunks) - 1) for i in range(len(chunks))]
        for j in chunks:
            assert j.plan.groups == 1 and j.plan.total * rows <= cfg.weight_depth
            assert (j.plan.acc_continue, j.plan.acc_partial) == (not j.first, not j.last)
            assert j.source == (j.reduction[1] - j.reduction[0], 1, 1)


def test_vgg16_fc6_runs_as_chunks():
    """25,088 inputs, 4096 outputs on the DRAM-sized 8 x 8 core: 4 chunks of 6,272 per
    group of 8 outputs, 2,048 jobs; the model times them."""
    cfg = Config(**tiling.DRAM_SIZES)
    fc6 = {"name": "fc6", "op": "conv", "inputs": ["pool5"], "in_shape": [25088, 1, 1],
           "out_shape": [4096, 1, 1], "kernel": 1, "stride": 1, "pad": 0, "keep": 1,
           "relu": True, "pool": None}
    work = jobs.plan_jobs(fc6, None, (512, 7, 7), cfg)
    assert len(work) == 512 * 4
    assert [j.reduction for j in work[:4]] == [(0, 6272), (6272, 12544), (12544, 18816),
                                               (18816, 25088)]
    traffic = tiling.layer_traffic(fc6, (512, 7, 7), cfg, tiling.Memory(2, 10))
    assert not isinstance(traffic, str) and traffic.kind == "fc" and traffic.jobs == 2048
    assert traffic.read_bytes["weights"] == 25088 * 4096
    assert traffic.read_bytes["input"] == 25088 * 512      # every group reads the input
    assert traffic.write_bytes == 4096 and traffic.drained_bytes == 4096


def test_flags_in_the_plan_and_the_descriptor():
    """``acc_continue``/``acc_partial`` of a layer dict reach the plan and the descriptor; a
    partial layer does not end its segment (nothing to drain); the flags need one output
    group, and a partial layer's output cannot be read."""
    cfg = Config(rows=4, cols=3)
    model = fc_model(8, 1, 1, 3, True, 0)
    entry = model.layers[0]
    for cont in (False, True):
        for partial in (False, True):
            entry.update(acc_continue=cont, acc_partial=partial)
            built = program.build(model, cfg)
            plan = built.plans["l0"]
            assert (plan.acc_continue, plan.acc_partial) == (cont, partial)
            desc = descriptor(cfg, built.images["layers"][0])
            assert (desc["acc_continue"], desc["acc_partial"], desc["seg_last"]) == \
                (cont, partial, not partial)
            counts = predict(cfg, plan)
            assert counts["requant_ops"] == (0 if partial else 3)
            assert counts["feature_writes"] == (0 if partial else 3)
            assert counts["param_reads"] == int(not cont) + int(not partial)
            assert counts["acc_writes"] == plan.total - (0 if partial else 1)
    wide = dict(entry, out_shape=[4, 1, 1], bias=[0] * 4, mult=[1] * 4, shift=[1] * 4)
    assert "one" in plan_layer(wide, (8, 1, 1), cfg)
    two = random_model([layer("fc", ci=8, h=1, w=1, co=3), layer("fc", co=2)], seed=1)
    two.layers[0]["acc_partial"] = True
    with pytest.raises(SPSError, match="acc_partial"):
        program.build(two, cfg)


@pytest.mark.parametrize("cont, partial", [(False, True), (True, True), (True, False)])
def test_action_counts_of_chunks(cont, partial):
    """The invariants of every plan, with the counts a chunk changes."""
    cfg = Config(rows=4, cols=3)
    entry = dict(fc_model(40, 1, 1, 3, False, 2).layers[0], acc_continue=cont,
                 acc_partial=partial)
    plan = plan_layer(entry, (40, 1, 1), cfg)
    counts = predict(cfg, plan)
    base = predict(cfg, plan_layer(fc_model(40, 1, 1, 3, False, 2).layers[0], (40, 1, 1),
                                   cfg))
    assert counts["acc_reads"] == base["acc_reads"] == plan.total
    assert counts["param_reads"] == int(not cont) + int(not partial)
    assert counts["acc_writes"] == plan.total - int(not partial)
    assert counts["requant_ops"] == (0 if partial else 3)
    same = {k for k in counts if k not in ("param_reads", "acc_writes", "requant_ops",
                                           "feature_writes")}
    assert {k: counts[k] for k in same} == {k: base[k] for k in same}


def test_model_costs_equal_the_packed_image():
    model = random_model([layer("conv3", ci=3, h=5, w=4, co=9, keep=4, period=2),
                          layer("fc", co=70), layer("fc", co=4, relu=False)], seed=4)
    image = dram.pack(model, CORE)
    active, previous, costs = {}, None, []
    for entry in model.layers:
        work = [e.job for e in image.jobs if e.layer == entry["name"]]
        more, previous = tiling.job_costs(entry, work, CORE, active, previous)
        costs += more
    assert costs == image.costs()
    partial = [c for c, e in zip(costs, image.jobs) if e.job.reduction and not e.job.last]
    assert partial and all(not c.drain and c.written == c.drained == 0 for c in partial)


#: A 1 x 1 core: a pass takes 4 cycles and stages one weight byte, so a chunk computes for
#: longer than the next job's images take to stage, and the core's end (no drain) sets the
#: next job's start.
ONE = Config(rows=1, cols=1, max_hw=16, max_width=8, fmap_depth=512, weight_depth=256,
             param_depth=2, layer_depth=2)

#: name: (core, layers, chunk jobs, their reductions)
ENGINE_CASES = {
    # A 3x3 layer, an FC of 180 inputs (3 chunks of 60 per group of 3 outputs), an FC of 70
    # inputs (a 1x1 layer on a 1x1 map: chunks of 36 and 34).
    "4x3": (CORE, [layer("conv3", ci=3, h=5, w=4, co=9, keep=4, period=2),
                   layer("fc", co=70), layer("fc", co=4, relu=False)],
            3 * 24 + 2 * 2, {(0, 60), (60, 120), (120, 180), (0, 36), (36, 70)}),
    # An FC of 600 inputs in 3 chunks of 200 (core-bound), then an FC that fits.
    "1x1": (ONE, [layer("fc", ci=3, h=10, w=20, co=3), layer("fc", co=4, relu=False)],
            3 * 3, {(0, 200), (200, 400), (400, 600)}),
}


@pytest.mark.parametrize("case, latency", [("4x3", 0), ("4x3", 9), ("1x1", 0), ("1x1", 13)])
def test_chunks_on_the_engine(case, latency):
    """Layers with reduction chunks run on the tile engine's Verilog: bit-exact with golden,
    every job's cycles, computation and bytes equal to the model (``check`` of
    test_engine.py), and every job's action counts (the core's counters) to ``predict``."""
    require_simulator("verilator")
    cfg, specs, count, spans = ENGINE_CASES[case]
    model = random_model(specs, seed=4 + latency)
    x = sample_input(model, latency)
    run = engine_sim.run(model, x, cfg=cfg, latency=latency)
    image = run.image
    chunks = [e.job for e in image.jobs if e.job.reduction is not None]
    assert len(chunks) == count and {j.reduction for j in chunks} == spans
    check(run, model, x, latency, steady=True)
    assert run.actions == [predict(cfg, e.job.plan) for e in image.jobs]
    if case == "1x1":                   # the partial chunks end when their core does
        costs = image.costs()
        for i, entry in enumerate(image.jobs[:-1]):
            if entry.job.reduction and not entry.job.last:
                assert costs[i].compute > costs[i + 1].read_bytes + 100
