"""Folding inference-mode BatchNormalization into the convolution that feeds it.

``y = gamma * (conv(x) + bias - mean) / sqrt(var + eps) + beta`` is again a convolution, with
each output channel's weights scaled by ``gamma / sqrt(var + eps)`` and a new bias. The model
front-ends use this so the network IR never carries a BatchNorm layer.
"""

import numpy as np

from .errors import SPSError


def fold_batchnorm(weight, bias, gamma, beta, mean, var, eps=1e-5, where="batchnorm"):
    """Return ``(weight, bias)`` of the conv with the BatchNorm folded in, as float32.

    Parameters
    ----------
    weight, bias : float arrays ``[Co, Ci, k, k]`` and ``[Co]``
    gamma, beta, mean, var : float arrays ``[Co]``
    eps : positive float added to ``var``
    where : names the BatchNorm in error messages (``SPSError``)
    """
    co = weight.shape[0]
    params = {"gamma": gamma, "beta": beta, "mean": mean, "var": var}
    for what, arr in params.items():
        arr = np.asarray(arr)
        if arr.size != co:
            raise SPSError(f"{where}: {what} must have {co} values (one per output channel), "
                           f"not shape {list(arr.shape)}")
        if arr.dtype.kind not in "fiu":
            raise SPSError(f"{where}: {what} must be a float array, not {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise SPSError(f"{where}: {what} holds NaN or Inf values")
        params[what] = arr.reshape(co).astype(np.float64)
    if not (isinstance(eps, (int, float, np.floating)) and np.isfinite(eps) and eps >= 0):
        raise SPSError(f"{where}: eps must be a non-negative number, not {eps!r}")
    denom = params["var"] + float(eps)
    if np.any(denom <= 0):
        raise SPSError(f"{where}: var + eps must be positive in every channel "
                       f"(channel {int(np.argmax(denom <= 0))} is {denom.min():g})")
    scale = params["gamma"] / np.sqrt(denom)
    new_weight = np.asarray(weight, np.float64) * scale[:, None, None, None]
    new_bias = (np.asarray(bias, np.float64) - params["mean"]) * scale + params["beta"]
    return new_weight.astype(np.float32), new_bias.astype(np.float32)
