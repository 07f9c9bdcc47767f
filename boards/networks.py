"""Real networks on the boards with DRAM: what of VGG16 and ResNet-18 runs where, and how long
the upload and one inference take.

``python -m boards.networks [--json] [NETWORK ...]`` compiles each network (keep 4, seeded
weights: the shapes and sizes are what matter), packs it for each board's DRAM build exactly
as ``sps build`` and ``sps run`` do (:func:`boards.fit.dram_fit`) and prints per board and
network:

- the DRAM image (bytes, jobs, segments) and the layers left to the host, with why;
- ``upload_s``: the image over the link at the board's rate, in LOAD_DATA frames of
  ``max_payload - 4`` bytes each answered before the next (:func:`line_seconds`);
- ``engine_s``: the tile engine's cycles for every segment by the cycle model
  (:func:`sps_hw.tiling.engine_cycles`, exact on the RTL for its memory model) at the DRAM
  build's core clock, with the board's DRAM as :data:`MEMORIES` gives it;
- ``link_s``: each segment's input and output tensors over the link;
- ``host_s``: the host layers through ``compiler.golden``, timed on this machine.

``inference_s`` is the sum of the last three.
"""

import json
import math
import sys
import time

import numpy as np

from compiler import golden, models, pipeline
from compiler.errors import SPSError
from sps_hw.tiling import Memory, engine_cycles

from .fit import dram_fit
from .platforms import BOARDS
from .protocol import OVERHEAD

__all__ = ["MEMORIES", "NETWORKS", "line_seconds", "network_rows"]

NETWORKS = ("vgg16", "resnet18")
#: The DRAM as the core sees it in each board's DRAM build: bytes per core cycle and the read
#: latency in core cycles. ULX3S: LiteDRAM's 16-bit SDR at 50 MHz (100 MB/s) behind the 60 MHz
#: core, about 20 cycles through the register slice, the clock-domain crossing and the
#: controller (an estimate; the engine moves one byte a cycle, so the rate does not limit
#: it). Arty: 16-bit DDR3 at 667 MT/s behind the 100 MHz core (the Arty's top does not carry
#: the controller yet, so this row is what the model says it would do).
MEMORIES = {"ulx3s-85f": Memory(100 / 60, 20, "LiteDRAM SDR16 at 50 MHz"),
            "arty-a7-35": Memory(13.34, 30, "LiteDRAM DDR3 16-bit")}
#: Bytes of a generic response frame (status and a 32-bit word).
RESPONSE_BYTES = OVERHEAD + 5


def line_seconds(nbytes, baud, payload, header=4):
    """Seconds to move ``nbytes`` over the link at ``baud`` in frames of ``payload`` bytes
    (``header`` of them the frame's own offset or count), each answered before the next."""
    data = payload - header
    frames = max(1, math.ceil(nbytes / data))
    return (nbytes + frames * (OVERHEAD + header + RESPONSE_BYTES)) * 10 / baud


def _board_row(spec, name, model, progress):
    build = spec.dram_build() if spec.dram_pll is not None else spec
    fit, image = dram_fit(model, spec, name=name)
    memory = MEMORIES[spec.name]
    cycles = sum(sum(engine_cycles(image.costs(seg.first, seg.count), memory))
                 for seg in image.segments)
    io = sum(image.tensors[t]["bytes"] for seg in image.segments
             for t in (seg.input, seg.output))
    by_name = {layer["name"]: layer for layer in model.layers}
    host_s = 0.0
    for layer_name in image.host:           # on zero inputs of the right shapes: timing only
        layer = by_name[layer_name]
        inputs = [np.zeros(image.tensors[t]["shape"], np.int8) for t in layer["inputs"]]
        start = time.perf_counter()
        golden.run_layer(layer, model.weights.get(layer_name), inputs)
        host_s += time.perf_counter() - start
    engine_s = cycles / build.clk_hz
    link_s = line_seconds(io, spec.baud, spec.max_payload)
    progress(f"{spec.name} {name}: {len(image.data):,} bytes, {len(image.jobs):,} jobs, "
             f"{engine_s:.2f} s on the engine")
    return {"board": spec.name, "network": name, "image_bytes": len(image.data),
            "half_bytes": spec.dram_half_bytes, "jobs": len(image.jobs),
            "segments": len(image.segments), "host_layers": fit["host_layers"],
            "baud": spec.baud, "clock_mhz": build.clk_hz / 1e6, "memory": memory.name,
            "upload_s": round(line_seconds(len(image.data), spec.baud, spec.max_payload), 1),
            "engine_cycles": cycles, "engine_s": round(engine_s, 3),
            "link_s": round(link_s, 3), "host_s": round(host_s, 3),
            "inference_s": round(engine_s + link_s + host_s, 3)}


def network_rows(names=NETWORKS, progress=lambda msg: None):
    """One row (a dict, see the module) per board with DRAM and network in ``names``."""
    rows = []
    for name in names:
        progress(f"compiling {name}")
        model, _ = pipeline.compile_network(models.BUILTIN[name]())
        for spec in BOARDS.values():
            if spec.dram_bytes:
                rows.append(_board_row(spec, name, model, progress))
    return rows


def _table(rows):
    head = ("| board | network | DRAM image | jobs | on the host | upload | engine | link | "
            "host | inference |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        host = ", ".join(r["host_layers"]) or "-"
        lines.append(f"| {r['board']} | {r['network']} | {r['image_bytes'] / 1e6:.1f} MB | "
                     f"{r['jobs']:,} | {host} | {r['upload_s']:.0f} s | {r['engine_s']:.2f} s | "
                     f"{r['link_s']:.2f} s | {r['host_s']:.2f} s | {r['inference_s']:.2f} s |")
    return "\n".join(lines)


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    names = [a for a in args if a != "--json"] or list(NETWORKS)
    unknown = [n for n in names if n not in models.BUILTIN]
    if unknown:
        raise SPSError(f"{unknown[0]}: not a built-in network; expected one of "
                       f"{', '.join(models.BUILTIN)}")
    rows = network_rows(names, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(json.dumps(rows, indent=1) if as_json else _table(rows))


if __name__ == "__main__":
    try:
        main()
    except SPSError as error:
        print(f"python -m boards.networks: error: {error}", file=sys.stderr)
        sys.exit(2)
