"""Run a sweep on a Dask cluster and keep every result: :func:`run`.

The points not yet in the store are submitted at once, each as a task keyed by its row key;
each result is committed to the store as it arrives, so a killed sweep loses only the points
in flight and a rerun submits only the rest. A worker that dies takes its points back to the
scheduler, which runs them elsewhere (up to ``distributed.scheduler.allowed-failures`` times,
3 by default; a point that kills that many workers is recorded as failed). Without a scheduler
address the sweep starts a :class:`distributed.LocalCluster` of single-threaded worker
processes on this machine and stops it at the end.
"""

import contextlib
import hashlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from compiler import pipeline
from compiler.errors import SPSError

from . import point as point_module
from .point import Model
from .store import Store, point_key, versions

__all__ = ["ProgressBar", "check_results_dir", "load_model", "open_client", "run",
           "stored_rows"]

STORE_NAME = "results.sqlite"
#: How long to try to reach a scheduler.
CONNECT_TIMEOUT = "10s"
#: A model file larger than this goes to every worker once, not with each point.
SCATTER_BYTES = 1 << 20


def _network_sha256(net):
    digest = hashlib.sha256(json.dumps([net.name, list(net.input_shape), net.scales],
                                       sort_keys=True, default=str).encode())
    for layer in net.layers:
        digest.update(json.dumps([layer.name, layer.op, list(layer.inputs), layer.kernel,
                                  layer.stride, layer.pad, layer.relu, layer.pool]).encode())
        for array in (layer.weight, layer.bias, layer.w_scale):
            if array is not None:
                digest.update(array.tobytes())
    return digest.hexdigest()


def load_model(source):
    """The :class:`~explore.point.Model` of ``MODEL``, checked by loading it: a file's bytes
    and sha256, or a built-in's name and the sha256 of its network (weights included)."""
    net = pipeline.load_network(source)
    path = Path(source)
    if path.is_file() and path.suffix.lower() in (".onnx", ".npz"):
        data = path.read_bytes()
        return Model(str(source), hashlib.sha256(data).hexdigest(), data)
    return Model(str(source), _network_sha256(net))


def check_results_dir(results):
    """Refuse a ``RESULTS`` that is a file, or a directory with files but no results store."""
    results = Path(results)
    if results.exists() and not results.is_dir():
        raise SPSError(f"-o {results}: exists and is not a directory")
    if results.is_dir() and any(results.iterdir()) and not (results / STORE_NAME).is_file():
        raise SPSError(f"-o {results}: a directory without {STORE_NAME}, not the results of a "
                       f"sweep; choose a new or empty directory")


def _open_store(results):
    results.mkdir(parents=True, exist_ok=True)
    try:
        return Store(results / STORE_NAME)
    except sqlite3.DatabaseError as e:
        raise SPSError(f"{results / STORE_NAME}: not a results store ({e})") from None


def stored_rows(results, keys):
    """The rows of ``keys`` held in the store at ``results``, in that order."""
    store = _open_store(Path(results))
    try:
        return store.rows(keys)
    finally:
        store.close()


@contextlib.contextmanager
def open_client(scheduler=None, workers=None):
    """A :class:`distributed.Client` of the cluster at ``scheduler``, or of a new
    ``LocalCluster`` of ``workers`` single-threaded processes (default: one per core)."""
    from distributed import Client, LocalCluster
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as e:
                raise SPSError(f"--scheduler {scheduler}: cannot connect ({e})") from None
        else:
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                processes=True, dashboard_address=":0"))
            client = Client(cluster)
        yield stack.enter_context(client)


class ProgressBar:
    """Finished points on stderr: a bar redrawn in place on a terminal, else one line each."""

    def __init__(self, total, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.counts, self.start = {}, time.monotonic()
        self.tty = stream.isatty()

    def update(self, row):
        self.done += 1
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        counts = ", ".join(f"{s} {n}" for s, n in sorted(self.counts.items()))
        elapsed = time.monotonic() - self.start
        if self.tty:
            filled = round(30 * self.done / self.total)
            print(f"\rsps: explore [{'#' * filled}{'.' * (30 - filled)}] {self.done}/"
                  f"{self.total} ({counts}) {elapsed:.0f} s", end="", file=self.stream,
                  flush=True)
            if self.done == self.total:
                print(file=self.stream)
            return
        reason = f" ({row['reason']})" if row.get("reason") else ""
        print(f"sps: explore [{self.done}/{self.total}, {elapsed:.1f} s] {row['board']} "
              f"{row['rows']}x{row['cols']} keep {row['keep']} patterns {row['patterns']} "
              f"period {row['period']}: {row['status']}{reason} on {row.get('worker')}",
              file=self.stream, flush=True)


def run(points, model, results, *, synth=False, scheduler=None, workers=None,
        retry_failed=False, progress=None):
    """Evaluate every point of ``points`` not yet in the store at ``results``; return the
    keys of all of ``points``, in order, and the number evaluated now."""
    results = Path(results)
    check_results_dir(results)
    tools = versions(synth)
    keys = [point_key(p, synth, model.sha256, tools) for p in points]
    held = {}
    if (results / STORE_NAME).is_file():
        store = _open_store(results)
        held = store.statuses(keys)
        store.close()
    pending = {k: p for k, p in zip(keys, points)
               if k not in held or (retry_failed and held[k] == "failed")}
    if not pending:
        return keys, 0
    with open_client(scheduler, workers) as client:
        store = _open_store(results)
        try:
            _evaluate(client, store, pending, model, synth, tools,
                      progress or ProgressBar(len(pending)))
        finally:
            store.close()
    return keys, len(pending)


def _evaluate(client, store, pending, model, synth, tools, progress):
    from distributed import as_completed
    source, sha256 = model.source, model.sha256
    if model.data is not None and len(model.data) > SCATTER_BYTES:
        model = client.scatter(model, broadcast=True)      # sent to each worker once
    futures = {client.submit(point_module.evaluate, p, model, synth,
                             key=f"sps-explore-{k}"): k for k, p in pending.items()}
    try:
        for future in as_completed(futures):
            key = futures[future]
            try:
                row = future.result()
            except Exception as e:          # KilledWorker, or a worker without sps
                row = {**pending[key], "model": source, "synth": synth,
                       "status": "failed", "reason": f"dask: {type(e).__name__}: {e}"}
            store.add(key, row, sha256, tools)
            progress.update(row)
    finally:
        client.cancel(list(futures))
