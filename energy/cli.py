"""The energy command of ``sps``: ``report energy``, a thin layer over
:func:`energy.report.energy_report` (``docs/energy.md``)."""

import json

from boards.cli import BOARD_NAMES
from compiler.cli import pps_options
from compiler.errors import SPSError

__all__ = ["add_commands"]


def cmd_report_energy(args):
    # deferred: the report loads the gateware's model and the boards only when it runs
    try:
        from . import pricing, report
    except ImportError as e:
        if "amaranth_boards" not in str(e):
            raise
        raise SPSError("report energy reads the board definitions, which need the boards "
                       "extra: pip install 'sps[boards]'") from None

    table = pricing.load_table(args.energy_table) if args.energy_table else None
    rep = report.energy_report(args.model, board=args.board, weights_from=args.weights_from,
                               table=table, keep=args.keep, patterns=args.patterns,
                               period=args.period, seed=args.seed, masks=args.format_masks)
    if args.plot:
        report.plot(rep, args.plot)
    print(json.dumps(rep, indent=1) if args.json else report.format_table(rep))


def add_commands(sub, report_sub):
    """Register ``report energy`` on the ``report`` subparsers ``report_sub``."""
    p = report_sub.add_parser("energy", help="energy per inference of SPS against dense and "
                              "the other sparse formats on a board's array")
    p.add_argument("model", help="a compiled model directory, a model file or a built-in name "
                   "(vgg16, resnet50, ...)")
    p.add_argument("--board", default="ulx3s-85f", choices=BOARD_NAMES,
                   help="the board whose array, clock and energy table are used (ulx3s-85f)")
    p.add_argument("--weights-from", default="dram", choices=("dram", "bram"),
                   help="where the weights (and the formats' index) come from: DRAM, read "
                   "once per inference (default), or block RAM")
    p.add_argument("--energy-table", metavar="FILE", help="a JSON energy table instead of the "
                   "board family's (format: energy/tables/schema.json)")
    p.add_argument("--format-masks", default="pps", choices=("pps", "random"),
                   help="masks the other formats store: the model's PPS masks (default) or a "
                   "random mask of the same density per layer")
    pps_options(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plot", metavar="PNG", help="also write a bar chart")
    p.set_defaults(func=cmd_report_energy)
