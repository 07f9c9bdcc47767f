"""Verilator's ``OBJCACHE`` for this project: cache the runtime objects across builds.

``verilated.mk`` runs every C++ compile as ``$(OBJCACHE) $(CXX) ...`` (``OBJCACHE`` is
Verilator's documented hook for ``ccache``). For Verilator builds
:func:`sps_hw.sim.runner.simulate` sets it to ``python -I -S .../objcache.py CACHE INCLUDE``
(isolated, no ``site``: this runs once per compile and needs only the standard library), so a
compile arrives here as ``CACHE INCLUDE c++ ... -c -o verilated.o INCLUDE/verilated.cpp``.

Only compiles of a source under ``INCLUDE`` (the wheel's ``include/``: ``verilated.cpp``,
``verilated_vpi.cpp``... about 10 s of C++ per build, independent of the design) are cached, in
``CACHE/<key>/`` with the ``.d`` file ``-MMD`` writes; the build log says ``objcache:
verilated.o from <entry>`` or ``... stored in <entry>``. The key hashes the exact command, the
compiler's path and ``--version``, and the size and time of every file in ``INCLUDE`` (a new
wheel is a new key). Every other compile runs as it is. A cache that cannot be read or written
only costs the compile.
"""

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _output(cmd):
    """The ``-o`` file of a compile command, or ``None``."""
    for i, arg in enumerate(cmd[:-1]):
        if arg == "-o":
            return Path(cmd[i + 1])
    return None


def _key(cmd, include):
    h = hashlib.sha256("\0".join(cmd).encode())
    compiler = shutil.which(cmd[0])
    if compiler is not None:
        h.update(str(Path(compiler).resolve()).encode())
        h.update(subprocess.run([compiler, "--version"], capture_output=True,
                                check=False).stdout)
    for f in sorted(include.iterdir()):
        if f.is_file():
            st = f.stat()
            h.update(f"\0{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _copy(src, dst):
    """Copy ``src`` to ``dst`` atomically (a reader never sees half a file)."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def compile_cached(cache, include, cmd):
    """Run the compile ``cmd``, through ``cache`` when its source is under ``include``."""
    out = _output(cmd)
    if out is None or not Path(cmd[-1]).resolve().is_relative_to(include.resolve()):
        return subprocess.call(cmd)
    outputs = [out, out.with_suffix(".d")]
    try:
        entry = cache / _key(cmd, include)
        if (entry / out.name).is_file():
            for f in outputs:
                if (entry / f.name).is_file():
                    _copy(entry / f.name, f)
            print(f"objcache: {out} from {entry}", flush=True)
            return 0
    except OSError:
        entry = None
    status = subprocess.call(cmd)
    if status == 0 and entry is not None:
        with contextlib.suppress(OSError):
            cache.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{entry.name}."))
            try:
                for f in outputs:
                    if f.is_file():
                        shutil.copyfile(f, tmp / f.name)
                os.rename(tmp, entry)       # atomic; fails if another build stored it first
                print(f"objcache: {out} stored in {entry}", flush=True)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(compile_cached(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
