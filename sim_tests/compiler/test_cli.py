"""The ``sps`` command line: the documented main job, and one clear line for bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compiler import golden, images
from sps.cli import main

SPS = str(Path(sys.executable).parent / "sps")


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "m"
    assert main(["compile", "demo", "-o", str(out)]) == 0
    return out


@pytest.fixture
def x_npy(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).integers(-128, 128, (1, 16, 16)).astype(np.int8))
    return path


def fails_cleanly(capsys, argv, *words):
    """``sps argv`` exits 2 with one line on stderr naming ``words``, no traceback."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sps: error: ") and "Traceback" not in "".join(err)
    for word in words:
        assert word in err[-1], err[-1]


def test_main_job_as_documented(tmp_path, x_npy):
    """``sps compile demo -o out && sps golden out --input x.npy -o y.npy``, as a user runs it."""
    out, y = tmp_path / "out", tmp_path / "y.npy"
    subprocess.run([SPS, "compile", "demo", "-o", out], check=True, capture_output=True)
    run = subprocess.run([SPS, "golden", out, "--input", x_npy, "-o", y, "--compare"],
                         check=True, capture_output=True, text=True)
    assert "int8 pruned" in run.stdout
    model = images.load(out)
    np.testing.assert_array_equal(np.load(y), golden.infer(model, np.load(x_npy)))


def test_unknown_model(tmp_path, capsys):
    fails_cleanly(capsys, ["compile", "alexnet", "-o", tmp_path / "m"], "alexnet", "vgg16")
    assert not (tmp_path / "m").exists()


def test_output_directory_exists(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.txt").write_text("mine")
    fails_cleanly(capsys, ["compile", "demo", "-o", tmp_path / "m"], "exists")
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("bad,words", [
    (np.nan, ["conv2", "NaN"]),
    (np.inf, ["conv2", "Inf"]),
    (np.zeros((3, 3)), ["conv2.weight", "shape"]),
    (np.zeros((16, 8, 3, 3), np.int32), ["conv2.weight", "float"]),
])
def test_bad_weights(tmp_path, capsys, bad, words):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    if np.isscalar(bad):
        weight[3, 2, 1, 1] = bad
    else:
        weight = bad
    np.savez(tmp_path / "w.npz", **{"conv2.weight": weight})
    fails_cleanly(capsys, ["compile", "demo", "--weights", tmp_path / "w.npz", "-o",
                           tmp_path / "m"], *words)
    assert not (tmp_path / "m").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


def test_bad_calibration(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.zeros((2, 3, 16, 16), np.float32))
    fails_cleanly(capsys, ["compile", "demo", "--calib", tmp_path / "c.npy", "-o",
                           tmp_path / "m"], "c.npy", "[N, 1, 16, 16]")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("x,words", [
    (np.zeros((1, 16, 16), np.float32), ["int8", "float32"]),
    (np.zeros((1, 8, 8), np.int8), ["[1, 16, 16]", "[1, 8, 8]"]),
    (np.zeros((16, 16), np.int8), ["[1, 16, 16]"]),
])
def test_bad_golden_input(tmp_path, capsys, demo_model, x, words):
    np.save(tmp_path / "x.npy", x)
    fails_cleanly(capsys, ["golden", demo_model, "--input", tmp_path / "x.npy", "-o",
                           tmp_path / "y.npy"], "--input", *words)
    assert not (tmp_path / "y.npy").exists()


def test_unreadable_input(tmp_path, capsys, demo_model):
    (tmp_path / "x.npy").write_text("not numpy")
    fails_cleanly(capsys, ["golden", demo_model, "--input", tmp_path / "x.npy", "-o",
                           tmp_path / "y.npy"], "x.npy")


def test_corrupted_image(tmp_path, capsys, demo_model, x_npy):
    import shutil
    copy = tmp_path / "m"
    shutil.copytree(demo_model, copy)
    hexfile = copy / "conv2" / "weights.hex"
    lines = hexfile.read_text().splitlines()
    lines[5] = f"{(int(lines[5], 16) + 1) % 256:02x}"
    hexfile.write_text("\n".join(lines) + "\n")
    fails_cleanly(capsys, ["golden", copy, "--input", x_npy, "-o", tmp_path / "y.npy"],
                  "conv2/weights.hex", "sha256")
    assert not (tmp_path / "y.npy").exists()


def test_not_a_model(tmp_path, capsys, x_npy):
    fails_cleanly(capsys, ["golden", tmp_path, "--input", x_npy, "-o", tmp_path / "y.npy"],
                  "manifest.json")


def test_compare_rebuilds_float_model_with_given_weights(tmp_path, monkeypatch, capsys):
    """``--weights`` is recorded, so ``golden --compare`` measures against the trained model."""
    import json

    from compiler import digits, train
    monkeypatch.chdir(tmp_path)
    np.savez("w.npz", **np.load(digits.weights_path("digits8_dense.npz")))
    np.save("c.npy", digits.calibration_images(64))
    assert main(["compile", "demo8", "--weights", "w.npz", "--calib", "c.npy", "-o", "m"]) == 0
    model = images.load("m")
    x = train.quantize_input(model, digits.load("test")[0][:1])[0]
    np.save("x.npy", x)
    capsys.readouterr()
    assert main(["golden", "m", "--input", "x.npy", "-o", "y.npy", "--compare", "--json"]) == 0
    rows = {(r["model"], r["reference"]): r for r in json.loads(capsys.readouterr().out)}
    assert rows["int8 pruned", "float pruned"]["cosine"] > 0.99
    (tmp_path / "w.npz").write_bytes(b"other")   # a different file at the recorded path
    fails_cleanly(capsys, ["golden", "m", "--input", "x.npy", "-o", "y2.npy", "--compare"],
                  "w.npz", "not the file")
    assert not (tmp_path / "y2.npy").exists()


def test_missing_parent_directories_are_created(tmp_path, capsys, demo_model, x_npy):
    """``sps compile demo -o a/b/demo`` and ``-o c/d/y.npy`` create ``a/b`` and ``c/d``."""
    out, y = tmp_path / "a" / "b" / "demo", tmp_path / "c" / "d" / "y.npy"
    assert main(["compile", "demo8", "-o", str(out)]) == 0
    assert (out / "manifest.json").is_file()
    assert main(["golden", str(demo_model), "--input", str(x_npy), "-o", str(y)]) == 0
    assert np.load(y).dtype == np.int8
    (tmp_path / "file").write_text("")
    fails_cleanly(capsys, ["compile", "demo8", "-o", tmp_path / "file" / "m"], "file",
                  "cannot create directory")


def test_help_promises_only_what_exists(capsys):
    """Every report ``sps report --help`` names answers its own ``--help``."""
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    listed = capsys.readouterr().out
    for name in ("storage", "cycles", "energy"):
        assert name in listed
        with pytest.raises(SystemExit) as exit_info:
            main(["report", name, "--help"])
        assert exit_info.value.code == 0 and "usage: sps report " + name in \
            capsys.readouterr().out
