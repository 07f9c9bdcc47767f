"""Training small CNNs in numpy, and how the weights of the built-in ``digits`` are made.

:func:`train` fits a :class:`compiler.graph.Network` whose layers form a chain of
convolutions (any kernel, stride and padding, with fused ReLU and max-pool), max-pools and
fully connected layers: mini-batch Adam on the softmax cross-entropy of the last layer's
outputs, through a backward pass written for exactly these ops. With ``masks_fixed`` each
layer's PPS ``mask`` stays applied, so a pruned network is fine-tuned without reviving
pruned taps. Inference (:func:`evaluate`) is :func:`compiler.graph.forward`.

:func:`main` trains ``demo8`` on scikit-learn's 8x8 handwritten digits
(:mod:`compiler.digits`), prunes it to PPS, fine-tunes it and writes
``compiler/data/digits8.npz`` (``docs/accuracy.md``).
"""

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import digits, golden, graph, images, kernels, models, pipeline, pps
from .errors import SPSError
from .fileio import atomic_write, make_parents, save_npy

# How digits8.npz is made (``python -m compiler.train``); see docs/accuracy.md.
EPOCHS, LR, BATCH = 40, 0.01, 32
FINETUNE_EPOCHS, FINETUNE_LR = 40, 0.003
WEIGHT_DECAY = 0.05
SHIPPED = {"keep": 4, "patterns": 4, "period": 8, "seed": 0}

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


# --- batched forward and backward -------------------------------------------------------------

def _im2col(x, kernel, stride, pad, fill=0):
    """:func:`compiler.kernels.im2col` of a batch ``x[N, C, H, W]``: ``[N, C*k*k, Ho*Wo]``."""
    n, c, h, w = x.shape
    cols, (ho, wo) = kernels.im2col(x.reshape(n * c, h, w), kernel, stride, pad, fill)
    return cols.reshape(n, c * kernel * kernel, ho * wo), (ho, wo)


def _col2im(cols, shape, kernel, stride, pad):
    """The adjoint of :func:`_im2col`: add columns ``[N, C*k*k, Ho*Wo]`` back into ``shape``."""
    n, c, h, w = shape
    ho, wo = kernels.out_size(h, kernel, stride, pad), kernels.out_size(w, kernel, stride, pad)
    cols = cols.reshape(n, c, kernel, kernel, ho, wo)
    out = np.zeros((n, c, h + 2 * pad, w + 2 * pad), cols.dtype)
    for ky in range(kernel):
        for kx in range(kernel):
            out[:, :, ky:ky + stride * (ho - 1) + 1:stride,
                kx:kx + stride * (wo - 1) + 1:stride] += cols[:, :, ky, kx]
    return out[:, :, pad:pad + h, pad:pad + w]


def _pool_forward(x, pool):
    """Max-pool of ``x[N, C, H, W]`` (padding never wins) and the arg-max for the backward."""
    k, s, p = pool["k"], pool["s"], pool["p"]
    n, c = x.shape[:2]
    cols, (ho, wo) = _im2col(x, k, s, p, fill=-np.inf)
    cols = cols.reshape(n, c, k * k, ho * wo)
    arg = cols.argmax(axis=2)[:, :, None]
    y = np.take_along_axis(cols, arg, axis=2)
    return y.reshape(n, c, ho, wo), (x.shape, arg)


def _pool_backward(dy, cache, pool):
    """Route each output gradient to the window position that won the forward max."""
    shape, arg = cache
    n, c = shape[:2]
    k = pool["k"]
    dcols = np.zeros((n, c, k * k, arg.shape[-1]), dy.dtype)
    np.put_along_axis(dcols, arg, dy.reshape(n, c, 1, -1), axis=2)
    return _col2im(dcols.reshape(n, c * k * k, -1), shape, k, pool["s"], pool["p"])


def _pool_of(layer):
    return {"k": layer.kernel, "s": layer.stride, "p": layer.pad}


def _forward(net, params, x):
    """Logits ``[N, classes]`` of a batch and the caches :func:`_backward` needs."""
    caches, a = [], x
    for layer in net.layers:
        a = a.reshape(len(x), *layer.in_shape)
        if layer.op == "conv":
            w, b = params[layer.name]
            cols, (ho, wo) = _im2col(a, layer.kernel, layer.stride, layer.pad)
            a = (w.reshape(w.shape[0], -1) @ cols + b[:, None]).reshape(len(x), -1, ho, wo)
            active = a > 0 if layer.relu else None
            if layer.relu:
                a = a * active
            pooled = None
            if layer.pool:
                a, pooled = _pool_forward(a, layer.pool)
            caches.append((cols, active, pooled))
        else:
            a, pooled = _pool_forward(a, _pool_of(layer))
            caches.append(pooled)
    return a.reshape(len(x), -1), caches


def _backward(net, params, caches, dlogits):
    """Gradients ``{layer: (dW, db)}`` of the loss whose logit gradient is ``dlogits``."""
    grads = {}
    d = dlogits.reshape(len(dlogits), *net.output.out_shape)
    for i in range(len(net.layers) - 1, -1, -1):
        layer, cache = net.layers[i], caches[i]
        in_shape = (len(d), *layer.in_shape)
        if layer.op == "conv":
            cols, active, pooled = cache
            if layer.pool:
                d = _pool_backward(d, pooled, layer.pool)
            if active is not None:
                d = d * active
            w = params[layer.name][0]
            d = d.reshape(len(d), w.shape[0], -1)                     # [N, Co, Ho*Wo]
            grads[layer.name] = (np.tensordot(d, cols, axes=([0, 2], [0, 2])).reshape(w.shape),
                                 d.sum(axis=(0, 2)))
            if i == 0:
                break
            d = _col2im(w.reshape(w.shape[0], -1).T @ d, in_shape, layer.kernel,
                        layer.stride, layer.pad)
        else:
            d = _pool_backward(d, cache, _pool_of(layer))
        d = d.reshape(len(d), *net.shape_of(layer.inputs[0]))
    return grads


def _softmax_xent(logits, y):
    """Mean softmax cross-entropy of ``logits[N, classes]`` and its gradient."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    d = np.exp(logp)
    d[rows, y] -= 1
    return float(-logp[rows, y].mean()), d / len(y)


def _check_trainable(net):
    """Raise :class:`SPSError` unless ``net`` is a chain of conv/FC and max-pool layers."""
    graph.validate(net)
    previous = "input"
    for layer in net.layers:
        where = f"{net.name}: layer {layer.name!r}"
        if layer.op not in ("conv", "maxpool"):
            raise SPSError(f"{where}: the trainer handles conv, fc and maxpool layers, "
                           f"not {layer.op!r}")
        if list(layer.inputs) != [previous]:
            raise SPSError(f"{where}: the trainer handles chains only; it reads "
                           f"{layer.inputs}, expected [{previous!r}]")
        previous = layer.name


def _check_data(net, x, y):
    """``x`` float ``[N, C, H, W]`` of the network's input, ``y`` labels of its outputs."""
    classes = int(np.prod(net.output.out_shape))
    shape = tuple(net.input_shape)
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.shape[1:] != shape:
        got = f"{x.dtype} {list(x.shape)}" if isinstance(x, np.ndarray) else type(x).__name__
        raise SPSError(f"{net.name}: inputs must be float [N, {', '.join(map(str, shape))}], "
                       f"not {got}")
    if not np.all(np.isfinite(x)):
        raise SPSError(f"{net.name}: inputs hold NaN or Inf values")
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or y.shape != (len(x),) or not len(y) or (
            y.min() < 0 or y.max() >= classes):
        raise SPSError(f"{net.name}: labels must be {len(x)} integers in [0, {classes}), "
                       f"not {y.dtype} {list(y.shape)}")
    return y.astype(np.int64)


def _params(net, masks_fixed, dtype):
    return {layer.name: ((layer.pruned_weight() if masks_fixed else layer.weight).astype(dtype),
                         layer.bias.astype(dtype)) for layer in net.convs()}


def loss_and_grads(net, x, y, *, masks_fixed=False, dtype=np.float64):
    """Mean cross-entropy of ``net`` on a batch and its gradients ``{layer: (dW, db)}``.

    Computed in ``dtype`` (float64 for gradient checks); with ``masks_fixed`` the pruned
    weights run and ``dW`` is zero at pruned taps. The network is not modified.
    """
    _check_trainable(net)
    y = _check_data(net, x, y)
    params = _params(net, masks_fixed, dtype)
    logits, caches = _forward(net, params, x.astype(dtype))
    loss, dlogits = _softmax_xent(logits, y)
    grads = _backward(net, params, caches, dlogits)
    if masks_fixed:
        grads = {layer.name: (grads[layer.name][0] * layer.mask if layer.mask is not None
                              else grads[layer.name][0], grads[layer.name][1])
                 for layer in net.convs()}
    return loss, grads


def logits(net, x, *, pruned=True):
    """Float logits ``[N, classes]`` of a batch through the training forward pass."""
    _check_trainable(net)
    return _forward(net, _params(net, pruned, np.float32), x.astype(np.float32))[0]


# --- training ---------------------------------------------------------------------------------

def train(net, x, y, *, epochs, lr, batch, seed, masks_fixed=False, weight_decay=0.0,
          augment=None, val=None, progress=None):
    """Train ``net`` in place on ``x[N, C, H, W]`` (float) and labels ``y[N]``; return history.

    Mini-batch Adam (float32) on the softmax cross-entropy, the learning rate ``lr`` decayed
    to zero by a cosine over all steps, decoupled weight decay ``weight_decay``, batches
    drawn by a permutation seeded with ``seed`` each epoch: the same arguments give the same
    weights. With ``masks_fixed`` every conv with a ``mask`` starts from its pruned weights
    and its gradients and weights are multiplied by the mask after each step, so pruned taps
    stay exactly zero; otherwise every weight trains and masks are ignored.
    ``augment(x_batch, rng)``, if given, returns a modified copy of each batch (drawn from
    the same seeded generator).

    Returns one dict per epoch: ``epoch``, ``loss`` (mean over the epoch's batches),
    ``train_accuracy`` (on those batches) and, given ``val = (x, y)``, ``val_accuracy``
    (:func:`evaluate`). ``progress(row)`` is called after each epoch.
    """
    _check_trainable(net)
    y = _check_data(net, x, y)
    for name, value, low in (("epochs", epochs, 1), ("batch", batch, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise SPSError(f"training option {name} must be an integer >= {low}, not {value!r}")
    for name, value in (("lr", lr), ("weight_decay", weight_decay)):
        if (isinstance(value, bool) or not isinstance(value, (int, float, np.floating))
                or not math.isfinite(value) or value < 0):
            raise SPSError(f"training option {name} must be a finite number >= 0, not {value!r}")
    x = x.astype(np.float32)
    masks = {}
    for layer in net.convs():
        # Own float32 copies the optimizer updates in place; the layer sees every step.
        layer.weight = np.array(layer.pruned_weight() if masks_fixed else layer.weight,
                                dtype=np.float32)
        layer.bias = np.array(layer.bias, dtype=np.float32)
        if masks_fixed and layer.mask is not None:
            masks[layer.name] = layer.mask.astype(np.float32)
    params = {layer.name: (layer.weight, layer.bias) for layer in net.convs()}
    moments = {name: [(np.zeros_like(p), np.zeros_like(p)) for p in pair]
               for name, pair in params.items()}
    (beta1, beta2), rng = ADAM_BETAS, np.random.default_rng(seed)
    steps, step, history = epochs * -(-len(x) // batch), 0, []
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        total_loss = correct = 0.0
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            xb = x[idx] if augment is None else augment(x[idx], rng).astype(np.float32)
            out, caches = _forward(net, params, xb)
            loss, dlogits = _softmax_xent(out, y[idx])
            grads = _backward(net, params, caches, dlogits)
            total_loss += loss * len(idx)
            correct += int(np.sum(out.argmax(axis=1) == y[idx]))
            rate = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            step += 1
            c1, c2 = 1 - beta1 ** step, 1 - beta2 ** step
            for name, pair in params.items():
                mask = masks.get(name)
                for j, (p, g) in enumerate(zip(pair, grads[name])):
                    if j == 0 and mask is not None:
                        g = g * mask
                    m, v = moments[name][j]
                    m *= beta1
                    m += (1 - beta1) * g
                    v *= beta2
                    v += (1 - beta2) * g * g
                    if j == 0 and weight_decay:
                        p *= np.float32(1 - rate * weight_decay)
                    p -= np.float32(rate) * (m / c1) / (np.sqrt(v / c2) + ADAM_EPS)
                    if j == 0 and mask is not None:
                        p *= mask
        row = {"epoch": epoch + 1, "loss": total_loss / len(x),
               "train_accuracy": correct / len(x)}
        if val is not None:
            row["val_accuracy"] = evaluate(net, *val)
        history.append(row)
        if progress is not None:
            progress(row)
    return history


def evaluate(net, x, y, *, pruned=True):
    """Top-1 accuracy of the float network (:func:`compiler.graph.forward`, masks applied
    unless ``pruned`` is false) on ``x[N, C, H, W]`` with labels ``y``."""
    y = _check_data(net, x, y)
    out = net.output.name
    predictions = [int(np.argmax(graph.forward(net, xi, pruned=pruned)[out])) for xi in x]
    return float(np.mean(np.array(predictions) == y))


# --- the trained demo8 ----------------------------------------------------------------------------

def shift_images(x, rng, max_shift=1):
    """Each image of ``x[N, C, H, W]`` moved by a random whole-pixel offset in
    ``[-max_shift, max_shift]`` along each axis, zeros shifted in (training augmentation)."""
    n, _, h, w = x.shape
    m = max_shift
    padded = np.pad(x, ((0, 0), (0, 0), (m, m), (m, m)))
    dy, dx = rng.integers(0, 2 * m + 1, size=(2, n))
    rows = dy[:, None] + np.arange(h)                                   # [N, H]
    cols = dx[:, None] + np.arange(w)                                   # [N, W]
    return padded[np.arange(n)[:, None, None, None], np.arange(x.shape[1])[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def train_dense(*, seed=0, epochs=EPOCHS, lr=LR, batch=BATCH, progress=None):
    """``demo8`` (He-normal weights seeded with ``seed``) trained on the digits training split."""
    net = models.demo(seed, size=8)
    x, y = digits.load("train")
    history = train(net, x, y, epochs=epochs, lr=lr, batch=batch, seed=seed,
                    weight_decay=WEIGHT_DECAY, augment=shift_images, progress=progress)
    return net, history


def prune_and_finetune(net, *, keep, patterns, period, seed=0, epochs=FINETUNE_EPOCHS,
                       lr=FINETUNE_LR, batch=BATCH, progress=None):
    """A pruned copy of ``net`` (:func:`compiler.pps.prune_network`, channels permuted), and
    the same fine-tuned with masks fixed: ``(pruned, finetuned)``. No fine-tuning at keep 9."""
    pruned = copy.deepcopy(net)
    pps.prune_network(pruned, keep=keep, patterns=patterns, period=period, permute=True,
                      seed=seed)
    tuned = copy.deepcopy(pruned)
    if keep < 9 and epochs:
        x, y = digits.load("train")
        train(tuned, x, y, epochs=epochs, lr=lr, batch=batch, seed=seed, masks_fixed=True,
              weight_decay=WEIGHT_DECAY, augment=shift_images, progress=progress)
    return pruned, tuned


def network_weights(net):
    """``{"<layer>.weight", "<layer>.bias"}`` float32 of every conv, pruned taps zero, in
    stored channel order (a relabelling of channels: the function is unchanged)."""
    out = {}
    for layer in net.convs():
        out[f"{layer.name}.weight"] = layer.pruned_weight().astype(np.float32)
        out[f"{layer.name}.bias"] = np.asarray(layer.bias, dtype=np.float32)
    return out


def save_weights(path, weights):
    """Write ``weights`` to ``path`` as a compressed ``.npz``, atomically."""
    atomic_write(path, lambda f: np.savez_compressed(f, **weights))


def compile_weights(weights, *, keep, patterns=4, period=8, calib=None, seed=0):
    """Compile ``demo8`` with ``weights`` as ``sps compile demo8 --weights`` does, written
    with :func:`compiler.images.write` and read back with :func:`compiler.images.load`.

    ``calib`` defaults to :func:`compiler.digits.calibration_images`.
    """
    net = models.builtin("demo8", weights=weights)
    calib = digits.calibration_images() if calib is None else calib
    model, _ = pipeline.compile_network(net, keep=keep, patterns=patterns, period=period,
                                        permute=True, calib=calib, seed=seed)
    with tempfile.TemporaryDirectory(prefix="sps-digits-") as tmp:
        written = images.write(model, Path(tmp) / "model")
        return images.load(written.path)


def quantize_input(model, x):
    """Float inputs ``x[N, C, H, W]`` as the int8 the compiled model reads (its input scale)."""
    scale = model.manifest["input"]["scale"]
    return np.clip(np.rint(np.asarray(x, np.float64) / scale), -128, 127).astype(np.int8)


def evaluate_compiled(model, x, y):
    """Top-1 accuracy of a compiled model's bit-exact golden inference on float inputs
    ``x[N, C, H, W]``, quantized with the manifest's input scale."""
    xq = quantize_input(model, x)
    predictions = [int(np.argmax(golden.infer(model, xi))) for xi in xq]
    return float(np.mean(np.array(predictions) == np.asarray(y)))


def accuracy_row(dense, *, keep, patterns=4, period=8, seed=0, finetune_epochs=FINETUNE_EPOCHS,
                 calib=None, progress=None):
    """Test accuracies of one PPS setting, starting from the trained dense ``demo8``.

    Keys: ``float_dense``, ``float_pruned`` (no fine-tuning), ``float_finetuned``,
    ``int8_pruned`` and ``int8_finetuned`` (compiled models through the golden model; at
    keep 9 the dense network is compiled and nothing is fine-tuned) and ``tuned`` (the
    fine-tuned network).
    """
    x, y = digits.load("test")
    pruned, tuned = prune_and_finetune(dense, keep=keep, patterns=patterns, period=period,
                                       seed=seed, epochs=finetune_epochs, progress=progress)
    int8_pruned = evaluate_compiled(
        compile_weights(network_weights(pruned), keep=keep, patterns=patterns, period=period,
                        calib=calib, seed=seed), x, y)
    row = {"keep": keep, "patterns": patterns, "period": period,
           "float_dense": evaluate(dense, x, y, pruned=False),
           "float_pruned": evaluate(pruned, x, y), "int8_pruned": int8_pruned,
           "float_finetuned": None, "int8_finetuned": None, "tuned": tuned}
    if keep < 9 and finetune_epochs:
        row["float_finetuned"] = evaluate(tuned, x, y)
        row["int8_finetuned"] = evaluate_compiled(
            compile_weights(network_weights(tuned), keep=keep, patterns=patterns,
                            period=period, calib=calib, seed=seed), x, y)
    return row


def format_rows(rows):
    """A Markdown table of :func:`accuracy_row` results."""
    def pct(v):
        return "-" if v is None else f"{100 * v:.2f} %"
    header = ("| keep | float dense | float pruned | float pruned + fine-tune | int8 pruned "
              "| int8 pruned + fine-tune |")
    lines = [header, "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['keep']} | {pct(r['float_dense'])} | {pct(r['float_pruned'])} | "
                     f"{pct(r['float_finetuned'])} | {pct(r['int8_pruned'])} | "
                     f"{pct(r['int8_finetuned'])} |")
    return "\n".join(lines)


# --- command line -----------------------------------------------------------------------------

def add_arguments(parser):
    """The options of ``python -m compiler.train`` (for wiring into ``sps``)."""
    parser.add_argument("-o", "--output", metavar="FILE.npz",
                        help="write the pruned, fine-tuned weights (compiler/data/digits8.npz)")
    parser.add_argument("--dense-output", metavar="FILE.npz",
                        help="also write the dense trained weights (digits8_dense.npz)")
    parser.add_argument("--calib-output", metavar="FILE.npy",
                        help="only write the calibration images (for sps compile --calib)")
    parser.add_argument("--keep", type=int, default=SHIPPED["keep"],
                        help="taps kept per 3x3 kernel of the written weights (4)")
    parser.add_argument("--patterns", type=int, default=SHIPPED["patterns"], metavar="K",
                        help="patterns per layer library (4)")
    parser.add_argument("--period", type=int, default=SHIPPED["period"], metavar="P",
                        help="assignment period (8)")
    parser.add_argument("--seed", type=int, default=SHIPPED["seed"],
                        help="seed of initial weights, batches and pruning (0)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"dense epochs ({EPOCHS})")
    parser.add_argument("--finetune-epochs", type=int, default=FINETUNE_EPOCHS,
                        help=f"fine-tuning epochs with masks fixed ({FINETUNE_EPOCHS})")
    parser.add_argument("--table", metavar="KEEPS",
                        help="also measure these keep values, e.g. 9,3,4,5")
    parser.add_argument("--evaluate", metavar="OUT",
                        help="only print the int8 test accuracy of compiled model OUT")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per epoch")
    return parser


def _epoch_printer(what, start):
    def show(row):
        print(f"sps: {what} epoch {row['epoch']} loss {row['loss']:.4f} train "
              f"{100 * row['train_accuracy']:.2f} % ({time.monotonic() - start:.1f} s)",
              file=sys.stderr, flush=True)
    return show


def run(args):
    """Carry out parsed :func:`add_arguments` options; raises :class:`SPSError`."""
    if args.evaluate:
        x, y = digits.load("test")
        accuracy = evaluate_compiled(images.load(args.evaluate), x, y)
        print(json.dumps({"model": args.evaluate, "accuracy": accuracy}) if args.json
              else f"{args.evaluate}: int8 test accuracy {100 * accuracy:.2f} % ({len(y)} images)")
        return
    if args.calib_output:
        save_npy(args.calib_output, digits.calibration_images())
        return
    try:
        keeps = [int(k) for k in args.table.split(",")] if args.table else []
    except ValueError:
        raise SPSError(f"--table must list keep values like 9,3,4,5, not {args.table!r}") \
            from None
    for path in (args.output, args.dense_output):
        if path:
            make_parents(path)
    start = time.monotonic()
    dense, _ = train_dense(seed=args.seed, epochs=args.epochs,
                           progress=_epoch_printer("dense", start) if args.verbose else None)
    if args.dense_output:
        save_weights(args.dense_output, network_weights(dense))
    if args.output or not keeps:
        keeps = keeps + [args.keep]
    rows = []
    for keep in dict.fromkeys(keeps):
        row = accuracy_row(dense, keep=keep, patterns=args.patterns, period=args.period,
                           seed=args.seed, finetune_epochs=args.finetune_epochs,
                           progress=(_epoch_printer(f"keep {keep} fine-tune", start)
                                     if args.verbose else None))
        if keep == args.keep and args.output:
            save_weights(args.output, network_weights(row["tuned"]))
        del row["tuned"]
        rows.append(row)
        print(f"sps: keep {keep} measured ({time.monotonic() - start:.1f} s)", file=sys.stderr,
              flush=True)
    print(json.dumps(rows, indent=1) if args.json else format_rows(rows))


def main(argv=None):
    """``python -m compiler.train``: regenerate the digits weights and accuracy figures."""
    parser = add_arguments(argparse.ArgumentParser(
        prog="python -m compiler.train",
        description="Train demo8 on the 8x8 digits, prune it to PPS, fine-tune it, and "
                    "measure float and int8 test accuracy."))
    args = parser.parse_args(argv)
    try:
        run(args)
    except SPSError as e:
        print(f"sps: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
