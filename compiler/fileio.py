"""Reading user arrays and writing result files atomically (a temporary file renamed)."""

from pathlib import Path

import numpy as np

from .errors import SPSError


def make_parents(path, what="-o"):
    """Create the missing parent directories of the output ``path``."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SPSError(f"{what} {path}: cannot create directory {parent} "
                       f"({e.strerror or e})") from None


def atomic_write(path, write, what="-o"):
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it into place,
    so ``path`` is either absent, the old file or the whole new one; missing parent
    directories are created."""
    path = Path(path)
    make_parents(path, what)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def save_npy(path, array, what="-o"):
    """Write ``array`` to the ``.npy`` file ``path`` atomically."""
    atomic_write(path, lambda f: np.save(f, array), what)


def load_npy(path, what="--input"):
    """An array from a ``.npy`` file, or :class:`SPSError` naming the option and file."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SPSError(f"{what} {path}: not a readable .npy file ({e})") from None
