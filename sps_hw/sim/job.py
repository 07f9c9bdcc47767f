"""Files that carry data between the caller of :func:`~sps_hw.sim.simulate` and a cocotb test.

The simulator runs cocotb in its own process, so inputs and outputs travel through a *job
directory*: the caller writes it with :func:`write_job` (numpy arrays become ``<name>.npy``,
everything else goes to ``job.json``), :func:`~sps_hw.sim.simulate` passes its path to the test
in the ``SPS_SIM_JOB`` environment variable, the test opens it with :func:`read_job` and stores
results with :meth:`Job.put` (arrays to ``out/<name>.npy``, the rest to ``out/outputs.json``),
and the caller reads them back with :func:`read_outputs`.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["JOB_ENV", "Job", "read_job", "read_outputs", "write_job"]

JOB_ENV = "SPS_SIM_JOB"
_PARAMS = "job.json"
_OUT = "out"
_OUT_JSON = "outputs.json"


def _check_name(name):
    if not name.isidentifier():
        raise ValueError(f"job item name must be a Python identifier, not {name!r}")


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"job value of type {type(value).__name__} is not JSON-serializable")


def _write_json(path, obj):
    """Write ``obj`` to ``path`` atomically (a reader never sees half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, default=_json_default)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _split(items):
    arrays, params = {}, {}
    for name, value in items.items():
        _check_name(name)
        (arrays if isinstance(value, np.ndarray) else params)[name] = value
    return arrays, params


def write_job(directory, **items):
    """Write a job directory for a cocotb test and return its path.

    ``numpy.ndarray`` values are saved as ``<name>.npy``; all other values must be
    JSON-serializable and go to ``job.json``. What a previous job left there (``job.json``,
    ``*.npy``, ``out/``) is removed first; other files are left alone.
    """
    directory = Path(directory)
    arrays, params = _split(items)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(directory / _OUT, ignore_errors=True)
    for old in [directory / _PARAMS, *directory.glob("*.npy")]:
        old.unlink(missing_ok=True)
    for name, array in arrays.items():
        np.save(directory / f"{name}.npy", array, allow_pickle=False)
    _write_json(directory / _PARAMS, {"params": params, "arrays": sorted(arrays)})
    return directory


class Job:
    """A job directory as the cocotb test sees it: ``job[name]`` is an input, ``put`` an output."""

    def __init__(self, directory):
        self.directory = Path(directory)
        path = self.directory / _PARAMS
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: write the job with write_job()")
        meta = json.loads(path.read_text())
        self.params = meta["params"]
        self._array_names = set(meta["arrays"])
        self._arrays = {}

    def __contains__(self, name):
        return name in self.params or name in self._array_names

    def __getitem__(self, name):
        if name in self._array_names:
            if name not in self._arrays:
                self._arrays[name] = np.load(self.directory / f"{name}.npy", allow_pickle=False)
            return self._arrays[name]
        if name in self.params:
            return self.params[name]
        raise KeyError(f"job {self.directory} has no item {name!r}")

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def put(self, **items):
        """Store outputs: arrays as ``out/<name>.npy``, other values into ``outputs.json``."""
        out = self.directory / _OUT
        out.mkdir(exist_ok=True)
        arrays, params = _split(items)
        for name, array in arrays.items():
            np.save(out / f"{name}.npy", array, allow_pickle=False)
        if params:
            path = out / _OUT_JSON
            merged = json.loads(path.read_text()) if path.exists() else {}
            merged.update(params)
            _write_json(path, merged)


def read_job(directory=None):
    """Open the job of the running test (``$SPS_SIM_JOB`` unless ``directory`` is given)."""
    if directory is None:
        directory = os.environ.get(JOB_ENV)
        if not directory:
            raise RuntimeError(f"no job: ${JOB_ENV} is not set (pass job= to simulate())")
    return Job(directory)


def read_outputs(directory):
    """Everything the test stored with :meth:`Job.put`, as one dict (empty if nothing)."""
    out = Path(directory) / _OUT
    result = {}
    if (out / _OUT_JSON).is_file():
        result.update(json.loads((out / _OUT_JSON).read_text()))
    if out.is_dir():
        for path in sorted(out.glob("*.npy")):
            result[path.stem] = np.load(path, allow_pickle=False)
    return result
