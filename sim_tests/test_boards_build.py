# amaranth: UnusedElaboratable=no
"""Board builds: project files, log parsing, the fit check, and (slow) real toolchain runs:
an iCE40 and an ECP5 bitstream and the Xilinx resource estimate, each with its report.json."""

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from boards.build import build, parse_nextpnr_log, parse_yosys_stat
from boards.fit import check_fit, requirements
from boards.platforms import BOARDS, board_spec
from compiler.errors import SPSError

SPS = [sys.executable, "-m", "compiler.cli"]

NEXTPNR_LOG = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:     900/   5280    17%
Info: \t        ICESTORM_RAM:       3/     30    10%
Info:
Info: Max frequency for clock 'clk': 40.00 MHz (PASS at 12.00 MHz)
Info: Device utilisation:
Info: \t         ICESTORM_LC:    2554/   5280    48%
Info: \t        ICESTORM_RAM:       7/     30    23%
Info: \t        ICESTORM_DSP:       0/      8     0%
Info: Placed 12 cells
Info: Max frequency for clock 'other': 90.00 MHz (PASS at 12.00 MHz)
Info: Max frequency for clock 'blinker.clk': 34.74 MHz (FAIL at 48.00 MHz)
"""


def test_parse_nextpnr_log():
    """The last utilisation table and the last "Max frequency" line win."""
    fmax, resources = parse_nextpnr_log(NEXTPNR_LOG)
    assert fmax == {"clock": "blinker.clk", "mhz": 34.74, "target_mhz": 48.0, "pass": False}
    assert resources == {"ICESTORM_LC": {"used": 2554, "available": 5280},
                         "ICESTORM_RAM": {"used": 7, "available": 30},
                         "ICESTORM_DSP": {"used": 0, "available": 8}}
    assert parse_nextpnr_log("nothing") == (None, {})


def test_parse_yosys_stat():
    stat = {"design": {"num_cells_by_type": {
        "LUT2": 10, "LUT6": 5, "FDRE": 7, "FDSE": 1, "DSP48E1": 3, "RAMB18E1": 2,
        "RAM32M": 4, "IBUF": 2, "OBUF": 1, "BUFGCTRL": 1, "CARRY4": 9, "top.sub": 1}}}
    res = parse_yosys_stat(stat)
    assert res["LUT"] == {"used": 15, "available": 20800}
    assert res["FF"] == {"used": 8, "available": 41600}
    assert res["DSP48E1"] == {"used": 3, "available": 90}
    assert res["LUTRAM"]["used"] == 4 and res["IO"]["used"] == 3 and res["BUFG"]["used"] == 1
    assert "top.sub" not in res


def test_board_specs():
    """Every board has a baud divisor within tolerance, and the proposed array fits its DSPs."""
    for name, spec in BOARDS.items():
        assert spec.divisor >= 4
        assert spec.multipliers <= spec.budget["dsp"], name
    assert BOARDS["ulx3s-85f"].multipliers >= 64
    with pytest.raises(SPSError, match="unknown board; expected one of icebreaker"):
        board_spec("de10")


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_project_files(tmp_path, board):
    """Without synthesis: the project files a board needs, with its UART pins and clock."""
    out = tmp_path / "build"
    report = build(board, out, do_build=False)
    spec = BOARDS[board]
    files = {p.name for p in out.iterdir()}
    assert "report.json" in files and json.loads((out / "report.json").read_text()) == report
    assert report["array"] == {"rows": spec.rows, "cols": spec.cols}
    assert report["device"] == spec.device and report["fmax_mhz"] is None
    if spec.family == "ice40":
        assert "synth_ice40 -dsp -spram -top top" in (out / "top.ys").read_text()
        pcf = (out / "top.pcf").read_text()
        assert "set_io uart_0__rx__io 6" in pcf and "set_io uart_0__tx__io 9" in pcf
    elif spec.family == "ecp5":
        lpf = (out / "top.lpf").read_text()
        assert 'LOCATE COMP "uart_0__rx__io" SITE "M1"' in lpf
        assert 'LOCATE COMP "uart_0__tx__io" SITE "L4"' in lpf
    else:
        tcl = (out / "top.tcl").read_text()
        for step in ("create_project -force -name top -part xc7a35ticsg324-1L",
                     "add_files top.v", "read_xdc top.xdc", "synth_design -top top",
                     "place_design", "route_design", "write_bitstream -force"):
            assert step in tcl
        xdc = (out / "top.xdc").read_text()
        assert "set_property LOC A9 [get_ports \"uart_0__rx__io\"]" in xdc
        assert "create_clock -name clk100_0__io -period 10.0" in xdc
        assert "vivado" in (out / "build_top.sh").read_text()


def test_existing_output_is_refused(tmp_path):
    with pytest.raises(SPSError, match="output directory exists"):
        build("icebreaker", tmp_path, do_build=False)


# --- the fit check ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "demo"
    subprocess.run([*SPS, "compile", "demo", "-o", str(out)], check=True, capture_output=True)
    return out


def _weight_words(layer, src, rows, cols):
    """docs/hardware.md section 3: N * R words, N = G * NS * NP."""
    co = layer["out_shape"][0]
    flat = list(layer["in_shape"]) != list(src)
    ci, keep, ns = (src[0], 1, src[1] * src[2]) if flat else (layer["in_shape"][0],
                                                               layer["keep"], 1)
    return math.ceil(co / cols) * ns * math.ceil(ci * keep / rows) * rows


def test_requirements_follow_the_memory_map(demo):
    manifest = json.loads((demo / "manifest.json").read_text())
    shapes = {"input": manifest["input"]["shape"],
              **{lay["name"]: lay["out_shape"] for lay in manifest["layers"]}}
    for rows, cols in ((4, 2), (16, 8), (8, 8)):
        req = requirements(manifest, rows, cols)
        want = sum(_weight_words(lay, shapes[lay["inputs"][0]], rows, cols)
                   for lay in manifest["layers"])
        assert req["words"]["weights"] == want
        assert req["hardware_layers"] == 4 and req["words"]["layers"] == 5
    assert requirements(manifest, 4, 2)["words"]["weights"] == 48 + 256 + 512 + 1280
    for board in BOARDS:
        check_fit(manifest, BOARDS[board])                  # the demo fits every board


def test_too_large_is_refused_before_synthesis(demo, tmp_path):
    """A demo scaled to 512x512 pixels: refused with the numbers, nothing written."""
    big = tmp_path / "big"
    shutil.copytree(demo, big)
    manifest = json.loads((big / "manifest.json").read_text())
    scale = 32
    manifest["input"]["shape"][1:] = [s * scale for s in manifest["input"]["shape"][1:]]
    for layer in manifest["layers"][:-1]:
        for key in ("in_shape", "out_shape"):
            layer[key][1:] = [s * scale for s in layer[key][1:]]
    (big / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "build"
    proc = subprocess.run([*SPS, "build", "--board", "icebreaker", "--model", str(big), "-o",
                           str(out)], capture_output=True, text=True)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"sps: error: model {big} does not fit icebreaker: on its 4x2 "
                           f"array it needs ")
    need = requirements(manifest, 4, 2)["total_bits"]
    assert f"{need:,} bits of block RAM" in line and "the iCE40UP5K-SG48 has 1,171,456" in line
    assert not out.exists() and not list(tmp_path.glob(".build*"))


def test_model_needs_the_packer(demo, tmp_path):
    """The demo fits; baking it waits for sps_hw's packer, and says so."""
    proc = subprocess.run([*SPS, "build", "--board", "ulx3s-85f", "--model", str(demo), "-o",
                           str(tmp_path / "b")], capture_output=True, text=True)
    assert proc.returncode == 2 and "packer (sps_hw)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_errors_are_one_line(demo, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 16, 16), np.int8))
    for port, message in (("sim:nowhere", "no simulated board 'nowhere'"),
                          ("/dev/nonexistent-tty", "cannot open")):
        proc = subprocess.run([*SPS, "run", str(demo), "--port", port, "--input", str(x),
                               "-o", str(tmp_path / "y.npy")], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad"
    shutil.copytree(demo, bad)
    hexfile = bad / "conv2" / "weights.hex"
    hexfile.write_text("7f\n" + hexfile.read_text()[3:])
    proc = subprocess.run([*SPS, "run", str(bad), "--port", "/dev/nonexistent-tty", "--input",
                           str(x), "-o", str(tmp_path / "y.npy")], capture_output=True, text=True)
    assert proc.returncode == 2 and "sha256 does not match" in proc.stderr   # before the port
    np.save(x, np.zeros((2, 16, 16), np.int8))
    proc = subprocess.run([*SPS, "run", str(demo), "--port", "sim:nowhere", "--input", str(x),
                           "-o", str(tmp_path / "y.npy")], capture_output=True, text=True)
    assert proc.returncode == 2 and "--input" in proc.stderr


# --- the toolchain (slow) -----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_lattice_bitstream(tmp_path, board):
    """The link with the self-test core reaches a bitstream, and the report says how well."""
    out = tmp_path / board
    proc = subprocess.run([*SPS, "build", "--board", board, "-o", str(out), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report == json.loads((out / "report.json").read_text())
    spec = BOARDS[board]
    assert report["fmax_mhz"] >= spec.clk_hz / 1e6 and report["timing"]["pass"]
    bitstream = out / report["bitstream"]
    if spec.family == "ice40":
        assert bitstream.stat().st_size == 104090            # every UP5K image
        lc = report["resources"]["ICESTORM_LC"]
        assert 0 < lc["used"] <= lc["available"] == 5280
        assert report["resources"]["ICESTORM_DSP"]["available"] == 8
    else:
        assert bitstream.stat().st_size > 10000
        assert report["resources"]["MULT18X18D"]["available"] == 156
        assert report["resources"]["TRELLIS_COMB"]["used"] > 0


@pytest.mark.slow
def test_xilinx_estimate(tmp_path):
    out = tmp_path / "arty"
    report = build("arty-a7-35", out)
    assert report["fmax_mhz"] is None and report["estimate"] == "yosys synth_xilinx"
    res = report["resources"]
    assert 0 < res["LUT"]["used"] < res["LUT"]["available"] == 20800
    assert res["FF"]["used"] > 0 and res["RAMB18E1"]["used"] >= 1
    assert {"top.v", "top.xdc", "top.tcl", "build_top.sh", "stat.json"} <= \
        {p.name for p in out.iterdir()}
