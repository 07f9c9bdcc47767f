"""``sps explore``: a thin layer over :func:`explore.sweep.run` and
:func:`explore.pareto.write_outputs` (registered by :mod:`sps.cli` through
:func:`add_commands`). Dask and the board definitions load when the command runs, not for
``sps --help``."""

import sys
from pathlib import Path

from compiler.errors import SPSError

__all__ = ["add_commands"]


def _front_table(best, area):
    head = (f"{'board':<12}{'array':>7}{'keep':>5}{'K':>3}{'P':>4}{'GOPS':>9}"
            f"{'latency us':>12}{area.upper():>8}{'accuracy':>10}")
    lines = [head]
    for r in best:
        acc = f"{r['accuracy']:.1%}" if r["accuracy"] is not None else "-"
        lines.append(f"{r['board']:<12}{r['rows']:>4}x{r['cols']:<2}{r['keep']:>5}"
                     f"{r['patterns']:>3}{r['period']:>4}{r['gops']:>9.3f}"
                     f"{r['latency_us']:>12.1f}{r[area]:>8,}{acc:>10}")
    return "\n".join(lines)


def cmd_explore(args):
    # deferred: Dask, the board definitions and the compiler load when the command runs
    from boards.platforms import BOARDS

    from . import grid, pareto, sweep
    if args.workers is not None and (args.workers < 1 or args.scheduler):
        raise SPSError(f"--workers {args.workers}: expected a count of at least 1 for the "
                       f"local cluster" + (", not with --scheduler (the cluster is used as it "
                                          "is)" if args.scheduler else ""))
    grids = grid.read_sweep_file(args.sweep) if args.sweep else grid.parse_grid(args.grid)
    points = grid.expand(grids, {name: (s.rows, s.cols) for name, s in BOARDS.items()})
    model = sweep.load_model(args.model)
    keys, evaluated = sweep.run(points, model, args.output, synth=args.synth,
                                scheduler=args.scheduler, workers=args.workers,
                                retry_failed=args.retry_failed)
    results = Path(args.output)
    rows = sweep.stored_rows(results, keys)
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    summary = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
    best = pareto.write_outputs(results, rows, args.area, title=(
        f"sps explore {args.model}: {len(rows)} points ({summary})"))
    print(f"sps: {len(rows)} points ({summary}), {evaluated} evaluated now; {len(best)} on "
          f"the Pareto front; wrote {results}/points.csv, pareto.csv, pareto.png",
          file=sys.stderr)
    print(_front_table(best, args.area))


def add_commands(sub):
    """Register ``explore`` on the ``sps`` parser."""
    p = sub.add_parser("explore", help="sweep boards, arrays and PPS options on a Dask "
                       "cluster; results, Pareto front and plot")
    p.add_argument("model", help="an .onnx or .npz file, or a built-in name (demo, digits, ...)")
    p.add_argument("-o", "--output", required=True, metavar="RESULTS",
                   help="results directory: new, or one to resume (done points are skipped)")
    axes = p.add_mutually_exclusive_group(required=True)
    axes.add_argument("--grid", metavar="SPEC", help="axes and values, e.g. 'board=ulx3s-85f,"
                      "icebreaker; rows=8,16; cols=8; keep=4,9; patterns=4,8; period=8' "
                      "(axes: board, rows, cols, keep, patterns, period, seed)")
    axes.add_argument("--sweep", metavar="FILE.toml",
                      help="a TOML sweep file of [grid] or [[grid]] tables of the same axes")
    p.add_argument("--synth", action="store_true",
                   help="also build each point's board (minutes a point) and read report.json")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler "
                   "(tcp://HOST:8786); default: a local cluster on this machine")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of the local cluster (default: one per core)")
    p.add_argument("--area", choices=("lut", "dsp"), default="lut",
                   help="the area objective of the Pareto front (lut)")
    p.add_argument("--retry-failed", action="store_true",
                   help="evaluate again the points whose status is failed")
    p.set_defaults(func=cmd_explore)
