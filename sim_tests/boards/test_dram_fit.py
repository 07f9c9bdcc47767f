# amaranth: UnusedElaboratable=no
"""Models larger than a board's block RAM: the DRAM fit (``boards.fit.check_dram_fit``) and
the DRAM build of ``sps build --no-synth`` (``dram.bin``, ``dram.json``, the ULX3S top with
the DRAM core and its LiteDRAM controller, report.json's ``dram``); the Arty's (the DRAM core
and its DDR3L controller in a Vivado project; slow: with the yosys estimate), a board's
without a controller (the engine's Verilog, synthesis refused); refused on a
board without DRAM and when the image exceeds half the DRAM. No simulation."""

import dataclasses
import json
import re

import numpy as np
import pytest

from boards.build import DRAM_TOP
from boards.fit import check_dram_fit, check_fit, dram_fit, fit_board
from boards.model_image import model_tag
from boards.platforms import BOARDS
from compiler import images
from compiler.errors import SPSError
from sps.cli import main
from sps_hw.dram import pack

from ..support.layers import layer, random_model

ULX3S = BOARDS["ulx3s-85f"]
#: check_fit's refusal of :data:`BIG` on the ULX3S (after the model's name).
BLOCK_RAM = (r"does not fit ulx3s-85f: on its 16x8 core the packed images need weights "
             r"[\d,]+ words of 64 bits > 4,096")

#: 16 x 16 inputs: every layer's buffers fit the ULX3S core, its weights do not (7,552
#: words of 64 bits > 4,096 when written).
BIG = [layer("conv3", ci=3, h=16, w=16, co=64, keep=9),
       layer("conv3", co=64, keep=4, period=4, patterns=4, pool=True),
       layer("conv3", co=128, keep=4, period=4, patterns=4, stride=2),
       layer("conv1", co=64),
       layer("conv1", co=10, relu=False)]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """``(path, model)``: a compiled model too large for the ULX3S core's block RAM."""
    model = random_model(BIG, seed=7)
    path = images.write(model, tmp_path_factory.mktemp("model") / "big").path
    return path, images.load(path)


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _nothing_written(root, name="build"):
    assert not (root / name).exists() and not (root / f"{name}.failed").exists()
    assert not list(root.glob(f".{name}.tmp-*"))


def test_board_dram_sizes():
    assert ULX3S.dram_bytes == 32 * 2**20                        # SDR SDRAM
    assert BOARDS["arty-a7-35"].dram_bytes == 256 * 2**20        # DDR3L
    assert BOARDS["icebreaker"].dram_bytes == 0


def test_big_model_fits_the_dram(big):
    """More kept taps than the ULX3S weight memory's 32 KiB: check_fit refuses it; packed
    for the tile engine (89,024 bytes, 5 jobs when written) no layer is left to the host."""
    path, model = big
    taps = sum(int(np.count_nonzero(w)) for w in model.weights.values())
    assert taps > 32 * 1024
    with pytest.raises(SPSError, match=BLOCK_RAM):
        check_fit(model, ULX3S)
    fit = check_dram_fit(model, ULX3S)
    image = pack(model, ULX3S.dram_config)
    assert fit == {"dram_bytes": 32 * 2**20, "image_bytes": len(image.data),
                   "jobs": len(image.jobs), "host_layers": {},
                   "regions": {"table": 32 * len(image.segments) + 128 * len(image.jobs),
                               "tensors": sum(int(np.prod(t["shape"]))
                                              for t in image.tensors.values()),
                               "images": fit["regions"]["images"]}}
    assert fit["jobs"] >= len(BIG) and fit["image_bytes"] > taps
    assert 0 < fit["regions"]["images"] and sum(fit["regions"].values()) <= fit["image_bytes"]
    where, board_fit, board_image = fit_board(model, ULX3S, name=f"model {path}")
    assert where == "dram" and board_image.data == image.data
    assert board_fit == {**fit, "block_ram": board_fit["block_ram"]}
    assert re.fullmatch(f"model {re.escape(str(path))} {BLOCK_RAM}", board_fit["block_ram"])


def test_dram_build_without_synthesis(big, tmp_path, capsys):
    """``sps build --no-synth`` on the ULX3S: the board top with the DRAM core and the
    LiteDRAM controller, the DRAM image and its map, and the report's ``dram`` entry, DRAM
    fit and tag (the one ``sps run`` uploads under)."""
    pytest.importorskip("litedram", reason="the dram extra is not installed")
    path, model = big
    out = tmp_path / "build"
    assert main(["build", "--board", "ulx3s-85f", "--model", str(path), "--no-synth",
                 "-o", str(out)]) == 0
    image = pack(model, ULX3S.dram_config)
    report = json.loads((out / "report.json").read_text())
    assert (out / "dram.bin").read_bytes() == bytes(image.data)
    assert json.loads((out / "dram.json").read_text()) == json.loads(json.dumps(image.map()))
    assert not (out / "sps_engine.v").exists() and not (out / "images").exists()
    assert (out / "top.il").exists() and (out / "top.lpf").exists()       # the board top
    assert (out / "litedram_ulx3s.v").exists()                            # its controller
    assert "litedram_ulx3s" in (out / "top.il").read_text()
    assert f"model for the DRAM: dram.bin ({len(image.data):,} of 33,554,432 bytes, " \
        f"{len(image.jobs)} jobs" in capsys.readouterr().out
    controller = report["dram"].pop("controller")
    assert controller.startswith("LiteDRAM 2024.12: GENSDRPHY, MT48LC16M16")
    assert report["clock_mhz"] == 60.0
    assert report["dram"] == {"size_bytes": 32 * 2**20, "clock_mhz": 50.0,
                              "image_bytes": len(image.data), "jobs": len(image.jobs),
                              "segments": 1, "image": "dram.bin", "map": "dram.json",
                              "top": "link + tile engine (boards.dram.core) + LiteDRAM "
                                     "controller"}
    assert report["fit"] == {**check_dram_fit(model, ULX3S),
                             "block_ram": report["fit"]["block_ram"]}
    assert re.search(BLOCK_RAM, report["fit"]["block_ram"])
    assert report["model"] == str(path)
    assert report["model_tag"] == model_tag({"dram": image.data})
    assert report["model_baked"] is False and report["core"] == "DramCore"
    assert report["fmax_mhz"] is None and report["resources"] == {}


def _arty_project(out):
    """The Arty DRAM build's Vivado project in ``out``: the generated controller and its
    timing XDC added, its instance in the top, the DDR3 pins constrained once."""
    tcl = (out / "top.tcl").read_text()
    assert 'add_files "litedram_arty.v"' in tcl and 'read_xdc "litedram_arty_timing.xdc"' in tcl
    assert "module litedram_arty(" in (out / "litedram_arty.v").read_text()
    top = (out / "top.v").read_text()
    assert "  litedram_arty litedram (" in top and ".clk100(clk)," in top
    assert re.search(r"inout \[15:0\] ddram_0__dq__io;", top)
    pins = re.findall(r"set_property LOC (\w+) \[get_ports \"ddram_0__(\w+)__io",
                      (out / "top.xdc").read_text())
    assert len(set(pins)) == len(pins) == 48 and {("K5", "dq"), ("U9", "clk_p")} <= set(pins)
    timing = (out / "litedram_arty_timing.xdc").read_text()
    assert "PACKAGE_PIN" not in timing and "LOC" not in timing
    assert "set_property INTERNAL_VREF 0.675 [get_iobanks 34]" in timing
    assert timing.rstrip().endswith("-group [get_clocks clk100_0__io]")


def _arty_dram_report(report, image):
    controller = report["dram"].pop("controller")
    assert controller.startswith("LiteDRAM 2024.12: A7DDRPHY, MT41K128M16 (256 MiB DDR3L")
    assert report["dram"] == {"size_bytes": 256 * 2**20, "clock_mhz": 100.0,
                              "image_bytes": len(image.data), "jobs": len(image.jobs),
                              "segments": 1, "image": "dram.bin", "map": "dram.json",
                              "top": "link + tile engine (boards.dram.core) + LiteDRAM "
                                     "controller"}
    assert report["clock_mhz"] == 100.0 and report["core"] == "DramCore"


def test_arty_dram_build(big, tmp_path):
    """The Arty's DRAM build with --no-synth: the DRAM core beside the DDR3L controller in a
    Vivado project (unverified here: no Vivado)."""
    pytest.importorskip("litedram", reason="the dram extra is not installed")
    path, model = big
    arty = BOARDS["arty-a7-35"]
    out = tmp_path / "build"
    assert main(["build", "--board", arty.name, "--model", str(path), "--no-synth",
                 "-o", str(out)]) == 0
    image = pack(model, arty.dram_config)      # a 16 x 4 array beside the engine
    report = json.loads((out / "report.json").read_text())
    assert report["array"] == {"rows": 16, "cols": 4} and report["multipliers"] == 64
    assert (out / "dram.bin").read_bytes() == bytes(image.data)
    assert not (out / "sps_engine.v").exists()
    _arty_project(out)
    _arty_dram_report(report, image)
    assert report["resources"] == {}


def test_dram_build_without_controller(big, tmp_path, capsys, monkeypatch):
    """A board with DRAM but no controller in its top (the Arty without one): --no-synth writes
    the engine's Verilog, a build with synthesis is refused with one line, before anything is
    written."""
    path, model = big
    arty = dataclasses.replace(BOARDS["arty-a7-35"], dram_controller=None)
    monkeypatch.setitem(BOARDS, arty.name, arty)
    out = tmp_path / "build"
    assert main(["build", "--board", arty.name, "--model", str(path), "--no-synth",
                 "-o", str(out)]) == 0
    image = pack(model, arty.config)
    report = json.loads((out / "report.json").read_text())
    engine = (out / "sps_engine.v").read_text()
    assert "module sps_engine(" in engine
    assert all(f" {port}" in engine for port in ("m_axi_araddr", "m_axi_wdata", "s_axi_awaddr",
                                                  "irq"))
    assert report["dram"] == {"controller": None, "size_bytes": 256 * 2**20,
                              "image_bytes": len(image.data), "jobs": len(image.jobs),
                              "segments": 1, "top": DRAM_TOP, "image": "dram.bin",
                              "map": "dram.json", "engine": "sps_engine.v"}
    assert report["core"] == "SPSCore"
    capsys.readouterr()
    assert main(["build", "--board", arty.name, "--model", str(path), "-o",
                 str(tmp_path / "again")]) == 2
    line = _one_line(capsys)
    assert re.match(f"sps: error: model {re.escape(str(path))} does not fit arty-a7-35: ", line)
    assert f"; its DRAM holds it ({len(image.data):,} of 268,435,456 bytes, " \
        f"{len(image.jobs)} jobs of the tile engine), but " in line
    assert line.endswith("arty-a7-35's top has no DRAM controller yet: build it with "
                         "--no-synth"), line
    _nothing_written(tmp_path, "again")


@pytest.mark.slow
def test_arty_dram_build_estimate(big, tmp_path):
    """The same with the yosys synth_xilinx estimate, the controller's Verilog read too."""
    pytest.importorskip("litedram", reason="the dram extra is not installed")
    path, model = big
    arty = BOARDS["arty-a7-35"]
    out = tmp_path / "build"
    assert main(["build", "--board", arty.name, "--model", str(path), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    _arty_project(out)
    _arty_dram_report(report, pack(model, arty.dram_config))
    resources = report["resources"]          # the 16 x 4 array and the engine fit the DSPs
    assert resources["DSP48E1"]["available"] == 90 and 64 < resources["DSP48E1"]["used"] <= 90
    assert resources["LUT"]["available"] == 20800 and 0 < resources["LUT"]["used"] <= 20800
    assert resources["PLLE2_ADV"]["used"] == 1 and resources["OSERDESE2"]["used"] == 45


def test_board_without_dram_is_refused(tmp_path, capsys):
    """A model none of whose layers the iCEBreaker's core runs (64 x 64 maps), with no DRAM."""
    model = random_model([layer("conv3", ci=3, h=64, w=64, co=16, keep=9),
                          layer("conv1", co=10, relu=False)], seed=3)
    path = images.write(model, tmp_path / "wide").path
    icebreaker = BOARDS["icebreaker"]
    with pytest.raises(SPSError, match=r"^model wide does not fit icebreaker: the board has no "
                                        r"external memory \(dram_bytes 0\)"):
        check_dram_fit(model, icebreaker, name="model wide")
    assert main(["build", "--board", "icebreaker", "--model", str(path), "--no-synth", "-o",
                 str(tmp_path / "build")]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"sps: error: model {path} does not fit icebreaker: no layer runs "
                           f"on its 4x2 core"), line
    assert "; nor from external memory: the board has no external memory" in line
    _nothing_written(tmp_path)


def test_largest_layers_go_to_the_host(big):
    """With half the DRAM 64 KiB the 89,088-byte image of BIG does not fit; its largest layer
    (l2, 33,720 image bytes) runs on the host, between two engine segments."""
    _, model = big
    small = dataclasses.replace(ULX3S, dram_bytes=2 * 65536)
    fit, image = dram_fit(model, small)
    reason = ("its 33,720 image bytes are left out of the external-memory image to fit half "
              "the DRAM (65,536 bytes)")
    assert fit["host_layers"] == {"l2": reason} and image.host == {"l2": reason}
    assert fit["image_bytes"] == len(image.data) <= 65536
    assert [s[0] for s in image.steps] == ["jobs", "host", "jobs"]
    assert [s.layers for s in image.segments] == [["l0", "l1"], ["l3", "l4"]]


def test_image_larger_than_the_dram_is_refused(big, tmp_path, capsys, monkeypatch):
    """With 16 KiB halves the tensors alone (24,480 bytes) do not fit: no layer moves."""
    path, model = big
    small = dataclasses.replace(ULX3S, dram_bytes=2 * 16384)
    size = len(pack(model, ULX3S.dram_config).data)
    message = (f"its external-memory image of {size:,} bytes > the 16,384 bytes of half the "
               f"DRAM (an upload is staged in the half the running model does not use)")
    with pytest.raises(SPSError,
                       match=f"^model big does not fit ulx3s-85f: {re.escape(message)}$"):
        check_dram_fit(model, small, name="model big")
    monkeypatch.setitem(BOARDS, "ulx3s-85f", small)
    assert main(["build", "--board", "ulx3s-85f", "--model", str(path), "--no-synth", "-o",
                 str(tmp_path / "build")]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"sps: error: model {path} does not fit ulx3s-85f: "), line
    assert line.endswith(f"; nor from external memory: {message}"), line
    _nothing_written(tmp_path)


def test_no_layer_on_the_engine_is_refused():
    """A stride-2 3x3 with a fused pool runs on the host only: nothing for the engine."""
    model = random_model([layer("conv3", ci=3, h=8, w=8, co=8, stride=2, pool=True)])
    with pytest.raises(SPSError, match=r"^model tiny does not fit ulx3s-85f: no layer runs on "
                                        r"its tile engine \(8x8 core\): l0: stride 2 with a "
                                        r"fused pool$"):
        check_dram_fit(model, ULX3S, name="model tiny")


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_board_top_needs_the_dram_build():
    """A DRAM core needs the DRAM build's spec: the ULX3S's with the controller's clock, the
    Arty's on its 100 MHz clock, a board with a controller."""
    from boards.dram.core import DramCore
    from boards.top import BoardTop
    arty = BOARDS["arty-a7-35"]
    core = DramCore(arty.config, half_bytes=arty.dram_half_bytes)
    assert BoardTop(arty.dram_build(), core).dram.clk_hz == 100_000_000
    with pytest.raises(ValueError, match=r"^spec must be a DRAM build's on the board's 100 MHz "
                                         r"clock, not 50 MHz$"):
        BoardTop(dataclasses.replace(arty, clk_hz=50_000_000, baud=1_000_000), core)
    with pytest.raises(ValueError, match=r"^spec must be a DRAM build's \(BoardSpec.dram_build"
                                         r"\(\)\) with a 'dram' PLL output, not ulx3s-85f's$"):
        BoardTop(ULX3S, DramCore(ULX3S.dram_config, half_bytes=ULX3S.dram_half_bytes))
    with pytest.raises(ValueError, match=r"^arty-a7-35's top has no DRAM controller for core "):
        BoardTop(dataclasses.replace(arty, dram_controller=None), core)
