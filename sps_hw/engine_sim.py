"""Run a compiled network on the Verilog of the tile engine (:mod:`sps_hw.engine`) with
cocotbext-axi's ``AxiRam`` as external memory (:mod:`sps_hw.cocotb_engine`), and put the
engine's figures beside the model's (:mod:`sps_hw.tiling`)."""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler import golden
from compiler.errors import SPSError

from . import dram
from .config import Config
from .simulation import _model_path, default_build_dir, write_rtl
from .tiling import engine_cycles

__all__ = ["EngineRun", "run", "stats_json"]


@dataclass
class EngineRun:
    """The network output, every tensor read back from the RAM, each job's figures
    (``[job, cycles, compute, read_bytes, write_bytes]``), the registers after each run,
    and the packed :class:`~sps_hw.dram.DramImage`."""

    output: np.ndarray
    tensors: dict
    jobs: list
    runs: list
    actions: list
    image: dram.DramImage
    sim_seconds: float
    build_seconds: float


def run(model, x, *, cfg, simulator="verilator", build_dir=None, latency=0, pause=None,
        seed=0, timeout_s=None):
    """Run compiled ``model`` (a directory or a :class:`~compiler.images.CompiledModel`) on
    int8 input ``x`` through a tile engine with core ``cfg``; the RAM adds ``latency`` cycles
    to every read burst and write response and pauses its channels at random with the
    probabilities ``pause`` (``{"ar": p, "r": p, "aw": p, "w": p, "b": p}``)."""
    from .sim import read_outputs, simulate, write_job
    from .sim.runner import locked

    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
    if simulator != "verilator":
        raise SPSError(f"the tile engine simulates under verilator, not {simulator!r}")
    with tempfile.TemporaryDirectory(prefix="sps_engine_") as scratch:
        model, model_path = _model_path(model, scratch)
        golden.check_input(model, x, what="input")
        image = dram.pack(model, cfg)
        image_dir = Path(scratch) / "dram"
        image_dir.mkdir()
        image.write(image_dir)
        build_dir = Path(build_dir) if build_dir else \
            default_build_dir(cfg).with_name(default_build_dir(cfg).name + "-engine")
        build_dir.mkdir(parents=True, exist_ok=True)
        budget = sum(c.compute for c in image.costs())
        moved = len(image.data) + 2 * sum(e.load_bytes for e in image.jobs)
        timeout_cycles = int(4 * budget + 20 * (1 + latency) * moved + 100_000)
        job = write_job(Path(scratch) / "job", model=str(model_path.resolve()),
                        dram=str(image_dir), x=np.asarray(x), latency=latency, pause=pause,
                        seed=seed, timeout_cycles=timeout_cycles)
        common = {"build_dir": build_dir, "simulator": simulator, "timeout_s": timeout_s,
                  "build_args": ["--no-public-flat-rw"],
                  "python_path": [Path(__file__).resolve().parents[1]]}
        with locked(build_dir / ".sps.lock"):
            sources = write_rtl(cfg, build_dir, simulator, engine=True)
            result = simulate(sources, "sps_top", "sps_hw.cocotb_engine", job=job,
                              test_filter="run_table", **common)
        if [t.status for t in result.tests] != ["passed"]:
            raise SPSError(f"the engine simulation failed: {result.tests}")
        out = read_outputs(job)
    tensors = {name: np.asarray(out[f"t{i}"]).astype(np.int8)
               for i, name in enumerate(out["tensor_names"])}
    return EngineRun(output=tensors[image.output], tensors=tensors, jobs=out["jobs"],
                     runs=out["runs"], actions=out.get("actions", []), image=image,
                     sim_seconds=round(result.run_s, 3), build_seconds=round(result.build_s, 3))


def stats_json(run, memory):
    """The ``--stats`` document of an engine run with ``memory`` (a
    :class:`~sps_hw.tiling.Memory`): per layer where it ran, its jobs, and the engine's
    ``cycles`` (the core's computation), ``stall_cycles``, ``dram_read_bytes`` and
    ``dram_write_bytes``, each beside the model's (``model_<name>``)."""
    image = run.image
    model = []
    for kind, *args in image.steps:
        if kind == "jobs":
            model += engine_cycles(image.costs(*args), memory)
    costs = image.costs()
    layers, totals = [], dict.fromkeys(("cycles", "stall_cycles", "dram_read_bytes",
                                        "dram_write_bytes"), 0)
    host = {args[0] for kind, *args in image.steps if kind == "host"}
    for name in image.order:
        if name in host:
            layers.append({"name": name, "ran": "host", "reason": image.host[name]})
            continue
        ids = image.layers[name]
        got = [run.jobs[i] for i in ids]
        row = {"name": name, "ran": "hardware", "jobs": len(ids),
               "cycles": sum(j[2] for j in got),
               "model_cycles": sum(costs[i].compute for i in ids),
               "stall_cycles": sum(j[1] - j[2] for j in got),
               "model_stall_cycles": sum(model[i] - costs[i].compute for i in ids),
               "dram_read_bytes": sum(j[3] for j in got),
               "model_dram_read_bytes": sum(costs[i].read_bytes for i in ids),
               "dram_write_bytes": sum(j[4] for j in got),
               "model_dram_write_bytes": sum(costs[i].written for i in ids)}
        layers.append(row)
        for key in totals:
            totals[key] += row[key]
    return {"rows": image.cfg.rows, "cols": image.cfg.cols, "engine": True,
            "memory": {"latency": memory.latency, "bytes_per_cycle": memory.bytes_per_cycle},
            "layers": layers, "total_cycles": totals["cycles"] + totals["stall_cycles"],
            "model_total_cycles": sum(model), "compute_cycles": totals["cycles"],
            "stall_cycles": totals["stall_cycles"],
            "dram_read_bytes": totals["dram_read_bytes"],
            "dram_write_bytes": totals["dram_write_bytes"],
            "dram_bytes": len(image.data), "sim_seconds": run.sim_seconds,
            "build_seconds": run.build_seconds}
