"""The compiler's commands of ``sps``: ``compile``, ``golden``, ``train-digits`` and
``report storage``, thin layers over the compiler's Python API.

:func:`add_commands` registers them on the parser that :mod:`sps.cli` assembles; handlers
raise :class:`~compiler.errors.SPSError` for mistakes a user can make.
"""

import argparse
import json
import sys
import time

from . import accuracy, golden, images, pipeline, storage_report, train
from .fileio import load_npy, save_npy

__all__ = ["add_commands", "pps_options"]


class Progress:
    """Progress lines on stderr for long steps, ``sps: prune [3/16] conv2_1 (1.2 s)``."""

    def __init__(self, stream=None):
        # sys.stderr when called, not when defined: it may have been replaced since.
        self.stream, self.start = stream or sys.stderr, time.monotonic()

    def __call__(self, stage, i, n, name):
        elapsed = time.monotonic() - self.start
        print(f"sps: {stage} [{i}/{n}] {name} ({elapsed:.1f} s)", file=self.stream,
              flush=True)


def pruning_table(report):
    """Per-layer retained weight energy of the PPS choice against its two references."""
    lines = [f"{'PPS layer':<22}{'permuted':>9}{'PPS':>8}{'PatDNN':>8}{'top-k':>8}"]
    pruned = [row for row in report if row["pps"]]
    for row in pruned:
        lines.append(f"{row['name']:<22}{'yes' if row['permuted'] else 'no':>9}"
                     f"{row['retained']:>8.1%}{row['patdnn']:>8.1%}{row['upper_bound']:>8.1%}")
    if pruned:
        total = sum(r["energy_total"] for r in pruned)
        share = {key: sum(r[key] * r["energy_total"] for r in pruned) / total
                 for key in ("retained", "patdnn", "upper_bound")}
        lines.append(f"{'all':<22}{'':>9}{share['retained']:>8.1%}"
                     f"{share['patdnn']:>8.1%}{share['upper_bound']:>8.1%}")
    lines.append(f"({len(report) - len(pruned)} dense layers keep every weight. Columns: weight "
                 f"energy kept by PPS, by a per-kernel choice from the same library "
                 f"(PatDNN-style), by each kernel's own top-k taps.)")
    return "\n".join(lines)


def cmd_compile(args):
    images.check_new_dir(args.output)
    progress = Progress()
    net = pipeline.load_network(args.model, seed=args.seed, weights=args.weights)
    calib = None
    if args.calib:
        calib = pipeline.calibration_inputs(net, args.calib)
    model, report = pipeline.compile_network(
        net, keep=args.keep, patterns=args.patterns, period=args.period, permute=args.permute,
        prune_first=args.prune_first, calib=calib, seed=args.seed,
        source=args.model, weights_file=args.weights, progress=progress)
    images.write(model, args.output, progress=lambda i, n, name: progress("write", i, n, name))
    print(pruning_table(report))
    print(f"sps: wrote {args.output} ({time.monotonic() - progress.start:.1f} s)",
          file=sys.stderr)


def cmd_golden(args):
    model = images.load(args.model)
    x = load_npy(args.input)
    golden.check_input(model, x, what=f"--input {args.input}")
    y = golden.infer(model, x)
    if args.compare:
        rows = accuracy.compare(model, x, y)
    save_npy(args.output, y)
    if args.compare:
        print(json.dumps(rows, indent=1) if args.json else accuracy.format_table(rows))


def cmd_report_storage(args):
    net = storage_report.load_pruned(args.model, keep=args.keep, patterns=args.patterns,
                                     period=args.period, seed=args.seed,
                                     prune_first=args.prune_first)
    report = storage_report.storage_report(net, convention=args.convention)
    if args.plot:
        storage_report.plot(report, args.plot)
    print(json.dumps(report, indent=1) if args.json else storage_report.format_table(report))


def pps_options(parser):
    """Add the PPS options (``--keep --patterns --period --seed``) of the reports."""
    parser.add_argument("--keep", type=int, default=4, help="taps kept per 3x3 kernel (4)")
    parser.add_argument("--patterns", type=int, default=4, metavar="K",
                        help="patterns in each layer's library (4)")
    parser.add_argument("--period", type=int, default=8, metavar="P",
                        help="assignment period in input channels (8)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of random weights, inputs and masks (0)")


def add_commands(sub):
    """Register ``compile``, ``golden``, ``train-digits`` and ``report storage`` on the
    ``sps`` parser's ``sub``; return the subparsers of ``report``, where the other packages
    add their kinds."""
    p = sub.add_parser("compile", help="prune, quantize and write ROM images of a CNN")
    p.add_argument("model", help="an .onnx or .npz file, or demo, demo8, digits, vgg16, "
                                 "resnet18, resnet50")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="new directory")
    pps_options(p)
    p.add_argument("--permute", action=argparse.BooleanOptionalAction, default=True,
                   help="permute input channels to group similar ones (on)")
    p.add_argument("--prune-first", action="store_true",
                   help="prune the first 3x3 layer too (kept dense by default)")
    p.add_argument("--calib", metavar="FILE.npy", help="float32 [N, C, H, W] inputs to "
                   "calibrate activation scales (default: 4 seeded N(0,1) samples)")
    p.add_argument("--weights", metavar="FILE.npz",
                   help="trained weights for a built-in model: <layer>.weight, <layer>.bias")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("golden", help="bit-exact numpy inference of a compiled model")
    p.add_argument("model", metavar="OUT", help="compiled model directory")
    p.add_argument("--input", required=True, metavar="X.npy", help="int8 [C, H, W] input")
    p.add_argument("-o", "--output", required=True, metavar="Y.npy", help="int8 output")
    p.add_argument("--compare", action="store_true", help="also run the float model, "
                   "unpruned and pruned, and print what pruning and quantization cost")
    p.add_argument("--json", action="store_true", help="--compare results as JSON")
    p.set_defaults(func=cmd_golden)

    p = sub.add_parser("train-digits", help="train demo8 on the 8x8 digits, prune, fine-tune "
                       "and measure accuracy (regenerates the shipped weights)")
    train.add_arguments(p)
    p.set_defaults(func=train.run)

    report = sub.add_parser("report", help="weight storage and cycle reports")
    report_sub = report.add_subparsers(dest="report", required=True, metavar="KIND")
    p = report_sub.add_parser("storage", help="weight storage of dense, CSR, CSC, COO, "
                              "bitmap, RLC and SPS formats")
    p.add_argument("model", help="a compiled model directory, a model file or built-in name")
    pps_options(p)
    p.add_argument("--prune-first", action="store_true", help="prune the first 3x3 layer too")
    p.add_argument("--convention", default="minimal", choices=("minimal", "int16", "int32"),
                   help="index field widths: minimal per layer (default), or 16/32-bit words")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plot", metavar="PNG", help="also write a bar chart")
    p.set_defaults(func=cmd_report_storage)
    return report_sub
