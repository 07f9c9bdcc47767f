"""The ``sps`` command: one parser with the commands of every layer.

:mod:`compiler.cli` adds ``compile``, ``golden``, ``train-digits`` and ``report storage``,
:mod:`sps_hw.cli` ``generate``, ``sim`` and ``report cycles``, :mod:`boards.cli` ``build`` and
``run``. A :class:`~compiler.errors.SPSError` becomes one line on stderr and exit status 2.
"""

import argparse
import sys

import boards.cli
import compiler.cli
import sps_hw.cli
from compiler.errors import SPSError

__all__ = ["build_parser", "main"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sps", description="Sparse periodic systolic CNN accelerator generator.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    report_sub = compiler.cli.add_commands(sub)
    sps_hw.cli.add_commands(sub, report_sub)
    boards.cli.add_commands(sub, report_sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SPSError as e:
        print(f"sps: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
