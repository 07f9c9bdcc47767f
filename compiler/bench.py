"""Compile times of the large built-in networks: the compiler's section of ``make bench``
(:mod:`sps.bench`)."""

import sys
import tempfile
import time
from pathlib import Path

from . import images, pipeline


def compile_time(name):
    """Wall-clock seconds of ``sps compile NAME`` (weights, pruning, calibration, images)."""
    start = time.perf_counter()
    net = pipeline.load_network(name)
    loaded = time.perf_counter()
    model, report = pipeline.compile_network(net, source=name)
    compiled = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        images.write(model, Path(tmp) / name)
        size = sum(f.stat().st_size for f in (Path(tmp) / name).rglob("*") if f.is_file())
    done = time.perf_counter()
    pruned = [r for r in report if r["pps"]]
    total = sum(r["energy_total"] for r in pruned)
    return {"seconds": round(done - start, 2), "build_seconds": round(loaded - start, 2),
            "prune_quantize_seconds": round(compiled - loaded, 2),
            "write_seconds": round(done - compiled, 2), "image_bytes": size,
            "pps_layers": len(pruned),
            "retained_energy": sum(r["retained"] * r["energy_total"] for r in pruned) / total,
            "upper_bound_energy": sum(r["upper_bound"] * r["energy_total"] for r in pruned) / total}


def run():
    """:func:`compile_time` of VGG16 and ResNet-50, by name."""
    result = {}
    for name in ("vgg16", "resnet50"):
        print(f"bench: compiling {name}", file=sys.stderr, flush=True)
        result[name] = compile_time(name)
    return result
