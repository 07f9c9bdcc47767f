"""The checked loader (``compiler.manifest``, ``compiler.images.load``): each kind of damage
gives one :class:`SPSError` naming the file and the field."""

import json
import shutil

import pytest

from compiler import images
from compiler.errors import SPSError
from compiler.manifest import SCHEMA
from sps.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "m"
    assert main(["compile", "demo", "-o", str(out)]) == 0
    return out


def _edit(layer=None, **changes):
    """A manifest edit: set (or, for ``...``, delete) top-level keys or keys of layer
    ``layer``."""
    def apply(manifest):
        target = manifest if layer is None else manifest["layers"][layer]
        for key, value in changes.items():
            if value is ...:
                del target[key]
            else:
                target[key] = value
    return apply


def _set_in(path, value):
    def apply(manifest):
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return apply


DAMAGE = [
    (_edit(1, shift=...), "layers[1] (conv2): 'shift' is a required property"),
    (_edit(0, kernel=3.0), "layers[0] (conv1).kernel: 3.0 is not of type 'integer'"),
    (_set_in(["layers", 1, "mult", 3], 0), "layers[1] (conv2).mult[3]: 0 is less than"),
    (_set_in(["layers", 1, "shift", 0], 64), "layers[1] (conv2).shift[0]: 64 is greater"),
    (_set_in(["layers", 0, "bias", 0], 2**31), "layers[0] (conv1).bias[0]"),
    (_edit(1, keep=5), "layers[1] (conv2).library[0]: 0x5a is not a 3x3 mask of 5 taps"),
    (_edit(1, period=4), "layers[1] (conv2).period: 4, but the assignment has 8 entries"),
    (_set_in(["layers", 1, "assignment", 0], 4),
     "layers[1] (conv2).assignment[0]: 4 is not an index into 4 patterns"),
    (_edit(1, mult=[20000] * 15), "layers[1] (conv2).mult: 15 values for 16 output channels"),
    (_edit(1, in_shape=[8, 8, 4]), "layers[1] (conv2).in_shape: the input 'conv1' is"),
    (_edit(2, out_shape=[16, 2, 2]), "layers[2] (conv3).out_shape: the layer computes"),
    (_edit(2, inputs=["fc"]), "layers[2] (conv3).inputs[0]: 'fc' is not an earlier layer"),
    (_edit(3, name="conv1"), "layers[3] (conv1).name: 'conv1' is used twice"),
    (_edit(2, permutation=list(range(15))), "layers[2] (conv3).permutation: not a permutation"),
    (_set_in(["layers", 0, "files", "weights.hex", "path"], "../x"),
     "layers[0] (conv1).files.weights.hex.path: '../x', expected 'conv1/weights.hex'"),
    (_edit(0, pool={"k": 2, "s": 0, "p": 0}), "layers[0] (conv1).pool.s: 0 is less than"),
    (_edit(output={"name": "conv3", "shape": [16, 4, 4], "scale": 1.0}),
     "output: expected the last layer 'fc'"),
    (_edit(layers=[]), "layers: [] should be non-empty"),
    (_edit(options=...), "(top level): 'options' is a required property"),
]


@pytest.mark.parametrize(("damage", "message"), DAMAGE, ids=[m for _, m in DAMAGE])
def test_a_damaged_manifest_is_refused_naming_the_field(demo, tmp_path, damage, message):
    model = tmp_path / "m"
    shutil.copytree(demo, model)
    manifest = json.loads((model / "manifest.json").read_text())
    damage(manifest)
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SPSError) as e:
        images.load(model)
    assert str(e.value).startswith(f"{model / 'manifest.json'}: ")
    assert message in str(e.value)


@pytest.mark.parametrize(("text", "message"), [
    ('{"format": "sps-model", "version": 1, "x": NaN}', "NaN is not a JSON number"),
    ("[1, 2]", "expected format 'sps-model' version 1"),
    ("\xff", "not valid JSON"),
])
def test_manifest_text_that_is_not_a_manifest(demo, tmp_path, text, message):
    model = tmp_path / "m"
    shutil.copytree(demo, model)
    (model / "manifest.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(SPSError, match=message):
        images.load(model)


def test_a_truncated_image_is_refused_by_its_size_even_without_the_sha256(demo, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(demo, model)
    hex_file = model / "conv2" / "weights.hex"
    hex_file.write_bytes(hex_file.read_bytes()[:-3])
    for verify in (True, False):
        with pytest.raises(SPSError, match=r"weights\.hex: 1533 bytes, the manifest.s layer "
                                           "'conv2' needs 1536"):
            images.load(model, verify=verify)


def test_the_schema_is_a_valid_json_schema():
    import jsonschema
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
