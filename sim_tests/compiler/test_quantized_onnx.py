"""Quantized ONNX (QDQ) as ``onnxruntime.quantization.quantize_static`` writes it: imported
with the model's own scales and int8 weights, refused where the accelerator cannot follow, and
its int8 outputs held against onnxruntime's execution of the same model on the same inputs
(the bound ``docs/frontends.md`` states)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from compiler import golden, images, pipeline
from compiler.errors import SPSError
from compiler.onnx_frontend import load_onnx
from sps.cli import main

SHAPE = (3, 8, 8)
#: Output LSBs by which SPS may differ from onnxruntime, and the share of outputs that may
#: differ at all (docs/frontends.md): the last layer a MatMul, or a MatMul whose bias is a
#: separate Add (onnxruntime requantizes between the two; SPS fuses the bias).
BOUND = {"matmul": (3, 0.04), "matmul+add": (4, 0.35)}


def float_model(path, tail, seed=0):
    """conv3x3+ReLU+maxpool, conv3x3+ReLU, conv1x1, residual Add+ReLU, global average pool,
    Gemm, then a MatMul (``tail`` "matmul+add": with its bias in an Add)."""
    rng = np.random.default_rng(seed)
    inits = []

    def init(name, *shape, scale):
        inits.append(numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32),
                                             name))
        return name

    node = helper.make_node
    nodes = [
        node("Conv", ["x", init("w1", 8, 3, 3, 3, scale=0.3), init("b1", 8, scale=0.1)], ["c1"],
             name="conv1", pads=[1] * 4),
        node("Relu", ["c1"], ["r1"]),
        node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Conv", ["p1", init("w2", 8, 8, 3, 3, scale=0.2), init("b2", 8, scale=0.1)], ["c2"],
             name="conv2", pads=[1] * 4),
        node("Relu", ["c2"], ["r2"]),
        node("Conv", ["r2", init("w3", 8, 8, 1, 1, scale=0.3), init("b3", 8, scale=0.1)], ["c3"],
             name="conv3"),
        node("Add", ["c3", "p1"], ["a"], name="res"),
        node("Relu", ["a"], ["ra"]),
        node("GlobalAveragePool", ["ra"], ["g"], name="gap"),
        node("Flatten", ["g"], ["f"]),
        node("Gemm", ["f", init("wg", 10, 8, scale=0.3), init("bg", 10, scale=0.1)], ["fc1"],
             name="fc1", transB=1),
        node("MatMul", ["fc1", init("wm", 10, 10, scale=0.3)], ["mm" if "+" in tail else "y"],
             name="fc2"),
    ]
    if tail == "matmul+add":
        nodes.append(node("Add", ["mm", init("bm", 10, scale=0.1)], ["y"], name="fc2_bias"))
    graph = helper.make_graph(
        nodes, "qnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *SHAPE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


class Samples(CalibrationDataReader):
    def __init__(self, count=16, seed=1):
        rng = np.random.default_rng(seed)
        self.samples = iter([{"x": rng.standard_normal((1, *SHAPE), np.float32)}
                             for _ in range(count)])

    def get_next(self):
        return next(self.samples, None)


def quantized(tmp_path, tail="matmul", activations=QuantType.QInt8, symmetric=True):
    src = float_model(tmp_path / f"{tail}.onnx", tail)
    dst = tmp_path / f"{tail}-{activations.name}-{symmetric}.qdq.onnx"
    quantize_static(str(src), str(dst), Samples(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=activations, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": symmetric})
    return dst


def initializers(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}


def test_compiles_with_the_models_own_scales_and_weights(tmp_path):
    path = quantized(tmp_path)
    model, _ = pipeline.compile_network(load_onnx(path), keep=9, source=path)
    values, manifest = initializers(path), model.manifest
    assert manifest["options"]["scales"] == "model"
    assert manifest["options"]["calib_samples"] == 0
    assert manifest["input"]["scale"] == pytest.approx(float(values["x_scale"]), rel=1e-7)
    conv1 = next(layer for layer in manifest["layers"] if layer["name"] == "conv1")
    np.testing.assert_allclose(conv1["w_scale"], values["w1_scale"], rtol=1e-7)
    np.testing.assert_array_equal(model.weights["conv1"], values["w1_quantized"])
    np.testing.assert_array_equal(model.weights["fc2"][:, :, 0, 0], values["wm_quantized"].T)
    out = tmp_path / "m"                                  # the same through sps compile
    assert main(["compile", str(path), "-o", str(out), "--keep", "9"]) == 0
    assert images.load(out).manifest["options"] == manifest["options"]


@pytest.mark.parametrize("tail, activations", [
    ("matmul", QuantType.QInt8), ("matmul", QuantType.QUInt8), ("matmul+add", QuantType.QInt8)])
def test_int8_outputs_agree_with_onnxruntime(tmp_path, tail, activations):
    """The same int8 inputs through ``sps golden`` and onnxruntime's run of the QDQ model."""
    path = quantized(tmp_path, tail, activations)
    model, _ = pipeline.compile_network(load_onnx(path), keep=9)
    s_in, s_out = model.manifest["input"]["scale"], model.manifest["output"]["scale"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    diffs = []
    for _ in range(64):
        x = np.clip(np.rint(rng.standard_normal(SHAPE) / s_in), -128, 127).astype(np.int8)
        ours = golden.infer(model, x).reshape(-1).astype(np.int64)
        theirs = session.run(None, {"x": (x * np.float32(s_in))[None]})[0]
        diffs.append(ours - np.rint(theirs.reshape(-1) / s_out).astype(np.int64))
    diffs = np.abs(np.concatenate(diffs))
    most, share = BOUND[tail]
    assert diffs.max() <= most and np.mean(diffs > 0) <= share, (diffs.max(), np.mean(diffs > 0))


def test_asymmetric_activations_are_refused(tmp_path):
    path = quantized(tmp_path, activations=QuantType.QUInt8, symmetric=False)
    with pytest.raises(SPSError, match=r"tensor '\w+' is quantized asymmetrically \(uint8 zero "
                                       r"point \d+\).*ActivationSymmetric"):
        load_onnx(path)


def test_asymmetric_weight_zero_points_are_refused(tmp_path):
    path = quantized(tmp_path)
    model = onnx.load(path)
    zero = next(t for t in model.graph.initializer if t.name == "w2_zero_point")
    zero.CopyFrom(numpy_helper.from_array(np.full(8, 3, np.int8), "w2_zero_point"))
    onnx.save(model, path)
    with pytest.raises(SPSError, match=r"constant 'w2_quantized' is quantized asymmetrically "
                                       r"\(int8 zero point 3\)"):
        load_onnx(path)


def test_calibration_inputs_are_refused_for_a_quantized_model(tmp_path):
    net = load_onnx(quantized(tmp_path))
    with pytest.raises(SPSError, match="--calib: the model brings its own activation scales"):
        pipeline.compile_network(net, calib=np.zeros((1, *SHAPE), np.float32))
