# amaranth: UnusedElaboratable=no
"""Models larger than a board's block RAM: the DRAM fit (``boards.fit.check_dram_fit``) and
the DRAM build of ``sps build --no-synth`` (``dram.bin``, ``dram.json``, the tile engine's
``sps_engine.v``, report.json's ``dram``); refused with synthesis (no DRAM controller in the
board top yet), on a board without DRAM and when the image exceeds the DRAM. No synthesis,
no simulation."""

import dataclasses
import json
import re

import numpy as np
import pytest

from boards.build import DRAM_TOP
from boards.fit import check_dram_fit, check_fit, fit_board
from boards.platforms import BOARDS
from compiler import images
from compiler.errors import SPSError
from sps.cli import main
from sps_hw.dram import pack

from ..support.layers import layer, random_model

ULX3S = BOARDS["ulx3s-85f"]
#: check_fit's refusal of :data:`BIG` on the ULX3S (after the model's name).
BLOCK_RAM = (r"does not fit ulx3s-85f: on its 8x8 core the packed images need weights "
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
    image = pack(model, ULX3S.config)
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
    """``sps build --no-synth``: the board top without a model, the DRAM image and its map,
    the tile engine's Verilog, and the report's ``dram`` entry and DRAM fit."""
    path, model = big
    out = tmp_path / "build"
    assert main(["build", "--board", "ulx3s-85f", "--model", str(path), "--no-synth",
                 "-o", str(out)]) == 0
    image = pack(model, ULX3S.config)
    report = json.loads((out / "report.json").read_text())
    assert (out / "dram.bin").read_bytes() == bytes(image.data)
    assert json.loads((out / "dram.json").read_text()) == json.loads(json.dumps(image.map()))
    engine = (out / "sps_engine.v").read_text()
    assert "module sps_engine(" in engine
    assert all(f" {port}" in engine for port in ("m_axi_araddr", "m_axi_wdata", "s_axi_awaddr",
                                                  "irq"))
    assert (out / "top.il").exists() and (out / "top.lpf").exists()       # the board top
    assert not (out / "images").exists()
    assert f"model for the DRAM: dram.bin ({len(image.data):,} of 33,554,432 bytes, " \
        f"{len(image.jobs)} jobs" in capsys.readouterr().out
    assert report["dram"] == {"controller": None, "size_bytes": 32 * 2**20,
                              "image_bytes": len(image.data), "jobs": len(image.jobs),
                              "top": DRAM_TOP, "image": "dram.bin", "map": "dram.json",
                              "engine": "sps_engine.v"}
    assert report["fit"] == {**check_dram_fit(model, ULX3S),
                             "block_ram": report["fit"]["block_ram"]}
    assert re.search(BLOCK_RAM, report["fit"]["block_ram"])
    assert report["model"] == str(path) and report["model_tag"] is None
    assert report["model_baked"] is False and report["core"] == "SPSCore"
    assert report["fmax_mhz"] is None and report["resources"] == {}


def test_dram_build_with_synthesis_is_refused(big, tmp_path, capsys):
    """Without --no-synth: one line, exit 2, before anything is written."""
    path, model = big
    image = pack(model, ULX3S.config)
    assert main(["build", "--board", "ulx3s-85f", "--model", str(path), "-o",
                 str(tmp_path / "build")]) == 2
    line = _one_line(capsys)
    assert re.match(f"sps: error: model {re.escape(str(path))} {BLOCK_RAM}; ", line), line
    assert f"; its DRAM holds it ({len(image.data):,} of 33,554,432 bytes, " \
        f"{len(image.jobs)} jobs of the tile engine), but " in line
    assert line.endswith("models larger than block RAM build with --no-synth until the DRAM "
                         "controller is in the board top (issue 10)"), line
    _nothing_written(tmp_path)


def test_board_without_dram_is_refused(big, tmp_path, capsys):
    path, model = big
    icebreaker = BOARDS["icebreaker"]
    with pytest.raises(SPSError, match=r"^model big does not fit icebreaker: the board has no "
                                        r"external memory \(dram_bytes 0\)"):
        check_dram_fit(model, icebreaker, name="model big")
    assert main(["build", "--board", "icebreaker", "--model", str(path), "--no-synth", "-o",
                 str(tmp_path / "build")]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"sps: error: model {path} does not fit icebreaker: no layer runs "
                           f"on its 2x1 core"), line
    assert "; nor from external memory: the board has no external memory" in line
    _nothing_written(tmp_path)


def test_image_larger_than_the_dram_is_refused(big, tmp_path, capsys, monkeypatch):
    path, model = big
    small = dataclasses.replace(ULX3S, dram_bytes=2 * 65536)
    size = len(pack(model, ULX3S.config).data)
    assert size > 65536
    message = (f"its external-memory image of {size:,} bytes > the 65,536 bytes of half the "
               f"DRAM (an upload is staged in the half the running model does not use)")
    with pytest.raises(SPSError, match=f"^model big does not fit ulx3s-85f: {re.escape(message)}$"):
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
