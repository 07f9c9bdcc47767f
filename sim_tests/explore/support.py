"""Shared by the sweep tests: a small grid of the demo model and readers of the results."""

import csv
import sqlite3

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
