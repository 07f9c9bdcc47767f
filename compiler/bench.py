"""``make bench``: compile times of the large built-in networks, plus the hardware and board
benchmarks where those packages provide them, as one JSON document on stdout."""

import importlib
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

from . import images, pipeline

SECTIONS = ("sps_hw.bench", "boards.bench")


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


def main():
    result = {"compile": {}}
    for name in ("vgg16", "resnet50"):
        print(f"bench: compiling {name}", file=sys.stderr, flush=True)
        result["compile"][name] = compile_time(name)
    for section in SECTIONS:
        if importlib.util.find_spec(section.split(".")[0]) and importlib.util.find_spec(section):
            result[section.split(".")[0]] = importlib.import_module(section).run()
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
