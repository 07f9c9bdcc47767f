"""Bit-exact golden model of a compiled network (``docs/spec.md`` section 3).

Everything here is integer arithmetic on the compiled images: int8 activations and weights,
exact int64 accumulation (the compiler bounds every accumulator to int32), and the
``(v * mult + (1 << (shift-1))) >> shift`` requantization with an arithmetic shift.
The RTL and every test agree with these functions to the bit.
"""

import numpy as np

from . import kernels
from .errors import SPSError


def clamp(v, relu):
    """``clamp_r``: saturate to int8, or to 0..127 when ``relu``."""
    return np.clip(v, 0 if relu else -128, 127).astype(np.int8)


def rounding_shift(v, shift):
    """``(v + (1 << (shift-1))) >> shift`` in int64, floor semantics; ``shift`` broadcasts."""
    shift = np.asarray(shift, dtype=np.int64)
    return (np.asarray(v, dtype=np.int64) + (np.int64(1) << (shift - 1))) >> shift


def requantize(acc, mult, shift, relu):
    """int8 outputs of int32 accumulators ``acc[Co, ...]`` with per-channel ``mult``/``shift``."""
    extra = (1,) * (np.ndim(acc) - 1)
    mult = np.asarray(mult, dtype=np.int64).reshape(-1, *extra)
    shift = np.asarray(shift, dtype=np.int64).reshape(-1, *extra)
    return clamp(rounding_shift(np.asarray(acc, dtype=np.int64) * mult, shift), relu)


def conv_acc(layer, weight, x):
    """The int32 accumulators ``bias + sum W*X`` of a conv layer, as int64."""
    acc = kernels.conv_int(x.reshape(layer["in_shape"]), weight, layer["stride"], layer["pad"])
    return acc + np.asarray(layer["bias"], dtype=np.int64)[:, None, None]


def run_layer(layer, weight, inputs):
    """One layer of a compiled model on int8 inputs; returns its int8 output.

    ``layer`` is a manifest layer dict, ``weight`` the layer's int8 ``[Co, Ci, k, k]`` array
    (stored order, pruned taps zero; ``None`` for layers without weights) and ``inputs`` the
    int8 arrays the layer reads, in the order of ``layer["inputs"]``.
    """
    op = layer["op"]
    x = inputs[0]
    if op == "conv":
        y = requantize(conv_acc(layer, weight, x), layer["mult"], layer["shift"], layer["relu"])
        pool = layer.get("pool")
        if pool:
            y = kernels.maxpool(y, pool["k"], pool["s"], pool["p"])
    elif op == "maxpool":
        y = kernels.maxpool(x, layer["kernel"], layer["stride"], layer["pad"])
    elif op == "add":
        v = (x.astype(np.int64) * layer["mult_a"] + inputs[1].astype(np.int64) * layer["mult_b"])
        y = clamp(rounding_shift(v, layer["shift"]), layer["relu"])
    elif op == "avgpool":
        total = x.astype(np.int64).sum(axis=(1, 2), keepdims=True)
        y = clamp(rounding_shift(total * layer["mult"], layer["shift"]), layer["relu"])
    else:
        raise SPSError(f"layer {layer['name']!r}: unknown op {op!r}")
    if tuple(y.shape) != tuple(layer["out_shape"]):
        raise SPSError(f"layer {layer['name']!r}: produced {list(y.shape)}, manifest says "
                       f"{list(layer['out_shape'])}")
    return y


def check_input(model, x, what="input"):
    """Raise :class:`SPSError` unless ``x`` is an int8 array of the model's input shape."""
    shape = tuple(model.manifest["input"]["shape"])
    if not isinstance(x, np.ndarray) or x.dtype != np.int8 or x.shape != shape:
        got = f"{x.dtype} {list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__
        raise SPSError(f"{what}: expected an int8 array of shape {list(shape)}, got {got}")


def run(model, x, until=None):
    """Run a compiled model on int8 ``x``; returns every tensor by name (``"input"`` too).

    ``until`` stops after the named layer.
    """
    check_input(model, x)
    acts = {"input": x}
    for layer in model.layers:
        name = layer["name"]
        acts[name] = run_layer(layer, model.weights.get(name),
                               [acts[src] for src in layer["inputs"]])
        if name == until:
            break
    return acts


def infer(model, x):
    """The int8 output of a compiled model on ``x``."""
    return run(model, x)[model.manifest["output"]["name"]]
