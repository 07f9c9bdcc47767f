"""The ``sps`` command: one parser with the commands of every layer.

:mod:`compiler.cli` adds ``compile``, ``golden``, ``train-digits`` and ``report storage``,
:mod:`sps_hw.cli` ``generate``, ``sim`` and ``report cycles``, :mod:`boards.cli` ``build`` and
``run``, :mod:`explore.cli` ``explore``, :mod:`energy.cli` ``report energy``; ``generate``
also writes a FuseSoC core file (:mod:`sps.corefile`). A :class:`~compiler.errors.SPSError`,
or a missing optional extra (:mod:`sps.extras`), becomes one line on stderr and exit status 2.
"""

import argparse
import sys

import boards.cli
import compiler.cli
import energy.cli
import explore.cli
import sps_hw.cli
from compiler.errors import SPSError

from . import corefile, extras

__all__ = ["build_parser", "main"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sps", description="Sparse periodic systolic CNN accelerator generator.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    report_sub = compiler.cli.add_commands(sub)
    sps_hw.cli.add_commands(sub, report_sub)
    generate = sub.choices["generate"]
    generate.set_defaults(func=corefile.with_core_file(generate.get_default("func")))
    boards.cli.add_commands(sub, report_sub)
    explore.cli.add_commands(sub)
    energy.cli.add_commands(sub, report_sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        try:
            extras.require(args)
            args.func(args)
        except ImportError as e:
            error = extras.from_import_error(args.command, e)
            if error is None:
                raise
            raise error from None
    except SPSError as e:
        print(f"sps: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
