"""``sps explore --synth``: a point built for its board, area and Fmax from report.json."""

import pytest

from explore.store import code_digest
from sps.cli import main

from .support import read_csv, rerun_does_nothing


@pytest.mark.slow
def test_synth_sweep_reads_the_build_report(tmp_path, capsys):
    results, before = tmp_path / "R", code_digest()
    argv = ["explore", "demo", "-o", str(results), "--grid", "board=icebreaker; keep=4",
            "--synth", "--workers", "1"]
    assert main(argv) == 0, capsys.readouterr().err
    [row] = read_csv(results / "points.csv")
    assert row["synth"] == "1" and row["area"] == "synthesis", row
    assert row["status"] in ("ok", "timing"), row
    assert 4000 < int(row["lut"]) <= 5280 and int(row["dsp"]) == 8     # placed logic cells; 4 x 2
    assert float(row["fmax_mhz"]) > 0

    def rerun():
        assert main(argv) == 0
        return capsys.readouterr().err
    rerun_does_nothing(rerun, before, results)
