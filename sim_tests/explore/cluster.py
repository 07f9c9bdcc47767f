"""A Dask cluster as a user runs one: ``dask scheduler`` and ``dask worker`` processes on
127.0.0.1, the scheduler on a port the system picks (``--port 0``), its address read from
its scheduler file."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DASK = str(Path(sys.executable).parent / "dask")
#: Makes each point of a worker slower and logs its start (for the worker-death test).
SLOW_WORKER = str(Path(__file__).with_name("slow_worker.py"))


class Cluster:
    """``with Cluster(tmp_path, ["a", "b"]) as c:`` a scheduler at ``c.address`` and one
    single-threaded worker per name; ``c.kill(name)`` kills that worker (no nanny restarts
    it when ``nanny=False``)."""

    def __init__(self, folder, names, *, nanny=True, slow=None):
        self.folder, self.names, self.nanny, self.slow = Path(folder), names, nanny, slow
        self.procs, self.address = {}, None

    def _start(self, name, *args):
        log = open(self.folder / f"{name}.log", "w")
        env = {**os.environ, **({"SPS_TEST_POINT_LOG": str(self.slow)} if self.slow else {})}
        self.procs[name] = subprocess.Popen([DASK, *args], stdout=log, stderr=log, env=env,
                                            start_new_session=True)
        log.close()

    def __enter__(self):
        file = self.folder / "scheduler.json"
        self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0",
                    "--no-dashboard", "--scheduler-file", str(file))
        try:
            self.address = self._wait_for_file(file)
            for name in self.names:
                self._start(name, "worker", self.address, "--name", name, "--nthreads", "1",
                            "--host", "127.0.0.1", "--no-dashboard",
                            "--nanny" if self.nanny else "--no-nanny",
                            *(["--preload", SLOW_WORKER] if self.slow else []))
            self.workers = self._wait_for_workers()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_for_file(self, file, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if file.is_file():
                try:
                    return json.loads(file.read_text())["address"]
                except (ValueError, KeyError):
                    pass
            time.sleep(0.1)
        raise TimeoutError(f"no scheduler file; {self.log('scheduler')}")

    def _wait_for_workers(self, timeout=90):
        """``{name: address}`` of the workers once all have joined."""
        from distributed import Client
        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(len(self.names), timeout=timeout)
            return {info["name"]: address
                    for address, info in client.scheduler_info()["workers"].items()}

    def log(self, name):
        return (self.folder / f"{name}.log").read_text()[-2000:]

    def kill(self, name):
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def __exit__(self, *exc):
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
