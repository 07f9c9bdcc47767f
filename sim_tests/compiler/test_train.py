"""The numpy trainer (backward pass against finite differences, masks, determinism), the
digits data set and the shipped, trained ``digits8.npz`` through the compiled int8 model."""

import copy

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from compiler import digits, graph, images, models, pps, train
from compiler.errors import SPSError
from compiler.models import Builder

# Measured and documented in docs/accuracy.md (seed 0); the margin is one or two images.
SHIPPED_INT8_ACCURACY = 0.9750
DENSE_INT8_ACCURACY = 0.9861
MARGIN = 0.006


def tiny_net(seed=0):
    """Every op the trainer handles: padded conv with a padded fused pool, a standalone
    overlapping max-pool, a strided conv and an FC layer; float64 weights."""
    b = Builder("tiny", (2, 7, 7), seed)
    b.conv("c1", 4, pool={"k": 2, "s": 2, "p": 1})
    b.maxpool("mp", 2, 1)
    b.conv("c2", 3, kernel=3, stride=2, pad=1)
    b.fc("fc", 5, relu=False)
    net = graph.validate(b.net)
    rng = np.random.default_rng(seed + 100)
    for layer in net.convs():
        layer.weight = layer.weight.astype(np.float64)
        layer.bias = rng.standard_normal(layer.bias.shape) * 0.1
    return net


def numeric_grads(net, x, y, masks_fixed=False, eps=1e-6):
    grads = {}
    for layer in net.convs():
        pair = []
        for part in ("weight", "bias"):
            arr = getattr(layer, part)
            g = np.zeros_like(arr)
            for j in range(arr.size):
                old = arr.flat[j]
                arr.flat[j] = old + eps
                up, _ = train.loss_and_grads(net, x, y, masks_fixed=masks_fixed)
                arr.flat[j] = old - eps
                down, _ = train.loss_and_grads(net, x, y, masks_fixed=masks_fixed)
                arr.flat[j] = old
                g.flat[j] = (up - down) / (2 * eps)
            pair.append(g)
        grads[layer.name] = pair
    return grads


def assert_grads_close(analytic, numeric):
    for name, (dw, db) in analytic.items():
        for a, n in ((dw, numeric[name][0]), (db, numeric[name][1])):
            np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-8, err_msg=name)


def test_backward_matches_finite_differences():
    net = tiny_net()
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 2, 7, 7)), np.array([0, 3, 4])
    loss, grads = train.loss_and_grads(net, x, y)
    assert loss > 0
    assert_grads_close(grads, numeric_grads(net, x, y))


def test_backward_with_fixed_mask_matches_finite_differences():
    net = tiny_net(seed=2)
    c2 = net["c2"]
    c2.mask = pps.layer_mask([0b000111000, 0b010010010], [0, 1, 1], 3, 4)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((2, 2, 7, 7)), np.array([1, 2])
    _, grads = train.loss_and_grads(net, x, y, masks_fixed=True)
    assert not grads["c2"][0][~c2.mask].any()
    numeric = numeric_grads(net, x, y, masks_fixed=True)
    assert not numeric["c2"][0][~c2.mask].any()          # pruned taps do not reach the loss
    assert_grads_close(grads, numeric)


@settings(max_examples=25, deadline=None)
@given(c=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6), k=st.integers(1, 3),
       s=st.integers(1, 3), p=st.integers(0, 2), seed=st.integers(0, 1000))
def test_col2im_is_the_adjoint_of_im2col(c, h, w, k, s, p, seed):
    assume(h + 2 * p >= k and w + 2 * p >= k)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, h, w))
    cols, _ = train._im2col(x, k, s, p)
    r = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(np.sum(cols * r), np.sum(x * train._col2im(r, x.shape, k, s, p)))


def test_training_forward_matches_graph_forward():
    net = models.builtin("demo8", seed=4)
    pps.prune_network(net)
    x = np.random.default_rng(0).random((5, 1, 8, 8), np.float32)
    ref = np.stack([graph.forward(net, xi)["fc"].ravel() for xi in x])
    np.testing.assert_allclose(train.logits(net, x), ref, rtol=1e-5, atol=1e-5)


def test_fine_tuning_keeps_pruned_taps_zero():
    net = models.builtin("demo8", seed=1)
    pps.prune_network(net, keep=4, patterns=4, period=8, permute=True)
    before = copy.deepcopy(net)
    x, y = digits.load("train")
    history = train.train(net, x[:96], y[:96], epochs=2, lr=0.01, batch=16, seed=0,
                          masks_fixed=True, weight_decay=0.05, augment=train.shift_images)
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[-1]["loss"] < history[0]["loss"]
    for old, new in zip(before.convs(), net.convs()):
        assert new.weight.dtype == np.float32
        if old.mask is None:
            assert new.mask is None and not np.array_equal(new.weight, old.weight)
            continue
        np.testing.assert_array_equal(new.mask, old.mask)
        assert not new.weight[~new.mask].any()
        assert np.all(new.weight[new.mask] != old.weight[old.mask])


def test_training_is_deterministic_for_a_seed():
    x, y = digits.load("train")
    runs = []
    for seed in (5, 5, 6):
        net = models.demo(0, size=8)
        train.train(net, x[:64], y[:64], epochs=2, lr=0.01, batch=16, seed=seed,
                    augment=train.shift_images)
        runs.append(np.concatenate([layer.weight.ravel() for layer in net.convs()]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_digits_split():
    x, y = digits.load("train")
    xt, yt = digits.load("test")
    assert x.shape == (1437, 1, 8, 8) and xt.shape == (360, 1, 8, 8)
    assert x.dtype == xt.dtype == np.float32 and y.dtype == yt.dtype == np.int64
    assert x.min() == 0 and x.max() == 1 and np.all(x * 16 == np.round(x * 16))
    counts = np.bincount(yt, minlength=10)
    assert counts.sum() == 360 and counts.min() >= 35 and counts.max() <= 37    # stratified
    from sklearn.datasets import load_digits
    every = np.sort(load_digits().images.reshape(1797, -1), axis=0)
    both = np.sort(np.concatenate([x, xt]).reshape(1797, -1) * 16, axis=0)
    np.testing.assert_array_equal(both, every)                   # a partition of the data set
    np.testing.assert_array_equal(digits.load("test")[0], xt)
    with pytest.raises(SPSError, match="split"):
        digits.load("valid")


@pytest.fixture(scope="module")
def shipped_model():
    with np.load(digits.weights_path(), allow_pickle=False) as npz:
        weights = {key: npz[key] for key in npz.files}
    return weights, train.compile_weights(weights, keep=4, patterns=4, period=8)


def test_shipped_weights_recompile_to_their_masks(shipped_model):
    """Compiling the fine-tuned weights re-prunes them to exactly the masks they were
    fine-tuned under: every non-zero weight is kept, nothing is permuted."""
    weights, model = shipped_model
    for layer in model.layers:
        if layer["op"] != "conv":
            continue
        w = weights[f"{layer['name']}.weight"]
        mask = images.kept_mask(layer)
        assert layer["permutation"] is None
        assert not w[~mask].any() and np.all(w[mask] != 0)
        assert layer["pruning"]["retained"] == pytest.approx(1.0)
        assert images.is_pps(layer) == (layer["name"] in ("conv2", "conv3"))


def test_shipped_weights_reach_documented_int8_accuracy(shipped_model):
    _, model = shipped_model
    x, y = digits.load("test")
    assert train.evaluate_compiled(model, x, y) >= SHIPPED_INT8_ACCURACY - MARGIN
    net = models.digits()
    assert net.name == "digits" and train.evaluate(net, x, y) >= SHIPPED_INT8_ACCURACY - MARGIN


def test_shipped_dense_weights_reach_documented_int8_accuracy():
    with np.load(digits.weights_path("digits8_dense.npz"), allow_pickle=False) as npz:
        weights = {key: npz[key] for key in npz.files}
    model = train.compile_weights(weights, keep=9)
    assert not any(images.is_pps(layer) for layer in model.layers if layer["op"] == "conv")
    x, y = digits.load("test")
    assert train.evaluate_compiled(model, x, y) >= DENSE_INT8_ACCURACY - MARGIN


def test_quantize_input_uses_the_manifest_scale(shipped_model):
    _, model = shipped_model
    x = digits.load("test")[0][:4]
    xq = train.quantize_input(model, x)
    scale = model.manifest["input"]["scale"]
    assert xq.dtype == np.int8 and xq.max() == 127                 # calibrated on [0, 1]
    np.testing.assert_allclose(xq * scale, x, atol=scale / 2 + 1e-7)


def test_unsupported_networks_and_bad_data_raise():
    x, y = digits.load("train")
    b = Builder("res", (1, 8, 8), 0)
    b.conv("c1", 4)
    b.conv("c2", 4)
    b.add("sum", "c1", "c2")
    with pytest.raises(SPSError, match=r"'sum'.*conv, fc and maxpool"):
        train.train(b.net, x[:1], y[:1], epochs=1, lr=0.1, batch=1, seed=0)
    b = Builder("branch", (1, 8, 8), 0)
    b.conv("c1", 4)
    b.conv("c2", 4)
    b.conv("c3", 4, src="c1")
    with pytest.raises(SPSError, match=r"'c3'.*chains only"):
        train.loss_and_grads(b.net, x[:1], y[:1])
    demo8 = models.builtin("demo8")
    with pytest.raises(SPSError, match=r"inputs must be float \[N, 1, 8, 8\]"):
        train.train(demo8, x[:, :, :4], y, epochs=1, lr=0.1, batch=1, seed=0)
    with pytest.raises(SPSError, match=r"labels must be 4 integers in \[0, 10\)"):
        train.evaluate(demo8, x[:4], np.array([0, 1, 2, 10]))
    with pytest.raises(SPSError, match="epochs must be an integer >= 1"):
        train.train(demo8, x[:4], y[:4], epochs=0, lr=0.1, batch=1, seed=0)


def test_main_writes_weights_and_evaluates(tmp_path, capsys):
    out = tmp_path / "w.npz"
    assert train.main(["-o", str(out), "--epochs", "1", "--finetune-epochs", "1",
                       "--json"]) == 0
    assert '"keep": 4' in capsys.readouterr().out
    with np.load(out) as npz:
        assert sorted(npz.files) == sorted(f"{c.name}.{p}" for c in models.demo(size=8).convs()
                                           for p in ("weight", "bias"))
        w = npz["conv2.weight"]
    assert (w.reshape(16, 8, 9) != 0).sum(axis=2).max() == 4
    compiled = images.write(train.compile_weights(dict(np.load(out)), keep=4), tmp_path / "m")
    assert train.main(["--evaluate", str(compiled.path)]) == 0
    assert "int8 test accuracy" in capsys.readouterr().out
    assert train.main(["--table", "4,x"]) == 2
    assert "--table" in capsys.readouterr().err
