"""Shared by the sweep tests: a small grid of the demo model and readers of the results."""

import csv
import sqlite3

from explore.store import code_digest

#: 8 points of the demo model: the ULX3S at 8x8 and 16x8 fit, the iCEBreaker does not.
GRID = "board=ulx3s-85f,icebreaker; rows=8,16; cols=8; keep=4,9; period=8"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def store_rows(results):
    """``[(key, status, worker, finished)]`` of the results store, by key."""
    db = sqlite3.connect(results / "results.sqlite")
    try:
        return sorted(db.execute("SELECT key, status, worker, finished FROM points"))
    finally:
        db.close()


def rerun_does_nothing(run, before, results):
    """Run ``run()`` (a second sweep, returning its stderr) and check it evaluated nothing and
    left the store as it was, unless the code of a point changed since the digest ``before``
    (others edit the tree while the tests run; a new digest rightly starts afresh)."""
    if code_digest() != before:
        return
    stored = store_rows(results)
    err = run()
    if code_digest() == before:
        assert "0 evaluated now" in err, err
        assert store_rows(results) == stored
