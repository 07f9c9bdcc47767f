"""The compile flow: model -> PPS pruning -> int8 quantization -> compiled model.

Each step is a function a user can call on its own; :func:`compile_network` chains them and
``sps compile`` writes the result with :func:`compiler.images.write`.
"""

import hashlib
from pathlib import Path

import numpy as np

from . import graph, images, models, pps, quantize
from .errors import SPSError
from .npz_frontend import load_npz


def load_network(model, seed=0, weights=None):
    """A float :class:`~compiler.graph.Network` from an ``.onnx``/``.npz`` path or a built-in
    name; ``weights`` (a mapping or an ``.npz`` path) replaces a built-in's random weights."""
    model = str(model)
    suffix = Path(model).suffix.lower()
    if suffix in (".onnx", ".npz"):
        if not Path(model).is_file():
            raise SPSError(f"{model}: no such file")
        if weights is not None:
            raise SPSError("--weights applies to built-in models only")
        if suffix == ".onnx":
            from .onnx_frontend import load_onnx  # deferred: onnx takes ~1 s to import
            return load_onnx(model)
        return load_npz(model)
    if isinstance(weights, (str, Path)):
        weights = _load_npz_arrays(weights)
    return models.builtin(model, seed=seed, weights=weights)


def _load_npz_arrays(path):
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as e:
        raise SPSError(f"{path}: not a readable .npz file ({e})") from None


def calibration_inputs(net, calib=None, seed=0, count=4):
    """Float calibration samples ``[N, C, H, W]``: from a ``.npy`` file, or seeded N(0, 1)."""
    shape = tuple(net.input_shape)
    if calib is None:
        return np.random.default_rng(seed).standard_normal((count, *shape), np.float32)
    try:
        data = np.load(calib, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SPSError(f"{calib}: not a readable .npy file ({e})") from None
    if data.dtype.kind != "f" or data.ndim != 4 or data.shape[1:] != shape or not len(data):
        dims = ", ".join(map(str, shape))
        raise SPSError(f"{calib}: expected float32 calibration samples [N, {dims}], "
                       f"got {data.dtype} {list(data.shape)}")
    if not np.all(np.isfinite(data)):
        raise SPSError(f"{calib}: calibration samples hold NaN or Inf values")
    return data.astype(np.float32)


def _file_sha256(model):
    path = Path(str(model))
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def quantized_layers(net, scales):
    """Manifest layer dicts and int8 weights of a pruned float network."""
    layers, weights = [], {}
    for layer in net.layers:
        entry = {"name": layer.name, "op": layer.op, "inputs": list(layer.inputs),
                 "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape)}
        s_in, s_out = scales[layer.inputs[0]], scales[layer.name]
        if layer.op == "conv":
            wq, w_scale, params = quantize.quantize_conv(layer, s_in, s_out)
            weights[layer.name] = wq
            perm = layer.permutation
            entry.update(kernel=layer.kernel, stride=layer.stride, pad=layer.pad,
                         **layer.pps, permutation=None if perm is None else perm.tolist(),
                         **params, relu=layer.relu, pool=layer.pool,
                         w_scale=w_scale.tolist())
        elif layer.op == "maxpool":
            entry.update(kernel=layer.kernel, stride=layer.stride, pad=layer.pad)
        elif layer.op == "add":
            entry.update(quantize.quantize_add(s_in, scales[layer.inputs[1]], s_out),
                         relu=layer.relu)
        else:
            count = layer.in_shape[1] * layer.in_shape[2]
            entry.update(quantize.quantize_avgpool(s_in, s_out, count), relu=layer.relu)
        entry["scale"] = s_out
        layers.append(entry)
    return layers, weights


def compile_network(net, *, keep=4, patterns=4, period=8, permute=True, prune_first=False,
                    calib=None, seed=0, source=None, weights_file=None, progress=None):
    """Prune ``net`` in place to PPS, quantize it and return ``(CompiledModel, pps_report)``.

    ``calib`` is a float ``[N, C, H, W]`` array (see :func:`calibration_inputs`; by default
    the built-in model's own samples, else seeded ones); a quantized model's own scales
    (``net.scales``) replace calibration. ``source`` and ``weights_file`` (a file
    of trained weights) are recorded so the float model can be rebuilt;
    ``progress(stage, i, n, name)`` is called as layers are processed.
    """
    if not 1 <= keep <= 9:
        raise SPSError(f"--keep must be in 1..9, not {keep}")
    if patterns < 1 or period < 1:
        raise SPSError(f"--patterns and --period must be at least 1, not {patterns}, {period}")
    step = (lambda stage: (lambda i, n, name: progress(stage, i, n, name))) if progress else (
        lambda stage: None)
    report = pps.prune_network(net, keep=keep, patterns=patterns, period=period,
                               permute=permute, prune_first=prune_first, progress=step("prune"),
                               seed=seed)
    if net.scales is not None:
        if calib is not None:
            raise SPSError("--calib: the model brings its own activation scales (a quantized "
                           "ONNX model); expected no calibration inputs")
        scales, samples = net.scales, 0
    else:
        if calib is None:
            calib = models.default_calibration(net.name)
        if calib is None:
            calib = calibration_inputs(net, seed=seed)
        if progress:
            progress("calibrate", 1, 1, f"{len(calib)} samples")
        scales, samples = quantize.activation_scales(net, calib), len(calib)
    layers, weights = quantized_layers(net, scales)
    for entry, row in zip((e for e in layers if e["op"] == "conv"), report):
        entry["pruning"] = {key: row[key] for key in ("retained", "upper_bound", "patdnn",
                                                      "permuted")}
    manifest = {
        "format": images.FORMAT, "version": images.VERSION,
        "source": str(source or net.name),
        "source_sha256": _file_sha256(source) if source else None,
        "weights": None if weights_file is None else {"path": str(weights_file),
                                                      "sha256": _file_sha256(weights_file)},
        "options": {"keep": keep, "patterns": patterns, "period": period, "permute": permute,
                    "prune_first": prune_first, "seed": seed, "calib_samples": samples,
                    "scales": "calibration" if samples else "model"},
        "input": {"name": "input", "shape": list(net.input_shape), "scale": scales["input"]},
        "output": {"name": net.output.name, "shape": list(net.output.out_shape),
                   "scale": scales[net.output.name]},
        "layers": layers,
    }
    return images.CompiledModel(manifest, weights), report


def float_networks(model, seed=None):
    """The float network a compiled model came from, in stored order, with its masks set.

    The source is loaded again (a built-in name with the recorded seed, or the source and
    weight files at the paths given to ``sps compile``) and the manifest's permutations and
    masks are applied to it.
    """
    source = model.manifest["source"]
    seed = model.manifest["options"]["seed"] if seed is None else seed
    weights = model.manifest.get("weights")
    for name, sha in ((source, model.manifest.get("source_sha256")),
                      (weights and weights["path"], weights and weights["sha256"])):
        if sha and _file_sha256(name) != sha:
            raise SPSError(f"{name}: missing, or not the file the model was compiled from; "
                           f"run from the directory that holds it")
    try:
        net = load_network(source, seed=seed, weights=weights and weights["path"])
    except SPSError as e:
        raise SPSError(f"cannot rebuild the float model from source {source!r}: {e}") from None
    for entry in model.layers:
        if entry["op"] == "conv" and entry.get("permutation") is not None:
            graph.permute_input_channels(net, entry["name"], entry["permutation"])
    for entry in model.layers:
        if entry["op"] == "conv":
            layer = net[entry["name"]]
            layer.mask = np.array(images.kept_mask(entry)) if images.is_pps(entry) else None
    return net
