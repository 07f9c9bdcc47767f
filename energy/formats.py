"""The same array fed from another sparse weight format: its actions, layer by layer.

A *format design* runs a layer on the generator's ``R x C`` array, clock, feature buffers,
accumulator and requantizer, exactly as the SPS design does, with three differences that
follow from storing the weights in CSR, CSC, COO, bitmap or RLC (``compiler.formats``)
instead of as a compacted PPS reduction:

1. **Weight and index traffic.** The weight memory streams the format's stored bits, the
   ``value_bits`` and ``index_bits`` of ``sps report storage`` (minimal field widths), once
   per inference: each weight is loaded into the array once, as in SPS. They are priced per
   bit at the weight memory's widest port (``weights`` and ``index`` components).
2. **Decode work.** Every stored entry (a kept weight, or an RLC filler) is decoded into the
   coordinate of its reduction index: one register write of ``ceil(log2(Ci k k))`` bits
   (``index`` component). And the array can no longer broadcast one activation along a row:
   a general format gives each of the ``C`` output channels of a pass its own column
   indices, so every processing element selects its own activation by its own index, a
   *gather*: one 8-bit register-file read per multiply-accumulate (``features`` component).
   In SPS the ``C`` elements of a row share one tap select, because PPS gives every output
   channel the same pattern for a given input channel.
3. **Utilization of irregular sparsity.** Each output channel's non-zeros form its own list;
   the ``C`` lists of a group advance together, ``R`` entries a pass, so a group takes as
   many passes as its longest list needs: ``sum over groups of max ceil(nnz_o / R)`` (times
   the FC sub-passes). The rows of a shorter list idle (``mac_padding``), and the extra passes
   cost cycles (static energy), accumulator traffic and feature reads, all counted by
   :func:`sps_hw.actions.predict` on the plan with those passes. CSC is decoded into the
   same per-channel lists (its decode is the same one write per entry). PPS masks give every
   output channel the same number of non-zeros, so under the default (``masks="pps"``) the
   loss is zero; ``masks="random"`` stores a random mask of the same density per layer
   instead (an unstructured pruning), where it is not.

Everything else (MACs, feature reads and writes, accumulator, requantization, cycles) comes
from :func:`sps_hw.actions.predict`; only the weight ROM, index and library reads are
replaced by the format's stream and decode.
"""

from dataclasses import replace

import numpy as np

from compiler import formats as storage_formats
from sps_hw.actions import predict
from sps_hw.model import layer_cycles

__all__ = ["DESIGNS", "format_actions", "format_plan", "random_mask", "rlc_entries", "row_nnz"]

#: The other formats, as ``sps report storage`` names them.
DESIGNS = storage_formats.SPARSE_FORMATS


def row_nnz(mask, shape):
    """Kept weights per output channel of a layer of ``shape`` ``(Co, Ci, k, k)`` (all of
    them when ``mask`` is None)."""
    co, ci, k, _ = shape
    if mask is None:
        return np.full(co, ci * k * k, dtype=np.int64)
    return np.asarray(mask).reshape(co, -1).sum(axis=1).astype(np.int64)


def random_mask(shape, nnz, rng):
    """A uniformly random boolean mask of ``shape`` with exactly ``nnz`` kept weights."""
    size = int(np.prod(shape))
    flat = np.zeros(size, dtype=np.bool_)
    flat[rng.choice(size, int(nnz), replace=False)] = True
    return flat.reshape(shape)


def format_plan(plan, nnz, cfg):
    """``plan`` with the passes a per-channel non-zero list takes on ``cfg``: per group of
    ``C`` output channels, its longest list over ``R`` entries a pass, per sub-pass."""
    rows, cols = cfg.rows, cfg.cols
    subs = plan.subs
    padded = np.zeros(plan.groups * cols, dtype=np.int64)
    padded[:len(nnz)] = nnz
    per_sub = -(-padded // subs)
    passes = -(-per_sub.reshape(plan.groups, cols).max(axis=1) // rows)
    total = int(passes.sum()) * subs
    if total == plan.total:
        return plan
    cycle, t_feed, t_walk, cycles = layer_cycles(cfg, hw=plan.hw, lead=plan.lead, total=total)
    return replace(plan, total=total, passes=int(passes.max()), cycle=cycle, t_feed=t_feed,
                   t_walk=t_walk, cycles=cycles)


def rlc_entries(storage, conv=None):
    """Stored RLC entries (kept weights + fillers) of a layer's ``storage`` entry."""
    conv = conv or storage_formats.get_convention("minimal")
    nnz = storage["csr"]["value_bits"] // conv["value_bits"]
    index = storage["rlc"]["index_bits"]
    fillers = (index - nnz * conv["run_bits"]) // (conv["value_bits"] + conv["run_bits"])
    return nnz + fillers


def format_actions(cfg, plan, storage, fmt, *, coord_bits):
    """The actions of format design ``fmt`` on (format) ``plan``: :func:`predict`'s, with the
    weight ROM, index and library reads replaced by the format's stream (``storage[fmt]``,
    :func:`compiler.formats.layer_storage`), its decodes and one gather per MAC."""
    acts = predict(cfg, plan)
    entry = storage[fmt]
    nnz = storage["csr"]["value_bits"] // 8
    acts.update(weight_reads=0, weight_read_bits=0, index_reads=0, library_reads=0,
                value_bits=entry["value_bits"], index_bits=entry["index_bits"],
                decodes=rlc_entries(storage) if fmt == "rlc" else nnz,
                decode_bits=coord_bits, gathers=acts["mac_useful"])
    return acts
