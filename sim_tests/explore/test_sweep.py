"""``sps explore`` on its embedded LocalCluster: results, outputs, a rerun that does nothing,
and the one-line errors that leave nothing behind."""

import sys

import pytest

from explore import sweep
from explore.store import code_digest
from sps.cli import main

from .support import GRID, read_csv, rerun_does_nothing, store_rows


def one_error_line(capsys, argv):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sps: error: "), err
    return err[0]


def test_local_cluster_of_two_workers_then_a_rerun_that_does_nothing(tmp_path, capsys):
    results, before = tmp_path / "a" / "R", code_digest()
    argv = ["explore", "demo", "-o", str(results), "--grid", GRID, "--workers", "2"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "8 points (no-fit 4, ok 4), 8 evaluated now" in err
    rows = read_csv(results / "points.csv")
    assert len(rows) == len({r["key"] for r in rows}) == 8
    assert {(r["board"], r["status"]) for r in rows} == {("ulx3s-85f", "ok"),
                                                         ("icebreaker", "no-fit")}
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in rows)
    assert all("DSP blocks" in r["reason"] for r in rows if r["status"] == "no-fit")
    best = read_csv(results / "pareto.csv")
    assert best and {r["key"] for r in best} <= {r["key"] for r in rows if r["status"] == "ok"}
    assert out.splitlines()[0].split()[:2] == ["board", "array"]     # the front's table
    assert (results / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert len(store_rows(results)) == 8

    def rerun():                                    # no cluster started, nothing evaluated
        assert main(argv) == 0
        return capsys.readouterr().err
    rerun_does_nothing(rerun, before, results)


@pytest.mark.parametrize("argv, message", [
    (["demo", "--grid", "board=de0"], "--grid: unknown board 'de0'"),
    (["demo", "--grid", "board=icebreaker; keep=0"], "keep must be an integer in 1..9"),
    (["nonesuch", "--grid", "board=icebreaker"], "unknown model 'nonesuch'"),
    (["missing.onnx", "--grid", "board=icebreaker"], "missing.onnx: no such file"),
    (["demo", "--grid", "board=icebreaker", "--workers", "0"], "--workers 0: expected"),
    (["demo", "--grid", "board=icebreaker", "--workers", "2", "--scheduler", "tcp://h:1"],
     "not with --scheduler"),
    (["demo", "--sweep", "none.toml"], "--sweep none.toml: cannot be read"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, argv,
                                                  message):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(capsys, ["explore", argv[0], "-o", "R", *argv[1:]])
    assert message in line, line
    assert not list(tmp_path.iterdir())


def test_results_must_be_a_results_directory(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.sqlite").write_text("not SQLite " * 100)
    for target, message in (("file", "exists and is not a directory"),
                            ("other", "without results.sqlite"),
                            ("bad", "results.sqlite: not a results store")):
        line = one_error_line(capsys, ["explore", "demo", "-o", tmp_path / target,
                                       "--grid", "board=icebreaker"])
        assert message in line, line
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]


def test_an_unreachable_scheduler_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep, "CONNECT_TIMEOUT", "1s")
    line = one_error_line(capsys, ["explore", "demo", "-o", tmp_path / "R", "--grid",
                                   "board=icebreaker", "--scheduler", "tcp://127.0.0.1:1"])
    assert "--scheduler tcp://127.0.0.1:1: cannot connect" in line
    assert not (tmp_path / "R").exists()


@pytest.mark.parametrize("module", ["dask", "distributed"])
def test_without_dask_the_extra_is_named(tmp_path, monkeypatch, capsys, module):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)
    line = one_error_line(capsys, ["explore", "demo", "-o", "R", "--grid", "board=icebreaker"])
    assert line.endswith(f"needs the module '{module}', which is not installed; install "
                         f"'sps[explore]'"), line
    assert not list(tmp_path.iterdir())
