"""scikit-learn's 8x8 handwritten digits, the data set of the built-in ``digits`` network.

:func:`load` gives the 1797 images shipped inside scikit-learn (no download) split 1437/360,
stratified by class, with a fixed seed. They are exactly the input of the built-in ``demo8``
network; :mod:`compiler.train` trains ``demo8`` on them and writes the weights in
``compiler/data`` (:func:`weights_path`) that make the built-in ``digits``
(:func:`compiler.models.digits`), calibrated on :func:`calibration_images`
(``docs/accuracy.md``).
"""

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import SPSError

PIXEL_MAX = 16.0          # digits pixels are integers 0..16; inputs are pixels / 16, in [0, 1]
TEST_SIZE = 360           # of 1797 images; the other 1437 train
SPLIT_SEED = 0            # random_state of the stratified split
CALIB_SIZE = 256          # training images that calibrate the int8 activation scales


@lru_cache(maxsize=1)
def _arrays():
    try:
        # deferred: scikit-learn takes ~1 s to import and only the digits need it
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SPSError("the digits data set needs scikit-learn: pip install scikit-learn") \
            from None
    data = load_digits()
    x = (data.images / PIXEL_MAX).astype(np.float32)[:, None]           # [1797, 1, 8, 8]
    y = data.target.astype(np.int64)
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=TEST_SIZE,
                                           stratify=y, random_state=SPLIT_SEED)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return {"train": (x[train_idx], y[train_idx]), "test": (x[test_idx], y[test_idx])}


def load(split):
    """``x`` float32 ``[N, 1, 8, 8]`` (pixels 0..16 divided by 16, so in [0, 1]) and ``y``
    int64 labels 0..9 of ``split``: ``"train"`` (1437 images) or ``"test"`` (360), a
    stratified split with ``random_state = 0``, each in data-set order."""
    if split not in ("train", "test"):
        raise SPSError(f"digits split must be 'train' or 'test', not {split!r}")
    x, y = _arrays()[split]
    return x.copy(), y.copy()


def calibration_images(count=CALIB_SIZE):
    """The first ``count`` training images: what calibrates the int8 activation scales."""
    return load("train")[0][:count]


def weights_path(name="digits8.npz"):
    """Path of a weight file shipped in ``compiler/data``."""
    return Path(str(resources.files("compiler") / "data" / name))
