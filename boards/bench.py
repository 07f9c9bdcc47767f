"""Board benchmark: build every board and print, as JSON, resources used against available,
Fmax, build time, and the throughput the proposed array would give at that Fmax.

``python -m boards.bench [BOARD ...]``. The peak is ``2 * rows * cols * f`` operations per
second; the dense-equivalent peak of a PPS layer is ``9 / keep`` times that (2.25x at keep 4),
since the array skips the pruned taps. Until the SPS core is plugged in, the design is the link
with the self-test core, so Fmax is the link's and the throughput is what the array would reach
if the core closed timing at the same clock.
"""

import json
import sys
import tempfile
from pathlib import Path

from .build import build
from .platforms import BOARDS

__all__ = ["bench", "run"]

KEY_CELLS = ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP", "ICESTORM_SPRAM", "TRELLIS_COMB",
             "TRELLIS_FF", "DP16KD", "MULT18X18D", "LUT", "FF", "RAMB18E1", "RAMB36E1",
             "DSP48E1", "CARRY4")


def bench(boards=None, keep=4):
    """One row per board (see the module docstring)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in boards or BOARDS:
            report = build(name, Path(tmp) / name)
            spec = BOARDS[name]
            fmax = report["fmax_mhz"]
            mhz = fmax if fmax is not None else spec.clk_hz / 1e6
            peak = 2 * spec.multipliers * mhz / 1e3
            rows.append({
                "board": name, "device": report["device"], "core": report["core"],
                "array": report["array"], "clock_mhz": report["clock_mhz"], "fmax_mhz": fmax,
                "resources": {k: v for k, v in report["resources"].items() if k in KEY_CELLS},
                "build_s": report["seconds"],
                "peak_gops": round(peak, 2),
                "dense_equivalent_gops": round(peak * 9 / keep, 2),
                "gops_at": "fmax" if fmax is not None else "board clock (Xilinx: no Fmax)",
            })
    return rows


def run():
    """The boards section of ``make bench`` (``compiler.bench``)."""
    return bench()


if __name__ == "__main__":
    print(json.dumps(bench(sys.argv[1:] or None), indent=1))
