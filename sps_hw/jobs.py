"""Layers larger than the core, cut into *jobs*: a tile of the output by a chunk of its
output channels, each a layer the core runs as it is (``docs/tiling.md``).

A job reads its tile's input with the halo its windows reach (every input channel) and
computes every position of that input, like any layer with zero padding around its map; the
outputs whose windows crossed into that padding (the halo ring, where the tile is not at the
map's border) are dropped when the job's output is placed. A tile whose output is pooled 2x2
or strided 2 starts its input on an even row and column, so the job's pooling pairs or
output positions are the layer's.
:func:`run_jobs` stitches the jobs' outputs into the layer's output; it is bit-exact with
the layer (``sim_tests/hw/test_jobs.py``), which is what the tile engine does in hardware.
"""

import math
from dataclasses import dataclass

import numpy as np

from compiler.errors import SPSError

from .config import Config
from .model import LayerPlan, plan_layer

__all__ = ["Job", "VectorJob", "plan_jobs", "plan_vector_jobs", "run_jobs"]

#: The manifest fields of a conv layer with one value per output channel.
PER_OUTPUT_CHANNEL = ("bias", "mult", "shift", "w_scale")


@dataclass
class Job:
    """One job: ``layer`` (a manifest layer dict) with ``weight`` reads ``rows x cols`` of the
    source tensor (a tensor of shape ``source``: the tile, or for FC the whole source);
    ``keep_rows x keep_cols`` of its output are the layer's output at ``out_rows x
    out_cols``, channels ``channels``."""

    layer: dict
    weight: np.ndarray
    plan: LayerPlan
    source: tuple
    rows: slice
    cols: slice
    channels: slice
    keep_rows: slice
    keep_cols: slice
    out_rows: slice
    out_cols: slice

    @property
    def tile(self):
        """The input it reads: ``(first row, end row, first column, end column)`` (tiles
        with halos may start at one position and differ in size)."""
        return self.rows.start, self.rows.stop, self.cols.start, self.cols.stop

    @property
    def chunk(self):
        """Its first output channel (the chunk's weights and parameters)."""
        return self.channels.start


@dataclass
class VectorJob:
    """One job of the vector unit (:mod:`sps_hw.vector`): its ``command`` (field values),
    the byte ranges ``(offset, bytes)`` it reads of its operands ``a`` and ``b`` (``b``:
    ``(0, 0)`` but for an add) and writes of its output, from the first byte of each tensor,
    and its cycles (:func:`~sps_hw.vector.vector_cycles`)."""

    layer: dict
    command: dict
    a: tuple
    b: tuple
    out: tuple
    cycles: int


def plan_vector_jobs(layer, *, max_width, chunk):
    """The :class:`VectorJob` list of a manifest ``add``, ``avgpool`` or ``maxpool`` layer on
    a vector unit of ``max_width`` and ``chunk``: a pooling layer is one job over its whole
    input; an add is cut into pieces of at most ``chunk`` bytes. Raises :class:`SPSError`
    for a layer the unit cannot run."""
    from .vector import vector_command, vector_cycles

    command = vector_command(layer, max_width=max_width)
    n_in = math.prod(layer["in_shape"])
    n_out = math.prod(layer["out_shape"])
    if layer["op"] != "add":
        return [VectorJob(layer, command, (0, n_in), (0, 0), (0, n_out),
                          vector_cycles(command))]
    jobs = []
    for start in range(0, n_in, chunk):
        n = min(chunk, n_in - start)
        piece = dict(command, channels=1, height=1, width=n)
        jobs.append(VectorJob(layer, piece, (start, n), (start, n), (start, n),
                              vector_cycles(piece)))
    return jobs


def _spans(n, tile, halo, halve):
    """``[(input lo, hi, kept lo, hi, output lo, hi)]`` of one dimension of ``n`` positions in
    tiles of ``tile`` positions, in the job's and in the layer's output. ``halve`` is None,
    ``"pool"`` (2x2 pool: pairs of positions) or ``"stride"`` (stride 2: even positions)."""
    spans = []
    for start in range(0, n, tile):
        end = min(n, start + tile)
        lo, hi = max(0, start - halo), min(n, end + halo)
        if halve is None:
            spans.append((lo, hi, start - lo, end - lo, start, end))
            continue
        lo -= (start - lo) % 2             # an even offset: the layer's pairs or positions
        count = (end - start) // 2 if halve == "pool" else (end - start + 1) // 2
        if count:
            first = (start - lo) // 2
            spans.append((lo, hi, first, first + count, start // 2, start // 2 + count))
    return spans


def _halved(n, halve):
    """Outputs of ``n`` positions (:func:`_spans`' ``halve``)."""
    return n if halve is None else n // 2 if halve == "pool" else (n + 1) // 2


def _sub_layer(layer, name, in_shape, out_shape, channels):
    """``layer`` restricted to output ``channels`` on an input of ``in_shape``."""
    sub = dict(layer, name=name, inputs=["input"], in_shape=list(in_shape),
               out_shape=list(out_shape))
    for key in PER_OUTPUT_CHANNEL:
        if key in layer:
            sub[key] = list(layer[key])[channels]
    return sub


def plan_jobs(layer, weight, source_shape, cfg):
    """The jobs of a manifest conv layer (with its int8 ``weight``, or None to plan only)
    reading a tensor of ``source_shape`` on accelerator ``cfg``: the largest tiles and
    channel chunks the core's buffers and ROMs hold, tile by tile: a tile's input is loaded
    once, which stalls the core, while the chunks' images are staged during the previous
    job's computation. Raises :class:`SPSError` when no tile fits."""
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
    if layer["op"] != "conv":
        raise SPSError(f"layer {layer['name']!r}: {layer['op']} is not a job of the array")
    ci, h, w = (int(v) for v in layer["in_shape"])
    co = int(layer["out_shape"][0])
    source = tuple(int(v) for v in source_shape)
    fc = source != (ci, h, w)
    if not fc:          # what no tile changes (the kernel, stride, pool) refuses at once
        probe = plan_layer(_sub_layer(layer, layer["name"], [1, 4, 4], [1, 4, 4],
                                      slice(0, 1)), (1, 4, 4), cfg)
        if not isinstance(probe, LayerPlan):
            raise SPSError(f"layer {layer['name']!r}: {probe}")
    halve = "pool" if layer.get("pool") else "stride" if layer["stride"] == 2 else None
    halo = 1 if layer["kernel"] == 3 else 0
    # The channel chunk: its weights, parameters and output fit the ROMs and a buffer.
    per_group_words = cfg.rows * math.ceil(
        (source[0] if fc else ci) * (layer.get("keep") or 1) / cfg.rows) * \
        (source[1] * source[2] if fc else 1)
    chunk_groups = min(math.ceil(co / cfg.cols), cfg.param_depth,
                       cfg.weight_depth // max(1, per_group_words))
    if chunk_groups < 1:
        raise SPSError(f"layer {layer['name']!r}: one output group needs {per_group_words} "
                       f"weight words, the accelerator has {cfg.weight_depth}")
    tiles = _tiles(layer, source, cfg, h, w, halo, halve, fc, chunk_groups)
    jobs = []
    for (ylo, yhi, ky0, ky1, oy0, oy1) in tiles[0]:
        for (xlo, xhi, kx0, kx1, ox0, ox1) in tiles[1]:
            for c0 in range(0, co, chunk_groups * cfg.cols):
                channels = slice(c0, min(co, c0 + chunk_groups * cfg.cols))
                if fc:
                    in_shape, out_hw = [ci, 1, 1], (1, 1)
                else:
                    in_shape = [ci, yhi - ylo, xhi - xlo]
                    out_hw = (_halved(yhi - ylo, halve), _halved(xhi - xlo, halve))
                name = f"{layer['name']}.y{oy0}x{ox0}c{c0}"
                sub = _sub_layer(layer, name, in_shape,
                                 [channels.stop - channels.start, *out_hw], channels)
                job_source = source if fc else tuple(in_shape)
                plan = plan_layer(sub, job_source, cfg)
                if not isinstance(plan, LayerPlan):
                    raise SPSError(f"layer {layer['name']!r}: job {name}: {plan}")
                jobs.append(Job(sub, None if weight is None else np.asarray(weight)[channels],
                                plan, job_source, slice(ylo, yhi), slice(xlo, xhi), channels,
                                slice(ky0, ky1), slice(kx0, kx1), slice(oy0, oy1),
                                slice(ox0, ox1)))
    return jobs


def _tiles(layer, source, cfg, h, w, halo, halve, fc, chunk_groups):
    """The spans (:func:`_spans`) of the rows and columns: of the tilings whose largest job
    the core runs (:func:`~sps_hw.model.plan_layer`), the one that streams the fewest pixels,
    then has the fewest jobs."""
    if fc:
        return [(0, 1, 0, 1, 0, 1)], [(0, 1, 0, 1, 0, 1)]
    ci = int(layer["in_shape"][0])
    channels = slice(0, min(int(layer["out_shape"][0]), chunk_groups * cfg.cols))
    step = 1 if halve is None else 2

    def sizes(n):
        return sorted({-(-n // k) + (-(-n // k)) % step for k in range(1, n + 1)})

    best = smallest = None
    for th in sizes(h):
        for tw in sizes(w):
            rows, cols = _spans(h, th, halo, halve), _spans(w, tw, halo, halve)
            in_h = max(hi - lo for lo, hi, *_ in rows)
            in_w = max(hi - lo for lo, hi, *_ in cols)
            out = [_halved(in_h, halve), _halved(in_w, halve)]
            sub = _sub_layer(layer, layer["name"], [ci, in_h, in_w],
                             [channels.stop, *out], channels)
            plan = plan_layer(sub, (ci, in_h, in_w), cfg)
            if not isinstance(plan, LayerPlan):
                smallest = smallest or plan
                continue
            streamed = sum((hi - lo) * (xhi - xlo) for lo, hi, *_ in rows
                           for xlo, xhi, *_ in cols)
            key = (streamed, len(rows) * len(cols))
            if best is None or key < best[0]:
                best = key, (rows, cols)
    if best is None:
        raise SPSError(f"layer {layer['name']!r}: no tile of its {ci} x {h} x {w} input runs "
                       f"on the accelerator (the smallest: {smallest})")
    return best[1]


def run_jobs(layer, jobs, x, run_job):
    """The output of ``layer`` on its int8 input ``x`` from its ``jobs``: each through
    ``run_job(job, tile)`` (the job's input tensor; returns its output), the kept part of
    each placed in the layer's output."""
    y = np.zeros(layer["out_shape"], np.int8)
    for job in jobs:
        tile = x if job.plan.kind == "fc" else x[:, job.rows, job.cols]
        out = np.asarray(run_job(job, np.ascontiguousarray(tile)), np.int8)
        out = out.reshape(job.layer["out_shape"])
        y[job.channels, job.out_rows, job.out_cols] = out[:, job.keep_rows, job.keep_cols]
    return y
