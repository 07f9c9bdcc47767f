"""Bit counts of one pruned weight layer under SPS and under other sparse weight formats.

Every format stores the same pruned weights. A conv layer ``W[Co, Ci, k, k]`` is viewed as
the matrix ``[Co, Ci*k*k]`` (rows = output channels, columns ordered ``(i, ky, kx)``, the
order of ``weights.hex``); a fully connected layer is the same with ``k = 1``. For every
format a layer costs ``value_bits`` (the stored weights) plus ``index_bits`` (everything
that says where they are) = ``total_bits``:

``dense``   every weight, zeros included, no index.
``csr``     values + a column index per non-zero + ``Co + 1`` row pointers.
``csc``     values + a row index per non-zero + ``Ci*k*k + 1`` column pointers.
``coo``     values + a (row, column) pair per non-zero.
``bitmap``  values + one presence bit per weight.
``rlc``     run-length coding as in EIE / Deep Compression: the tensor is scanned in
            ``weights.hex`` order and every stored value carries a ``run_bits`` field with
            the number of zeros before it. A gap longer than the field can say is bridged
            by filler zeros: a gap of ``g`` zeros costs ``g // 2**run_bits`` fillers, each a
            full entry (value + run field). Fillers are counted as index bits: they only
            say where the next weight is, so ``value_bits`` stays ``nnz * value_bits`` for
            every sparse format. Trailing zeros cost nothing (the layer size is known).
``sps``     the compact weights + the PPS index: ``P * ceil(log2 K)`` bits of assignment
            table plus the ``K`` library masks of ``k*k`` bits. A dense layer has no index;
            a layer with a sparse mask but no PPS library is stored dense (the ``keep = k*k``
            baseline of the same hardware), zeros included.

Field widths follow a *convention* (:data:`CONVENTIONS`); the default ``"minimal"`` gives
each index field ``ceil(log2(dim))`` bits for the dimension it indexes and each pointer
``ceil(log2(nnz + 1))`` bits (it holds 0..nnz), per layer.
"""

import numpy as np

from .errors import SPSError
from .pps import layer_mask

FORMATS = ("dense", "csr", "csc", "coo", "bitmap", "rlc", "sps")
SPARSE_FORMATS = ("csr", "csc", "coo", "bitmap", "rlc")

#: Named field-width conventions. ``index_bits`` / ``pointer_bits`` of ``None`` mean the
#: minimal per-layer width; an int is a fixed, word-aligned field (a software layout):
#: ``int16`` = 16-bit indices with 32-bit pointers, ``int32`` = scipy's int32 everywhere.
#: ``int16`` reproduces the paper's 3.67x as the mean of CSR, CSC and COO (docs/storage.md).
CONVENTIONS = {
    "minimal": {"value_bits": 8, "index_bits": None, "pointer_bits": None, "run_bits": 4},
    "int16": {"value_bits": 8, "index_bits": 16, "pointer_bits": 32, "run_bits": 4},
    "int32": {"value_bits": 8, "index_bits": 32, "pointer_bits": 32, "run_bits": 4},
}

_CHUNK = 1 << 22   # mask elements scanned at a time by the run-length counter


def get_convention(spec="minimal"):
    """The full field-width dict of ``spec``: a name in :data:`CONVENTIONS` or a dict that
    overrides some keys of ``"minimal"``; the result carries its ``"name"``."""
    if isinstance(spec, str):
        if spec not in CONVENTIONS:
            raise SPSError(f"unknown storage convention {spec!r}: expected one of "
                           f"{', '.join(CONVENTIONS)}")
        return {"name": spec, **CONVENTIONS[spec]}
    if not isinstance(spec, dict):
        raise TypeError(f"convention must be a name or a dict, not {type(spec).__name__}")
    unknown = set(spec) - set(CONVENTIONS["minimal"]) - {"name"}
    if unknown:
        raise ValueError(f"unknown convention key {min(unknown)!r}; keys are "
                         f"{', '.join(CONVENTIONS['minimal'])}")
    out = {"name": "custom", **CONVENTIONS["minimal"], **spec}
    for key in ("value_bits", "run_bits"):
        if not isinstance(out[key], int) or out[key] < 1:
            raise ValueError(f"convention {key} must be a positive int, not {out[key]!r}")
    for key in ("index_bits", "pointer_bits"):
        if out[key] is not None and (not isinstance(out[key], int) or out[key] < 1):
            raise ValueError(f"convention {key} must be None (minimal) or a positive int, "
                             f"not {out[key]!r}")
    return out


def field_bits(count):
    """Bits of a field that names one of ``count`` things: ``ceil(log2(count))``, 0 for 1."""
    return max(int(count) - 1, 0).bit_length()


def rlc_fillers(mask, run_bits):
    """Number of filler entries the run-length coding of ``mask`` (C order) needs.

    A gap of ``g`` zeros before a non-zero takes ``g // 2**run_bits`` fillers. The mask is
    scanned in chunks so a 100M-weight layer needs no 100M-element index array.
    """
    flat = np.asarray(mask).reshape(-1)
    total, last = 0, -1
    for start in range(0, flat.size, _CHUNK):
        pos = np.flatnonzero(flat[start:start + _CHUNK])
        if pos.size:
            pos += start
            total += int(((np.diff(pos, prepend=last) - 1) >> run_bits).sum())
            last = int(pos[-1])
    return total


def _check_shape(shape):
    if (not isinstance(shape, tuple) or len(shape) != 4
            or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in shape)
            or shape[2] != shape[3]):
        raise ValueError(f"layer shape must be (Co, Ci, k, k) of positive ints, not {shape!r}")
    return tuple(int(d) for d in shape)


def _check_pps(shape, library, assignment):
    """Validate a PPS library/assignment; ``None`` if it describes a dense layer."""
    if library is None and assignment is None:
        return None
    if library is None or assignment is None:
        raise SPSError("a PPS layer needs both a library and an assignment table")
    k2 = shape[2] * shape[3]
    lib = [int(m) for m in library]
    table = [int(a) for a in assignment]
    if not lib or not all(0 <= m < 1 << k2 for m in lib):
        raise SPSError(f"PPS library must hold 1 or more {k2}-bit masks, not {lib}")
    if not table or not all(0 <= a < len(lib) for a in table):
        raise SPSError(f"PPS assignment must hold 1 or more pattern ids in [0, {len(lib)}), "
                       f"not {table}")
    if all(lib[a] == (1 << k2) - 1 for a in table):
        return None     # keep = k*k: the dense baseline, no index
    return lib, table


def layer_storage(mask_or_shape, *, library=None, assignment=None, convention="minimal"):
    """Storage of one layer in every format of :data:`FORMATS`.

    Parameters
    ----------
    mask_or_shape : bool ndarray ``[Co, Ci, k, k]`` of kept weights, or a shape tuple for a
        dense layer (or a PPS layer whose mask follows from ``library`` and ``assignment``).
    library, assignment : the layer's PPS pattern library (``k*k``-bit int masks) and
        assignment table, or ``None`` for a dense / non-PPS layer. A given mask must keep
        exactly the taps they describe.
    convention : name in :data:`CONVENTIONS` or dict of field widths (see :func:`get_convention`).

    Returns ``{format: {"value_bits", "index_bits", "total_bits"}}`` of Python ints.
    """
    conv = get_convention(convention)
    if isinstance(mask_or_shape, np.ndarray):
        mask = mask_or_shape
        if mask.dtype != np.bool_:
            raise TypeError(f"mask must be a bool array, not {mask.dtype}")
        shape = _check_shape(tuple(mask.shape))
    elif isinstance(mask_or_shape, (tuple, list)):
        mask, shape = None, _check_shape(tuple(mask_or_shape))
    else:
        raise TypeError(f"mask_or_shape must be a bool ndarray or a shape tuple, "
                        f"not {type(mask_or_shape).__name__}")
    pps = _check_pps(shape, library, assignment)
    if pps is not None:
        implied = layer_mask(*pps, shape[0], shape[1], shape[2])
        if mask is None:
            mask = implied
        elif not np.array_equal(mask, implied):
            raise SPSError("layer mask does not keep the taps its PPS library and "
                           "assignment describe")
    co, ci, k, _ = shape
    rows, cols = co, ci * k * k
    size = rows * cols
    if mask is None or mask.all():
        nnz, fillers = size, 0
    else:
        nnz = int(np.count_nonzero(mask))
        fillers = rlc_fillers(mask, conv["run_bits"])

    vb = conv["value_bits"]
    ptr = _width(conv["pointer_bits"], nnz + 1)
    row_bits = _width(conv["index_bits"], rows)
    col_bits = _width(conv["index_bits"], cols)
    values = nnz * vb
    index = {
        "dense": 0,
        "csr": nnz * col_bits + (rows + 1) * ptr,
        "csc": nnz * row_bits + (cols + 1) * ptr,
        "coo": nnz * (row_bits + col_bits),
        "bitmap": size,
        "rlc": nnz * conv["run_bits"] + fillers * (vb + conv["run_bits"]),
    }
    out = {name: _entry(size * vb if name == "dense" else values, bits)
           for name, bits in index.items()}
    if pps is not None:
        lib, table = pps
        out["sps"] = _entry(values, len(table) * field_bits(len(lib)) + len(lib) * k * k)
    else:
        out["sps"] = _entry(size * vb, 0)
    return out


def _width(fixed, count):
    """Width of a field naming one of ``count`` things: minimal if ``fixed`` is None, else
    ``fixed`` (a multiple of it when ``count`` does not fit, as a 16-bit layout would switch
    to 32-bit indices)."""
    need = field_bits(count)
    return need if fixed is None else fixed * max(1, -(-need // fixed))


def _entry(value_bits, index_bits):
    return {"value_bits": int(value_bits), "index_bits": int(index_bits),
            "total_bits": int(value_bits + index_bits)}


def sps_index_bits(period, patterns, kernel=3):
    """Index bits of one PPS layer: ``P * ceil(log2 K) + K * k*k``."""
    return period * field_bits(patterns) + patterns * kernel * kernel
