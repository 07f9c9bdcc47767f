"""``sps explore`` against a cluster started by hand (``dask scheduler``, ``dask worker``
processes on 127.0.0.1), and a worker killed in the middle of a sweep."""

import json
import subprocess
import sys
from pathlib import Path

from boards.platforms import BOARDS
from explore import grid, sweep
from explore.store import Store, code_digest
from sps.cli import main

from .cluster import Cluster
from .support import GRID, read_csv, rerun_does_nothing, store_rows

SPS = str(Path(sys.executable).parent / "sps")


def test_sweep_on_a_scheduler_and_workers_started_by_hand(tmp_path, capsys):
    results, before = tmp_path / "R", code_digest()
    with Cluster(tmp_path, ["w1", "w2"]) as cluster:
        argv = ["explore", "demo", "-o", str(results), "--grid", GRID, "--scheduler",
                cluster.address]
        run = subprocess.run([SPS, *argv], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        rows = read_csv(results / "points.csv")
        assert len(rows) == len({r["key"] for r in rows}) == 8
        assert {r["worker"] for r in rows} <= set(cluster.workers.values())
        assert (results / "pareto.png").is_file()

        def rerun():                                # a second run adds nothing
            assert main(argv) == 0
            return capsys.readouterr().err
        rerun_does_nothing(rerun, before, results)


class KillInFlight:
    """A progress callback that kills the worker ``victim`` once the log shows it has started
    a point whose result has not arrived."""

    def __init__(self, cluster, log):
        self.cluster, self.log, self.finished, self.killed = cluster, log, set(), None

    def update(self, row):
        self.finished.add(json.dumps({a: row[a] for a in grid.AXES}, sort_keys=True))
        if self.killed or not self.log.is_file():
            return
        started = [line.split(" ", 1)[1] for line in self.log.read_text().splitlines()
                   if line.startswith("victim ")]
        in_flight = [p for p in started if p not in self.finished]
        if in_flight:
            self.cluster.kill("victim")
            self.killed = in_flight


def test_a_worker_killed_mid_sweep_loses_nothing(tmp_path):
    log = tmp_path / "started.log"
    points = grid.expand(grid.parse_grid("board=ulx3s-85f; rows=8,16; cols=4,8; keep=4,9"),
                         {name: (s.rows, s.cols) for name, s in BOARDS.items()})
    results = tmp_path / "R"
    with Cluster(tmp_path, ["victim", "survivor"], nanny=False, slow=log) as cluster:
        progress = KillInFlight(cluster, log)
        keys, evaluated = sweep.run(points, sweep.load_model("demo"), results,
                                    scheduler=cluster.address, progress=progress)
    assert progress.killed, "the victim had no point in flight"
    assert evaluated == len(points) == 8
    store = Store(results / "results.sqlite")
    rows = store.rows(keys)
    store.close()
    assert [r["key"] for r in rows] == keys            # every point, once
    assert len(store_rows(results)) == len(keys)
    survivor = cluster.workers["survivor"]
    by_point = {json.dumps({a: r[a] for a in grid.AXES}, sort_keys=True): r for r in rows}
    for point in progress.killed:                       # finished by the other worker
        assert by_point[point]["worker"] == survivor
        assert by_point[point]["status"] == "ok"
