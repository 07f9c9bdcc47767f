"""The Pareto front and the files a user reads."""

from explore.pareto import front, objectives, write_outputs
from explore.store import COLUMNS

from .support import read_csv


def row(name, gops, lut, status="ok", accuracy=None, dsp=10):
    return {**dict.fromkeys(COLUMNS), "key": name, "board": "ulx3s-85f", "rows": 8, "cols": 8,
            "keep": 4, "gops": gops, "lut": lut, "dsp": dsp, "status": status,
            "accuracy": accuracy}


def keys(rows):
    return [r["key"] for r in rows]


def test_front_over_speed_and_area():
    rows = [row("fast", 8, 20000), row("small", 1, 5000), row("worse", 0.9, 6000),
            row("tie", 8, 20000), row("dominated", 7, 21000),
            row("nofit", 50, 100, status="no-fit"), row("mid", 4, 9000, dsp=200)]
    assert objectives(rows) == [("gops", 1), ("lut", -1)]
    assert keys(front(rows)) == ["fast", "tie", "mid", "small"]
    assert keys(front(rows, area="dsp")) == ["fast", "tie"]


def test_accuracy_joins_the_objectives_when_the_model_has_a_data_set():
    rows = [row("fast", 8, 20000, accuracy=0.7), row("accurate", 4, 20000, accuracy=0.97),
            row("neither", 4, 20000, accuracy=0.7)]
    assert objectives(rows)[-1] == ("accuracy", 1)
    assert keys(front(rows)) == ["fast", "accurate"]


def test_outputs(tmp_path):
    rows = [row("a", 8, 20000), row("b", 1, 5000), row("c", 0.5, 6000),
            row("d", 3, 50000, status="no-fit")]
    write_outputs(tmp_path, rows, title="t")
    assert [r["key"] for r in read_csv(tmp_path / "points.csv")] == ["a", "b", "c", "d"]
    assert [r["key"] for r in read_csv(tmp_path / "pareto.csv")] == ["a", "b"]
    assert list(read_csv(tmp_path / "points.csv")[0]) == list(COLUMNS)
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pareto.csv", "pareto.png",
                                                          "points.csv"]
