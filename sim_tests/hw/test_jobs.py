"""Layers larger than the core, run as jobs (``sps_hw.jobs``): stitched, they equal the
layer to the bit, in the golden model and on the RTL."""

import copy

import numpy as np
import pytest

from compiler import golden, images
from sim_tests.support.layers import layer, random_model, sample_input
from sim_tests.support.simulators import require_simulator
from sps_hw import jobs, simulation
from sps_hw.config import Config

#: A core far smaller than the layers below: many tiles, channel chunks, halos.
SMALL = Config(rows=4, cols=3, max_hw=64, max_width=12, fmap_depth=128, weight_depth=2048,
               param_depth=2, layer_depth=2)


def model_inputs(model, x):
    """``[(layer, weight, its input tensor)]`` of every conv layer of ``model`` on ``x``."""
    acts = golden.run(model, x)
    return [(entry, model.weights[entry["name"]], acts[entry["inputs"][0]])
            for entry in model.layers if entry["op"] == "conv"]


def golden_job(job, tile):
    return golden.run_layer(job.layer, job.weight, [tile])


@pytest.mark.parametrize("seed", range(16))
def test_stitched_jobs_equal_the_layer(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(5, 23)), int(rng.integers(5, 23))
    # Each of the first two layers halves the map by a pool, by stride 2, or not at all.
    halve = [str(rng.choice(["pool", "stride", "none"])) for _ in range(2)]
    specs = [layer("conv3", ci=int(rng.integers(1, 10)), h=h, w=w, co=int(rng.integers(2, 14)),
                   keep=int(rng.choice([4, 9, 2])), pool=halve[0] == "pool",
                   stride=2 if halve[0] == "stride" else 1, period=int(rng.integers(1, 6))),
             layer(str(rng.choice(["conv3", "conv1"])), co=int(rng.integers(2, 11)),
                   keep=int(rng.choice([4, 9])), pool=halve[1] == "pool",
                   stride=2 if halve[1] == "stride" else 1)]
    # FC reads its whole source, which must fit the core (it is not tiled); else a 1x1.
    for how in halve:
        h, w = ((h // 2, w // 2) if how == "pool" else
                ((h + 1) // 2, (w + 1) // 2) if how == "stride" else (h, w))
    fits = h * w <= SMALL.max_hw and -(-specs[1]["co"] // SMALL.banks) * h * w <= \
        SMALL.fmap_depth
    specs.append(layer("fc" if fits else "conv1", co=int(rng.integers(2, 9)), relu=False))
    model = random_model(specs, seed=seed)
    x = sample_input(model, seed)
    for entry, weight, source in model_inputs(model, x):
        work = jobs.plan_jobs(entry, weight, source.shape, SMALL)
        if entry["in_shape"][1] * entry["in_shape"][2] > SMALL.max_hw:
            assert len(work) > 1
        got = jobs.run_jobs(entry, work, source, golden_job)
        assert np.array_equal(got, golden.run_layer(entry, weight, [source])), entry["name"]
        # Every output element is written by exactly one job.
        hits = np.zeros(entry["out_shape"], int)
        for job in work:
            hits[job.channels, job.out_rows, job.out_cols] += 1
        assert (hits == 1).all()


def test_a_layer_that_fits_is_one_job():
    model = random_model([layer("conv3", ci=3, h=6, w=6, co=3, pool=True)])
    entry = model.layers[0]
    work = jobs.plan_jobs(entry, model.weights[entry["name"]], (3, 6, 6), SMALL)
    assert len(work) == 1 and work[0].layer["in_shape"] == [3, 6, 6]


def test_refusals_say_why():
    model = random_model([layer("conv3", ci=200, h=8, w=8, co=3)])
    entry = model.layers[0]
    with pytest.raises(Exception, match="no tile of its 200 x 8 x 8 input runs"):
        jobs.plan_jobs(entry, model.weights[entry["name"]], (200, 8, 8), SMALL)
    with pytest.raises(TypeError, match="Config"):
        jobs.plan_jobs(entry, model.weights[entry["name"]], (200, 8, 8), None)


def job_model(model, job):
    """A compiled model of the one layer of ``job``."""
    manifest = copy.deepcopy(model.manifest)
    sub = copy.deepcopy(job.layer)
    manifest["input"]["shape"] = list(job.source)
    manifest["layers"] = [sub]
    manifest["output"].update(name=sub["name"], shape=sub["out_shape"])
    return images.CompiledModel(manifest, {sub["name"]: job.weight})


def test_jobs_on_the_rtl():
    """A 3x3 layer (pooled) and a 1x1 stride-2 layer, each too large for the core, run job by
    job on the Verilog of the small core; stitched, equal to the golden layer."""
    require_simulator("verilator")
    model = random_model([layer("conv3", ci=5, h=14, w=10, co=7, pool=True, period=3),
                          layer("conv1", co=8, stride=2)], seed=3)
    x = sample_input(model, 3)
    runs = []

    def on_rtl(job, tile):
        run = simulation.run(job_model(model, job), tile, cfg=SMALL,
                             valid_prob=0.8, ready_prob=0.7,
                             seed=len(runs))
        runs.append(run.stats)
        return run.output

    for entry, weight, source in model_inputs(model, x):
        work = jobs.plan_jobs(entry, weight, source.shape, SMALL)
        assert len(work) > 1
        got = jobs.run_jobs(entry, work, source, on_rtl)
        assert np.array_equal(got, golden.run_layer(entry, weight, [source])), entry["name"]
    for stats in runs:
        (hw,) = stats["layers"]
        assert hw["cycles"] == hw["model_cycles"]
