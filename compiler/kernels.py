"""Vectorized array kernels shared by the float reference and the bit-exact golden model.

Integer convolutions run through float64 BLAS: every product of two int8 values is below
2**14 and a reduction would need more than 2**39 terms to leave the range where float64
represents integers exactly, so the result is exact and much faster than an int64 matmul.
"""

import numpy as np


def out_size(size, kernel, stride, pad):
    """Output length of a convolution or pooling window along one axis."""
    return (size + 2 * pad - kernel) // stride + 1


def im2col(x, kernel, stride, pad, fill=0):
    """Patches of ``x[C, H, W]`` as ``[C*k*k, Ho*Wo]``, rows ordered (c, ky, kx)."""
    c = x.shape[0]
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(1, 2))
    win = win[:, ::stride, ::stride]                       # [C, Ho, Wo, k, k]
    ho, wo = win.shape[1], win.shape[2]
    return win.transpose(0, 3, 4, 1, 2).reshape(c * kernel * kernel, ho * wo), (ho, wo)


def conv(x, weight, stride, pad):
    """``sum_i,ky,kx weight[o,i,ky,kx] * x[i, y*s+ky-p, x*s+kx-p]`` in ``x``'s float dtype."""
    co, ci, k, _ = weight.shape
    cols, (ho, wo) = im2col(x, k, stride, pad)
    return (weight.reshape(co, ci * k * k).astype(cols.dtype) @ cols).reshape(co, ho, wo)


def conv_int(x, weight, stride, pad):
    """Exact int64 convolution of int8 activations with int8 weights (see module note)."""
    acc = conv(x.astype(np.float64), weight.astype(np.float64), stride, pad)
    return np.rint(acc).astype(np.int64)


def maxpool(x, kernel, stride, pad):
    """Window maximum of ``x[C, H, W]``; padded positions never win."""
    if np.issubdtype(x.dtype, np.integer):
        fill = np.iinfo(x.dtype).min
    else:
        fill = -np.inf
    c = x.shape[0]
    cols, (ho, wo) = im2col(x, kernel, stride, pad, fill=fill)
    return cols.reshape(c, kernel * kernel, ho * wo).max(axis=1).reshape(c, ho, wo)
