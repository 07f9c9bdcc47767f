"""Shared pytest fixtures for the simulation tests."""

import shutil

import pytest

from compiler.errors import SPSError
from sps_hw.sim import SIMULATORS, verilator_bin_dir


def simulator_missing(simulator):
    """Why ``simulator`` cannot run here, or ``None`` when it can."""
    if simulator == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            return "Icarus Verilog is not installed (apt-get install iverilog; .ci/run does it)"
        return None
    try:
        verilator_bin_dir()
    except SPSError as e:
        return str(e)
    return None


@pytest.fixture(scope="session")
def sim_build_root(tmp_path_factory, request):
    """A directory shared by all pytest-xdist workers of this run, for simulation builds.

    ``simulate`` locks a build directory and reuses an up-to-date build, so a design built
    under ``sim_build_root / "<design>"`` is compiled once per run, not once per worker.
    """
    base = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):      # xdist: basetemp is <run>/popen-gwN
        base = base.parent
    path = base / "sim-builds"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(params=SIMULATORS)
def simulator(request):
    """Each simulator in turn; skipped with the reason when it is not installed."""
    reason = simulator_missing(request.param)
    if reason:
        pytest.skip(reason)
    return request.param
