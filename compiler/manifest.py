"""The manifest of a compiled model, checked before anything reads it (``docs/spec.md`` 4.3-4.6).

:data:`SCHEMA` (JSON Schema 2020-12, checked with ``jsonschema``) holds every key, type and
range: the integers the hardware takes (``mult`` in ``1 .. 2**31 - 1``, ``shift`` in
``1 .. 63``, ``bias`` int32) and sizes small enough to compute with. :func:`check` adds what a
schema cannot say: names and inputs that exist, shapes that chain from the input, channel
counts that match the parameter lists, libraries whose masks keep ``keep`` taps, and the image
files each layer must list. Either raises :class:`SPSError` naming the file and the field.
"""

import jsonschema

from . import kernels
from .errors import SPSError

__all__ = ["SCHEMA", "check", "image_files", "is_pps"]

_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_MULT = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
_SHIFT = {"type": "integer", "minimum": 1, "maximum": 63}
_COUNT = {"type": "integer", "minimum": 1, "maximum": 2**24}
_INDEX = {"type": "integer", "minimum": 0, "maximum": 2**24}
_WINDOW = {"type": "integer", "minimum": 1, "maximum": 16}
_PAD = {"type": "integer", "minimum": 0, "maximum": 16}
_SCALE = {"type": "number", "exclusiveMinimum": 0}
_FRACTION = {"type": "number", "minimum": 0, "maximum": 1 + 1e-9}      # of weight energy
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_SHAPE = {"type": "array", "items": _COUNT, "minItems": 3, "maxItems": 3}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$", "not": {"const": "input"}}
_FILE = {"type": "object", "required": ["path", "sha256"],
         "properties": {"path": {"type": "string"}, "sha256": _SHA256}}


def _obj(required, **properties):
    return {"type": "object", "required": list(required), "properties": properties}


def _list(items, **limits):
    return {"type": "array", "items": items, **limits}


def _op(op, inputs, **properties):
    """The keys an ``op`` layer adds, and how many inputs it reads."""
    return {"if": {"properties": {"op": {"const": op}}},
            "then": _obj(properties, inputs={"minItems": inputs, "maxItems": inputs},
                         **properties)}


_RELU = {"type": "boolean"}
_CONV = _op(
    "conv", 1, kernel=_WINDOW, stride=_WINDOW, pad=_PAD, keep={"type": "integer", "minimum": 1},
    period=_COUNT, library=_list({"type": "integer", "minimum": 1}, minItems=1, maxItems=512),
    assignment=_list(_INDEX, minItems=1), permutation={"anyOf": [{"type": "null"},
                                                                 _list(_INDEX)]},
    bias=_list(_INT32), mult=_list(_MULT), shift=_list(_SHIFT), relu=_RELU,
    pool={"anyOf": [{"type": "null"}, _obj("ksp", k=_WINDOW, s=_WINDOW, p=_PAD)]},
    w_scale=_list(_SCALE),
    pruning=_obj(("retained", "upper_bound", "patdnn", "permuted"), retained=_FRACTION,
                 upper_bound=_FRACTION, patdnn=_FRACTION, permuted={"type": "boolean"}),
    files={"type": "object", "additionalProperties": _FILE})

#: The manifest's keys, types and ranges.
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **_obj(("format", "version", "source", "source_sha256", "weights", "options", "input",
            "output", "layers"),
           format={"const": "sps-model"}, version={"const": 1}, source={"type": "string"},
           source_sha256={"anyOf": [{"type": "null"}, _SHA256]},
           weights={"anyOf": [{"type": "null"},
                              _obj(("path", "sha256"), path={"type": "string"},
                                   sha256={"anyOf": [{"type": "null"}, _SHA256]})]},
           options=_obj(("keep", "patterns", "period", "permute", "prune_first", "seed",
                         "calib_samples"),
                        keep={"type": "integer", "minimum": 1, "maximum": 9},
                        patterns=_COUNT, period=_COUNT, permute={"type": "boolean"},
                        prune_first={"type": "boolean"}, seed={"type": "integer"},
                        calib_samples={"type": "integer", "minimum": 0}),
           input=_obj(("name", "shape", "scale"), name={"const": "input"}, shape=_SHAPE,
                      scale=_SCALE),
           output=_obj(("name", "shape", "scale"), name=_NAME, shape=_SHAPE, scale=_SCALE),
           layers=_list({
               **_obj(("name", "op", "inputs", "in_shape", "out_shape", "scale"),
                      name=_NAME, op={"enum": ["conv", "maxpool", "add", "avgpool"]},
                      inputs=_list({"type": "string"}), in_shape=_SHAPE, out_shape=_SHAPE,
                      scale=_SCALE),
               "allOf": [_CONV, _op("maxpool", 1, kernel=_WINDOW, stride=_WINDOW, pad=_PAD),
                         _op("add", 2, mult_a=_MULT, mult_b=_MULT, shift=_SHIFT, relu=_RELU),
                         _op("avgpool", 1, mult=_MULT, shift=_SHIFT, relu=_RELU)],
           }, minItems=1)),
}

# "integer" means a JSON integer: 3.0 is not a kernel size (jsonschema accepts it by default).
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)))
_VALIDATOR = _Validator(SCHEMA)


def is_pps(layer):
    """Whether a conv layer is pattern-pruned (keeps fewer than all k*k taps)."""
    return layer["op"] == "conv" and layer["keep"] < layer["kernel"] ** 2


def image_files(layer):
    """``{file name: expected size in bytes or None}`` of the images a conv layer lists."""
    co, ci, keep = layer["out_shape"][0], layer["in_shape"][0], layer["keep"]
    files = {"weights.hex": 3 * co * ci * keep, "weights.npy": None}
    if is_pps(layer):
        digits = 1 + (len(layer["library"]) > 16)
        files.update({"index.hex": (digits + 1) * layer["period"],
                      "library.hex": 4 * len(layer["library"])})
    return files


def _field(manifest, path):
    """``layers[1] (conv2).mult[3]`` for the path ``["layers", 1, "mult", 3]``."""
    text = ""
    for i, key in enumerate(path):
        text += f"[{key}]" if isinstance(key, int) else f".{key}" if text else key
        if i == 1 and path[0] == "layers":
            name = manifest["layers"][key].get("name") if isinstance(
                manifest["layers"][key], dict) else None
            text += f" ({name})" if isinstance(name, str) else ""
    return text or "(top level)"


def check(manifest, where):
    """Raise :class:`SPSError` (``where: field: what is wrong``) unless ``manifest`` is a
    well-formed, self-consistent compiled model manifest; ``where`` names its file."""
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(manifest))
    if error is not None:
        raise SPSError(f"{where}: {_field(manifest, list(error.absolute_path))}: "
                       f"{error.message}")
    shapes = {"input": tuple(manifest["input"]["shape"])}
    for i, layer in enumerate(manifest["layers"]):
        problem = _layer_problem(layer, shapes)
        if problem:
            field, what = problem
            raise SPSError(f"{where}: {_field(manifest, ['layers', i, *field])}: {what}")
        shapes[layer["name"]] = tuple(layer["out_shape"])
    out = manifest["output"]
    if out["name"] != manifest["layers"][-1]["name"] or tuple(out["shape"]) != shapes[
            out["name"]]:
        raise SPSError(f"{where}: output: expected the last layer "
                       f"{manifest['layers'][-1]['name']!r} and its shape "
                       f"{list(shapes[manifest['layers'][-1]['name']])}, got {out['name']!r} "
                       f"{out['shape']}")


def _layer_problem(layer, shapes):
    """``(field path, what is wrong)`` of a layer that does not fit the ones before it."""
    name, op, in_shape = layer["name"], layer["op"], tuple(layer["in_shape"])
    if name in shapes:
        return ["name"], f"{name!r} is used twice"
    for n, src in enumerate(layer["inputs"]):
        if src not in shapes:
            return ["inputs", n], f"{src!r} is not an earlier layer or 'input'"
    src = shapes[layer["inputs"][0]]
    fc = op == "conv" and layer["kernel"] == 1 and in_shape[1:] == (1, 1)
    if in_shape != src and not (fc and in_shape[0] == src[0] * src[1] * src[2]):
        return ["in_shape"], f"the input {layer['inputs'][0]!r} is {list(src)}, not " \
                             f"{list(in_shape)}"
    c, h, w = in_shape
    if op == "conv":
        problem = _conv_problem(layer)
        if problem:
            return problem
        expect = _window(layer["out_shape"][0], h, w, layer["kernel"], layer["stride"],
                         layer["pad"])
        pool = layer["pool"]
        if pool:
            expect = _window(expect[0], expect[1], expect[2], pool["k"], pool["s"], pool["p"])
    elif op == "maxpool":
        expect = _window(c, h, w, layer["kernel"], layer["stride"], layer["pad"])
    elif op == "add":
        if shapes[layer["inputs"][1]] != in_shape:
            return ["inputs", 1], f"add needs two inputs of shape {list(in_shape)}"
        expect = in_shape
    else:
        expect = (c, 1, 1)
    if tuple(layer["out_shape"]) != expect:
        return ["out_shape"], f"the layer computes {list(expect)}, not {layer['out_shape']}"
    return None


def _window(c, h, w, k, s, p):
    return (c, kernels.out_size(h, k, s, p), kernels.out_size(w, k, s, p))


def _conv_problem(layer):
    co, ci, k = layer["out_shape"][0], layer["in_shape"][0], layer["kernel"]
    for key in ("bias", "mult", "shift", "w_scale"):
        if len(layer[key]) != co:
            return [key], f"{len(layer[key])} values for {co} output channels"
    keep, library = layer["keep"], layer["library"]
    if keep > k * k:
        return ["keep"], f"{keep} taps of a {k}x{k} kernel"
    for n, mask in enumerate(library):
        if mask >> (k * k) or mask.bit_count() != keep:
            return ["library", n], f"{mask:#x} is not a {k}x{k} mask of {keep} taps"
    if library != sorted(set(library)):
        return ["library"], "patterns must be distinct and ascending"
    if layer["period"] != len(layer["assignment"]):
        return ["period"], f"{layer['period']}, but the assignment has " \
                           f"{len(layer['assignment'])} entries"
    for n, a in enumerate(layer["assignment"]):
        if a >= len(library):
            return ["assignment", n], f"{a} is not an index into {len(library)} patterns"
    perm = layer["permutation"]
    if perm is not None and sorted(perm) != list(range(ci)):
        return ["permutation"], f"not a permutation of the {ci} input channels"
    expect = sorted(image_files(layer))
    if sorted(layer["files"]) != expect:
        return ["files"], f"lists {sorted(layer['files'])}, expected {expect}"
    for file, entry in layer["files"].items():
        if entry["path"] != f"{layer['name']}/{file}":
            return ["files", file, "path"], f"{entry['path']!r}, expected " \
                                            f"'{layer['name']}/{file}'"
    return None
