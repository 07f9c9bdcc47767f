"""The compile flow: images, manifest contract, permutation invariance, atomic writes."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import golden, graph, images, models, pipeline, pps, quantize
from compiler.models import Builder


def wide_net(seed=0):
    """A small network whose PPS layers have enough channels for permutation to matter."""
    b = Builder("wide", (3, 8, 8), seed)
    b.conv("c1", 12)
    b.conv("c2", 20, pool=models.POOL2)
    b.conv("c3", 16)
    b.fc("fc", 5, relu=False)
    return b.net


def compile_demo(**options):
    net = models.builtin("demo")
    model, _ = pipeline.compile_network(net, **options)
    return model


@settings(max_examples=8, deadline=None)
@given(keep=st.integers(1, 9), patterns=st.integers(1, 6), period=st.integers(1, 9),
       permute=st.booleans(), seed=st.integers(0, 100))
def test_images_decode_to_weights(tmp_path_factory, keep, patterns, period, permute, seed):
    net = wide_net(seed)
    model, _ = pipeline.compile_network(net, keep=keep, patterns=patterns, period=period,
                                        permute=permute, seed=seed)
    out = images.write(model, tmp_path_factory.mktemp("m") / "out").path
    loaded = images.load(out)
    for layer in loaded.layers:
        if layer["op"] != "conv":
            continue
        mask = images.kept_mask(layer)
        assert mask.reshape(mask.shape[0], mask.shape[1], -1).sum(axis=2).min() == layer["keep"]
        text = (out / layer["name"] / "weights.hex").read_text()
        np.testing.assert_array_equal(images.decode_weights(text, mask),
                                      loaded.weights[layer["name"]])
        assert not loaded.weights[layer["name"]][~mask].any()
        if images.is_pps(layer):
            index = (out / layer["name"] / "index.hex").read_text().split()
            library = (out / layer["name"] / "library.hex").read_text().split()
            assert [int(v, 16) for v in index] == layer["assignment"]
            assert [int(v, 16) for v in library] == layer["library"]
            assert all(len(v) == 3 for v in library)


def test_manifest_contract(tmp_path):
    out = images.write(compile_demo(), tmp_path / "m").path
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "sps-model" and manifest["version"] == 1
    assert manifest["input"]["shape"] == [1, 16, 16]
    assert manifest["output"]["name"] == manifest["layers"][-1]["name"]
    conv_keys = {"name", "op", "inputs", "in_shape", "out_shape", "kernel", "stride", "pad",
                 "keep", "period", "library", "assignment", "permutation", "bias", "mult",
                 "shift", "relu", "pool", "files"}
    for layer in manifest["layers"]:
        assert conv_keys <= layer.keys()
        assert all(m > 0 for m in layer["mult"]) and all(s >= 1 for s in layer["shift"])
        assert len(layer["assignment"]) == layer["period"]
    conv1, conv2 = manifest["layers"][:2]
    assert conv1["keep"] == 9 and conv1["library"] == [511] and "index.hex" not in conv1["files"]
    assert conv2["keep"] == 4 and {"index.hex", "library.hex"} <= conv2["files"].keys()


def test_permutation_preserves_float_and_int_outputs():
    """Permuting a layer's input channels (and its feeder's outputs) changes nothing."""
    base = wide_net()
    pps.prune_network(base, permute=False)
    calib = pipeline.calibration_inputs(base)
    scales = quantize.activation_scales(base, calib)
    x = calib[0]
    layers0, weights0 = pipeline.quantized_layers(base, scales)
    permuted = wide_net()
    pps.prune_network(permuted, permute=False)
    rng = np.random.default_rng(7)
    for name in ("c2", "c3"):
        graph.permute_input_channels(permuted, name, rng.permutation(permuted[name].in_shape[0]))
    assert permuted["c3"].permutation is not None
    np.testing.assert_allclose(graph.forward(permuted, x)["fc"], graph.forward(base, x)["fc"],
                               rtol=1e-5, atol=1e-5)
    layers1, weights1 = pipeline.quantized_layers(permuted, scales)
    manifest = {"input": {"shape": [3, 8, 8]}, "output": {"name": "fc"}}
    xq = np.clip(np.rint(x / scales["input"]), -128, 127).astype(np.int8)
    y0 = golden.infer(images.CompiledModel({**manifest, "layers": layers0}, weights0), xq)
    y1 = golden.infer(images.CompiledModel({**manifest, "layers": layers1}, weights1), xq)
    np.testing.assert_array_equal(y0, y1)


def test_pps_search_permutes_where_it_can():
    net = wide_net()
    report = {r["name"]: r for r in pps.prune_network(net, permute=True, patterns=2, period=4)}
    assert not report["c1"]["pps"]                       # reads the network input: dense
    assert report["c2"]["permutable"] and report["c3"]["permutable"]
    for row in report.values():
        assert row["retained"] <= row["upper_bound"] + 1e-12


def test_int8_output_tracks_float(tmp_path):
    """Quantization keeps the pruned network's function: int8 output close to float."""
    net = wide_net()
    calib = pipeline.calibration_inputs(net, count=8)
    model, _ = pipeline.compile_network(net, calib=calib)
    x = calib[0]
    xq = np.clip(np.rint(x / model.manifest["input"]["scale"]), -128, 127).astype(np.int8)
    y = golden.infer(model, xq) * model.manifest["output"]["scale"]
    ref = graph.forward(net, xq * model.manifest["input"]["scale"])["fc"]
    assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 0.1


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    model = compile_demo()

    def broken(layer, weight):
        raise OSError("disk full")
    monkeypatch.setattr(images, "layer_images", broken)
    with pytest.raises(OSError):
        images.write(model, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_multiplier_precision():
    m = np.array([1e-6, 0.0123, 0.5, 1.0, 3.7, 1000.0])
    mult, shift = quantize.multiplier(m)
    assert np.all(mult > 0) and np.all(shift >= 1)
    np.testing.assert_allclose(mult / np.exp2(shift), m, rtol=2**-14)
    # Just below a power of two the rounding carries: the multiplier stays below 2**15.
    mult, shift = quantize.multiplier(np.array([(2**15 - 0.25) / 2**20, 0.75 - 2**-17]))
    assert np.all(mult < 2**15) and np.all(mult >= 2**14)
    assert list(mult / np.exp2(shift)) == [2**-5, 0.75]
