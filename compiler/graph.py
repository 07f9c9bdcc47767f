"""The float network the compiler works on, and its float forward pass.

A :class:`Network` is a list of :class:`Layer` in execution order. Ops are those the golden
model runs (``docs/spec.md`` section 3): ``conv`` (any k x k, stride, padding, optional
fused ReLU and 2x2 max-pool; fully connected layers are convs with ``k = 1`` on a flattened input),
``maxpool``, ``add`` (residual, optional ReLU) and ``avgpool`` (global). Each layer names
its inputs: earlier layers, or ``"input"`` for the network input.
"""

from dataclasses import dataclass, field

import numpy as np

from . import kernels
from .errors import SPSError

OPS = ("conv", "maxpool", "add", "avgpool")


@dataclass
class Layer:
    """One layer. ``in_shape`` is the shape this layer reads its (first) input as: a fully
    connected layer after a ``[C, H, W]`` tensor has ``in_shape = (C*H*W, 1, 1)``."""

    name: str
    op: str
    inputs: list
    in_shape: tuple
    out_shape: tuple
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    relu: bool = False
    pool: dict | None = None            # conv: fused {"k": 2, "s": 2, "p": 0} after ReLU
    weight: np.ndarray | None = None    # conv: float32 [Co, Ci, k, k]
    bias: np.ndarray | None = None      # conv: float32 [Co]
    mask: np.ndarray | None = None      # conv: bool [Co, Ci, k, k] of kept taps, None = all
    permutation: np.ndarray | None = None  # stored input position j -> original channel
    pps: dict | None = None             # conv: {"keep", "period", "library", "assignment"}
    w_scale: np.ndarray | None = None   # conv: the model's weight scale per output channel

    @property
    def is_fc(self):
        return self.op == "conv" and self.in_shape[1:] == (1, 1) and self.kernel == 1

    def pruned_weight(self):
        """The conv weight with pruned taps set to zero."""
        return self.weight if self.mask is None else np.where(self.mask, self.weight, 0)


@dataclass
class Network:
    """Layers in execution order; the last one is the output."""

    name: str
    input_shape: tuple
    layers: list = field(default_factory=list)
    #: A quantized model's own activation scales: ``{"input" or layer name: scale}``, or None
    #: (the compiler calibrates them).
    scales: dict | None = None

    def __getitem__(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def output(self):
        return self.layers[-1]

    def shape_of(self, name):
        return self.input_shape if name == "input" else self[name].out_shape

    def consumers(self, name):
        """Layers that read the tensor ``name``."""
        return [layer for layer in self.layers if name in layer.inputs]

    def convs(self):
        return [layer for layer in self.layers if layer.op == "conv"]


def conv_out_shape(in_shape, co, kernel, stride, pad, pool):
    _, h, w = in_shape
    h, w = kernels.out_size(h, kernel, stride, pad), kernels.out_size(w, kernel, stride, pad)
    if pool:
        h = kernels.out_size(h, pool["k"], pool["s"], pool["p"])
        w = kernels.out_size(w, pool["k"], pool["s"], pool["p"])
    return (co, h, w)


def validate(net):
    """Check names, inputs, shapes and weights; raise :class:`SPSError` on the first fault."""
    seen = {"input": tuple(net.input_shape)}
    if len(net.input_shape) != 3 or min(net.input_shape) < 1:
        raise SPSError(f"{net.name}: input shape must be [C, H, W], not {list(net.input_shape)}")
    if not net.layers:
        raise SPSError(f"{net.name}: the network has no layers")
    for layer in net.layers:
        where = f"{net.name}: layer {layer.name!r}"
        if layer.op not in OPS:
            raise SPSError(f"{where}: op must be one of {', '.join(OPS)}, not {layer.op!r}")
        if layer.name in seen:
            raise SPSError(f"{where}: the name is used twice")
        for src in layer.inputs:
            if src not in seen:
                raise SPSError(f"{where}: input {src!r} is not an earlier layer or 'input'")
        src_shape = seen[layer.inputs[0]]
        if int(np.prod(src_shape)) != int(np.prod(layer.in_shape)):
            raise SPSError(f"{where}: reads {list(src_shape)} as {list(layer.in_shape)}")
        if layer.op == "conv":
            w = layer.weight
            if not isinstance(w, np.ndarray) or w.ndim != 4 or w.shape[2:] != (layer.kernel,) * 2:
                raise SPSError(f"{where}: weight must be [Co, Ci, {layer.kernel}, "
                               f"{layer.kernel}], not {getattr(w, 'shape', type(w).__name__)}")
            if w.shape[1] != layer.in_shape[0]:
                raise SPSError(f"{where}: weight has {w.shape[1]} input channels, "
                               f"the input has {layer.in_shape[0]}")
            if layer.bias is None or layer.bias.shape != (w.shape[0],):
                raise SPSError(f"{where}: bias must have shape [{w.shape[0]}]")
            for what, arr in (("weight", w), ("bias", layer.bias)):
                if not np.all(np.isfinite(arr)):
                    raise SPSError(f"{where}: {what} holds NaN or Inf values")
            expect = conv_out_shape(layer.in_shape, w.shape[0], layer.kernel, layer.stride,
                                    layer.pad, layer.pool)
        elif layer.op == "maxpool":
            c, h, w = layer.in_shape
            expect = (c, kernels.out_size(h, layer.kernel, layer.stride, layer.pad),
                      kernels.out_size(w, layer.kernel, layer.stride, layer.pad))
        elif layer.op == "add":
            if len(layer.inputs) != 2 or seen[layer.inputs[1]] != tuple(layer.in_shape):
                raise SPSError(f"{where}: add needs two inputs of shape {list(layer.in_shape)}")
            expect = tuple(layer.in_shape)
        else:
            expect = (layer.in_shape[0], 1, 1)
        if min(expect) < 1 or tuple(layer.out_shape) != expect:
            raise SPSError(f"{where}: output shape {list(layer.out_shape)} should be "
                           f"{list(expect)}")
        seen[layer.name] = tuple(layer.out_shape)
    return net


def forward(net, x, pruned=True):
    """Float forward pass of ``x[C, H, W]``; returns every layer's output by name.

    ``pruned`` applies each conv's mask (the pruned network); otherwise the dense weights run.
    """
    acts = {"input": np.asarray(x, dtype=np.float32)}
    for layer in net.layers:
        src = acts[layer.inputs[0]].reshape(layer.in_shape)
        if layer.op == "conv":
            w = layer.pruned_weight() if pruned else layer.weight
            y = kernels.conv(src, w.astype(np.float32), layer.stride, layer.pad)
            y += layer.bias.astype(np.float32)[:, None, None]
            if layer.relu:
                y = np.maximum(y, 0)
            if layer.pool:
                y = kernels.maxpool(y, layer.pool["k"], layer.pool["s"], layer.pool["p"])
        elif layer.op == "maxpool":
            y = kernels.maxpool(src, layer.kernel, layer.stride, layer.pad)
        elif layer.op == "add":
            y = src + acts[layer.inputs[1]]
            if layer.relu:
                y = np.maximum(y, 0)
        else:
            y = src.mean(axis=(1, 2), keepdims=True)
            if layer.relu:
                y = np.maximum(y, 0)
        acts[layer.name] = y.astype(np.float32)
    return acts


def permutable_feeder(net, name):
    """The conv whose output channels can be permuted to reorder the input of ``name``.

    Permutation passes through channel-wise max-pools; it stops at the network input, at a
    residual add or average pool, at a flatten, and at any tensor that another layer also
    reads (both readers would see the new order). Returns ``None`` where it is impossible.
    """
    layer = net[name]
    if layer.op != "conv" or layer.in_shape != net.shape_of(layer.inputs[0]):
        return None
    current = layer
    while True:
        src = current.inputs[0]
        if src == "input" or [c.name for c in net.consumers(src)] != [current.name]:
            return None
        feeder = net[src]
        if feeder.op == "conv":
            return feeder
        if feeder.op != "maxpool":
            return None
        current = feeder


def permute_input_channels(net, name, perm):
    """Store the input channels of conv ``name`` in order ``perm`` (stored j <- old j).

    The feeding conv's output channels (weights, bias, mask) are permuted to match, so the
    network computes the same function. Raises ``ValueError`` if no feeder can take it.
    """
    layer = net[name]
    feeder = permutable_feeder(net, name)
    if feeder is None:
        raise ValueError(f"the input channels of {name!r} cannot be permuted")
    perm = np.asarray(perm)
    feeder.weight, feeder.bias = feeder.weight[perm], feeder.bias[perm]
    if feeder.mask is not None:
        feeder.mask = feeder.mask[perm]
    if feeder.w_scale is not None:
        feeder.w_scale = feeder.w_scale[perm]
    layer.weight = layer.weight[:, perm]
    if layer.mask is not None:
        layer.mask = layer.mask[:, perm]
    old = np.arange(len(perm)) if layer.permutation is None else layer.permutation
    layer.permutation = old[perm]
