"""``sps sim``: a compiled network on the emitted Verilog, under cocotb.

:func:`run` sizes an accelerator for the model (or takes one), writes its Verilog and packed
ROM images, and runs :mod:`sps_hw.cocotb_tb` under Verilator or Icarus Verilog: hardware
segments on the RTL, the layers in between on the host through ``compiler.golden``. It
returns every tensor the hardware produced, the network output and per-layer statistics,
including the analytical model's cycle and action counts next to the RTL's.
"""

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler import golden, images
from compiler.errors import SPSError

from . import verilog
from .actions import ACTION_KINDS, predict
from .config import Config
from .program import build, fit_config, write_images
from .top import Accelerator

__all__ = ["SimRun", "default_build_dir", "run", "stats_json", "write_rtl"]


@dataclass
class SimRun:
    """What :func:`run` did: the output, the tensors the RTL produced, statistics."""

    output: np.ndarray
    tensors: dict              # segment output name -> int8 array from the RTL
    stats: dict                # see stats_json()
    program: object
    waves: Path | None = None


def _write_if_changed(path, text):
    path = Path(path)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def write_rtl(cfg, directory, simulator="verilator", *, engine=False):
    """Write ``sps_top.v`` of accelerator ``cfg`` (with ``engine``, of the
    :class:`~sps_hw.engine.TileEngine` around it) into ``directory`` (files are kept when
    unchanged, so a simulator build is reused) and, for Verilator, ``sps_top.vlt``; returns
    the source files."""
    directory = Path(directory)
    stamp = directory / "sps_top.key"
    key = _rtl_key(cfg, engine)
    files = [directory / "sps_top.v", directory / "sps_top.vlt"]
    if not (stamp.is_file() and stamp.read_text() == key and all(f.is_file() for f in files)):
        if engine:
            from .axi import verilog_ports
            from .engine import TileEngine
            top = TileEngine(cfg)
            ports = verilog_ports(top)
        else:
            top, ports = Accelerator(cfg), None
        _write_if_changed(files[0], verilog.convert(top, ports=ports))
        _write_if_changed(files[1], port_config(top, ports=ports))
        stamp.write_text(key)
    return files if simulator == "verilator" else files[:1]


def _rtl_key(cfg, engine=False):
    """Changes when ``cfg`` or the source code of the hardware or its Verilog changes."""
    h = hashlib.sha256(json.dumps(cfg.as_dict(), sort_keys=True).encode())
    here = Path(__file__).parent
    sources = [here / f"{name}.py" for name in _RTL_SOURCES]
    if engine:
        h.update(b"engine")
        sources += [here / "engine.py", here / "vector.py", *sorted((here / "axi").glob("*.py"))]
    for path in sources:
        if path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


_RTL_SOURCES = ("config", "controller", "counters", "feeder", "indexing", "memories", "output",
                "pe", "registers", "schedule", "tensor_io", "top", "verilog", "window")


def port_config(component, name="sps_top", ports=None):
    """A Verilator configuration file that makes only the top-level ports (``ports``, as
    for :func:`sps_hw.verilog.convert`) visible to VPI (for cocotb), so that the rest of the
    design can be optimized."""
    lines = ["`verilator_config"]
    lines += [f'public_flat_rw -module "{name}" -var "{port}"'
              for port in ["clk", "rst", *(ports or verilog.ports_of(component))]]
    return "\n".join(lines) + "\n"


def default_build_dir(cfg):
    """A per-accelerator build directory under the user's cache, reused across runs."""
    key = hashlib.sha256(json.dumps(cfg.as_dict(), sort_keys=True).encode()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sps" / "rtl" / f"r{cfg.rows}c{cfg.cols}-{key}"


def _model_path(model, scratch):
    if isinstance(model, images.CompiledModel):
        if model.path is not None:
            return model, Path(model.path)
        path = Path(scratch) / "model"
        return images.write(model, path), path
    path = Path(model)
    return images.load(path), path


def stats_json(program, rtl_stats, cfg, rtl_actions=()):
    """The ``--stats`` document: per layer where it ran, RTL and model cycles, MACs,
    multipliers and utilization, the RTL's and the model's action counts (``actions`` and
    ``model_actions``, ``{kind: count}`` with the kinds of :data:`~sps_hw.actions.ACTION_KINDS`;
    ``actions`` is None without ``cfg.counters``); ``total_cycles`` sums the hardware layers."""
    measured, counted = dict(rtl_stats), dict(rtl_actions)
    layers, total = [], 0
    for name in program.order:
        plan = program.plans.get(name)
        if plan is None:
            layers.append({"name": name, "ran": "host", "reason": program.host[name],
                           "cycles": None, "model_cycles": None, "macs": None,
                           "multipliers": None, "utilization": None, "actions": None,
                           "model_actions": None})
            continue
        cycles = measured.get(name)
        total += cycles or 0
        actions = counted.get(name)
        layers.append({
            "name": name, "ran": "hardware", "kind": plan.kind, "cycles": cycles,
            "model_cycles": plan.cycles, "macs": plan.macs,
            "multipliers": cfg.rows * cfg.cols,
            "utilization": None if not cycles else
            round(plan.macs / (cfg.rows * cfg.cols * cycles), 6),
            "actions": None if actions is None else {k: actions[k] for k in ACTION_KINDS},
            "model_actions": predict(cfg, plan)})
    return {"rows": cfg.rows, "cols": cfg.cols, "layers": layers, "total_cycles": total,
            "model_total_cycles": sum(p.cycles for p in program.plans.values())}


def run(model, x, *, rows=8, cols=8, cfg=None, simulator="verilator", build_dir=None,
        waves=False, valid_prob=1.0, ready_prob=1.0, seed=None, reset_after=None,
        timeout_s=None):
    """Run compiled ``model`` (a directory or a :class:`~compiler.images.CompiledModel`) on
    int8 input ``x`` on the RTL of a ``rows x cols`` accelerator (or ``cfg``).

    ``valid_prob``/``ready_prob`` add random stalls to the input/output streams;
    ``reset_after`` pulses reset that many cycles into the first layer, then runs again.
    """
    # deferred: cocotb (the [sim] extra) is needed to run a simulation, not to write RTL
    from .sim import SIMULATORS, read_outputs, simulate, write_job
    from .sim.runner import locked

    if simulator not in SIMULATORS:
        raise SPSError(f"--simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    with tempfile.TemporaryDirectory(prefix="sps_sim_") as scratch:
        model, model_path = _model_path(model, scratch)
        golden.check_input(model, x, what="input")
        cfg = cfg or fit_config(model, rows=rows, cols=cols)
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
        program = build(model, cfg)
        if not program.segments:
            raise SPSError(f"{model_path}: no layer of the model runs on the hardware "
                           f"(reasons: {sorted(set(program.host.values()))})")
        build_dir = Path(build_dir) if build_dir else default_build_dir(cfg)
        build_dir.mkdir(parents=True, exist_ok=True)
        image_dir = Path(scratch) / "images"
        image_dir.mkdir()
        write_images(program, image_dir)
        hw_layers = [name for seg in program.segments for name in seg.layers]
        io = sum(seg.in_channels * seg.in_hw + int(np.prod(seg.out_shape))
                 for seg in program.segments)
        budget = sum(p.cycles for p in program.plans.values())
        stall = 1 / min(valid_prob, ready_prob)
        timeout_cycles = int(2 * budget + 20 * io * stall + 10_000)
        if reset_after is not None:
            timeout_cycles *= 2
        job = write_job(
            Path(scratch) / "job", model=str(model_path.resolve()), order=program.order,
            segments=[{"layers": s.layers, "source": s.source} for s in program.segments],
            hw_layers=hw_layers, x=np.asarray(x), valid_prob=valid_prob,
            ready_prob=ready_prob, seed=seed, reset_after=reset_after,
            timeout_cycles=timeout_cycles)
        # cocotb's runner makes every signal visible (--public-flat-rw), which multiplies the
        # C++ of a flattened design and its compile time; the testbench needs only the ports.
        # The Verilog is lint-clean, so no warning is waived in the build either.
        build_args = ["--no-public-flat-rw"] if simulator == "verilator" else []
        common = {"build_dir": build_dir, "simulator": simulator, "waves": waves,
                  "timeout_s": timeout_s, "build_args": build_args, "lint_waivers": (),
                  "python_path": [Path(__file__).resolve().parents[1]]}
        with locked(build_dir / ".sps.lock"):          # one run at a time per build
            sources = write_rtl(cfg, build_dir, simulator)
            result = simulate(sources, "sps_top", "sps_hw.cocotb_tb", job=job,
                              test_filter="run_network", plusargs=[f"+sps_images={image_dir}"],
                              **common)
        out = read_outputs(job)
    tensors = {name: np.asarray(out[f"segment{i}"]).astype(np.int8)
               for i, name in enumerate(out.get("segment_outputs", []))}
    stats = stats_json(program, out.get("stats", []), cfg, out.get("actions", []))
    stats["io_cycles"] = out.get("io_cycles")
    stats["simulator"] = simulator
    stats["sim_seconds"] = round(result.run_s, 3)
    stats["build_seconds"] = round(result.build_s, 3)
    # The network output: the last layer's tensor, from the RTL or recomputed on the host.
    final = model.manifest["output"]["name"]
    output = tensors[final] if final in tensors else _host_tail(model, program, tensors,
                                                                 np.asarray(x))
    return SimRun(output=output, tensors=tensors, stats=stats, program=program,
                  waves=result.waves)


def _host_tail(model, program, tensors, x):
    """The network output when its last layers ran on the host, from the RTL's tensors."""
    acts = {"input": x, **tensors}
    for layer in model.layers:
        name = layer["name"]
        if name not in program.plans:
            acts[name] = golden.run_layer(layer, model.weights.get(name),
                                          [acts[src] for src in layer["inputs"]])
    return acts[model.manifest["output"]["name"]]
