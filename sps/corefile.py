"""The FuseSoC core file ``sps generate`` writes beside the Verilog: ``RTL/sps_accel.core``.

A CAPI2 core (https://fusesoc.readthedocs.io) that lists ``sps_top.v``, the ROM images it
reads with ``$readmemh`` (copied into the tool's work directory, where the Verilog looks for
them) and the top level, with a ``default`` target for any Edalize flow and a ``lint`` target
(Verilator ``--lint-only -Wall``). Its name is ``sps:accel:sps_accel:<package version>``.
"""

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from compiler.errors import SPSError
from compiler.fileio import atomic_write, make_parents

__all__ = ["CORE_FILE", "VLNV", "core_text", "with_core_file", "write_core"]

CORE_FILE = "sps_accel.core"


def _version():
    try:
        return version("sps")
    except PackageNotFoundError:
        return "0"


VLNV = f"sps:accel:sps_accel:{_version()}"


def core_text(summary):
    """The CAPI2 text for the RTL directory described by ``summary`` (its ``sps_hw.json``)."""
    cfg = summary["config"]
    roms = sorted(rom["file"] for rom in summary["roms"].values())
    lines = [
        "CAPI=2:",
        "# Written by sps generate with the Verilog and ROM images of this directory.",
        f"name: {VLNV}",
        f"description: SPS sparse CNN accelerator, {cfg['rows']} x {cfg['cols']} array",
        "",
        "filesets:",
        "  rtl:",
        "    file_type: verilogSource",
        "    files:",
        f"      - {summary['top']}.v",
        "  roms:",
        "    file_type: user",
        "    files:",
        *(f"      - {rom}: {{copyto: {rom}}}" for rom in roms),
        "",
        "targets:",
        "  default:",
        "    filesets: [rtl, roms]",
        f"    toplevel: {summary['top']}",
        "  lint:",
        "    filesets: [rtl, roms]",
        f"    toplevel: {summary['top']}",
        "    default_tool: verilator",
        "    tools:",
        "      verilator:",
        "        mode: lint-only",
        "        verilator_options: [-Wall]",
    ]
    return "\n".join(lines) + "\n"


def write_core(rtl):
    """Write ``rtl/sps_accel.core`` (atomically) from ``rtl/sps_hw.json``; returns its path."""
    rtl = Path(rtl)
    try:
        summary = json.loads((rtl / "sps_hw.json").read_text())
    except (OSError, ValueError) as e:
        raise SPSError(f"{rtl}: expected the sps_hw.json of sps generate ({e})") from None
    text = core_text(summary).encode()
    path = rtl / CORE_FILE
    atomic_write(path, lambda f: f.write(text), "core file")
    return path


def with_core_file(generate):
    """The ``sps generate`` handler ``generate`` that also creates the parent directories of
    ``-o`` and writes the core file there."""
    def run(args):
        make_parents(args.output)
        generate(args)
        write_core(args.output)
    return run
