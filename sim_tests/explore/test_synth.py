"""``sps explore --synth``: a point built for its board, area and Fmax from report.json."""

import pytest

from sps.cli import main

from .support import read_csv


@pytest.mark.slow
def test_synth_sweep_reads_the_build_report(tmp_path, capsys):
    results = tmp_path / "R"
    argv = ["explore", "demo", "-o", str(results), "--grid", "board=icebreaker; keep=4",
            "--synth", "--workers", "1"]
    assert main(argv) == 0, capsys.readouterr().err
    [row] = read_csv(results / "points.csv")
    assert row["synth"] == "1" and row["area"] == "synthesis", row
    assert row["status"] in ("ok", "timing"), row
    assert 4000 < int(row["lut"]) <= 5280 and int(row["dsp"]) == 3     # placed logic cells
    assert float(row["fmax_mhz"]) > 0
    assert main(argv) == 0 and "0 evaluated now" in capsys.readouterr().err
