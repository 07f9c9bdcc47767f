"""Fixtures shared by every test folder (helpers live in :mod:`sim_tests.support`)."""

import pytest

from sps_hw.sim import SIMULATORS

from .support.simulators import require_simulator


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
    require_simulator(request.param)
    return request.param
