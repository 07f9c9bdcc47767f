"""Simulation of the emitted Verilog under cocotb (Verilator or Icarus Verilog).

- :func:`simulate` builds Verilog once per build directory and runs a cocotb test module on it;
- :func:`write_job`/:func:`read_job`/:func:`read_outputs` carry arrays and parameters between
  the caller and the test (which runs inside the simulator's process);
- :mod:`sps_hw.sim.streams` (imported by cocotb tests) has the testbench base ``TB``, stream
  drivers and payload packing; :mod:`sps_hw.sim.stream_job` is a ready-made cocotb test that
  runs a job of stream inputs and outputs.

Names are loaded on first use, so a cocotb test importing ``sps_hw.sim.streams`` inside the
simulator does not pay for the runner's imports. See ``docs/simulation.md``.
"""

import importlib

_EXPORTS = {
    "job": ["JOB_ENV", "Job", "write_job", "read_job", "read_outputs"],
    "runner": ["simulate", "Result", "TestCase", "SimulationError", "write_verilog",
               "SIMULATORS", "TIMESCALE", "AMARANTH_LINT_WAIVERS", "CACHE_ENV",
               "verilator_bin_dir", "simulator_env"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "AMARANTH_LINT_WAIVERS",
    "CACHE_ENV",
    "JOB_ENV",
    "SIMULATORS",
    "TIMESCALE",
    "Job",
    "Result",
    "SimulationError",
    "TestCase",
    "read_job",
    "read_outputs",
    "simulate",
    "simulator_env",
    "verilator_bin_dir",
    "write_job",
    "write_verilog",
]


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_WHERE])
