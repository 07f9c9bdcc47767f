"""Load a CNN from an ``.npz`` archive of float weights into the float network IR.

Two conventions (``docs/frontends.md`` has the details and examples):

1. *Self-describing*: the key ``graph`` holds a JSON string ``{"name", "input_shape",
   "layers"}`` whose layers use the manifest's layer keys without quantization, and the
   arrays are ``<layer>.weight`` (``[Co, Ci, k, k]``, or ``[Co, N]`` for a fully connected
   layer), ``<layer>.bias`` (optional) and ``<layer>.bn.{gamma,beta,mean,var}`` (optional,
   folded into the conv with the layer's ``eps``).
2. *Sequential shorthand* (no ``graph`` key): ``input_shape`` ``[C, H, W]`` and, in file
   order, ``<name>.weight`` / ``<name>.bias`` / ``<name>.pool``: 4-D weights are stride-1
   'same' convolutions, 2-D weights fully connected layers on the flattened input, every
   layer but the last has a ReLU, and ``<name>.pool = 1`` fuses a 2x2 max-pool.
"""

import json
import os
import re
import zipfile
import zlib

import numpy as np

from . import kernels
from .batchnorm import fold_batchnorm
from .errors import SPSError
from .graph import OPS, Layer, Network, conv_out_shape, validate

__all__ = ["load_npz"]

POOL2 = {"k": 2, "s": 2, "p": 0}
BN_PARTS = ("gamma", "beta", "mean", "var")
GRAPH_KEYS = ("name", "input_shape", "layers")
COMMON_KEYS = ("name", "op", "inputs", "in_shape", "out_shape")
OP_KEYS = {"conv": ("kernel", "stride", "pad", "relu", "pool", "eps"),
           "maxpool": ("kernel", "stride", "pad"),
           "add": ("relu",),
           "avgpool": ("relu",)}
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def load_npz(path):
    """Load the ``.npz`` network at ``path`` as a validated float :class:`Network`.

    Raises :class:`SPSError` naming the file and the offending key for unreadable archives,
    unknown keys, wrong shapes or dtypes and inconsistent graphs.
    """
    where = os.fspath(path)
    arrays = _read(where)
    net = _graph(where, arrays) if "graph" in arrays else _sequential(where, arrays)
    try:
        return validate(net)
    except SPSError as e:
        raise SPSError(f"{where}: {e}") from None


def _read(where):
    try:
        data = np.load(where, allow_pickle=False)
    except FileNotFoundError:
        raise SPSError(f"{where}: no such file") from None
    except (ValueError, EOFError, zipfile.BadZipFile, OSError):
        raise SPSError(f"{where}: not an .npz archive of numpy arrays") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise SPSError(f"{where}: holds a single array, not an .npz archive of named arrays")
    arrays = {}
    with data:
        for key in data.files:
            try:
                arrays[key] = data[key]
            except ValueError:
                raise SPSError(f"{where}: array {key!r} holds Python objects; expected a "
                               f"numeric array") from None
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
                raise SPSError(f"{where}: array {key!r} is corrupt") from None
    return arrays


def _check_name(where, name):
    if (not isinstance(name, str) or not _NAME.fullmatch(name) or name == "input"
            or set(name) == {"."}):
        raise SPSError(f"{where}: layer name {name!r} must be made of letters, digits, '_', "
                       f"'.' and '-', and not be 'input'")
    return name


def _float(where, key, array, ndims):
    """``array`` as float32 after checking it is a finite float array of a rank in ``ndims``."""
    if array.dtype.kind != "f":
        raise SPSError(f"{where}: {key} must be a float array, not {array.dtype}")
    if array.ndim not in ndims:
        shapes = " or ".join(f"{n}-D" for n in ndims)
        raise SPSError(f"{where}: {key} must be {shapes}, not shape {list(array.shape)}")
    if not np.all(np.isfinite(array)):
        raise SPSError(f"{where}: {key} holds NaN or Inf values")
    return array.astype(np.float32, copy=False)


def _bias(where, arrays, name, co):
    key = f"{name}.bias"
    if key not in arrays:
        return np.zeros(co, np.float32)
    bias = _float(where, key, arrays.pop(key), (1,))
    if bias.shape != (co,):
        raise SPSError(f"{where}: {key} must have shape [{co}], not {list(bias.shape)}")
    return bias


def _input_shape(where, value, what):
    if value.dtype.kind not in "iu" or value.shape != (3,) or np.any(value < 1):
        raise SPSError(f"{where}: {what} must be three positive integers [C, H, W], not "
                       f"{value.tolist()}")
    return tuple(int(v) for v in value)


# -- convention 1: self-describing graph ------------------------------------------------------

def _graph(where, arrays):
    spec = _graph_json(where, arrays.pop("graph"))
    unknown = sorted(set(spec) - set(GRAPH_KEYS))
    if unknown:
        raise SPSError(f"{where}: graph has unknown key {unknown[0]!r}; keys are "
                       f"{', '.join(GRAPH_KEYS)}")
    if "input_shape" not in spec:
        raise SPSError(f"{where}: graph needs 'input_shape' [C, H, W]")
    shape_value = spec["input_shape"]
    if not (isinstance(shape_value, list) and all(type(v) is int for v in shape_value)):
        raise SPSError(f"{where}: graph input_shape must be three positive integers [C, H, W], "
                       f"not {shape_value!r}")
    name = spec.get("name", os.path.splitext(os.path.basename(where))[0])
    if not isinstance(name, str) or not name:
        raise SPSError(f"{where}: graph name must be a non-empty string, not {name!r}")
    net = Network(name, _input_shape(where, np.array(shape_value, np.int64), "input_shape"))
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise SPSError(f"{where}: graph 'layers' must be a non-empty list of layer objects")
    for index, entry in enumerate(layers):
        net.layers.append(_graph_layer(where, net, index, entry, arrays))
    if arrays:
        key = next(iter(arrays))
        raise SPSError(f"{where}: unexpected array {key!r}; arrays are 'graph' and "
                       f"'<layer>.weight', '<layer>.bias', '<layer>.bn.{{{','.join(BN_PARTS)}}}' "
                       f"of the graph's conv layers")
    return net


def _graph_json(where, value):
    if value.dtype.kind == "U" and value.size == 1:
        text = str(value.reshape(()))
    elif value.dtype.kind == "S" and value.size == 1:
        text = bytes(value.reshape(())).decode("utf-8", errors="replace")
    elif value.dtype == np.uint8 and value.ndim == 1:
        text = value.tobytes().decode("utf-8", errors="replace")
    else:
        raise SPSError(f"{where}: 'graph' must hold a JSON string, not a {value.dtype} array of "
                       f"shape {list(value.shape)}")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise SPSError(f"{where}: 'graph' is not valid JSON ({e.msg} at line {e.lineno} "
                       f"column {e.colno})") from None
    if not isinstance(spec, dict):
        raise SPSError(f"{where}: 'graph' must be a JSON object with keys "
                       f"{', '.join(GRAPH_KEYS)}")
    return spec


def _graph_layer(where, net, index, entry, arrays):
    if not isinstance(entry, dict):
        raise SPSError(f"{where}: layers[{index}] must be a JSON object, not {entry!r}")
    name = _check_name(where, entry.get("name"))
    at = f"{where}: layer {name!r}"
    op = entry.get("op")
    if op not in OPS:
        raise SPSError(f"{at}: op must be one of {', '.join(OPS)}, not {op!r}")
    unknown = sorted(set(entry) - set(COMMON_KEYS) - set(OP_KEYS[op]))
    if unknown:
        raise SPSError(f"{at}: unknown key {unknown[0]!r} for a {op} layer; keys are "
                       f"{', '.join(COMMON_KEYS + OP_KEYS[op])}")
    inputs = entry.get("inputs", [net.layers[-1].name if net.layers else "input"])
    if (not isinstance(inputs, list) or not inputs
            or not all(isinstance(s, str) for s in inputs)):
        raise SPSError(f"{at}: inputs must be a non-empty list of layer names, not {inputs!r}")
    known = {"input"} | {layer.name for layer in net.layers}
    for src in inputs:
        if src not in known:
            raise SPSError(f"{at}: input {src!r} is not an earlier layer or 'input'")
    if len(inputs) != (2 if op == "add" else 1):
        raise SPSError(f"{at}: {op} takes {2 if op == 'add' else 1} input(s), not "
                       f"{len(inputs)}")

    def number(key, default, minimum):
        value = entry.get(key, default)
        if type(value) is not int or value < minimum:
            raise SPSError(f"{at}: {key} must be an integer >= {minimum}, not {value!r}")
        return value

    def shape(key, default):
        if key not in entry:
            return default
        value = entry[key]
        if not (isinstance(value, list) and all(type(v) is int for v in value)):
            raise SPSError(f"{at}: {key} must be three positive integers, not {value!r}")
        return _input_shape(where, np.array(value, np.int64), f"layer {name!r} {key}")

    relu = entry.get("relu", False)
    if not isinstance(relu, bool):
        raise SPSError(f"{at}: relu must be true or false, not {relu!r}")
    src_shape = tuple(net.shape_of(inputs[0]))
    kw = {}
    if op == "conv":
        kw = _graph_conv(where, at, name, entry, arrays, number)
        default_in = src_shape if kw["weight"].ndim == 4 else (kw["weight"].shape[1], 1, 1)
        if kw["weight"].ndim == 2:
            kw["weight"] = kw["weight"][:, :, None, None]
        in_shape = shape("in_shape", default_in)
        out_shape = conv_out_shape(in_shape, kw["weight"].shape[0], kw["kernel"], kw["stride"],
                                   kw["pad"], kw["pool"])
    elif op == "maxpool":
        kernel = number("kernel", 2, 1)
        kw = {"kernel": kernel, "stride": number("stride", kernel, 1), "pad": number("pad", 0, 0)}
        in_shape = shape("in_shape", src_shape)
        c, h, w = in_shape
        out_shape = (c, kernels.out_size(h, kernel, kw["stride"], kw["pad"]),
                     kernels.out_size(w, kernel, kw["stride"], kw["pad"]))
    else:
        in_shape = shape("in_shape", src_shape)
        out_shape = in_shape if op == "add" else (in_shape[0], 1, 1)
    given = shape("out_shape", out_shape)
    if given != out_shape:
        raise SPSError(f"{at}: out_shape {list(given)} does not match the computed "
                       f"{list(out_shape)}")
    return Layer(name, op, list(inputs), in_shape, out_shape, relu=relu, **kw)


def _graph_conv(where, at, name, entry, arrays, number):
    key = f"{name}.weight"
    if key not in arrays:
        raise SPSError(f"{at}: missing array {key!r}")
    weight = _float(where, key, arrays.pop(key), (2, 4))
    kernel = number("kernel", weight.shape[-1] if weight.ndim == 4 else 1, 1)
    if weight.ndim == 2 and kernel != 1:
        raise SPSError(f"{at}: a 2-D weight is a fully connected layer, so kernel must be 1, "
                       f"not {kernel}")
    bias = _bias(where, arrays, name, weight.shape[0])
    bn = {part: arrays.pop(f"{name}.bn.{part}") for part in BN_PARTS
          if f"{name}.bn.{part}" in arrays}
    if bn:
        missing = [f"{name}.bn.{part}" for part in BN_PARTS if part not in bn]
        if missing:
            raise SPSError(f"{at}: BatchNorm needs all of gamma, beta, mean, var; missing "
                           f"{missing[0]!r}")
        eps = entry.get("eps", 1e-5)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)):
            raise SPSError(f"{at}: eps must be a number, not {eps!r}")
        four = weight if weight.ndim == 4 else weight[:, :, None, None]
        four, bias = fold_batchnorm(four, bias, *(bn[part] for part in BN_PARTS), eps=eps,
                                    where=f"{where}: {name}.bn")
        weight = four if weight.ndim == 4 else four[:, :, 0, 0]
    pool = entry.get("pool")
    if pool is True or pool == POOL2:
        pool = dict(POOL2)
    elif pool is not None and pool is not False:
        raise SPSError(f"{at}: pool must be null or {json.dumps(POOL2)}, not {pool!r}")
    return {"weight": weight, "bias": bias, "kernel": kernel, "stride": number("stride", 1, 1),
            "pad": number("pad", 0, 0), "pool": pool or None}


# -- convention 2: sequential shorthand -------------------------------------------------------

def _sequential(where, arrays):
    if "input_shape" not in arrays:
        raise SPSError(f"{where}: missing 'input_shape' (an int array [C, H, W]); an .npz model "
                       f"needs it, or a 'graph' key holding the network as JSON")
    net = Network(os.path.splitext(os.path.basename(where))[0],
                  _input_shape(where, arrays.pop("input_shape"), "input_shape"))
    groups = {}
    for key, array in arrays.items():
        name, _, part = key.rpartition(".")
        if not name or part not in ("weight", "bias", "pool"):
            raise SPSError(f"{where}: unexpected key {key!r}; keys are 'input_shape' and "
                           f"'<layer>.weight', '<layer>.bias', '<layer>.pool' (or 'graph')")
        groups.setdefault(_check_name(where, name), {})[part] = array
    if not groups:
        raise SPSError(f"{where}: holds no '<layer>.weight' arrays")
    for index, (name, parts) in enumerate(groups.items()):
        net.layers.append(_sequential_layer(where, net, name, parts, index == len(groups) - 1))
    return net


def _sequential_layer(where, net, name, parts, last):
    key = f"{name}.weight"
    if "weight" not in parts:
        raise SPSError(f"{where}: layer {name!r} has no {key!r}")
    weight = _float(where, key, parts["weight"], (2, 4))
    src = net.layers[-1].name if net.layers else "input"
    shape = tuple(net.shape_of(src))
    pool = _sequential_pool(where, name, parts.get("pool"))
    if weight.ndim == 4:
        co, ci, kh, kw = weight.shape
        if kh != kw or kh % 2 == 0:
            raise SPSError(f"{where}: {key} must be [Co, Ci, k, k] with odd k for a 'same' "
                           f"convolution, not shape {list(weight.shape)}")
        if ci != shape[0]:
            raise SPSError(f"{where}: {key} has {ci} input channels, but {src!r} has "
                           f"{shape[0]} channels")
        in_shape, kernel = shape, kh
    else:
        co, n = weight.shape
        if n != int(np.prod(shape)):
            raise SPSError(f"{where}: {key} takes {n} inputs, but {src!r} flattened has "
                           f"{int(np.prod(shape))} values")
        if pool:
            raise SPSError(f"{where}: {name}.pool needs a 4-D conv weight, {key} is 2-D")
        weight, in_shape, kernel = weight[:, :, None, None], (n, 1, 1), 1
    bias = _bias(where, {f"{name}.bias": parts["bias"]} if "bias" in parts else {}, name, co)
    return Layer(name, "conv", [src], in_shape,
                 conv_out_shape(in_shape, co, kernel, 1, kernel // 2, pool), kernel=kernel,
                 stride=1, pad=kernel // 2, relu=not last, pool=pool, weight=weight, bias=bias)


def _sequential_pool(where, name, value):
    if value is None:
        return None
    if value.size != 1 or value.dtype.kind not in "biuf" or value.reshape(()) not in (0, 1):
        raise SPSError(f"{where}: {name}.pool must be the scalar 1 (fused 2x2 max-pool) or 0, "
                       f"not {value.tolist()!r}")
    return dict(POOL2) if value.reshape(()) == 1 else None
