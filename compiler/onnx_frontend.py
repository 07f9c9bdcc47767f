"""Import a CNN from an ONNX file into the float network IR (:class:`compiler.graph.Network`).

The importer walks the graph in topological order and maps each node onto the four ops the
golden model runs, fusing what the hardware fuses:

- ``Conv`` becomes a ``conv`` layer; a following ``BatchNormalization`` is folded into its
  weights, a constant ``Add`` into its bias, a ``Relu`` sets ``relu`` and a 2x2 stride-2
  ``MaxPool`` becomes its fused ``pool`` -- each only when nothing else reads the conv's output.
- ``Gemm`` and ``MatMul`` on a flattened tensor become fully connected layers (convs with
  ``k = 1`` reading the input as ``[C*H*W, 1, 1]``); ``Flatten``/``Reshape`` to ``[1, N]``
  only mark the tensor as flattened.
- ``Add`` of two tensors is a residual ``add``; ``GlobalAveragePool`` (or an ``AveragePool``
  covering the whole map) an ``avgpool``; any other ``MaxPool`` a ``maxpool`` layer.
- ``Dropout`` and ``Identity`` are skipped, and so is a ``Relu`` on a tensor that is already
  non-negative. Nodes whose results never reach the graph output are ignored.
- A quantized (QDQ) model's ``QuantizeLinear``/``DequantizeLinear`` pairs give the network its
  activation scales (``Network.scales``) and its convs their weight scales (``w_scale``); the
  weights are the dequantized int8 values. Only symmetric int8 is taken: zero point 0 for
  int8, 128 for uint8 (the same values shifted by 128).

Everything else raises :class:`SPSError` naming the node, so an imported network computes
exactly what the ONNX model computes (up to float rounding). :func:`save_onnx` writes a
network back as ONNX, layer for layer.
"""

import os
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from . import kernels
from .batchnorm import fold_batchnorm
from .errors import SPSError
from .graph import Layer, Network, conv_out_shape, validate

__all__ = ["SUPPORTED_OPS", "load_onnx", "save_onnx"]

SUPPORTED_OPS = ("Conv", "BatchNormalization", "Relu", "MaxPool", "Add", "Flatten", "Reshape",
                 "Gemm", "MatMul", "GlobalAveragePool", "AveragePool", "Dropout", "Identity",
                 "Constant", "QuantizeLinear", "DequantizeLinear")
#: Integer type of a quantized tensor -> the zero point that makes it symmetric int8.
_SYMMETRIC = {np.dtype(np.int8): 0, np.dtype(np.uint8): 128, np.dtype(np.int32): 0}
_HINT = ("quantize with activation_type=QInt8, weight_type=QInt8 and "
         "extra_options={'ActivationSymmetric': True}")
POOL2 = {"k": 2, "s": 2, "p": 0}
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                onnx.TensorProto.BFLOAT16)
_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class _Act:
    """A computed tensor: the output of ``layer`` (or ``"input"``), seen by ONNX as
    ``[1, C, H, W]``, or as ``[1, C*H*W]`` when ``flat``."""

    layer: str
    flat: bool = False


@dataclass(frozen=True)
class _Quantized:
    """The integer output of a ``QuantizeLinear`` of the computed tensor ``act``."""

    act: _Act
    scale: float
    zero_point: np.ndarray


def load_onnx(path):
    """Load the ONNX model at ``path`` as a validated float :class:`Network`.

    The network is named after the file; layers are named after their ONNX nodes (sanitized
    to ``[A-Za-z0-9_.-]`` and made unique; unnamed nodes become ``<OpType>_<index>``).
    Raises :class:`SPSError` for unreadable files and unsupported graphs.
    """
    where = os.fspath(path)
    return _Importer(where, _read(where)).run()


def save_onnx(net, path, pruned=True):
    """Write ``net`` as an ONNX model with input ``input`` of shape ``[1, C, H, W]``.

    The inverse of :func:`load_onnx` (which reads the file back layer for layer): convs
    become ``Conv`` or ``Flatten`` + ``Gemm`` with ``Relu``/``MaxPool`` nodes for their fused
    parts, so the float network can run in any ONNX runtime. ``pruned`` writes the pruned
    weights, as :func:`compiler.graph.forward` runs them. Returns ``path``.
    """
    nodes, inits, views = [], [], {}
    tensors = {"input": "input"}                       # layer -> ONNX tensor of its output
    shapes = {"input": (1, *net.input_shape)}          # ONNX tensor -> its shape

    def emit(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def view(name, shape):
        """The output of layer ``name`` reshaped to ``shape`` (one Reshape per view)."""
        tensor, shape = tensors[name], tuple(int(d) for d in shape)
        if shapes[tensor] == shape:
            return tensor
        if (tensor, shape) not in views:
            const = f"{tensor}:shape{len(views)}"
            inits.append(numpy_helper.from_array(np.array(shape, np.int64), const))
            views[tensor, shape] = emit("Reshape", [tensor, const], f"{tensor}:view{len(views)}")
            shapes[views[tensor, shape]] = shape
        return views[tensor, shape]

    for layer in net.layers:
        name, in_shape = layer.name, (1, *layer.in_shape)
        pools, fc = {}, layer.is_fc and layer.pad == 0
        if layer.op == "conv":
            weight = (layer.pruned_weight() if pruned else layer.weight).astype(np.float32)
            inits.append(numpy_helper.from_array(layer.bias.astype(np.float32), f"{name}.bias"))
            if fc:
                inits.append(numpy_helper.from_array(weight[:, :, 0, 0], f"{name}.weight"))
                out = emit("Gemm", [view(layer.inputs[0], (1, layer.in_shape[0])),
                                    f"{name}.weight", f"{name}.bias"], name, transB=1)
            else:
                inits.append(numpy_helper.from_array(weight, f"{name}.weight"))
                out = emit("Conv", [view(layer.inputs[0], in_shape), f"{name}.weight",
                                    f"{name}.bias"], name, kernel_shape=[layer.kernel] * 2,
                           strides=[layer.stride] * 2, pads=[layer.pad] * 4)
            pools = layer.pool or {}
        elif layer.op == "maxpool":
            out = emit("MaxPool", [view(layer.inputs[0], in_shape)], name,
                       kernel_shape=[layer.kernel] * 2, strides=[layer.stride] * 2,
                       pads=[layer.pad] * 4)
        elif layer.op == "add":
            out = emit("Add", [view(src, in_shape) for src in layer.inputs], name)
        else:
            out = emit("GlobalAveragePool", [view(layer.inputs[0], in_shape)], name)
        if layer.relu:
            out = emit("Relu", [out], f"{name}:relu")
        if pools:
            out = emit("MaxPool", [out], f"{name}:pool", kernel_shape=[pools["k"]] * 2,
                       strides=[pools["s"]] * 2, pads=[pools["p"]] * 4)
        tensors[name] = out
        shapes[out] = (1, layer.out_shape[0]) if fc else (1, *layer.out_shape)
    x = helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, *net.input_shape])
    y = helper.make_tensor_value_info(tensors[net.output.name], onnx.TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(nodes, net.name, [x], [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, os.fspath(path))
    return path


def _read(where):
    try:
        model = onnx.load(where)
    except FileNotFoundError as e:
        raise SPSError(f"{where}: no such file ({e.filename})") from None
    except OSError as e:
        raise SPSError(f"{where}: cannot read the file ({e.strerror or e})") from None
    except (DecodeError, ValueError, onnx.checker.ValidationError):
        raise SPSError(f"{where}: not an ONNX model (the file does not parse as an ONNX "
                       f"ModelProto)") from None
    if not model.HasField("graph") or not model.graph.node:
        raise SPSError(f"{where}: not an ONNX model (it holds no graph nodes)")
    return model


def _attr(proto):
    value = helper.get_attribute_value(proto)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return value


def _along(param, shape, axis):
    """``param`` (one value, or one per index of ``axis``) broadcast to ``shape``."""
    param = np.asarray(param)
    if param.size == 1:
        return np.broadcast_to(param.reshape(()), shape)
    axis = axis + len(shape) if axis < 0 else axis
    if param.ndim != 1 or not 0 <= axis < len(shape) or param.shape[0] != shape[axis]:
        raise ValueError(f"{list(param.shape)} does not fit {list(shape)} along axis {axis}")
    view = [1] * len(shape)
    view[axis] = -1
    return np.broadcast_to(param.reshape(view), shape)


def _dims(tensor):
    """The dimensions of a ``TypeProto.Tensor``: ints, None where symbolic or unknown."""
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]


def _shown(tensor):
    return [d.dim_param or "?" if v is None else v for d, v in zip(tensor.shape.dim,
                                                                     _dims(tensor))]


def _sanitize(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-")


class _Importer:
    def __init__(self, where, model):
        self.where = where
        self.graph = model.graph
        stem = os.path.splitext(os.path.basename(where))[0]
        self.values = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.input_name, input_shape, input_flat = self._input()
        self.values[self.input_name] = _Act("input", input_flat)
        self.net = Network(_sanitize(stem) or "model", input_shape)
        self.layers = {}                            # name -> Layer
        self.aliases = {"input": [self.input_name]}  # layer -> ONNX names of its current output
        self.node = None
        self.scales = {}                 # "input" or layer -> scale of a QuantizeLinear of it
        self.prepool = {}                # conv -> its scale before a fused max-pool
        self.weight_scales = {}          # ONNX name of a dequantized constant -> its scales

    # -- errors -----------------------------------------------------------------------------

    def fail(self, message):
        raise SPSError(f"{self.where}: node {self.label!r} ({self.node.op_type}): {message}")

    def fail_file(self, message):
        raise SPSError(f"{self.where}: {message}")

    # -- graph structure --------------------------------------------------------------------

    def _input(self):
        inputs = [vi for vi in self.graph.input if vi.name not in self.values]
        if len(inputs) != 1:
            self.fail_file(f"expected one graph input (besides initializers), found "
                           f"{len(inputs)}: {[vi.name for vi in inputs]}")
        vi = inputs[0]
        tensor = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or tensor.elem_type not in _FLOAT_TYPES:
            kind = onnx.TensorProto.DataType.Name(tensor.elem_type) if tensor.elem_type else "?"
            self.fail_file(f"input {vi.name!r} must be a float tensor, not {kind}")
        dims = _dims(tensor)
        if len(dims) == 3:
            self.fail_file(f"input {vi.name!r} has shape {_shown(tensor)}, which ONNX reads as "
                           f"[N, C, L] (1-D data); expected [1, C, H, W] (or [N, F])")
        batch, fixed = dims[0] if dims else 0, dims[1:]
        if (not tensor.HasField("shape") or len(dims) not in (2, 4) or batch not in (None, 1)
                or any(d is None or d < 1 for d in fixed)):
            self.fail_file(f"input {vi.name!r} must have shape [1, C, H, W] or [N, F] "
                           f"(batch 1 or symbolic, other dimensions fixed), not "
                           f"{_shown(tensor)}")
        if len(fixed) == 1:                         # [N, F]: a flat vector input
            return vi.name, (fixed[0], 1, 1), True
        return vi.name, tuple(fixed), False

    def _live_nodes(self):
        """Nodes in topological order, without those that do not reach the graph output."""
        known = set(self.values)
        pending, order = list(enumerate(self.graph.node)), []
        while pending:                   # one pass when the nodes are sorted, as ONNX requires
            rest = []
            for index, node in pending:
                if all(x in known or not x for x in node.input):
                    known.update(o for o in node.output if o)
                    order.append((index, node))
                else:
                    rest.append((index, node))
            if len(rest) == len(pending):
                self.index, self.node = rest[0]
                missing = next(x for x in self.node.input if x and x not in known)
                self.fail(f"reads {missing!r}, which is no graph input, initializer or node "
                          f"output (or the graph has a cycle)")
            pending = rest
        needed, live = {o.name for o in self.graph.output}, []
        for index, node in reversed(order):
            if any(o in needed for o in node.output):
                live.append((index, node))
                needed.update(x for x in node.input if x)
        return live[::-1]

    @property
    def label(self):
        return self.node.name or f"{self.node.op_type}_{self.index}"

    def run(self):
        outputs = [o.name for o in self.graph.output]
        if len(outputs) != 1:
            self.fail_file(f"expected one graph output, found {len(outputs)}: {outputs}")
        nodes = self._live_nodes()
        self.readers = Counter(x for _, n in nodes for x in n.input if x) + Counter(outputs)
        for index, node in nodes:
            self.index, self.node = index, node
            self._convert()
        value = self.values.get(outputs[0])
        if not isinstance(value, _Act) or value.layer == "input":
            self.fail_file(f"graph output {outputs[0]!r} is not computed by any layer")
        if self.net.layers[-1].name != value.layer:
            self.fail_file(f"graph output {outputs[0]!r} is layer {value.layer!r}, but "
                           f"{self.net.layers[-1].name!r} runs after it")
        self._check_output_shape(value)
        for layer in self.net.convs():              # own, writable, C-ordered float32 arrays
            layer.weight = np.require(layer.weight, np.float32, ["C", "W", "O"])
            layer.bias = np.require(layer.bias, np.float32, ["C", "W", "O"])
        self.net.scales = self._model_scales()
        try:
            return validate(self.net)
        except SPSError as e:
            raise SPSError(f"{self.where}: {e}") from None

    def _model_scales(self):
        """Every tensor's scale from the model's QuantizeLinear nodes (None if it has none).
        A max-pool keeps its input's scale, fused or not."""
        if not self.scales:
            return None
        scales = {}
        for name in ["input", *(layer.name for layer in self.net.layers)]:
            scale, layer = self.scales.get(name), self.layers.get(name)
            kept = (scales[layer.inputs[0]] if layer is not None and layer.op == "maxpool"
                    else self.prepool.get(name))
            if kept is not None and scale is not None and not np.isclose(scale, kept,
                                                                         rtol=1e-6):
                self.fail_file(f"layer {name!r}: its max-pool changes the scale from {kept:g} "
                               f"to {scale:g}; a max-pool passes int8 values unchanged")
            scale = kept if scale is None else scale
            if scale is None:
                self.fail_file(f"tensor {name!r} is not quantized; a quantized (QDQ) model "
                               f"needs a QuantizeLinear/DequantizeLinear pair on the input and "
                               f"on every layer's output")
            scales[name] = scale
        return scales

    def _check_output_shape(self, value):
        """The graph output's declared shape, where given, must be the one computed."""
        out = self.graph.output[0]
        tensor = out.type.tensor_type
        if not (out.type.HasField("tensor_type") and tensor.HasField("shape")):
            return
        c, h, w = self.shape(value)
        computed = [1, c * h * w] if value.flat else [1, c, h, w]
        declared = _dims(tensor)
        if len(declared) != len(computed) or any(
                d is not None and d != n for d, n in zip(declared, computed)):
            self.fail_file(f"graph output {out.name!r} is declared {_shown(tensor)}, but the "
                           f"network computes {computed}")

    def _convert(self):
        node = self.node
        handler = None
        if node.domain in _DEFAULT_DOMAINS:
            handler = getattr(self, f"_op_{node.op_type}", None)
        if handler is None:
            kind = node.op_type if node.domain in _DEFAULT_DOMAINS else \
                f"{node.domain}.{node.op_type}"
            raise SPSError(f"{self.where}: node {self.label!r} has unsupported op type "
                           f"{kind!r}; supported: {', '.join(SUPPORTED_OPS)}")
        self.changed = set()
        ins = [self.values[x] if x else None for x in node.input]
        if node.op_type != "DequantizeLinear" and any(isinstance(v, _Quantized) for v in ins):
            self.fail("reads the integer output of a QuantizeLinear; expected a "
                      "DequantizeLinear right after it")
        out = handler(ins, {a.name: _attr(a) for a in node.attribute})
        name = node.output[0]
        self.values[name] = out
        act = out.act if isinstance(out, _Quantized) else out
        if isinstance(act, _Act):
            if act.layer in self.changed:
                self.aliases[act.layer] = [name]
            else:
                self.aliases[act.layer].append(name)
        for extra in node.output[1:]:
            if extra and self.readers[extra]:
                self.fail(f"its output {extra!r} is read, but only the first output is "
                          f"supported")

    # -- operands -----------------------------------------------------------------------------

    def act(self, ins, i=0, spatial=True):
        value = ins[i] if i < len(ins) else None
        if not isinstance(value, _Act):
            self.fail(f"input {i} must be a computed tensor, not "
                      f"{'missing' if value is None else 'a constant'}")
        if spatial and value.flat:
            self.fail("needs a [1, C, H, W] feature map, but its input was flattened")
        return value

    def const(self, ins, i, what, optional=False):
        value = ins[i] if i < len(ins) else None
        if value is None:
            if optional:
                return None
            self.fail(f"needs a {what} input")
        if isinstance(value, (_Act, _Quantized)):
            self.fail(f"{what} {self.node.input[i]!r} must be a constant (an initializer or a "
                      f"Constant node), not a computed tensor")
        if value.dtype.kind != "f":
            self.fail(f"{what} {self.node.input[i]!r} must be a float tensor, not {value.dtype}")
        if not np.all(np.isfinite(value)):
            self.fail(f"{what} {self.node.input[i]!r} holds NaN or Inf values")
        return value.astype(np.float32, copy=False)

    def channel_scales(self, i, transform=None):
        """The scale per output channel (row) of weight input ``i`` if a DequantizeLinear made
        it, as the weight is ``transform``ed; None for a float weight."""
        scales = self.weight_scales.get(self.node.input[i])
        if scales is None:
            return None
        rows = np.asarray(scales if transform is None else transform(scales), np.float64)
        rows = rows.reshape(rows.shape[0], -1)
        if not np.all(rows == rows[:, :1]):
            self.fail(f"weight {self.node.input[i]!r} must have one scale per output channel")
        return rows[:, 0].copy()

    def shape(self, act):
        return tuple(self.net.input_shape if act.layer == "input" else
                     self.layers[act.layer].out_shape)

    def describe(self, act):
        if act.layer == "input":
            return "the network input"
        return f"layer {act.layer!r} ({self.layers[act.layer].op})"

    def exclusive(self, act):
        """True if this node is the only reader of ``act``'s layer output (through aliases)."""
        names = self.aliases[act.layer]
        return sum(self.readers[n] for n in names) - (len(names) - 1) == 1

    def fusable_conv(self, act, what):
        """The conv producing ``act`` if ``what`` can be folded into it, else an error."""
        layer = self.layers.get(act.layer)
        if (layer is None or layer.op != "conv" or layer.relu or layer.pool
                or not self.exclusive(act)):
            why = "" if layer is None or layer.op != "conv" else (
                " (it already has a ReLU or pool)" if layer.relu or layer.pool
                else " (its output has other readers)")
            self.fail(f"{what} must directly follow a Conv, Gemm or MatMul whose output has no "
                      f"other reader; it follows {self.describe(act)}{why}")
        return layer

    def nonneg(self, name):
        if name == "input":
            return False
        layer = self.layers[name]
        if layer.op == "maxpool" or (layer.op == "avgpool" and not layer.relu):
            return self.nonneg(layer.inputs[0])
        return layer.relu

    def square(self, values, what):
        values = list(values)
        if len(values) != 2 or values[0] != values[1]:
            self.fail(f"{what} must be two equal values (square 2-D), not {values}")
        return int(values[0])

    def window(self, attrs, kernel, hw):
        """Stride and symmetric padding of a conv or pooling window."""
        stride = self.square(attrs.get("strides", [1, 1]), "strides")
        dilations = list(attrs.get("dilations", [1, 1]))
        if any(d != 1 for d in dilations):
            self.fail(f"dilations must be 1, not {dilations}")
        auto = attrs.get("auto_pad", "NOTSET")
        if auto in ("NOTSET", ""):
            pads = list(attrs.get("pads", [0, 0, 0, 0]))
            if len(pads) != 4 or len(set(pads)) != 1:
                self.fail(f"pads must be symmetric (four equal values), not {pads}")
            pad = int(pads[0])
        elif auto == "VALID":
            pad = 0
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            totals = {max((-(-n // stride) - 1) * stride + kernel - n, 0) for n in hw}
            if len(totals) != 1 or min(totals) % 2:
                self.fail(f"auto_pad {auto} pads this {hw[0]}x{hw[1]} map asymmetrically; "
                          f"only symmetric padding is supported")
            pad = totals.pop() // 2
        else:
            self.fail(f"auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER, not {auto!r}")
        if attrs.get("ceil_mode", 0) and any((n + 2 * pad - kernel) % stride for n in hw):
            self.fail("ceil_mode=1 changes the output size here; only floor rounding is "
                      "supported")
        return stride, pad

    # -- layers -------------------------------------------------------------------------------

    def new_layer(self, op, src, in_shape, out_shape, **kw):
        base = _sanitize(self.node.name) or f"{self.node.op_type}_{self.index}"
        name, n = base, 0
        while name in self.layers or name == "input":
            n += 1
            name = f"{base}_{n}"
        layer = Layer(name, op, [a.layer for a in src], tuple(in_shape), tuple(out_shape), **kw)
        self.net.layers.append(layer)
        self.layers[name] = layer
        self.aliases[name] = []
        self.changed.add(name)
        return layer

    def fc(self, src, weight, bias, w_scale):
        co, n = weight.shape
        layer = self.new_layer("conv", [src], (n, 1, 1), (co, 1, 1), kernel=1,
                               weight=np.ascontiguousarray(weight[:, :, None, None]),
                               bias=bias.astype(np.float32), w_scale=w_scale)
        return _Act(layer.name, flat=True)

    # -- op handlers: each returns the value of the node's first output ----------------------

    def _op_Conv(self, ins, attrs):
        x = self.act(ins)
        weight = self.const(ins, 1, "weight")
        if weight.ndim != 4:
            self.fail(f"weight must be 4-D [Co, Ci, kH, kW], not shape {list(weight.shape)}")
        co, ci, kh, kw = weight.shape
        bias = self.const(ins, 2, "bias", optional=True)
        bias = np.zeros(co, np.float32) if bias is None else bias
        if attrs.get("group", 1) != 1:
            self.fail(f"group must be 1, not {attrs['group']} (grouped and depthwise "
                      f"convolutions are not supported)")
        if kh != kw or list(attrs.get("kernel_shape", [kh, kw])) != [kh, kw]:
            self.fail(f"the kernel must be square and match the weight, not {kh}x{kw} with "
                      f"kernel_shape {attrs.get('kernel_shape')}")
        shape = self.shape(x)
        if ci != shape[0]:
            self.fail(f"weight has {ci} input channels, the input has {shape[0]}")
        if bias.shape != (co,):
            self.fail(f"bias must have shape [{co}], not {list(bias.shape)}")
        stride, pad = self.window(attrs, kh, shape[1:])
        layer = self.new_layer("conv", [x], shape,
                               conv_out_shape(shape, co, kh, stride, pad, None), kernel=kh,
                               stride=stride, pad=pad, weight=weight, bias=bias,
                               w_scale=self.channel_scales(1))
        return _Act(layer.name)

    def _op_BatchNormalization(self, ins, attrs):
        x = self.act(ins, spatial=False)
        if attrs.get("training_mode", 0):
            self.fail("training_mode must be 0 (inference)")
        if attrs.get("spatial", 1) != 1:
            self.fail("spatial must be 1")
        layer = self.fusable_conv(x, "BatchNormalization")
        if layer.w_scale is not None:
            self.fail(f"folding it would change the int8 weights of the quantized layer "
                      f"{layer.name!r}; fold BatchNormalization before quantizing")
        self.scales.pop(layer.name, None)
        if x.flat and layer.out_shape[1:] != (1, 1):
            self.fail("normalizes a flattened feature map per element; only per-channel "
                      "BatchNormalization can be folded")
        gamma, beta, mean, var = (self.const(ins, i, what) for i, what in
                                  enumerate(("scale", "B", "mean", "var"), 1))
        layer.weight, layer.bias = fold_batchnorm(
            layer.weight, layer.bias, gamma, beta, mean, var, attrs.get("epsilon", 1e-5),
            where=f"{self.where}: node {self.label!r} (BatchNormalization)")
        self.changed.add(layer.name)
        return x

    def _op_Relu(self, ins, attrs):
        x = self.act(ins, spatial=False)
        layer = self.layers.get(x.layer)
        fusable = layer is not None and layer.op in ("conv", "add", "avgpool")
        if not (fusable and self.exclusive(x)) and self.nonneg(x.layer):
            return x                                  # already >= 0: the Relu is the identity
        if not fusable or not self.exclusive(x):
            why = " whose output has other readers" if fusable else ""
            self.fail(f"Relu is fused into the layer before it and must follow a Conv, Gemm, "
                      f"MatMul, Add or average pool with no other reader; it follows "
                      f"{self.describe(x)}{why}")
        layer.relu = True
        self.changed.add(layer.name)
        return x

    def _op_MaxPool(self, ins, attrs):
        x = self.act(ins)
        kernel = self.square(attrs.get("kernel_shape", []), "kernel_shape")
        shape = self.shape(x)
        stride, pad = self.window(attrs, kernel, shape[1:])
        src = self.layers.get(x.layer)
        if ((kernel, stride, pad) == (2, 2, 0) and src is not None and src.op == "conv"
                and src.pool is None and self.exclusive(x)):
            src.pool = dict(POOL2)
            self.prepool[src.name] = self.scales.pop(src.name, None)
            src.out_shape = conv_out_shape(src.in_shape, src.weight.shape[0], src.kernel,
                                           src.stride, src.pad, src.pool)
            self.changed.add(src.name)
            return x
        c, h, w = shape
        out = (c, kernels.out_size(h, kernel, stride, pad), kernels.out_size(w, kernel, stride,
                                                                             pad))
        layer = self.new_layer("maxpool", [x], shape, out, kernel=kernel, stride=stride,
                               pad=pad)
        return _Act(layer.name)

    def _op_Add(self, ins, attrs):
        if len(ins) != 2 or ins[0] is None or ins[1] is None:
            self.fail("needs two inputs")
        a, b = ins
        if isinstance(a, _Act) and isinstance(b, _Act):
            if self.shape(a) != self.shape(b) or a.flat != b.flat:
                self.fail(f"adds tensors of shapes {list(self.shape(a))} and "
                          f"{list(self.shape(b))}; a residual Add needs two equal shapes")
            shape = self.shape(a)
            return _Act(self.new_layer("add", [a, b], shape, shape).name, a.flat)
        if not isinstance(a, _Act) and not isinstance(b, _Act):
            self.fail("adds two constants; only residual and bias Adds are supported")
        x, i = (a, 1) if isinstance(a, _Act) else (b, 0)
        const = self.const(ins, i, "constant")
        layer = self.fusable_conv(x, "An Add of a constant (a bias)")
        co, h, w = layer.out_shape
        try:
            full = np.broadcast_to(const, (1, co * h * w) if x.flat else (1, co, h, w))
        except ValueError:
            self.fail(f"constant of shape {list(const.shape)} does not broadcast to the "
                      f"output of layer {layer.name!r}")
        per = full.reshape(co, h * w)
        if not np.all(per == per[:, :1]):
            self.fail("the constant varies across spatial positions; only a per-channel bias "
                      "can be folded")
        layer.bias = (layer.bias + per[:, 0]).astype(np.float32)
        self.scales.pop(layer.name, None)             # a scale before the bias is not after it
        self.changed.add(layer.name)
        return x

    def _op_Gemm(self, ins, attrs):
        x = self.act(ins, spatial=False)
        if not x.flat:
            self.fail("needs a flattened [1, N] input; add a Flatten before it")
        for key in ("alpha", "beta"):
            if attrs.get(key, 1.0) != 1.0:
                self.fail(f"{key} must be 1, not {attrs[key]}")
        if attrs.get("transA", 0):
            self.fail("transA must be 0")
        b = self.const(ins, 1, "B")
        if b.ndim != 2:
            self.fail(f"B must be 2-D, not shape {list(b.shape)}")
        turn = (lambda a: a) if attrs.get("transB", 0) else np.transpose
        weight = turn(b)
        return self.fc(x, self.fc_weight(x, weight), self.fc_bias(ins, 2, weight.shape[0]),
                       self.channel_scales(1, turn))

    def _op_MatMul(self, ins, attrs):
        x = self.act(ins, spatial=False)
        if not x.flat:
            self.fail("needs a flattened [1, N] input; add a Flatten before it")
        b = self.const(ins, 1, "B")
        if b.ndim != 2:
            self.fail(f"B must be 2-D [N, Co], not shape {list(b.shape)}")
        return self.fc(x, self.fc_weight(x, b.T), np.zeros(b.shape[1], np.float32),
                       self.channel_scales(1, np.transpose))

    def fc_weight(self, x, weight):
        n = int(np.prod(self.shape(x)))
        if weight.shape[1] != n:
            self.fail(f"the weight takes {weight.shape[1]} inputs, the input has {n} values")
        return weight

    def fc_bias(self, ins, i, co):
        bias = self.const(ins, i, "C", optional=True)
        if bias is None:
            return np.zeros(co, np.float32)
        try:
            return np.broadcast_to(bias, (1, co)).reshape(co)
        except ValueError:
            self.fail(f"C of shape {list(bias.shape)} does not broadcast to [1, {co}]")

    def _op_GlobalAveragePool(self, ins, attrs):
        x = self.act(ins)
        shape = self.shape(x)
        return _Act(self.new_layer("avgpool", [x], shape, (shape[0], 1, 1)).name)

    def _op_AveragePool(self, ins, attrs):
        x = self.act(ins)
        shape = self.shape(x)
        kernel = list(attrs.get("kernel_shape", []))
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if (kernel != list(shape[1:]) or any(pads) or attrs.get("auto_pad", "NOTSET")
                not in ("NOTSET", "VALID", "") or attrs.get("ceil_mode", 0)):
            self.fail(f"only global average pooling is supported (kernel_shape {list(shape[1:])}"
                      f", no padding), not kernel_shape {kernel} with pads {pads}")
        return self._op_GlobalAveragePool(ins, attrs)

    def _op_Flatten(self, ins, attrs):
        axis = attrs.get("axis", 1)
        value = ins[0]
        if not isinstance(value, _Act):
            value = self.const_input(ins)
            rank = value.ndim
            axis = axis + rank if axis < 0 else axis
            return value.reshape(int(np.prod(value.shape[:axis])), -1)
        rank = 2 if value.flat else 4
        if (axis + rank if axis < 0 else axis) not in (0, 1):
            self.fail(f"axis must keep the batch axis apart (0 or 1), not {axis}")
        return _Act(value.layer, flat=True)

    def _op_Reshape(self, ins, attrs):
        value = ins[0]
        target = ins[1] if len(ins) > 1 else None
        if target is None or isinstance(target, _Act) or target.dtype.kind not in "iu":
            self.fail("the target shape must be a constant int64 tensor")
        if not isinstance(value, _Act):
            value = self.const_input(ins)
            return value.reshape(self.reshaped(value.shape, target, attrs))
        c, h, w = self.shape(value)
        current = (1, c * h * w) if value.flat else (1, c, h, w)
        new = self.reshaped(current, target, attrs)
        if new == (1, c * h * w):
            return _Act(value.layer, flat=True)
        if new == (1, c, h, w):
            return _Act(value.layer, flat=False)
        self.fail(f"reshapes {list(current)} to {list(new)}; only flattening to "
                  f"[1, {c * h * w}] (or back) is supported")

    def reshaped(self, current, target, attrs):
        """ONNX Reshape semantics: 0 copies a dimension (unless allowzero), -1 is inferred."""
        dims = [int(d) for d in np.asarray(target).reshape(-1)]
        if not attrs.get("allowzero", 0):
            dims = [current[i] if d == 0 and i < len(current) else d for i, d in enumerate(dims)]
        total = int(np.prod(current))
        if dims.count(-1) == 1:
            known = int(np.prod([d for d in dims if d != -1]))
            dims[dims.index(-1)] = total // known if known and total % known == 0 else -2
        if any(d < 0 for d in dims) or int(np.prod(dims)) != total:
            self.fail(f"cannot reshape {list(current)} to {[int(d) for d in target.reshape(-1)]}")
        return tuple(dims)

    def const_input(self, ins):
        value = ins[0]
        if value is None:
            self.fail("needs an input")
        return value

    def _op_Identity(self, ins, attrs):
        if isinstance(ins[0], _Act):
            return ins[0]
        return self.const_input(ins)

    def _op_Dropout(self, ins, attrs):
        training = ins[2] if len(ins) > 2 else None
        if isinstance(training, _Act) or (training is not None and np.any(training)):
            self.fail("training_mode must be a constant false (inference)")
        return self._op_Identity(ins, attrs)

    def _op_Constant(self, ins, attrs):
        for key, dtype in (("value", None), ("value_float", np.float32),
                           ("value_floats", np.float32), ("value_int", np.int64),
                           ("value_ints", np.int64)):
            if key in attrs:
                return np.asarray(attrs[key], dtype=dtype)
        self.fail(f"only tensor, float and int constants are supported, not {sorted(attrs)}")

    # -- quantization (QDQ) -------------------------------------------------------------------

    def qparams(self, ins, shape, attrs, dtype):
        """Scale and zero point of a Quantize/DequantizeLinear, broadcast to ``shape``."""
        if attrs.get("block_size", 0):
            self.fail("blocked quantization (block_size) is not supported")
        scale = self.const(ins, 1, "scale")
        zero = ins[2] if len(ins) > 2 else None
        if isinstance(zero, (_Act, _Quantized)):
            self.fail("the zero point must be a constant")
        zero = np.zeros((), dtype) if zero is None else zero
        if np.any(scale <= 0):
            self.fail(f"scale {self.node.input[1]!r} must be positive")
        try:
            return (_along(scale, shape, attrs.get("axis", 1)),
                    _along(zero, shape, attrs.get("axis", 1)))
        except ValueError as e:
            self.fail(f"scale and zero point: {e}")

    def symmetric(self, zero, what):
        """The offset that makes a quantized type int8 (0, or 128 for uint8), or an error."""
        offset = _SYMMETRIC.get(zero.dtype)
        if offset is None or np.any(zero != offset):
            shown = np.unique(zero).tolist()
            self.fail(f"{what} is quantized asymmetrically ({zero.dtype} zero point "
                      f"{shown[0] if len(shown) == 1 else shown}); the accelerator takes "
                      f"symmetric int8 only (zero point 0, or 128 for uint8): {_HINT}")
        return offset

    def _op_QuantizeLinear(self, ins, attrs):
        dtype = np.dtype(np.uint8)                     # ONNX: the type of an absent zero point
        x = ins[0]
        if isinstance(x, _Act):
            if (ins[1] is not None and not isinstance(ins[1], _Act)
                    and np.asarray(ins[1]).size != 1):
                self.fail("an activation must be quantized per tensor (one scale)")
            scale, zero = self.qparams(ins, (), attrs, dtype)
            self.symmetric(zero, f"tensor {self.node.input[0]!r}")
            return _Quantized(x, float(scale), zero)
        value = self.const(ins, 0, "x")
        scale, zero = self.qparams(ins, value.shape, attrs, dtype)
        info = np.iinfo(zero.dtype)
        q = np.rint(value / scale.astype(np.float32)) + zero
        return np.clip(q, info.min, info.max).astype(zero.dtype)

    def _op_DequantizeLinear(self, ins, attrs):
        x = ins[0]
        if isinstance(x, _Quantized):
            scale, zero = self.qparams(ins, (), attrs, x.zero_point.dtype)
            if not np.isclose(scale, x.scale, rtol=1e-6) or np.any(zero != x.zero_point):
                self.fail("its scale and zero point must be those of the QuantizeLinear "
                          "before it")
            self.scales[x.act.layer] = x.scale
            return x.act
        if x is None or isinstance(x, _Act):
            self.fail("x must be the output of a QuantizeLinear or an integer constant")
        if x.dtype.kind not in "iu":
            self.fail(f"x {self.node.input[0]!r} must be an integer tensor, not {x.dtype}")
        scale, zero = self.qparams(ins, x.shape, attrs, x.dtype)
        offset = self.symmetric(zero, f"constant {self.node.input[0]!r}")
        self.weight_scales[self.node.output[0]] = scale
        return ((x.astype(np.int64) - offset) * scale.astype(np.float64)).astype(np.float32)
