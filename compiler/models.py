"""Built-in networks with the exact layer shapes of VGG16, ResNet-18/50 and a small demo.

Weights are seeded random (He-normal, small biases) unless trained ones are given as a
``{"<layer>.weight": ..., "<layer>.bias": ...}`` mapping; the layer names follow
torchvision's (``features`` aside), so converted checkpoints line up.
"""

import numpy as np

from . import kernels
from .digits import calibration_images, weights_path
from .errors import SPSError
from .graph import Layer, Network, conv_out_shape, validate

POOL2 = {"k": 2, "s": 2, "p": 0}


class Builder:
    """Appends layers to a :class:`Network`, tracking shapes and drawing seeded weights."""

    def __init__(self, name, input_shape, seed):
        self.net = Network(name, tuple(input_shape))
        self.rng = np.random.default_rng(seed)
        self.last = "input"

    def _add(self, layer):
        self.net.layers.append(layer)
        self.last = layer.name
        return layer.name

    def conv(self, name, co, kernel=3, stride=1, pad=None, relu=True, pool=None, src=None,
             gain=1.0):
        src = src or self.last
        in_shape = self.net.shape_of(src)
        pad = kernel // 2 if pad is None else pad
        ci = in_shape[0]
        std = np.float32(gain * np.sqrt(2.0 / (ci * kernel * kernel)))
        weight = (self.rng.standard_normal((co, ci, kernel, kernel), np.float32) * std)
        bias = self.rng.standard_normal(co, np.float32) * np.float32(0.01)
        return self._add(Layer(name, "conv", [src], tuple(in_shape),
                               conv_out_shape(in_shape, co, kernel, stride, pad, pool),
                               kernel=kernel, stride=stride, pad=pad, relu=relu, pool=pool,
                               weight=weight, bias=bias))

    def fc(self, name, co, relu=True, src=None):
        src = src or self.last
        flat = (int(np.prod(self.net.shape_of(src))), 1, 1)
        std = np.float32(np.sqrt(2.0 / flat[0]))
        weight = self.rng.standard_normal((co, flat[0], 1, 1), np.float32) * std
        bias = self.rng.standard_normal(co, np.float32) * np.float32(0.01)
        return self._add(Layer(name, "conv", [src], flat, (co, 1, 1), kernel=1, relu=relu,
                               weight=weight, bias=bias))

    def maxpool(self, name, kernel, stride, pad=0, src=None):
        src = src or self.last
        c, h, w = self.net.shape_of(src)
        out = (c, kernels.out_size(h, kernel, stride, pad),
               kernels.out_size(w, kernel, stride, pad))
        return self._add(Layer(name, "maxpool", [src], (c, h, w), out, kernel=kernel,
                               stride=stride, pad=pad))

    def add(self, name, a, b, relu=True):
        shape = self.net.shape_of(a)
        return self._add(Layer(name, "add", [a, b], shape, shape, relu=relu))

    def avgpool(self, name, src=None):
        src = src or self.last
        c, h, w = self.net.shape_of(src)
        return self._add(Layer(name, "avgpool", [src], (c, h, w), (c, 1, 1)))


def demo(seed=0, size=16):
    """A 4-layer CNN for a 1-channel ``size x size`` input that fits an iCE40UP5K."""
    b = Builder("demo" if size == 16 else f"demo{size}", (1, size, size), seed)
    b.conv("conv1", 8, pool=POOL2)
    b.conv("conv2", 16, pool=POOL2)
    b.conv("conv3", 16)
    b.fc("fc", 10, relu=False)
    return b.net


def vgg16(seed=0):
    """VGG16 (configuration D) for 3x224x224 ImageNet inputs; pools fused into the convs."""
    b = Builder("vgg16", (3, 224, 224), seed)
    for stage, (width, depth) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        for j in range(depth):
            b.conv(f"conv{stage + 1}_{j + 1}", width, pool=POOL2 if j == depth - 1 else None)
    b.fc("fc6", 4096)
    b.fc("fc7", 4096)
    b.fc("fc8", 1000, relu=False)
    return b.net


def _resnet(name, block, depths, seed):
    b = Builder(name, (3, 224, 224), seed)
    b.conv("conv1", 64, kernel=7, stride=2, pad=3)
    b.maxpool("maxpool", 3, 2, 1)
    width_in = 64
    for stage, depth in enumerate(depths):
        width = 64 << stage
        for j in range(depth):
            stride = 2 if stage > 0 and j == 0 else 1
            width_in = block(b, f"layer{stage + 1}.{j}", width, stride, width_in)
    b.avgpool("avgpool")
    b.fc("fc", 1000, relu=False)
    return b.net


def _basic(b, prefix, width, stride, width_in):
    src = b.last
    b.conv(f"{prefix}.conv1", width, stride=stride, src=src)
    main = b.conv(f"{prefix}.conv2", width, relu=False, gain=0.3)
    short = src
    if stride != 1 or width_in != width:
        short = b.conv(f"{prefix}.downsample", width, kernel=1, stride=stride, relu=False,
                       src=src)
    b.add(f"{prefix}.add", main, short)
    return width


def _bottleneck(b, prefix, width, stride, width_in):
    src = b.last
    b.conv(f"{prefix}.conv1", width, kernel=1, src=src)
    b.conv(f"{prefix}.conv2", width, stride=stride)
    main = b.conv(f"{prefix}.conv3", width * 4, kernel=1, relu=False, gain=0.3)
    short = src
    if stride != 1 or width_in != width * 4:
        short = b.conv(f"{prefix}.downsample", width * 4, kernel=1, stride=stride, relu=False,
                       src=src)
    b.add(f"{prefix}.add", main, short)
    return width * 4


def resnet18(seed=0):
    """ResNet-18 for 3x224x224 ImageNet inputs, BatchNorm folded (identity here)."""
    return _resnet("resnet18", _basic, [2, 2, 2, 2], seed)


def resnet50(seed=0):
    """ResNet-50 (v1.5: stride on the 3x3 conv) for 3x224x224 ImageNet inputs."""
    return _resnet("resnet50", _bottleneck, [3, 4, 6, 3], seed)


def digits(seed=0):
    """``demo8`` with the shipped weights: trained on scikit-learn's 8x8 digits, PPS keep 4,
    fine-tuned (:mod:`compiler.digits`, docs/accuracy.md).

    ``seed`` is accepted for the registry's signature; the weights are trained.
    """
    net = demo(seed, size=8)
    net.name = "digits"
    with np.load(weights_path(), allow_pickle=False) as npz:
        load_weights(net, {key: npz[key] for key in npz.files})
    return validate(net)


def default_calibration(name):
    """Calibration inputs that come with a built-in model, or ``None``."""
    if name == "digits":
        return calibration_images()
    return None


BUILTIN = {
    "demo": demo,
    "digits": digits,
    "demo8": lambda seed=0: demo(seed, size=8),
    "vgg16": vgg16,
    "resnet18": resnet18,
    "resnet50": resnet50,
}


def builtin(name, seed=0, weights=None):
    """The built-in network ``name``; ``weights`` replaces its random weights by name."""
    if name not in BUILTIN:
        raise SPSError(f"unknown model {name!r}: expected an .onnx or .npz file or one of "
                       f"{', '.join(BUILTIN)}")
    net = BUILTIN[name](seed=seed)
    if weights is not None:
        load_weights(net, weights)
    return validate(net)


def load_weights(net, weights):
    """Replace conv weights and biases by ``weights["<layer>.weight"/"<layer>.bias"]``."""
    unknown = set(weights) - {f"{c.name}.{p}" for c in net.convs() for p in ("weight", "bias")}
    if unknown:
        raise SPSError(f"weights for {net.name}: unknown key {sorted(unknown)[0]!r}; keys are "
                       f"'<layer>.weight' and '<layer>.bias' of its conv and fc layers")
    for layer in net.convs():
        for part in ("weight", "bias"):
            key = f"{layer.name}.{part}"
            if key not in weights:
                continue
            old = getattr(layer, part)
            new = np.asarray(weights[key])
            if new.size != old.size or new.dtype.kind != "f":
                raise SPSError(f"weights for {net.name}: {key} must be a float array of shape "
                               f"{list(old.shape)}, not {new.dtype} {list(new.shape)}")
            setattr(layer, part, new.reshape(old.shape).astype(np.float32))
