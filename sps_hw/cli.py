"""The hardware commands of ``sps``: ``generate``, ``sim`` and ``report cycles``.

:mod:`sps.cli` calls :func:`add_commands`; each handler is a thin layer over
:func:`sps_hw.generator.generate`, :func:`sps_hw.simulation.run` and
:func:`sps_hw.model.cycle_report`, and raises :class:`~compiler.errors.SPSError` for
mistakes a user can make.
"""

import json
import sys
from pathlib import Path

import numpy as np

from compiler.errors import SPSError
from compiler.fileio import atomic_write, load_npy, save_npy
from compiler.models import BUILTIN

__all__ = ["add_commands"]


def _array_options(p, sizes=False):
    p.add_argument("--rows", type=int, default=8, metavar="R", help="array rows (8)")
    p.add_argument("--cols", type=int, default=8, metavar="C", help="array columns (8)")
    if sizes:
        p.add_argument("--max-hw", type=int, metavar="N",
                       help="most pixels of a feature map (default: fit the model, or 1024)")
        p.add_argument("--max-width", type=int, metavar="W",
                       help="widest 3x3 feature map (default: fit the model, or 32)")
        p.add_argument("--fmap-depth", type=int, metavar="N",
                       help="words per feature-buffer bank (default: fit the model, or 2048)")


def _check_array(args):
    for name in ("rows", "cols"):
        value = getattr(args, name)
        if not 1 <= value <= 256:
            raise SPSError(f"--{name} must be in 1..256, not {value}")


def cmd_generate(args):
    # deferred: the gateware loads for the commands that use it, not for sps --help
    from .generator import generate
    _check_array(args)
    summary = generate(args.output, model=args.model, rows=args.rows, cols=args.cols,
                       max_hw=args.max_hw, max_width=args.max_width,
                       fmap_depth=args.fmap_depth)
    cfg = summary["config"]
    print(f"sps: wrote {args.output}: sps_top.v ({cfg['rows']} x {cfg['cols']} array) and "
          f"ROM images", file=sys.stderr)
    for layer in summary.get("layers", []):
        where = layer["runs"] if layer["runs"] == "hardware" else \
            f"host ({layer['reason']})"
        print(f"sps:   {layer['name']}: {where}", file=sys.stderr)


def _engine_sim(args, x):
    """``sps sim`` through the tile engine from external memory (``--board`` or
    ``--dram-*``): the output, and the stats document."""
    from . import engine_sim
    from .generator import make_config
    from .tiling import DRAM_SIZES, Memory

    if args.simulator != "verilator":
        raise SPSError("--board/--dram-*: the tile engine simulates under verilator only")
    if args.dram_bytes_per_cycle is not None and args.dram_bytes_per_cycle < 1:
        raise SPSError(f"--dram-bytes-per-cycle must be at least 1 (the engine moves one byte "
                       f"a cycle), not {args.dram_bytes_per_cycle:g}")
    latency = args.dram_latency or 0
    if not 0 <= latency <= 1000:
        raise SPSError(f"--dram-latency must be in 0..1000, not {latency}")
    if args.board:
        cfg = args.board_config(args.board)
    else:
        cfg = make_config(None, args.rows, args.cols, **DRAM_SIZES).replace(counters=False)
    run = engine_sim.run(args.model, x, cfg=cfg, latency=latency,
                         build_dir=args.build_dir)
    memory = Memory(args.dram_bytes_per_cycle or 1.0, latency, "AxiRam")
    return run.output, engine_sim.stats_json(run, memory)


def _print_engine(stats):
    for layer in stats["layers"]:
        if layer["ran"] == "hardware":
            print(f"sps: {layer['name']}: hardware, {layer['jobs']} jobs, {layer['cycles']} "
                  f"compute (model {layer['model_cycles']}) + {layer['stall_cycles']} stall "
                  f"(model {layer['model_stall_cycles']}) cycles, "
                  f"{layer['dram_read_bytes']} B read, {layer['dram_write_bytes']} B written",
                  file=sys.stderr)
        else:
            print(f"sps: {layer['name']}: host ({layer['reason']})", file=sys.stderr)
    print(f"sps: {stats['total_cycles']} cycles (model {stats['model_total_cycles']}) on the "
          f"tile engine, {stats['dram_bytes']} B memory image", file=sys.stderr)


def cmd_sim(args):
    # deferred: the gateware loads for the commands that use it, not for sps --help
    from . import simulation
    _check_array(args)
    x = load_npy(args.input)
    if args.stats and not Path(args.stats).parent.resolve().is_dir():
        raise SPSError(f"--stats {args.stats}: directory {Path(args.stats).parent} does not "
                       f"exist")
    if getattr(args, "board", None) or args.dram_latency is not None or \
            args.dram_bytes_per_cycle is not None:
        output, stats = _engine_sim(args, x)
        save_npy(args.output, np.asarray(output, np.int8))
        _print_engine(stats)
        if args.stats:
            text = (json.dumps(stats, indent=1) + "\n").encode()
            atomic_write(args.stats, lambda f: f.write(text), "--stats")
        return
    result = simulation.run(args.model, x, rows=args.rows, cols=args.cols,
                            simulator=args.simulator, build_dir=args.build_dir,
                            waves=args.waves)
    save_npy(args.output, np.asarray(result.output, np.int8))
    for layer in result.stats["layers"]:
        if layer["ran"] == "hardware":
            print(f"sps: {layer['name']}: hardware, {layer['cycles']} cycles (model "
                  f"{layer['model_cycles']}), utilization {layer['utilization']:.1%}",
                  file=sys.stderr)
        else:
            print(f"sps: {layer['name']}: host ({layer['reason']})", file=sys.stderr)
    print(f"sps: {result.stats['total_cycles']} cycles on {args.simulator}", file=sys.stderr)
    if args.stats:
        text = (json.dumps(result.stats, indent=1) + "\n").encode()
        atomic_write(args.stats, lambda f: f.write(text), "--stats")
    if args.waves and result.waves:
        print(f"sps: waveform {result.waves}", file=sys.stderr)


def cmd_report_cycles(args):
    # deferred: the gateware loads for the commands that use it, not for sps --help
    from .generator import make_config
    from .model import cycle_report, format_report
    _check_array(args)
    if not Path(args.model).exists() and args.model not in BUILTIN:
        raise SPSError(f"{args.model}: not a compiled model directory, a model file or one "
                       f"of {', '.join(BUILTIN)}")
    if args.dram_bytes_per_cycle is None:
        if args.dram_latency is not None:
            raise SPSError("--dram-latency needs --dram-bytes-per-cycle")
        sizes = {"max_hw": 2**20, "max_width": 2**16, "fmap_depth": 2**30}
        cfg = make_config(None, args.rows, args.cols, **sizes)
        report = cycle_report(args.model, cfg)
        print(json.dumps(report, indent=1) if args.json else format_report(report))
        return
    from .tiling import DRAM_SIZES, Memory, format_memory_report, memory_report
    try:
        memory = Memory(args.dram_bytes_per_cycle, args.dram_latency or 0, "external memory")
    except ValueError as e:
        raise SPSError(f"--dram-bytes-per-cycle/--dram-latency: {e}") from None
    cfg = make_config(None, args.rows, args.cols, **DRAM_SIZES)
    report = memory_report(args.model, cfg, memory)
    print(json.dumps(report, indent=1) if args.json else format_memory_report(report))


def add_commands(subparsers, report_subparsers=None):
    """Register ``generate`` and ``sim`` (and ``report cycles``) with the ``sps`` parser."""
    p = subparsers.add_parser("generate", help="synthesizable Verilog of an SPS accelerator")
    p.add_argument("-o", "--output", required=True, metavar="RTL", help="new directory")
    _array_options(p, sizes=True)
    p.add_argument("--model", metavar="OUT", help="compiled model: size the accelerator to "
                   "it and write its packed ROM images")
    p.set_defaults(func=cmd_generate)

    p = subparsers.add_parser("sim", help="run a compiled model on the RTL under cocotb")
    p.add_argument("model", metavar="OUT", help="compiled model directory")
    p.add_argument("--input", required=True, metavar="X.npy", help="int8 [C, H, W] input")
    p.add_argument("-o", "--output", required=True, metavar="Y.npy", help="int8 output")
    _array_options(p)
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--stats", metavar="STATS.json", help="per-layer cycles, utilization "
                   "and action counts (RTL and model)")
    p.add_argument("--waves", action="store_true", help="record a waveform")
    p.add_argument("--build-dir", metavar="DIR",
                   help="simulator build directory (default: a cache per accelerator)")
    p.add_argument("--dram-latency", type=int, metavar="N",
                   help="run through the tile engine from an AXI memory (cocotbext-axi's "
                   "AxiRam) that answers N cycles late (docs/tiling.md)")
    p.add_argument("--dram-bytes-per-cycle", type=float, metavar="B",
                   help="the memory's bandwidth for the model (at least 1: the engine moves "
                   "one byte a cycle); implies the tile engine")
    p.set_defaults(func=cmd_sim)

    if report_subparsers is not None:
        p = report_subparsers.add_parser("cycles", help="analytical per-layer cycles, "
                                         "utilization and throughput of the accelerator")
        p.add_argument("model", help="a compiled model directory, a model file or a built-in "
                       "name (vgg16, resnet50, ...)")
        _array_options(p)
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.add_argument("--dram-bytes-per-cycle", type=float, metavar="B",
                       help="run every layer job by job from an external memory of B bytes "
                       "per core cycle (docs/tiling.md): bytes, compute and stall cycles")
        p.add_argument("--dram-latency", type=int, metavar="N",
                       help="the external memory's read latency in cycles (0)")
        p.set_defaults(func=cmd_report_cycles)
