"""The vectorized golden model against a plain-loop reading of ``docs/spec.md`` section 3."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import golden, images, kernels


def loop_requant(acc, mult, shift, relu):
    v = (int(acc) * int(mult) + (1 << (int(shift) - 1))) >> int(shift)
    return min(max(v, 0 if relu else -128), 127)


def loop_conv(layer, weight, x):
    """``docs/spec.md`` section 3.3 conv, one output at a time, Python integers only."""
    co, ci, k, _ = weight.shape
    s, p = layer["stride"], layer["pad"]
    x = x.reshape(layer["in_shape"])
    _, h, w = x.shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    mask = images.kept_mask(layer)
    out = np.zeros((co, ho, wo), np.int8)
    for o in range(co):
        for y in range(ho):
            for xx in range(wo):
                acc = int(layer["bias"][o])
                for i in range(ci):
                    for t in range(k * k):
                        ky, kx = divmod(t, k)
                        if not mask[o, i, ky, kx]:
                            continue
                        yy, xi = y * s + ky - p, xx * s + kx - p
                        if 0 <= yy < h and 0 <= xi < w:
                            acc += int(weight[o, i, ky, kx]) * int(x[i, yy, xi])
                out[o, y, xx] = loop_requant(acc, layer["mult"][o], layer["shift"][o],
                                             layer["relu"])
    pool = layer.get("pool")
    if pool:
        out = loop_maxpool(out, pool["k"], pool["s"], pool["p"])
    return out


def loop_maxpool(x, k, s, p):
    c, h, w = x.shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((c, ho, wo), x.dtype)
    for ch in range(c):
        for y in range(ho):
            for xx in range(wo):
                vals = [x[ch, y * s + dy - p, xx * s + dx - p]
                        for dy in range(k) for dx in range(k)
                        if 0 <= y * s + dy - p < h and 0 <= xx * s + dx - p < w]
                out[ch, y, xx] = max(vals)
    return out


def random_conv(rng, ci, co, h, w, k, stride, pad, keep, period, relu, pool, fc=False):
    """A random manifest conv layer (PPS when ``keep < k*k``) and its int8 weights."""
    if keep < k * k:
        n_patterns = int(rng.integers(1, 4))
        library = []
        while len(library) < n_patterns:
            taps = rng.choice(k * k, keep, replace=False)
            mask = int(sum(1 << int(t) for t in taps))
            if mask not in library:
                library.append(mask)
        library.sort()
        assignment = rng.integers(0, n_patterns, period).tolist()
    else:
        library, assignment, period = [2 ** (k * k) - 1], [0], 1
    in_shape = (ci * h * w, 1, 1) if fc else (ci, h, w)
    cin = in_shape[0]
    ho = kernels.out_size(in_shape[1], k, stride, pad)
    wo = kernels.out_size(in_shape[2], k, stride, pad)
    if pool:
        ho, wo = kernels.out_size(ho, 2, 2, 0), kernels.out_size(wo, 2, 2, 0)
    layer = {"name": "l", "op": "conv", "inputs": ["input"], "in_shape": list(in_shape),
             "out_shape": [co, ho, wo], "kernel": k, "stride": stride, "pad": pad,
             "keep": keep, "period": period, "library": library, "assignment": assignment,
             "bias": rng.integers(-2**20, 2**20, co).tolist(),
             "mult": rng.integers(1, 2**15, co).tolist(),
             "shift": rng.integers(1, 24, co).tolist(), "relu": relu,
             "pool": {"k": 2, "s": 2, "p": 0} if pool else None}
    weight = rng.integers(-128, 128, (co, cin, k, k)).astype(np.int8)
    weight[~images.kept_mask(layer)] = 0
    return layer, weight


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ci=st.integers(1, 11), co=st.integers(1, 6),
       h=st.integers(1, 9), w=st.integers(1, 9), kind=st.sampled_from(
           ["pps3", "dense3", "pps3s2", "dense1", "dense1s2", "dense7s2"]),
       relu=st.booleans(), pool=st.booleans())
def test_conv_matches_loop(seed, ci, co, h, w, kind, relu, pool):
    rng = np.random.default_rng(seed)
    k = {"pps3": 3, "dense3": 3, "pps3s2": 3, "dense1": 1, "dense1s2": 1, "dense7s2": 7}[kind]
    stride = 2 if kind.endswith("s2") else 1
    keep = int(rng.integers(1, 9)) if kind.startswith("pps") else k * k
    pad = k // 2
    ho = kernels.out_size(h, k, stride, pad)
    wo = kernels.out_size(w, k, stride, pad)
    pool = pool and ho >= 2 and wo >= 2
    layer, weight = random_conv(rng, ci, co, h, w, k, stride, pad, keep,
                                int(rng.integers(1, 6)), relu, pool)
    x = rng.integers(-128, 128, (ci, h, w)).astype(np.int8)
    np.testing.assert_array_equal(golden.run_layer(layer, weight, [x]),
                                  loop_conv(layer, weight, x))


def test_fc_reads_input_flattened():
    rng = np.random.default_rng(1)
    layer, weight = random_conv(rng, 3, 5, 3, 2, 1, 1, 0, 1, 1, False, False, fc=True)
    x = rng.integers(-128, 128, (3, 3, 2)).astype(np.int8)
    np.testing.assert_array_equal(golden.run_layer(layer, weight, [x]),
                                  loop_conv(layer, weight, x))


def test_saturation_extremes():
    """Largest accumulations: all weights and inputs at the int8 extremes."""
    layer, weight = random_conv(np.random.default_rng(2), 64, 4, 5, 5, 3, 1, 1, 9, 1, False,
                                False)
    weight[:] = -128
    layer["mult"] = [2**15 - 1] * 4
    layer["shift"] = [1, 8, 20, 30]
    for value in (-128, 127):
        x = np.full((64, 5, 5), value, np.int8)
        np.testing.assert_array_equal(golden.run_layer(layer, weight, [x]),
                                      loop_conv(layer, weight, x))


@pytest.mark.parametrize("shape,k,s,p", [((3, 7, 5), 2, 2, 0), ((2, 9, 9), 3, 2, 1),
                                         ((1, 4, 4), 3, 1, 1)])
def test_maxpool_matches_loop(shape, k, s, p):
    x = np.random.default_rng(3).integers(-128, 128, shape).astype(np.int8)
    layer = {"name": "p", "op": "maxpool", "kernel": k, "stride": s, "pad": p,
             "out_shape": list(loop_maxpool(x, k, s, p).shape)}
    np.testing.assert_array_equal(golden.run_layer(layer, None, [x]), loop_maxpool(x, k, s, p))


@pytest.mark.parametrize("relu", [False, True])
def test_add_and_avgpool_match_loop(relu):
    rng = np.random.default_rng(4)
    a, b = (rng.integers(-128, 128, (3, 5, 7)).astype(np.int8) for _ in range(2))
    add = {"name": "a", "op": "add", "mult_a": 23001, "mult_b": 17777, "shift": 15,
           "relu": relu, "out_shape": [3, 5, 7]}
    want = np.vectorize(lambda u, v: min(max((int(u) * 23001 + int(v) * 17777 + (1 << 14))
                                             >> 15, 0 if relu else -128), 127))(a, b)
    np.testing.assert_array_equal(golden.run_layer(add, None, [a, b]), want)
    avg = {"name": "g", "op": "avgpool", "mult": 18725, "shift": 19, "relu": relu,
           "out_shape": [3, 1, 1]}
    want = [loop_requant(int(a[c].astype(np.int64).sum()), 18725, 19, relu) for c in range(3)]
    np.testing.assert_array_equal(golden.run_layer(avg, None, [a]).ravel(), want)
