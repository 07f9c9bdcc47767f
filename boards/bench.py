"""Board benchmark: build every board with the SPS core and print, as JSON, per board the
resources used against those available, Fmax, the multipliers in DSP blocks, and the
throughput they imply.

``python -m boards.bench [BOARD ...]``. Throughput at frequency ``f`` (Fmax, or the board's
clock for the Xilinx estimate, which has no timing):

    peak GOPS             = 2 * multipliers * f
    dense-equivalent GOPS = 2 * multipliers * f * 9 / keep * utilization

``utilization`` is the cycle model's (``sps_hw.model.cycle_report``: useful MACs over
multiplier-cycles, counting every fetch and pipeline cycle) for VGG16's 3x3 layers at the
largest input (224, 112, ... 16 pixels square) whose first layer fits the board's buffers
(the built-in demo where none does), over the layers that run on the core; ``9 / keep``
(2.25 at keep 4) is the pruned taps the array skips; the dense-equivalent rate is what a
dense accelerator would need to finish the same layers as fast. A board whose build fails (a
core too large for the part) is reported with the error and nextpnr's utilisation of the
failed placement.
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

def workload(cfg, sizes=(224, 112, 56, 32, 16)):
    """``(name, network)``: VGG16's 3x3 layers at the largest input size whose first layer
    runs on core ``cfg``, or the built-in demo where no VGG16 layer fits its buffers."""
    for size in sizes:
        net = vgg16_reduced(size)
        if cycle_report(net, cfg)["layers"][0]["runs"] == "hardware":
            return f"VGG16 3x3 layers at {size}x{size}", net
    return "the demo network (no VGG16 layer fits the buffers)", demo()


def throughput(spec, mhz, keep=4):
    """``{"peak_gops", "utilization", "dense_equivalent_gops", ...}`` of board ``spec``'s
    core at ``mhz`` (see the module docstring)."""
    name, net = workload(spec.config)
    report = cycle_report(net, spec.config)
    conv3 = [r for r in report["layers"] if r["runs"] == "hardware" and r["op"] == "conv3"]
    total = sum(layer.op == "conv" and layer.kernel == 3 for layer in net.layers)
    cycles = sum(r["cycles"] for r in conv3)
    macs = sum(r["macs"] for r in conv3)
    util = macs / (spec.multipliers * cycles) if cycles else 0.0
    peak = 2 * spec.multipliers * mhz / 1e3
    return {"multipliers": spec.multipliers, "mhz": mhz, "peak_gops": round(peak, 2),
            "keep": keep,
            "workload": f"{name}: {len(conv3)} of {total} 3x3 layers on the core",
            "utilization": round(util, 4),
            "dense_equivalent_gops": round(peak * 9 / keep * util, 2)}


def bench(boards=None, keep=4):
    """One row per board (see the module docstring)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in boards or BOARDS:
            spec = BOARDS[name]
            out = Path(tmp) / name
            row = {"board": name, "device": spec.device, "array": [spec.rows, spec.cols]}
            try:
                report = build(name, out, core=SPSCore(spec.config))
            except SPSError as e:
                fmax, resources = parse_nextpnr_log(
                    (out.with_name(out.name + ".failed") / "top.tim").read_text()
                    if (out.with_name(out.name + ".failed") / "top.tim").exists() else "")
                row.update(fits=False, error=str(e),
                           resources={k: v for k, v in resources.items() if k in KEY_CELLS})
                rows.append(row)
                continue
            fmax = report["fmax_mhz"]
            mhz = fmax if fmax is not None else spec.clk_hz / 1e6
            res = {k: v for k, v in report["resources"].items() if k in KEY_CELLS}
            dsps = next((res[k]["used"] for k in ("ICESTORM_DSP", "MULT18X18D", "DSP48E1")
                         if k in res), None)
            row.update(fits=True, clock_mhz=report["clock_mhz"], fmax_mhz=fmax,
                       timing=report["timing"], resources=res, dsp_blocks=dsps,
                       build_s=report["seconds"],
                       gops_at="fmax" if fmax is not None else "board clock (no Xilinx timing)",
                       **throughput(spec, mhz, keep))
            rows.append(row)
    return rows


def run():
    """The boards section of ``make bench`` (:mod:`sps.bench`)."""
    return bench()


if __name__ == "__main__":
    print(json.dumps(bench(sys.argv[1:] or None), indent=1))
