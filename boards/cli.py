"""``sps build`` and ``sps run``: thin wrappers over :func:`boards.build.build` and
:func:`boards.host.run_model` (registered by :mod:`sps.cli` through :func:`add_commands`)."""

import json
import sys

from compiler.errors import SPSError
from compiler.fileio import load_npy, save_npy

__all__ = ["BAUD_RATES", "BOARD_NAMES", "add_commands"]

#: The keys of :data:`boards.platforms.BOARDS`, which imports amaranth-boards (``sps[boards]``):
#: ``sps --help`` works without it.
BOARD_NAMES = ("icebreaker", "ulx3s-85f", "arty-a7-35")
#: :data:`boards.platforms.BAUD_RATES`, for the same reason.
BAUD_RATES = (4_000_000, 3_000_000)


def cmd_build(args):
    # deferred: the gateware loads for the commands that use it, not for sps --help
    from .build import build
    if args.selftest and args.model:
        raise SPSError("--selftest builds the link's self-test core, which runs no model; "
                       "expected --selftest or --model, not both")
    report = build(args.board, args.output, model=args.model, do_build=not args.no_synth,
                   core="selftest" if args.selftest else None, seed=args.seed,
                   progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(report, indent=1))
        return
    res = report["resources"]
    fmax = report["fmax_mhz"]
    print(f"{report['board']} ({report['device']}): array {report['array']['rows']}x"
          f"{report['array']['cols']}, clock {report['clock_mhz']:g} MHz, "
          + (f"Fmax {fmax:.1f} MHz" if fmax else
             "Fmax: from Vivado (sh build_top.sh)" if report["family"] == "xc7" and res else
             "not built")
          + (f", {report['multipliers']} multipliers, peak {report['peak_gops']:g} GOPS "
             f"(dense-equivalent at keep 4)" if report["core"] == "SPSCore" else ""))
    for cell, n in res.items():
        if n["used"]:
            avail = f"{n['available']}" if n["available"] is not None else "?"
            print(f"  {cell:>16}: {n['used']:>7} / {avail}")
    dram = report.get("dram")
    if dram:
        print(f"  model for the DRAM: {dram['image']} ({dram['image_bytes']:,} of "
              f"{dram['size_bytes']:,} bytes, {dram['jobs']} jobs of the tile engine); top: "
              f"{dram['top']}")


def board_config(name):
    """The :class:`sps_hw.config.Config` of board ``name``'s core."""
    from .platforms import BOARDS
    return BOARDS[name].config


def cmd_run(args):
    # deferred: the gateware loads for the commands that use it, not for sps --help
    from .host import run_model
    x = load_npy(args.input)
    y = run_model(args.model, args.port, x, baud=args.baud, timeout=args.timeout,
                  progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    save_npy(args.output, y)


def add_commands(sub, report_sub):
    """Register ``build`` and ``run`` on the ``sps`` parser (no ``report`` kinds)."""
    p = sub.add_parser("build", help="bitstream (Lattice) or Vivado project (Xilinx) for a "
                       "board, with report.json")
    p.add_argument("--board", required=True, choices=BOARD_NAMES, metavar="NAME",
                   help=f"one of {', '.join(BOARD_NAMES)}")
    p.add_argument("--model", metavar="OUT", help="compiled model to bake into block RAM "
                   "(larger than block RAM: packed for the board's DRAM, with --no-synth)")
    p.add_argument("-o", "--output", required=True, metavar="BUILD", help="new directory")
    p.add_argument("--selftest", action="store_true",
                   help="the host link with its self-test core instead of the SPS core "
                   "(bring-up of a new board)")
    p.add_argument("--no-synth", action="store_true",
                   help="write the project files only; run no tool")
    p.add_argument("--seed", type=int, metavar="N", help="nextpnr placement seed (Lattice)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("run", help="upload a compiled model to a board, infer, read back")
    p.add_argument("model", metavar="OUT", help="compiled model directory")
    p.add_argument("--port", required=True, metavar="DEV",
                   help="serial device (/dev/ttyUSB1) or sim:BOARD for a simulated board")
    p.add_argument("--input", required=True, metavar="X.npy", help="int8 [C, H, W] input")
    p.add_argument("-o", "--output", required=True, metavar="Y.npy", help="int8 output")
    p.add_argument("--baud", type=int, help="UART baud rate (default: the board's; tries "
                   f"{', '.join(map(str, BAUD_RATES))})")
    p.add_argument("--timeout", type=float, default=0.5,
                   help="seconds to wait for each answer beyond its transfer time (0.5)")
    p.set_defaults(func=cmd_run)

    # sps sim --board: that board's core behind the tile engine, from external memory.
    sim = sub.choices.get("sim")
    if sim is not None:
        sim.add_argument("--board", choices=BOARD_NAMES, metavar="NAME",
                         help="simulate that board's core (array and buffer sizes) behind the "
                         "tile engine, from external memory")
        sim.set_defaults(board_config=board_config)
