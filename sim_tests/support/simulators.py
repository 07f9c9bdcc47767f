"""Which simulators can run here, for tests that skip (with the reason) when one cannot."""

import shutil

import pytest

from compiler.errors import SPSError
from sps_hw.sim import verilator_bin_dir

__all__ = ["require_simulator", "simulator_missing"]


def simulator_missing(simulator):
    """Why ``simulator`` (``"verilator"`` or ``"icarus"``) cannot run here, or ``None``."""
    if simulator == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            return "Icarus Verilog is not installed (apt-get install iverilog; .ci/run does it)"
        return None
    try:
        verilator_bin_dir()
    except SPSError as e:
        return str(e)
    return None


def require_simulator(simulator):
    """Skip the calling test, with the reason, when ``simulator`` cannot run here."""
    reason = simulator_missing(simulator)
    if reason:
        pytest.skip(reason)
