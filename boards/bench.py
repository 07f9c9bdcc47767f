"""Board benchmark: build every board with the SPS core and print, as JSON, per board the
array, the core clock, the routed Fmax, the resources, and the throughput the clock gives.

``python -m boards.bench [BOARD ...]``. At the board's core clock ``f``:

    peak_gops             = 2 * multipliers * f * 9 / 4    (dense-equivalent at keep 4)
    dense_equivalent_gops = 2 * dense MACs / (cycles / f)   (per keep, from the cycle model)

where the dense MACs and the cycles are those of VGG16's 3x3 layers at the largest input
(224, 112, ... 16 pixels square) whose first layer fits the board's buffers (the built-in
demo where none does), on the layers that run on the core, every 3x3 layer pruned to
``keep`` 4 (SPS) or 9 (dense) on the same generated core. nextpnr's placement varies with
its seed, so boards in :data:`SEEDS` are built once per seed. A board whose build fails (a
core too large for the part, timing missed) is reported with the error and nextpnr's
utilisation of the failed placement.
"""

import json
import sys
import tempfile
from pathlib import Path

from compiler.errors import SPSError
from compiler.models import demo
from sps_hw.bench import vgg16_reduced
from sps_hw.model import cycle_report

from .build import build, parse_nextpnr_log
from .core import SPSCore
from .platforms import BOARDS

__all__ = ["bench", "run", "throughput"]

KEY_CELLS = ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP", "ICESTORM_SPRAM", "TRELLIS_COMB",
             "TRELLIS_FF", "DP16KD", "MULT18X18D", "LUT", "FF", "RAMB18E1", "RAMB36E1",
             "DSP48E1", "CARRY4")

#: Placement seeds per board: the ULX3S's Fmax varies by a few MHz from one to the next.
SEEDS = {"ulx3s-85f": (1, 2)}


def workload(cfg, sizes=(224, 112, 56, 32, 16)):
    """``(name, network)``: VGG16's 3x3 layers at the largest input size whose first layer
    runs on core ``cfg``, or the built-in demo where no VGG16 layer fits its buffers."""
    for size in sizes:
        net = vgg16_reduced(size)
        if cycle_report(net, cfg)["layers"][0]["runs"] == "hardware":
            return f"VGG16 3x3 layers at {size}x{size}", net
    return "the demo network (no VGG16 layer fits the buffers)", demo()


def throughput(spec, mhz):
    """``{"peak_gops", "workload", "keep4": {...}, "keep9": {...}}`` of board ``spec``'s core
    at ``mhz`` (see the module docstring)."""
    name, net = workload(spec.config)
    result = {"multipliers": spec.multipliers, "mhz": mhz,
              "peak_gops": round(2 * spec.multipliers * mhz * 9 / 4 / 1e3, 2)}
    for keep in (4, 9):
        layers = [r for r in cycle_report(net, spec.config, keep=keep)["layers"]
                  if r["runs"] == "hardware" and r["op"] == "conv3"]
        cycles = sum(r["cycles"] for r in layers)
        util = sum(r["macs"] for r in layers) / (spec.multipliers * cycles) if cycles else 0.0
        dense = sum(r["dense_macs"] for r in layers)
        result[f"keep{keep}"] = {
            "utilization": round(util, 4), "cycles": cycles,
            "dense_equivalent_gops": round(2 * dense * mhz / 1e3 / cycles, 2) if cycles else 0}
    total = sum(layer.op == "conv" and layer.kernel == 3 for layer in net.layers)
    result["workload"] = f"{name}: {len(layers)} of {total} 3x3 layers on the core"
    return result


def bench(boards=None):
    """One row per board and seed (see the module docstring)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in boards or BOARDS:
            spec = BOARDS[name]
            for seed in SEEDS.get(name, (None,)):
                rows.append(_row(spec, Path(tmp) / f"{name}-{seed}", seed))
    return rows


def _row(spec, out, seed):
    row = {"board": spec.name, "device": spec.device, "array": [spec.rows, spec.cols],
           "seed": seed, "clock_mhz": spec.clk_hz / 1e6}
    try:
        report = build(spec.name, out, core=SPSCore(spec.config), seed=seed)
    except SPSError as e:
        failed = out.with_name(out.name + ".failed") / "top.tim"
        fmax, resources = parse_nextpnr_log(failed.read_text() if failed.exists() else "")
        row.update(fits=False, error=str(e), fmax_mhz=fmax and fmax["mhz"],
                   resources={k: v for k, v in resources.items() if k in KEY_CELLS})
        return row
    row.update(fits=True, fmax_mhz=report["fmax_mhz"], timing=report["timing"],
               resources={k: v for k, v in report["resources"].items() if k in KEY_CELLS},
               modules=report["modules"], build_s=report["seconds"],
               **throughput(spec, spec.clk_hz / 1e6))
    return row


def run():
    """The boards section of ``make bench`` (:mod:`sps.bench`)."""
    return bench()


if __name__ == "__main__":
    print(json.dumps(bench(sys.argv[1:] or None), indent=1))
