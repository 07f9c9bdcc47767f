"""The compiled model directory (``docs/spec.md`` section 4): writing it atomically, loading
and checking it.

``OUT/manifest.json`` describes the network; each weighted layer has a folder with the
canonical images: ``weights.hex`` (kept int8 weights, order o, i, ascending tap), ``weights.npy``
(the same expanded to dense ``[Co, Ci, k, k]``) and, for PPS layers, ``index.hex`` (the
assignment table) and ``library.hex`` (the pattern masks).
"""

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import manifest as manifest_format
from . import pps
from .errors import SPSError
from .fileio import make_parents
from .manifest import is_pps

FORMAT, VERSION = "sps-model", 1

# One "xx\n" line per byte value, so a whole weight image is one table lookup.
_HEX_LINES = np.frombuffer("".join(f"{b:02x}\n" for b in range(256)).encode(),
                           np.uint8).reshape(256, 3)


@dataclass
class CompiledModel:
    """A compiled network: the manifest and each conv layer's int8 weights (stored order)."""

    manifest: dict
    weights: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def layers(self):
        return self.manifest["layers"]

    def layer(self, name):
        for layer in self.layers:
            if layer["name"] == name:
                return layer
        raise KeyError(name)


def kept_mask(layer):
    """Bool ``[Co, Ci, k, k]`` of the taps a conv layer keeps: ``library[A[i mod P]]``."""
    return pps.layer_mask(layer["library"], layer["assignment"], layer["out_shape"][0],
                          layer["in_shape"][0], layer["kernel"])


def encode_weights(weight, mask):
    """``weights.hex`` text: the kept weights in canonical order, one byte per line."""
    return _HEX_LINES[weight[mask].view(np.uint8)].tobytes()


def decode_weights(text, mask):
    """The dense int8 weights that ``weights.hex`` text describes under ``mask``."""
    values = [int(line, 16) for line in text.split()]
    if len(values) != int(mask.sum()):
        raise SPSError(f"weights.hex holds {len(values)} values, the layer keeps "
                       f"{int(mask.sum())}")
    weight = np.zeros(mask.shape, np.int8)
    weight[mask] = np.array(values, np.uint8).view(np.int8)
    return weight


def _hex_lines(values, digits):
    return "".join(f"{v:0{digits}x}\n" for v in values).encode()


def layer_images(layer, weight):
    """The image files of one conv layer, as ``{file name: bytes}``."""
    files = {"weights.hex": encode_weights(weight, kept_mask(layer))}
    if is_pps(layer):
        files["index.hex"] = _hex_lines(layer["assignment"], 1 + (len(layer["library"]) > 16))
        files["library.hex"] = _hex_lines(layer["library"], 3)
    return files


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_new_dir(out):
    """Refuse an output directory that exists and create its missing parents, before any
    work is done."""
    out = Path(out)
    if out.exists():
        raise SPSError(f"{out}: output directory exists; remove it or choose another")
    make_parents(out, "output directory")


def write(model, out, progress=None):
    """Write ``model`` to the new directory ``out`` atomically (all of it or nothing)."""
    out = Path(out)
    check_new_dir(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        manifest = json.loads(json.dumps(model.manifest))
        convs = [layer for layer in manifest["layers"] if layer["op"] == "conv"]
        for n, layer in enumerate(convs):
            if progress:
                progress(n + 1, len(convs), layer["name"])
            weight = model.weights[layer["name"]]
            folder = tmp / layer["name"]
            folder.mkdir()
            np.save(folder / "weights.npy", weight)
            for name, data in layer_images(layer, weight).items():
                (folder / name).write_bytes(data)
            layer["files"] = {
                p.name: {"path": f"{layer['name']}/{p.name}", "sha256": _sha256(p)}
                for p in sorted(folder.iterdir())}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CompiledModel(manifest, model.weights, out)


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def read_manifest(path):
    """The checked manifest of the model directory ``path`` (:func:`compiler.manifest.check`)."""
    file = Path(path) / "manifest.json"
    try:
        manifest = json.loads(file.read_bytes(), parse_constant=_no_constant)
    except FileNotFoundError:
        raise SPSError(f"{path}: not a compiled model (no manifest.json)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise SPSError(f"{file}: not valid JSON ({e})") from None
    except OSError as e:
        raise SPSError(f"{file}: cannot be read ({e.strerror})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or \
            manifest.get("version") != VERSION:
        got = manifest if isinstance(manifest, dict) else {}
        raise SPSError(f"{file}: expected format {FORMAT!r} version {VERSION}, "
                       f"got {got.get('format')!r} version {got.get('version')}")
    manifest_format.check(manifest, file)
    return manifest


def _check_image(path, layer, name, size, verify):
    file = path / layer["files"][name]["path"]
    if not file.is_file():
        raise SPSError(f"{file}: missing (listed in the manifest)")
    if size is not None and file.stat().st_size != size:
        raise SPSError(f"{file}: {file.stat().st_size} bytes, the manifest's layer "
                       f"{layer['name']!r} needs {size}; the image is truncated or corrupted")
    if verify and _sha256(file) != layer["files"][name]["sha256"]:
        raise SPSError(f"{file}: sha256 does not match the manifest; the image is "
                       f"corrupted or was edited")
    return file


def _load_weight(file, layer):
    try:            # mapped, so a damaged header's shape allocates nothing
        weight = np.load(file, mmap_mode="r", allow_pickle=False)
    except Exception as e:      # numpy's parser raises many kinds on a damaged header
        raise SPSError(f"{file}: not a readable .npy file ({type(e).__name__}: {e})") from None
    co, ci, k = layer["out_shape"][0], layer["in_shape"][0], layer["kernel"]
    if weight.dtype != np.int8 or weight.shape != (co, ci, k, k):
        raise SPSError(f"{file}: expected int8 [{co}, {ci}, {k}, {k}], got "
                       f"{weight.dtype} {list(weight.shape)}")
    weight = np.array(weight)
    if is_pps(layer) and np.any(weight[~kept_mask(layer)]):
        raise SPSError(f"{file}: non-zero weights at taps the layer's library prunes")
    return weight


def load(path, verify=True):
    """Load a compiled model directory: the manifest checked against its schema and for
    consistency, every image's size and (``verify``) sha256, the int8 weights."""
    path = Path(path)
    manifest = read_manifest(path)
    weights = {}
    for layer in manifest["layers"]:
        if layer["op"] != "conv":
            continue
        files = {name: _check_image(path, layer, name, size, verify)
                 for name, size in manifest_format.image_files(layer).items()}
        weights[layer["name"]] = _load_weight(files["weights.npy"], layer)
    return CompiledModel(manifest, weights, path)
