"""Model front-ends: ONNX and NPZ files import to networks that compute what the source does.

ONNX models are built with ``onnx.helper`` and run with ``onnx.reference.ReferenceEvaluator``;
NPZ models are checked against a plain numpy reference written independently of
``compiler.kernels``.
"""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from compiler import graph, models
from compiler.batchnorm import fold_batchnorm
from compiler.errors import SPSError
from compiler.npz_frontend import load_npz
from compiler.onnx_frontend import load_onnx, save_onnx

POOL2 = {"k": 2, "s": 2, "p": 0}


# -- ONNX model building ----------------------------------------------------------------------

class Onnx:
    """Builds a small ONNX graph node by node; ``self.last`` is the newest tensor."""

    def __init__(self, shape, seed=0, input_dims=None):
        self.rng = np.random.default_rng(seed)
        self.shape = tuple(shape)
        self.input_dims = input_dims or [1, *shape]
        self.nodes, self.inits = [], []
        self.last, self.count = "x", 0

    def init(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def rand(self, name, *shape, scale=0.5):
        return self.init(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def node(self, op, inputs, name=None, **attrs):
        self.count += 1
        name = f"{op.lower()}{self.count}" if name is None else name
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        self.last = out
        return out

    def conv(self, ci, co, k=3, src=None, name=None, bias=True, **attrs):
        tag = f"c{self.count}"
        ins = [src or self.last, self.rand(f"{tag}.w", co, ci, k, k, scale=1 / np.sqrt(ci * k * k))]
        if bias:
            ins.append(self.rand(f"{tag}.b", co, scale=0.1))
        attrs.setdefault("pads", [k // 2] * 4)
        return self.node("Conv", ins, name, kernel_shape=[k, k], **attrs)

    def bn(self, c, src=None, name=None, epsilon=1e-5):
        tag = f"bn{self.count}"
        ins = [src or self.last,
               self.init(f"{tag}.g", self.rng.uniform(0.5, 1.5, c).astype(np.float32)),
               self.rand(f"{tag}.b", c, scale=0.1),
               self.rand(f"{tag}.m", c, scale=0.1),
               self.init(f"{tag}.v", self.rng.uniform(0.5, 2.0, c).astype(np.float32))]
        return self.node("BatchNormalization", ins, name, epsilon=epsilon)

    def relu(self, src=None, name=None):
        return self.node("Relu", [src or self.last], name)

    def gemm(self, n, co, src=None, name=None, trans_b=1, bias=True):
        tag = f"g{self.count}"
        shape = (co, n) if trans_b else (n, co)
        ins = [src or self.last, self.rand(f"{tag}.w", *shape, scale=1 / np.sqrt(n))]
        if bias:
            ins.append(self.rand(f"{tag}.b", co, scale=0.1))
        return self.node("Gemm", ins, name, transB=trans_b)

    def model(self, output=None, opset=17):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, self.input_dims)
        y = helper.make_tensor_value_info(output or self.last, TensorProto.FLOAT, None)
        g = helper.make_graph(self.nodes, "test", [x], [y], initializer=self.inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])

    def save(self, path, output=None):
        model = self.model(output)
        path.write_bytes(model.SerializeToString())
        return path


def run_reference(path, x, name="x"):
    return ReferenceEvaluator(str(path)).run(None, {name: x[None].astype(np.float32)})[0]


def assert_close(ours, ref):
    """Equal to float32 rounding: 1e-4 relative, with an absolute floor near zero."""
    ref = np.asarray(ref).reshape(-1)
    np.testing.assert_allclose(np.asarray(ours).reshape(-1), ref, rtol=1e-4,
                               atol=1e-5 * (np.abs(ref).max() + 1))


def assert_matches(path, shape, seed=1):
    """Import ``path`` and assert our float forward equals the ONNX reference on a random input."""
    net = load_onnx(path)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    assert_close(graph.forward(net, x)[net.output.name], run_reference(path, x))
    return net


def ops(net):
    return [layer.op for layer in net.layers]


# -- ONNX: whole networks ---------------------------------------------------------------------

def test_onnx_vgg_like(tmp_path):
    m = Onnx((3, 16, 16))
    m.conv(3, 8, name="conv1")
    m.bn(8)
    m.relu()
    m.node("MaxPool", [m.last], kernel_shape=[2, 2], strides=[2, 2])
    m.conv(8, 16, name="conv2", bias=False)
    m.bn(16)
    m.relu()
    m.node("MaxPool", [m.last], kernel_shape=[2, 2], strides=[2, 2])
    m.node("Flatten", [m.last], axis=1)
    m.gemm(16 * 4 * 4, 32, name="fc1")
    m.relu()
    m.node("Dropout", [m.last])
    m.gemm(32, 10, name="fc2", trans_b=0)
    net = assert_matches(m.save(tmp_path / "vgg.onnx"), (3, 16, 16))
    assert net.name == "vgg"
    assert [layer.name for layer in net.layers] == ["conv1", "conv2", "fc1", "fc2"]
    assert ops(net) == ["conv"] * 4
    assert [layer.relu for layer in net.layers] == [True, True, True, False]
    assert [layer.pool for layer in net.layers] == [POOL2, POOL2, None, None]
    assert net["fc1"].in_shape == (256, 1, 1) and net["fc1"].is_fc
    assert net.output.out_shape == (10, 1, 1)


def test_onnx_resnet_like(tmp_path):
    m = Onnx((4, 8, 8))
    m.conv(4, 8, name="stem")
    m.bn(8)
    m.relu()
    stem = m.node("MaxPool", [m.last], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                  pads=[1, 1, 1, 1])
    m.conv(8, 8, name="b1.conv1")
    m.bn(8)
    m.relu()
    m.conv(8, 8, name="b1.conv2")
    m.bn(8)
    m.node("Add", [m.last, stem], name="b1.add")
    block = m.relu()
    m.conv(8, 16, src=block, name="b2.conv1", strides=[2, 2])
    m.relu()
    main = m.conv(16, 16, name="b2.conv2")
    m.conv(8, 16, k=1, src=block, name="b2.down", strides=[2, 2])
    m.bn(16)
    m.node("Add", [main, m.last], name="b2.add")
    m.relu()
    m.node("GlobalAveragePool", [m.last], name="gap")
    m.node("Flatten", [m.last])
    m.gemm(16, 5, name="fc")
    net = assert_matches(m.save(tmp_path / "res.onnx"), (4, 8, 8))
    assert ops(net) == ["conv", "maxpool", "conv", "conv", "add", "conv", "conv", "conv", "add",
                        "avgpool", "conv"]
    assert net["b1.add"].inputs == ["b1.conv2", "pool"] and net["b1.add"].relu
    assert net["b2.add"].inputs == ["b2.conv2", "b2.down"]
    assert net["pool"].kernel == 3 and net["pool"].stride == 2 and net["pool"].pad == 1
    assert net["b2.conv1"].stride == 2 and net["b2.down"].out_shape == (16, 2, 2)
    assert net["gap"].out_shape == (16, 1, 1) and net["fc"].in_shape == (16, 1, 1)


def test_onnx_matmul_add_reshape_constants(tmp_path):
    """Conv without bias, Reshape by a Constant shape, MatMul + Add(Constant), Identity."""
    m = Onnx((2, 6, 6), input_dims=["N", 2, 6, 6])
    conv = m.conv(2, 4, name="conv", bias=False, strides=[2, 2], pads=[1, 1, 1, 1])
    shape = m.node("Constant", [], value=numpy_helper.from_array(np.array([1, -1], np.int64)))
    m.node("Reshape", [conv, shape])
    m.node("Identity", [m.last])
    mm1 = m.node("MatMul", [m.last, m.rand("mm1.w", 36, 12)], name="mm1")
    bias = np.linspace(-1, 1, 12).astype(np.float32)
    const = m.node("Constant", [], value=numpy_helper.from_array(bias))
    m.node("Add", [mm1, const], name="bias1")
    m.relu()
    m.node("MatMul", [m.last, m.rand("mm2.w", 12, 3)], name="mm2")
    m.node("Add", [m.rand("b2", 1, 3), m.last])             # constant first
    net = assert_matches(m.save(tmp_path / "mm.onnx"), (2, 6, 6))
    assert [layer.name for layer in net.layers] == ["conv", "mm1", "mm2"]
    assert net.input_shape == (2, 6, 6)
    np.testing.assert_array_equal(net["conv"].bias, 0)
    np.testing.assert_array_equal(net["mm1"].bias, bias)
    assert net["mm1"].relu and not net["mm2"].relu and net["mm1"].in_shape == (36, 1, 1)


def test_onnx_average_pool_auto_pad_and_same_padding(tmp_path):
    m = Onnx((3, 8, 8))
    m.conv(3, 6, name="same", auto_pad="SAME_UPPER", pads=None)
    m.relu()
    m.node("MaxPool", [m.last], name="mp", kernel_shape=[2, 2], strides=[2, 2])
    m.conv(6, 6, k=3, name="valid", pads=[0, 0, 0, 0])
    m.node("AveragePool", [m.last], name="avg", kernel_shape=[2, 2])
    m.relu()
    m.node("Reshape", [m.last, m.init("shape", np.array([0, -1], np.int64))])
    m.gemm(6, 4, name="fc")
    net = assert_matches(m.save(tmp_path / "avg.onnx"), (3, 8, 8))
    assert ops(net) == ["conv", "conv", "avgpool", "conv"]
    assert net["same"].pad == 1 and net["same"].pool == POOL2
    assert net["valid"].out_shape == (6, 2, 2) and net["avg"].relu


def test_onnx_shared_outputs_are_not_fused(tmp_path):
    """A conv output read twice keeps its MaxPool as a layer; Relu on a ReLU'd tensor is a no-op."""
    m = Onnx((2, 8, 8))
    m.conv(2, 4, name="conv1")
    y = m.relu()
    pooled = m.node("MaxPool", [y], name="mp", kernel_shape=[2, 2], strides=[2, 2])
    noop = m.node("Relu", [pooled], name="noop_relu")
    side = m.conv(4, 4, k=1, src=y, name="side", strides=[2, 2], pads=[0, 0, 0, 0])
    m.node("Add", [noop, side], name="add")
    net = assert_matches(m.save(tmp_path / "shared.onnx"), (2, 8, 8))
    assert ops(net) == ["conv", "maxpool", "conv", "add"]
    assert net["conv1"].pool is None and net["conv1"].relu
    assert net["add"].inputs == ["mp", "side"]


def test_onnx_fusion_through_identity_and_flatten(tmp_path):
    m = Onnx((2, 4, 4))
    m.conv(2, 3, name="conv")
    m.node("Identity", [m.last])
    m.bn(3)
    m.node("Flatten", [m.last])
    m.relu()
    m.node("Relu", [m.last], name="again")
    m.gemm(48, 4, name="fc")
    net = assert_matches(m.save(tmp_path / "alias.onnx"), (2, 4, 4))
    assert [(layer.name, layer.relu) for layer in net.layers] == [("conv", True), ("fc", False)]


def test_onnx_vector_input_and_batchnorm_after_gemm(tmp_path):
    m = Onnx((12, 1, 1), input_dims=["N", 12])
    m.gemm(12, 6, src="x", name="fc1")
    m.bn(6)
    m.relu()
    m.gemm(6, 3, name="fc2", bias=False)
    path = m.save(tmp_path / "mlp.onnx")
    net = load_onnx(path)
    x = np.random.default_rng(0).standard_normal(12).astype(np.float32)
    ref = ReferenceEvaluator(str(path)).run(None, {"x": x[None]})[0]
    assert net.input_shape == (12, 1, 1) and ops(net) == ["conv", "conv"]
    assert_close(graph.forward(net, x.reshape(12, 1, 1))["fc2"], ref)


def test_onnx_initializers_listed_as_inputs(tmp_path):
    """Old exporters (IR < 4) list every initializer among the graph inputs too."""
    m = Onnx((1, 5, 5))
    m.conv(1, 2, name="conv")
    model = m.model()
    for init in m.inits:
        model.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type,
                                                               list(init.dims)))
    path = tmp_path / "old.onnx"
    path.write_bytes(model.SerializeToString())
    assert_matches(path, (1, 5, 5))


def test_onnx_dead_branches_are_ignored(tmp_path):
    m = Onnx((1, 4, 4))
    out = m.conv(1, 2, name="conv")
    m.node("Sigmoid", [out], name="unused")
    net = assert_matches(m.save(tmp_path / "dead.onnx", output=out), (1, 4, 4))
    assert [layer.name for layer in net.layers] == ["conv"]


def test_onnx_layer_names_are_sanitized_and_unique(tmp_path):
    m = Onnx((1, 6, 6))
    for name in ("/features/features.0/Conv", "", "blk", "blk", "input", "..."):
        m.conv(m.shape[0] if not m.nodes else 2, 2, name=name)
    net = assert_matches(m.save(tmp_path / "names.onnx"), (1, 6, 6))
    assert [layer.name for layer in net.layers] == [
        "features_features.0_Conv", "Conv_1", "blk", "blk_1", "input_1", "Conv_5"]


def test_onnx_input_layouts(tmp_path):
    for dims in (["batch", 3, 5, 7], [1, 3, 5, 7]):
        m = Onnx((3, 5, 7), input_dims=dims)
        m.node("GlobalAveragePool", ["x"], name="gap")
        assert load_onnx(m.save(tmp_path / "in.onnx")).input_shape == (3, 5, 7)
    m = Onnx((3, 5, 7), input_dims=[2, 3, 5, 7])
    m.node("GlobalAveragePool", ["x"])
    with pytest.raises(SPSError, match=r"input 'x' must have shape \[1, C, H, W\]"):
        load_onnx(m.save(tmp_path / "batch2.onnx"))


@pytest.mark.parametrize("dims", [[1, 3, 8], ["N", 3, 8], [3, 5, 7]])
def test_onnx_3d_input_is_not_an_image(tmp_path, dims):
    """ONNX reads a 3-D input as [N, C, L]: a GlobalAveragePool of x[1, 3, 8] gives [1, 3, 1]
    (the reference evaluator says so), not the [1, 1, 1] of an image [C, H, W] = [1, 3, 8]."""
    m = Onnx((1, 3, 8), input_dims=dims)
    m.node("GlobalAveragePool", ["x"], name="gap")
    path = m.save(tmp_path / "seq.onnx")
    x = np.zeros([1 if isinstance(d, str) else d for d in dims], np.float32)
    assert ReferenceEvaluator(str(path)).run(None, {"x": x})[0].shape == (*x.shape[:2], 1)
    with pytest.raises(SPSError, match=r"input 'x' has shape .*\[N, C, L\] \(1-D data\); "
                                       r"expected \[1, C, H, W\]"):
        load_onnx(path)


@pytest.mark.parametrize("declared, ok", [
    ([1, 10], True), (["N", 10], True), (None, True), ([1, 10, 1, 1], False), ([1, 12], False),
    ([10], False)])
def test_onnx_declared_output_shape_is_checked(tmp_path, declared, ok):
    m = Onnx((2, 4, 4))
    m.conv(2, 3)
    m.node("Flatten", [m.last], axis=1)
    m.gemm(48, 10, name="fc")
    model = m.model()
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(m.last, TensorProto.FLOAT,
                                                                 declared))
    path = tmp_path / "out.onnx"
    path.write_bytes(model.SerializeToString())
    if ok:
        assert load_onnx(path).output.out_shape == (10, 1, 1)
    else:
        with pytest.raises(SPSError, match=r"graph output 't\d+' is declared .*, but the "
                                           r"network computes \[1, 10\]"):
            load_onnx(path)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ci=st.integers(1, 3), co=st.integers(1, 4), k=st.sampled_from([1, 3, 5]),
       stride=st.integers(1, 2), pad=st.integers(0, 2), size=st.integers(5, 9),
       bias=st.booleans(), bn=st.booleans(), relu=st.booleans(), pool=st.booleans(),
       seed=st.integers(0, 2**16))
def test_onnx_conv_fusions_match_reference(tmp_path, ci, co, k, stride, pad, size, bias, bn,
                                           relu, pool, seed):
    out = (size + 2 * pad - k) // stride + 1
    m = Onnx((ci, size, size), seed=seed)
    m.conv(ci, co, k=k, name="conv", bias=bias, strides=[stride] * 2, pads=[pad] * 4)
    if bn:
        m.bn(co)
    if relu:
        m.relu()
    if pool and out >= 2:
        m.node("MaxPool", [m.last], kernel_shape=[2, 2], strides=[2, 2])
    net = assert_matches(m.save(tmp_path / "conv.onnx"), (ci, size, size), seed=seed)
    (layer,) = net.layers
    assert (layer.kernel, layer.stride, layer.pad, layer.relu) == (k, stride, pad, relu)
    assert layer.pool == (POOL2 if pool and out >= 2 else None)


# -- ONNX: export and round trip --------------------------------------------------------------

def layer_key(net):
    return [(layer.name, layer.op, layer.inputs, layer.in_shape, layer.out_shape, layer.kernel,
             layer.stride, layer.pad, layer.relu, layer.pool) for layer in net.layers]


def test_save_onnx_round_trips_every_layer_kind(tmp_path):
    b = models.Builder("mix", (2, 6, 6), seed=5)
    b.conv("c1", 4, pool=models.POOL2)
    b.maxpool("mp", 3, 1, 1)
    b.conv("c2", 4, relu=False)
    b.add("add", "c2", "mp", relu=False)
    b.avgpool("gap")
    b.net["gap"].relu = True
    b.fc("fc1", 6)
    b.conv("c3", 5, kernel=3, pad=1)                # a 3x3 conv reading an FC output
    b.fc("side", 5, relu=False, src="c2")           # reads a feature map flattened
    b.add("out", "c3", "side", relu=False)          # adds a map and an FC output
    net = graph.validate(b.net)
    net["c1"].mask = np.random.default_rng(0).random(net["c1"].weight.shape) < 0.5
    path = save_onnx(net, tmp_path / "mix.onnx")
    back = load_onnx(path)
    assert layer_key(back) == layer_key(net)
    np.testing.assert_array_equal(back["c1"].weight, net["c1"].pruned_weight().astype(np.float32))
    x = np.random.default_rng(1).standard_normal((2, 6, 6)).astype(np.float32)
    acts, ref = graph.forward(net, x), run_reference(path, x, "input")
    assert_close(acts["out"], ref)
    assert_close(graph.forward(back, x)["out"], acts["out"])


@pytest.mark.parametrize("name", ["demo", "resnet18"])
def test_builtin_models_round_trip_through_onnx(tmp_path, name):
    net = models.builtin(name)
    back = load_onnx(save_onnx(net, tmp_path / f"{name}.onnx"))
    assert back.name == name and back.input_shape == net.input_shape
    assert layer_key(back) == layer_key(net)
    for a, b in zip(net.convs(), back.convs()):
        np.testing.assert_array_equal(b.weight, a.weight.astype(np.float32))
        np.testing.assert_array_equal(b.bias, a.bias.astype(np.float32))
    if name == "demo":
        x = np.random.default_rng(2).standard_normal(net.input_shape).astype(np.float32)
        assert_close(graph.forward(back, x)["fc"],
                     run_reference(tmp_path / "demo.onnx", x, "input"))


# -- ONNX: errors -----------------------------------------------------------------------------

def _error_models():
    """(name, builder, regex the SPSError must match)."""
    def sigmoid(m):
        m.conv(1, 2, name="conv")
        m.node("Sigmoid", [m.last], name="sig")

    def grouped(m):
        m.conv(1, 2, name="conv")
        m.conv(1, 2, name="gconv", group=2)

    def relu_after_pool(m):
        m.node("MaxPool", ["x"], name="mp", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        m.relu(name="late_relu")

    def relu_shared(m):
        y = m.conv(1, 2, name="conv")
        r = m.relu(name="r")
        m.node("Add", [r, y], name="add")

    def bn_after_add(m):
        y = m.conv(1, 2, name="conv")
        m.node("Add", [y, y], name="add")
        m.bn(2, name="bn")

    def bn_after_relu(m):
        m.conv(1, 2, name="conv")
        m.relu()
        m.bn(2, name="bn")

    def asymmetric(m):
        m.conv(1, 2, name="conv", pads=[0, 0, 1, 1])

    def nan_weight(m):
        m.conv(1, 2, name="conv1")
        w = numpy_helper.to_array(m.inits[0]).copy()
        w[0, 0, 1, 1] = np.nan
        m.inits[0] = numpy_helper.from_array(w, m.inits[0].name)

    def nan_bn(m):
        m.conv(1, 2, name="conv1")
        m.bn(2, name="bn1")
        m.inits[-1] = numpy_helper.from_array(np.array([1, -5], np.float32), m.inits[-1].name)

    def custom_domain(m):
        m.nodes.append(helper.make_node("Foo", ["x"], ["y"], name="foo", domain="com.acme"))
        m.last = "y"

    def gemm_alpha(m):
        m.node("Flatten", ["x"])
        m.gemm(36, 2, name="fc")
        m.nodes[-1].attribute.append(helper.make_attribute("alpha", 2.0))

    def gemm_unflattened(m):
        m.gemm(36, 2, src="x", name="fc")

    def add_broadcast(m):
        a = m.conv(1, 2, name="a")
        b = m.node("GlobalAveragePool", [a], name="gap")
        m.node("Add", [a, b], name="add")

    def spatial_bias(m):
        m.conv(1, 2, name="conv")
        m.node("Add", [m.last, m.rand("c", 1, 2, 6, 6)], name="add")

    def output_is_input(m):
        m.node("Identity", ["x"], name="id")

    def reshape_other(m):
        m.conv(1, 2, name="conv")
        m.node("Reshape", [m.last, m.init("s", np.array([1, 2, 36], np.int64))], name="rs")

    def dilated(m):
        m.conv(1, 2, name="dil", dilations=[2, 2], pads=[2, 2, 2, 2])

    def training_dropout(m):
        m.conv(1, 2, name="conv")
        m.node("Dropout", [m.last, m.init("ratio", np.array(0.5, np.float32)),
                           m.init("train", np.array(True))], name="drop")

    return [
        ("sigmoid", sigmoid, r"node 'sig' has unsupported op type 'Sigmoid'; supported: Conv"),
        ("grouped", grouped, r"node 'gconv' \(Conv\): group must be 1, not 2"),
        ("relu_after_pool", relu_after_pool,
         r"node 'late_relu' \(Relu\): .*follows layer 'mp' \(maxpool\)"),
        ("relu_shared", relu_shared, (r"node 'r' \(Relu\): .*layer 'conv' \(conv\) whose output "
                                      r"has other readers")),
        ("bn_after_add", bn_after_add, (r"node 'bn' \(BatchNormalization\): .*follows layer "
                                        r"'add' \(add\)")),
        ("bn_after_relu", bn_after_relu, r"node 'bn' .*it already has a ReLU"),
        ("asymmetric", asymmetric, r"node 'conv' \(Conv\): pads must be symmetric"),
        ("nan_weight", nan_weight, r"node 'conv1' \(Conv\): weight 'c0.w' holds NaN"),
        ("nan_bn", nan_bn, r"node 'bn1' \(BatchNormalization\): var \+ eps must be positive"),
        ("custom_domain", custom_domain, r"node 'foo' has unsupported op type 'com.acme.Foo'"),
        ("gemm_alpha", gemm_alpha, r"node 'fc' \(Gemm\): alpha must be 1"),
        ("gemm_unflattened", gemm_unflattened, r"node 'fc' \(Gemm\): needs a flattened"),
        ("add_broadcast", add_broadcast, (r"node 'add' \(Add\): adds tensors of shapes "
                                          r"\[2, 6, 6\] and \[2, 1, 1\]")),
        ("spatial_bias", spatial_bias, r"node 'add' \(Add\): the constant varies"),
        ("output_is_input", output_is_input, r"graph output 't1' is not computed by any layer"),
        ("reshape_other", reshape_other, (r"node 'rs' \(Reshape\): reshapes \[1, 2, 6, 6\] to "
                                          r"\[1, 2, 36\]")),
        ("dilated", dilated, r"node 'dil' \(Conv\): dilations must be 1"),
        ("training_dropout", training_dropout, r"node 'drop' \(Dropout\): training_mode"),
    ]


@pytest.mark.parametrize("build, pattern",
                         [pytest.param(b, p, id=n) for n, b, p in _error_models()])
def test_onnx_errors_name_the_node(tmp_path, build, pattern):
    m = Onnx((1, 6, 6))
    build(m)
    path = m.save(tmp_path / "bad.onnx")
    with pytest.raises(SPSError, match=pattern) as info:
        load_onnx(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


def test_onnx_unreadable_files(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_text("this is not a protobuf")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    for path, pattern in ((garbage, "not an ONNX model"), (empty, "not an ONNX model"),
                          (tmp_path / "missing.onnx", "no such file"),
                          (tmp_path, "cannot read")):
        with pytest.raises(SPSError, match=pattern):
            load_onnx(path)


def test_onnx_two_outputs_rejected(tmp_path):
    m = Onnx((1, 4, 4))
    a = m.conv(1, 2, name="a")
    m.conv(2, 2, name="b")
    model = m.model()
    model.graph.output.append(helper.make_tensor_value_info(a, TensorProto.FLOAT, None))
    path = tmp_path / "two.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(SPSError, match="expected one graph output, found 2"):
        load_onnx(path)


# -- NPZ --------------------------------------------------------------------------------------

def ref_conv(x, w, b, stride=1, pad=0):
    """Direct convolution: a sum over kernel taps of strided slices (no im2col)."""
    co, _, k, _ = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)))
    ho = (xp.shape[1] - k) // stride + 1
    wo = (xp.shape[2] - k) // stride + 1
    out = np.zeros((co, ho, wo)) + b.astype(np.float64)[:, None, None]
    for ky in range(k):
        for kx in range(k):
            patch = xp[:, ky:ky + stride * ho:stride, kx:kx + stride * wo:stride]
            out += np.einsum("oi,ihw->ohw", w[:, :, ky, kx].astype(np.float64), patch)
    return out


def ref_maxpool(x, k, s, p):
    xp = np.pad(x, ((0, 0), (p, p), (p, p)), constant_values=-np.inf)
    ho, wo = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    return np.max([xp[:, i:i + s * ho:s, j:j + s * wo:s] for i in range(k) for j in range(k)],
                  axis=0)


def relu(x):
    return np.maximum(x, 0)


def bn(x, gamma, beta, mean, var, eps):
    return (gamma[:, None, None] * (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + eps)
            + beta[:, None, None])


def rand(rng, *shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def save_npz(path, arrays):
    np.savez(path, **arrays)
    return path


def test_npz_self_describing_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    spec = {"name": "tiny", "input_shape": [3, 8, 8], "layers": [
        {"name": "conv1", "op": "conv", "inputs": ["input"], "kernel": 3, "stride": 1,
         "pad": 1, "relu": True, "pool": POOL2, "eps": 1e-3},
        {"name": "conv2", "op": "conv", "inputs": ["conv1"], "kernel": 3, "stride": 2, "pad": 1,
         "relu": True},
        {"name": "proj", "op": "conv", "kernel": 1},
        {"name": "add", "op": "add", "inputs": ["proj", "conv2"], "relu": True,
         "in_shape": [6, 2, 2], "out_shape": [6, 2, 2]},
        {"name": "mp", "op": "maxpool", "inputs": ["conv1"], "kernel": 3, "stride": 1, "pad": 1},
        {"name": "gap", "op": "avgpool", "inputs": ["add"]},
        {"name": "fc_map", "op": "conv", "inputs": ["mp"]},
        {"name": "fc", "op": "conv", "inputs": ["gap"]},
    ]}
    a = {"conv1.weight": rand(rng, 4, 3, 3, 3), "conv1.bias": rand(rng, 4),
         "conv1.bn.gamma": rng.uniform(0.5, 1.5, 4).astype(np.float32),
         "conv1.bn.beta": rand(rng, 4), "conv1.bn.mean": rand(rng, 4),
         "conv1.bn.var": rng.uniform(0.5, 2, 4).astype(np.float32),
         "conv2.weight": rand(rng, 6, 4, 3, 3),
         "proj.weight": rand(rng, 6, 6, 1, 1), "proj.bias": rand(rng, 6),
         "fc_map.weight": rand(rng, 5, 64), "fc.weight": rand(rng, 7, 6), "fc.bias": rand(rng, 7)}
    net = load_npz(save_npz(tmp_path / "g.npz", {"graph": json.dumps(spec), **a}))
    assert net.name == "tiny" and ops(net) == ["conv", "conv", "conv", "add", "maxpool",
                                               "avgpool", "conv", "conv"]
    assert net["fc_map"].in_shape == (64, 1, 1) and net["conv2"].bias.tolist() == [0] * 6

    x = rand(rng, 3, 8, 8, scale=1.0)
    acts = graph.forward(net, x)
    c1 = ref_conv(x, a["conv1.weight"], a["conv1.bias"], 1, 1)
    c1 = ref_maxpool(relu(bn(c1, *(a[f"conv1.bn.{p}"] for p in ("gamma", "beta", "mean",
                                                                   "var")), 1e-3)), 2, 2, 0)
    c2 = relu(ref_conv(c1, a["conv2.weight"], np.zeros(6), 2, 1))
    add = relu(ref_conv(c2, a["proj.weight"], a["proj.bias"]) + c2)
    mp = ref_maxpool(c1, 3, 1, 1)
    fc_map = a["fc_map.weight"].astype(np.float64) @ mp.reshape(-1)
    fc = a["fc.weight"].astype(np.float64) @ add.mean(axis=(1, 2)) + a["fc.bias"]
    for name, ref in (("conv1", c1), ("add", add), ("fc_map", fc_map), ("fc", fc)):
        assert_close(acts[name], ref)


def test_npz_sequential_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    a = {"input_shape": np.array([1, 8, 8]),
         "c1.weight": rand(rng, 4, 1, 3, 3), "c1.bias": rand(rng, 4), "c1.pool": np.array(1),
         "c2.weight": rand(rng, 8, 4, 5, 5), "c2.pool": np.array(0),
         "f1.weight": rand(rng, 16, 8 * 4 * 4), "f1.bias": rand(rng, 16),
         "f2.weight": rand(rng, 10, 16), "f2.bias": rand(rng, 10)}
    net = load_npz(save_npz(tmp_path / "seq.npz", a))
    assert [layer.name for layer in net.layers] == ["c1", "c2", "f1", "f2"]
    assert [layer.relu for layer in net.layers] == [True, True, True, False]
    assert [layer.pool for layer in net.layers] == [POOL2, None, None, None]
    assert net["c2"].pad == 2 and net["f1"].in_shape == (128, 1, 1)

    x = rand(rng, 1, 8, 8, scale=1.0)
    h = ref_maxpool(relu(ref_conv(x, a["c1.weight"], a["c1.bias"], 1, 1)), 2, 2, 0)
    h = relu(ref_conv(h, a["c2.weight"], np.zeros(8), 1, 2))
    h = relu(a["f1.weight"].astype(np.float64) @ h.reshape(-1) + a["f1.bias"])
    h = a["f2.weight"].astype(np.float64) @ h + a["f2.bias"]
    assert_close(graph.forward(net, x)[net.output.name], h)


@settings(max_examples=30, deadline=None)
@given(co=st.integers(1, 6), ci=st.integers(1, 4), k=st.sampled_from([1, 3]),
       eps=st.floats(1e-6, 1e-1), seed=st.integers(0, 2**16))
def test_fold_batchnorm_equals_unfolded_math(co, ci, k, eps, seed):
    rng = np.random.default_rng(seed)
    w, b, x = rand(rng, co, ci, k, k), rand(rng, co), rand(rng, ci, 5, 5, scale=1.0)
    gamma, beta, mean = rand(rng, co, scale=1.0), rand(rng, co), rand(rng, co)
    var = rng.uniform(0.01, 3, co).astype(np.float32)
    fw, fb = fold_batchnorm(w, b, gamma, beta, mean, var, eps)
    assert fw.dtype == np.float32 and fb.dtype == np.float32
    assert_close(ref_conv(x, fw, fb, 1, k // 2),
                 bn(ref_conv(x, w, b, 1, k // 2), gamma, beta, mean, var, eps))


def _graph_npz(layers, **arrays):
    return {"graph": json.dumps({"input_shape": [1, 4, 4], "layers": layers}), **arrays}


W1 = np.ones((2, 1, 3, 3), np.float32)
CONV1 = {"name": "c1", "op": "conv", "pad": 1}


@pytest.mark.parametrize("arrays, pattern", [
    ({"c1.weight": W1}, r"missing 'input_shape'"),
    ({"input_shape": np.array([1, 4]), "c1.weight": W1}, r"input_shape must be three positive"),
    ({"input_shape": np.array([1.0, 4, 4]), "c1.weight": W1}, r"input_shape must be three"),
    ({"input_shape": np.array([1, 4, 4]), "c1.weight": W1.astype(np.int8)},
     r"c1.weight must be a float array, not int8"),
    ({"input_shape": np.array([1, 4, 4]), "c1.weight": np.ones((2, 1, 3), np.float32)},
     r"c1.weight must be 2-D or 4-D, not shape \[2, 1, 3\]"),
    ({"input_shape": np.array([1, 4, 4]), "c1.weight": np.ones((2, 1, 2, 2), np.float32)},
     r"odd k for a 'same' convolution"),
    ({"input_shape": np.array([2, 4, 4]), "c1.weight": W1}, r"c1.weight has 1 input channels"),
    ({"input_shape": np.array([1, 4, 4]), "c1.weight": W1, "c1.bias": np.ones(3, np.float32)},
     r"c1.bias must have shape \[2\], not \[3\]"),
    ({"input_shape": np.array([1, 4, 4]), "c1.weight": W1, "c1.scale": np.ones(2)},
     r"unexpected key 'c1.scale'"),
    ({"input_shape": np.array([1, 4, 4]), "c1.bias": np.ones(2, np.float32)},
     r"layer 'c1' has no 'c1.weight'"),
    ({"input_shape": np.array([1, 4, 4]), "f.weight": np.ones((2, 15), np.float32)},
     r"f.weight takes 15 inputs, but 'input' flattened has 16 values"),
    ({"input_shape": np.array([1, 4, 4]), "f.weight": np.ones((2, 16), np.float32),
      "f.pool": np.array(1)}, r"f.pool needs a 4-D conv weight"),
    ({"input_shape": np.array([1, 4, 4]), "c1.weight": W1, "c1.pool": np.array(2)},
     r"c1.pool must be the scalar 1"),
    ({"input_shape": np.array([1, 4, 4]), "c1.weight": W1 * np.nan}, r"c1.weight holds NaN"),
    ({"input_shape": np.array([1, 4, 4]), "in put.weight": W1}, r"layer name 'in put'"),
    ({"graph": "{not json"}, r"'graph' is not valid JSON"),
    ({"graph": np.arange(3)}, r"'graph' must hold a JSON string"),
    (_graph_npz([{**CONV1, "op": "deconv"}], **{"c1.weight": W1}),
     r"layer 'c1': op must be one of conv, maxpool, add, avgpool, not 'deconv'"),
    (_graph_npz([{**CONV1, "dilation": 2}], **{"c1.weight": W1}),
     r"layer 'c1': unknown key 'dilation' for a conv layer"),
    (_graph_npz([CONV1]), r"layer 'c1': missing array 'c1.weight'"),
    (_graph_npz([CONV1], **{"c1.weight": W1, "c2.weight": W1}), r"unexpected array 'c2.weight'"),
    (_graph_npz([{**CONV1, "inputs": ["nowhere"]}], **{"c1.weight": W1}),
     r"input 'nowhere' is not an earlier layer"),
    (_graph_npz([{**CONV1, "pool": {"k": 3, "s": 2, "p": 0}}], **{"c1.weight": W1}),
     r"pool must be null or"),
    (_graph_npz([{**CONV1, "out_shape": [2, 2, 2]}], **{"c1.weight": W1}),
     r"out_shape \[2, 2, 2\] does not match the computed \[2, 4, 4\]"),
    (_graph_npz([CONV1], **{"c1.weight": W1, "c1.bn.gamma": np.ones(2, np.float32)}),
     r"missing 'c1.bn.beta'"),
    (_graph_npz([CONV1], **{"c1.weight": W1, **{f"c1.bn.{p}": np.full(2, -1, np.float32)
                                                 for p in ("gamma", "beta", "mean", "var")}}),
     r"c1.bn: var \+ eps must be positive"),
    (_graph_npz([{**CONV1, "kernel": 5}], **{"c1.weight": W1}),
     r"layer 'c1': weight must be \[Co, Ci, 5, 5\]"),
    (_graph_npz([CONV1, {"name": "add", "op": "add", "inputs": ["c1"]}], **{"c1.weight": W1}),
     r"layer 'add': add takes 2 input"),
    (_graph_npz([{**CONV1, "relu": 1}], **{"c1.weight": W1}), r"relu must be true or false"),
    (_graph_npz([{**CONV1, "stride": 0}], **{"c1.weight": W1}),
     r"stride must be an integer >= 1, not 0"),
])
def test_npz_bad_files(tmp_path, arrays, pattern):
    path = save_npz(tmp_path / "bad.npz", arrays)
    with pytest.raises(SPSError, match=pattern) as info:
        load_npz(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_npz_unreadable_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_text("not a zip")
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.zeros(3))
    objects = tmp_path / "objects.npz"
    np.savez(objects, input_shape=np.array([1, 2, 2]), **{"c.weight": np.array([None, 1])})
    for path, pattern in ((garbage, "not an .npz archive"), (single, "holds a single array"),
                          (objects, "array 'c.weight' holds Python objects"),
                          (tmp_path / "missing.npz", "no such file")):
        with pytest.raises(SPSError, match=pattern):
            load_npz(path)


# -- through the command line -----------------------------------------------------------------

def test_sps_compile_reads_onnx_and_npz(tmp_path, capsys):
    """``sps compile`` takes both formats; a bad file is one line on stderr and exit status 2."""
    from sps.cli import main

    net = models.builtin("demo8")
    onnx_path = save_onnx(net, tmp_path / "demo8.onnx")
    arrays = {"input_shape": np.array(net.input_shape)}      # the sequential shorthand
    for layer in net.layers:
        weight = layer.weight.astype(np.float32)
        arrays[f"{layer.name}.weight"] = weight[:, :, 0, 0] if layer.is_fc else weight
        arrays[f"{layer.name}.bias"] = layer.bias.astype(np.float32)
        if layer.pool:
            arrays[f"{layer.name}.pool"] = np.array(1)
    npz_path = save_npz(tmp_path / "demo8.npz", arrays)
    assert layer_key(load_npz(npz_path)) == layer_key(net)
    for path in (onnx_path, npz_path):
        out = tmp_path / f"out_{path.suffix[1:]}"
        assert main(["compile", str(path), "-o", str(out)]) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        assert [(m["name"], m["op"], m["out_shape"]) for m in manifest["layers"]] == \
            [(layer.name, layer.op, list(layer.out_shape)) for layer in net.layers]
    bad = tmp_path / "bad.onnx"
    bad.write_text("not onnx")
    assert main(["compile", str(bad), "-o", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"sps: error: {bad}: not an ONNX model (the file does not parse as an ONNX " \
                      f"ModelProto)"
    assert not (tmp_path / "never").exists()
