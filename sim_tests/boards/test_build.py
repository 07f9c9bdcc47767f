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
from boards.model_image import model_tag, pack_model
from boards.platforms import BOARDS, board_spec
from compiler import images
from compiler.errors import SPSError

SPS = [sys.executable, "-m", "sps"]

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
    """The last utilisation table and each clock's last "Max frequency" line win."""
    fmax, resources = parse_nextpnr_log(NEXTPNR_LOG)
    clocks = [{"clock": "clk", "mhz": 40.0, "target_mhz": 12.0, "pass": True},
              {"clock": "other", "mhz": 90.0, "target_mhz": 12.0, "pass": True},
              {"clock": "blinker.clk", "mhz": 34.74, "target_mhz": 48.0, "pass": False}]
    assert fmax == {**clocks[2], "clocks": clocks}      # the fastest target; all must pass
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
    ulx3s = BOARDS["ulx3s-85f"]
    assert ulx3s.multipliers >= 128 and ulx3s.clk_hz >= 100_000_000
    for spec in BOARDS.values():                    # a PLL makes exactly the core clock
        if spec.pll is not None:
            assert spec.pll.output_hz() == spec.clk_hz
            low, high = (400e6, 800e6) if spec.pll.kind == "EHXPLLL" else (533e6, 1066e6)
            assert low <= spec.pll.vco_hz() <= high, spec.name
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


def test_demo_fits_every_board(demo):
    """The packer's exact word counts: the demo runs entirely on each board's core."""
    model = images.load(demo)
    for board, spec in BOARDS.items():
        fit = check_fit(model, spec)
        assert fit["hardware_layers"] == ["conv1", "conv2", "conv3", "fc"], board
        assert not fit["host_layers"] and fit["segments"] == 1
        words = fit["words"]
        assert words["weights"]["bits"] == 8 * spec.cols
        assert words["layers"]["used"] == 5 * spec.config.layer_words
        assert all(w["used"] <= w["available"] for w in words.values())
        manifest = json.loads((demo / "manifest.json").read_text())
        assert words["weights"]["used"] == \
            requirements(manifest, spec.rows, spec.cols)["words"]["weights"]
    assert check_fit(model, BOARDS["icebreaker"])["words"]["weights"]["used"] == 2096   # 4x2


def _scaled(tmp_path, size):
    """The demo network on ``size x size`` inputs, compiled into ``tmp_path``."""
    from compiler import models, pipeline
    net = models.demo(size=size)
    model, _ = pipeline.compile_network(net, calib=np.zeros((1, 1, size, size), np.float32))
    return images.write(model, tmp_path / f"demo{size}").path


def test_too_large_is_refused_before_synthesis(demo, tmp_path):
    """The demo at 512x512 and 64x64 pixels: no layer fits the iCEBreaker core's buffers and
    the board has no DRAM for the tile engine. Refused with the numbers, nothing written.
    (On the ULX3S both run from DRAM: ``test_dram_fit``.)"""
    out = tmp_path / "build"
    for size, message in (
            (512, "no layer runs on its 4x2 core (max_hw 256, max_width 32, fmap_depth 256): "
                  "conv1: width 512 > max_width 32; "),
            (64, "conv3: input tensor needs 1024 words per bank > fmap_depth 256; ")):
        big = _scaled(tmp_path, size)
        proc = subprocess.run([*SPS, "build", "--board", "icebreaker", "--model", str(big),
                               "-o", str(out)], capture_output=True, text=True)
        assert proc.returncode == 2
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith(f"sps: error: model {big} does not fit icebreaker: "), line
        assert message in line, line
        assert line.endswith("nor from external memory: the board has no external memory "
                             "(dram_bytes 0) for the tile engine to run a model larger than "
                             "its block RAM from"), line
        assert not out.exists() and not list(tmp_path.glob(".build*"))


def test_icebreaker_core_and_selftest(demo, tmp_path):
    """The iCEBreaker carries the SPS core; its weights live in SPRAM, which a bitstream
    cannot initialise, so the model is checked and packed but not baked (``sps run`` uploads
    it). ``core="selftest"`` builds the link's bring-up core instead."""
    report = build("icebreaker", tmp_path / "b", model=demo, do_build=False)
    assert report["core"] == "SPSCore" and report["array"] == {"rows": 4, "cols": 2}
    assert report["model_baked"] is False
    assert report["model_tag"] == model_tag(pack_model(images.load(demo), BOARDS["icebreaker"]))
    assert (tmp_path / "b" / "images" / "weights.bin").stat().st_size == 4192
    report = build("icebreaker", tmp_path / "c", core="selftest", do_build=False)
    assert report["core"] == "SelfTestCore"
    proc = subprocess.run([*SPS, "build", "--board", "icebreaker", "--selftest", "--model",
                           str(demo), "-o", str(tmp_path / "d")], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "expected --selftest or --model" in proc.stderr and not (tmp_path / "d").exists()


def test_model_is_baked(demo, tmp_path):
    """Without synthesis: the model's images are packed and its tag is in the report."""
    out = tmp_path / "b"
    report = build("ulx3s-85f", out, model=demo, do_build=False)
    model = images.load(demo)
    spec = BOARDS["ulx3s-85f"]
    assert report["model_tag"] == model_tag(pack_model(model, spec))
    assert report["core"] == "SPSCore" and report["fit"]["segments"] == 1
    assert "dram" not in report and not (out / "dram.bin").exists()


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
def test_lattice_bitstream(tmp_path, demo, board):
    """A bitstream with the SPS core and the demo model, and its report: the ULX3S with the
    model baked in (its multipliers in MULT18X18D, its clock from the PLL, timing met); the
    iCEBreaker with its multipliers in SB_MAC16 (the model is uploaded by ``sps run``)."""
    out = tmp_path / board
    spec = BOARDS[board]
    proc = subprocess.run([*SPS, "build", "--board", board, "--model", str(demo), "-o", str(out),
                           "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report == json.loads((out / "report.json").read_text())
    assert report["fmax_mhz"] >= spec.clk_hz / 1e6 and report["timing"]["pass"]
    bitstream = out / report["bitstream"]
    assert report["core"] == "SPSCore"
    assert report["model_tag"] == model_tag(pack_model(images.load(demo), spec))
    if spec.family == "ice40":
        assert not report["model_baked"]
        assert bitstream.stat().st_size == 104090            # every UP5K image
        lc = report["resources"]["ICESTORM_LC"]
        assert 0 < lc["used"] <= lc["available"] == 5280
        dsp = report["resources"]["ICESTORM_DSP"]
        # 4 x 2: the 8 PEs two to a block, the two requantizers two blocks each
        assert report["array"] == {"rows": 4, "cols": 2} and report["multipliers"] == 8
        assert dsp["available"] == 8 and dsp["used"] == 8
        assert report["resources"]["ICESTORM_SPRAM"]["used"] == 2
    else:
        assert report["model_baked"]
        assert bitstream.stat().st_size > 10000
        dsp = report["resources"]["MULT18X18D"]
        assert dsp["available"] == 156 and dsp["used"] >= spec.multipliers >= 128
        assert report["clock_mhz"] >= 100 and report["multipliers"] == 128
        assert report["resources"]["EHXPLLL"]["used"] == 1
        assert (out / "images" / "weights.bin").read_bytes() == \
            pack_model(images.load(demo), spec)["weights"]


@pytest.mark.slow
def test_xilinx_estimate(tmp_path, demo):
    """The Arty: the Vivado project with the SPS core and the demo model, and the estimate:
    the 16 x 5 array and the requantizer in DSP48E1 (all 90), everything within the XC7A35T."""
    out = tmp_path / "arty"
    report = build("arty-a7-35", out, model=demo)
    assert report["fmax_mhz"] is None and report["estimate"] == "yosys synth_xilinx"
    assert report["core"] == "SPSCore" and report["model_baked"]
    res = report["resources"]
    assert 0 < res["LUT"]["used"] < res["LUT"]["available"] == 20800
    assert res["FF"]["used"] > 0 and res["RAMB18E1"]["used"] >= 1
    assert res["DSP48E1"]["used"] == res["DSP48E1"]["available"] == 90
    assert res["RAMB18E1"]["used"] + 2 * res["RAMB36E1"]["used"] <= 100
    assert {"top.v", "top.xdc", "top.tcl", "build_top.sh", "stat.json"} <= \
        {p.name for p in out.iterdir()}
