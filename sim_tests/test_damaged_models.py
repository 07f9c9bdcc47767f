"""Damaged compiled models on every command that loads one: a valid result or one clean
``sps: error:`` line with status 2, never a traceback (``docs/reliability.md``).

Hypothesis draws one fault at a time (:mod:`sim_tests.support.corrupt`) on two models, the
demo and a small network with every op (conv, PPS conv, maxpool, add, avgpool, FC), and runs
``sps`` in-process. The commands that go on to the hardware stop once the model has been
packed (``sim`` before the Verilator build, ``generate`` and ``build`` before elaboration,
``run`` before it opens the port): everything that reads the model has run by then.
"""

import json
import random
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sps.cli import main

from .support.corrupt import corrupt, run_sps

#: Damaged models tried per source model (the count docs/reliability.md gives).
EXAMPLES = int(__import__("os").environ.get("SPS_DAMAGE_EXAMPLES", 60))


class Stopped(Exception):
    """Raised where a command would leave the model behind for the hardware tools."""


def _stop(*args, **kwargs):
    raise Stopped


def all_ops_npz(path):
    """A small ``.npz`` network with every op the manifest knows."""
    rng = np.random.default_rng(3)
    conv = {"op": "conv", "kernel": 3, "stride": 1, "pad": 1, "relu": True}
    layers = [
        {**conv, "name": "c1", "in_shape": [4, 8, 8], "out_shape": [8, 8, 8]},
        {"name": "p1", "op": "maxpool", "kernel": 2, "stride": 2, "pad": 0},
        {**conv, "name": "c2"}, {**conv, "name": "c3", "relu": False},
        {"name": "r", "op": "add", "inputs": ["c3", "p1"], "relu": True},
        {"name": "g", "op": "avgpool"},
        {"name": "fc", "op": "conv", "kernel": 1, "stride": 1, "pad": 0},
    ]
    arrays = {f"{n}.weight": rng.normal(0, 0.2, s).astype(np.float32)
              for n, s in (("c1", (8, 4, 3, 3)), ("c2", (8, 8, 3, 3)), ("c3", (8, 8, 3, 3)),
                           ("fc", (10, 8)))}
    graph = {"name": "allops", "input_shape": [4, 8, 8], "layers": layers}
    np.savez(path, graph=json.dumps(graph), **arrays)
    return path


@pytest.fixture(scope="module", params=["demo", "allops"])
def model(request, tmp_path_factory):
    """``(compiled model directory, int8 input file)``."""
    tmp = tmp_path_factory.mktemp(request.param)
    source = "demo" if request.param == "demo" else str(all_ops_npz(tmp / "allops.npz"))
    assert main(["compile", source, "-o", str(tmp / "m")]) == 0
    shape = json.loads((tmp / "m" / "manifest.json").read_text())["input"]["shape"]
    np.save(tmp / "x.npy", np.random.default_rng(0).integers(-128, 128, shape).astype(np.int8))
    return tmp / "m", tmp / "x.npy"


def commands(model, x, tmp):
    """``{name: argv}`` of every command that loads a model."""
    return {
        "golden": ["golden", model, "--input", x, "-o", tmp / "y.npy"],
        "report storage": ["report", "storage", model],
        "report cycles": ["report", "cycles", model],
        "generate": ["generate", "--model", model, "-o", tmp / "rtl"],
        "sim": ["sim", model, "--input", x, "-o", tmp / "y_rtl.npy", "--build-dir",
                tmp / "build"],
        "build": ["build", "--board", "icebreaker", "--model", model, "-o", tmp / "bit"],
        "run": ["run", model, "--port", "sim:icebreaker", "--input", x, "-o", tmp / "yb.npy"],
    }


@pytest.fixture
def stop_before_hardware(monkeypatch):
    for target in ("sps_hw.generator.Accelerator", "sps_hw.simulation.write_rtl",
                   "boards.build.SPSCore", "boards.host.open_transport"):
        monkeypatch.setattr(target, _stop)


def check_outcome(name, argv, damaged, what):
    """One command on a damaged model: success (with a valid output), or exit 2 with one
    ``sps: error:`` line naming a file of the model (the loader) or a layer (a model that
    loads but does not fit the hardware, such as a ``mult`` beyond a board's 16 bits)."""
    status, err, tb = run_sps(argv)
    if tb is not None and tb.rstrip().endswith("Stopped"):
        return "packed"
    assert tb is None, f"{name} on {what}: traceback\n{tb}"
    if status == 0:
        if name == "golden":
            shape = json.loads((damaged / "manifest.json").read_text())["output"]["shape"]
            y = np.load(argv[-1])
            assert y.dtype == np.int8 and list(y.shape) == shape
        return "ok"
    assert status == 2 and len(err) == 1 and err[0].startswith("sps: error: "), \
        f"{name} on {what}: status {status}, stderr {err}"
    assert str(damaged) in err[0] or "layer '" in err[0], f"{name} on {what}: {err[0]}"
    return "refused"


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_damaged_model_never_gives_a_traceback(model, tmp_path_factory, stop_before_hardware,
                                               seed):
    source, x = model
    tmp = tmp_path_factory.mktemp("damaged")
    damaged = tmp / "m"
    shutil.copytree(source, damaged)
    what = corrupt(damaged, random.Random(seed))
    for name, argv in commands(damaged, x, tmp).items():
        check_outcome(name, argv, damaged, what)
        for out in ("rtl", "bit"):
            shutil.rmtree(tmp / out, ignore_errors=True)


def test_the_undamaged_models_pass_every_command(model, tmp_path, stop_before_hardware):
    source, x = model
    outcomes = {name: check_outcome(name, argv, source, "the undamaged model")
                for name, argv in commands(source, x, tmp_path).items()}
    assert outcomes == {"golden": "ok", "report storage": "ok", "report cycles": "ok",
                        "generate": "packed", "sim": "packed", "build": "packed",
                        "run": "packed"}
