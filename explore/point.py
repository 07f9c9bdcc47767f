"""One point of a sweep, as a Dask worker runs it: compile, fit, cycle model, accuracy, and
with ``synth`` the board build.

:func:`evaluate` never raises for a point that fails: the row it returns has ``status``
``"ok"``, ``"no-fit"`` (the board's memories, DSP blocks or estimated logic are too small),
``"timing"`` (placed and routed below the board's clock) or ``"failed"`` (a compile or tool
error), with the reason. Each worker process keeps its last compiled models, so the points of
one set of PPS options share a compile.
"""

import atexit
import dataclasses
import functools
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from boards.fit import check_fit
from boards.platforms import BOARDS
from compiler import digits, images, pipeline, train
from compiler.errors import SPSError
from sps_hw.model import cycle_report

from . import area

__all__ = ["CELLS", "DATASETS", "Model", "board_variant", "evaluate"]

#: family -> (logic cell, DSP cell) of a build's ``report.json`` resources.
CELLS = {"ice40": ("ICESTORM_LC", "ICESTORM_DSP"), "ecp5": ("TRELLIS_COMB", "MULT18X18D"),
         "xc7": ("LUT", "DSP48E1")}
#: Network name -> its labelled test set ``(x, y)``: the accuracy of a point is its compiled
#: model's top-1 accuracy there, through the golden model.
DATASETS = {"digits": lambda: digits.load("test")}


@dataclass(frozen=True)
class Model:
    """The model a sweep explores: a built-in name, or a file's name and bytes (so workers
    on other hosts need no shared file system)."""

    source: str
    sha256: str
    data: bytes | None = dataclasses.field(default=None, repr=False)


_FILES = {}


def _path(model):
    """Where this process reads ``model`` from: the built-in name or a local copy."""
    if model.data is None:
        return model.source
    if model.sha256 not in _FILES:
        folder = tempfile.mkdtemp(prefix="sps-explore-")
        atexit.register(shutil.rmtree, folder, True)
        path = Path(folder) / Path(model.source).name
        path.write_bytes(model.data)
        _FILES[model.sha256] = str(path)
    return _FILES[model.sha256]


@functools.lru_cache(maxsize=8)
def _compiled(path, sha256, keep, patterns, period, seed):
    net = pipeline.load_network(path, seed=seed)
    model, _ = pipeline.compile_network(net, keep=keep, patterns=patterns, period=period,
                                        seed=seed, source=path)
    return model, net.name


@functools.lru_cache(maxsize=8)
def _accuracy(path, sha256, keep, patterns, period, seed):
    model, name = _compiled(path, sha256, keep, patterns, period, seed)
    if name not in DATASETS:
        return None
    return train.evaluate_compiled(model, *DATASETS[name]())


def board_variant(board, rows, cols):
    """Board ``board``'s :class:`~boards.platforms.BoardSpec` with a ``rows x cols`` array."""
    return dataclasses.replace(BOARDS[board], rows=rows, cols=cols)


def _worker():
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _synthesize(model, spec):
    """``report.json`` of ``sps build`` for ``spec`` (registered in ``BOARDS`` under a name of
    its own when its array is not the board's) with ``model`` baked in."""
    # deferred: only --synth needs the board tops
    from boards.build import build
    name = spec.name
    if BOARDS[name] != spec:
        name = f"{spec.name}@{spec.rows}x{spec.cols}"
        BOARDS.setdefault(name, spec)
    with tempfile.TemporaryDirectory(prefix="sps-explore-build-") as tmp:
        written = images.write(model, Path(tmp) / "model")
        return build(name, Path(tmp) / "build", model=written.path)


def _measure(row, model, spec, synth):
    """Fill ``row`` with the cycle model and the area estimate of a model that fits ``spec``;
    return the reason it does not fit the board's DSP blocks or logic, or None."""
    estimate = area.estimate(spec)
    row.update(dsp=estimate["dsp"], lut=estimate["lut"], area="estimate")
    report = cycle_report(model, spec.config)
    dense = sum(layer["dense_macs"] for layer in report["layers"] if "dense_macs" in layer)
    seconds = report["total_cycles"] / spec.clk_hz
    row.update(cycles=report["total_cycles"], clock_mhz=spec.clk_hz / 1e6,
               latency_us=round(seconds * 1e6, 3), gops=round(2 * dense / seconds / 1e9, 4),
               utilization=report["utilization"])
    over = [f"{what} {need:,} > {have:,} ({how})" for what, need, have, how in (
        ("DSP blocks", estimate["dsp"], spec.budget["dsp"], "counted"),
        ("logic", estimate["lut"], spec.budget["lut"], "estimated"))
        if need > have and not (synth and what == "logic")]
    return f"{spec.name} at {spec.rows}x{spec.cols}: {', '.join(over)}" if over else None


def _built(row, model, spec):
    """Fill ``row`` with the area and Fmax of the board built; return a timing failure."""
    built = _synthesize(model, spec)
    lut_cell, dsp_cell = CELLS[spec.family]
    resources = built["resources"]
    row.update(lut=resources[lut_cell]["used"], dsp=resources.get(dsp_cell, {}).get("used", 0),
               area="synthesis", fmax_mhz=built["fmax_mhz"],
               detail={"report": {k: built[k] for k in ("timing", "resources", "seconds")}})
    if built["fmax_mhz"] is not None and built["fmax_mhz"] < spec.clk_hz / 1e6:
        return f"Fmax {built['fmax_mhz']:.1f} MHz < clock {spec.clk_hz / 1e6:g} MHz"
    return None


def evaluate(point, model, synth=False):
    """The result row of ``point`` (a dict of :data:`explore.grid.AXES`) for ``model`` (a
    :class:`Model`); with ``synth``, the board is built and its ``report.json`` read."""
    start = time.monotonic()
    row = {**point, "model": model.source, "synth": bool(synth), "status": "failed",
           "reason": None, "worker": _worker(), "host": socket.gethostname()}
    stage = "compile"
    try:
        options = (point["keep"], point["patterns"], point["period"], point["seed"])
        path = _path(model)
        compiled, _ = _compiled(path, model.sha256, *options)
        row["accuracy"] = _accuracy(path, model.sha256, *options)
        spec = board_variant(point["board"], point["rows"], point["cols"])
        stage = "fit"
        fit = check_fit(compiled, spec, name=f"model {model.source}")
        row.update(hw_layers=len(fit["hardware_layers"]), host_layers=len(fit["host_layers"]))
        stage = "cycles"
        row["reason"] = _measure(row, compiled, spec, synth)
        if row["reason"]:
            row["status"] = "no-fit"
        elif synth:
            stage = "build"
            row["reason"] = _built(row, compiled, spec)
            row["status"] = "timing" if row["reason"] else "ok"
        else:
            row["status"] = "ok"
    except SPSError as e:
        row["status"] = "no-fit" if stage == "fit" else "failed"
        row["reason"] = str(e) if stage == "fit" else f"{stage}: {e}"
    except Exception as e:          # a tool or library failure: recorded, not raised
        row["reason"] = f"{stage}: {type(e).__name__}: {e}"
    row["seconds"] = round(time.monotonic() - start, 3)
    return row
