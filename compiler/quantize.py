"""int8 quantization of a pruned float network into the manifest's integer parameters.

Scales follow ``real = scale * int``. Weights are symmetric per output channel
(``max |W[o]| -> 127``), activations symmetric per tensor, calibrated as the largest magnitude
seen on the calibration inputs. Every real-valued rescale ``M`` becomes ``mult / 2**shift``
with ``mult`` in ``[2**14, 2**15)`` where possible: 15 bits of precision, and one
32 x 16-bit multiply per output in hardware.
"""

import numpy as np

from . import graph
from .errors import SPSError

MULT_BITS = 15
INT32_MAX = 2**31 - 1


def multiplier(m):
    """``(mult, shift)`` with ``mult / 2**shift ~= m``, ``mult > 0``, ``1 <= shift <= 62``."""
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError(f"rescale factors must be finite and positive, not {m}")
    shift = np.clip(MULT_BITS - 1 - np.floor(np.log2(m)).astype(np.int64), 1, 62)
    mult = np.clip(np.rint(m * np.exp2(shift)), 1, INT32_MAX).astype(np.int64)
    # Rounding just below 2**15 carries into 2**15: the same value as 2**14 / 2**(shift - 1).
    carry = (mult == 2**MULT_BITS) & (shift > 1)
    return np.where(carry, mult // 2, mult), np.where(carry, shift - 1, shift)


def activation_scales(net, calib):
    """Per-tensor scales from float calibration inputs ``calib[N, C, H, W]``.

    A max-pool's output keeps its input's scale (it passes int8 values through unchanged).
    """
    peak = {}
    for x in calib:
        for name, act in graph.forward(net, x).items():
            peak[name] = max(peak.get(name, 0.0), float(np.abs(act).max()))
    scales = {}
    for name in ["input"] + [layer.name for layer in net.layers]:
        if name != "input" and net[name].op == "maxpool":
            scales[name] = scales[net[name].inputs[0]]
        else:
            scales[name] = max(peak[name], 1e-8) / 127.0
    return scales


def quantize_conv(layer, s_in, s_out):
    """int8 weights and the manifest's ``bias``/``mult``/``shift`` for one conv layer.

    The weight scales are the layer's own (``layer.w_scale``, from a quantized model, whose
    int8 weights may include -128), else ``max |W[o]| / 127``. The bias is clamped so that no
    accumulator can leave int32, whatever the int8 input.
    """
    w = layer.pruned_weight().astype(np.float64)
    co = w.shape[0]
    if layer.w_scale is not None:
        w_scale, low = np.asarray(layer.w_scale, np.float64), -128
    else:
        peak = np.abs(w.reshape(co, -1)).max(axis=1)
        w_scale, low = np.where(peak > 0, peak / 127.0, 1.0), -127
    wq = np.clip(np.rint(w / w_scale[:, None, None, None]), low, 127).astype(np.int8)
    headroom = INT32_MAX - 128 * np.abs(wq.reshape(co, -1).astype(np.int64)).sum(axis=1)
    if np.any(headroom < 0):
        raise SPSError(f"layer {layer.name!r}: {w[0].size} taps per output overflow int32")
    bias = np.clip(np.rint(layer.bias / (s_in * w_scale)), -headroom, headroom).astype(np.int64)
    mult, shift = multiplier(s_in * w_scale / s_out)
    return wq, w_scale, {"bias": bias.tolist(), "mult": mult.tolist(), "shift": shift.tolist()}


def quantize_add(s_a, s_b, s_out):
    """``mult_a``, ``mult_b`` and their shared ``shift`` for a residual add."""
    shift = int(multiplier(max(s_a, s_b) / s_out)[1][0])
    return {"mult_a": max(1, round(s_a / s_out * 2.0**shift)),
            "mult_b": max(1, round(s_b / s_out * 2.0**shift)), "shift": shift}


def quantize_avgpool(s_in, s_out, count):
    """``mult``/``shift`` of a global average pool over ``count`` positions."""
    (mult,), (shift,) = multiplier(s_in / (count * s_out))
    return {"mult": int(mult), "shift": int(shift)}
