"""Layers larger than the core, cut into *jobs*: a tile of the output by a chunk of its
output channels, each a layer the core runs as it is (``docs/tiling.md``).

A job reads its tile's input with the halo its windows reach (every input channel) and
computes every position of that input, like any layer with zero padding around its map; the
outputs whose windows crossed into that padding (the halo ring, where the tile is not at the
map's border) are dropped when the job's output is placed. A tile whose output is pooled 2x2
or strided 2 starts its input on an even row and column, so the job's pooling pairs or
output positions are the layer's.

An FC layer whose output group needs more weight words than the core holds is cut into
*reduction chunks* instead: for each output group (one per job: the accumulator keeps one
group's sums), consecutive jobs over slices of the flattened input, the first adding the
bias, the last requantizing, the sums carried from job to job in the accumulator (the
descriptor's ``acc_continue`` and ``acc_partial``).
:func:`run_jobs` stitches the jobs' outputs into the layer's output; it is bit-exact with
the layer (``sim_tests/hw/test_jobs.py``), which is what the tile engine does in hardware.
"""

import math
from dataclasses import dataclass

import numpy as np

from compiler.errors import SPSError

from .config import Config
from .model import LayerPlan, plan_layer

__all__ = ["Job", "VectorJob", "golden_runner", "plan_jobs", "plan_vector_jobs", "run_jobs"]

#: The manifest fields of a conv layer with one value per output channel.
PER_OUTPUT_CHANNEL = ("bias", "mult", "shift", "w_scale")


@dataclass
class Job:
    """One job: ``layer`` (a manifest layer dict) with ``weight`` reads ``rows x cols`` of the
    source tensor (a tensor of shape ``source``: the tile, or for FC the whole source);
    ``keep_rows x keep_cols`` of its output are the layer's output at ``out_rows x
    out_cols``, channels ``channels``.

    A *reduction chunk* of an FC layer (``reduction`` is ``(start, stop)``) reads elements
    ``start .. stop - 1`` of the flattened source as an ``[n, 1, 1]`` tensor (``source``)
    and computes one output group's partial sums over them: the ``first`` chunk of the group
    adds the bias, the ``last`` requantizes and writes the group's outputs; the others leave
    their sums in the accumulator for the next job (its layer's ``acc_continue`` and
    ``acc_partial``)."""

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
    reduction: tuple | None = None
    first: bool = True
    last: bool = True

    @property
    def tile(self):
        """The input it reads: ``(first row, end row, first column, end column)`` (tiles
        with halos may start at one position and differ in size), and of a reduction chunk
        its ``(start, stop)``."""
        tile = (self.rows.start, self.rows.stop, self.cols.start, self.cols.stop)
        return tile if self.reduction is None else (*tile, *self.reduction)

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
    if (fc or (layer["kernel"] == 1 and h == w == 1)) and (
            per_group_words > cfg.weight_depth or not isinstance(plan_layer(
                _sub_layer(layer, layer["name"], [ci, 1, 1], [min(co, cfg.cols), 1, 1],
                           slice(0, cfg.cols)), source, cfg), LayerPlan)):
        return _reduction_jobs(layer, weight, source, cfg)
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


def _reduction_jobs(layer, weight, source, cfg):
    """The reduction chunks of an FC layer (or a 1x1 layer on a 1x1 map) whose output group
    does not fit the core with its whole reduction: for each output group of ``cols``
    channels, its chunks of the flattened source in order, as even as the weight memory,
    a feature buffer and the channel counters allow (whole passes of ``rows``)."""
    rows, cols = cfg.rows, cfg.cols
    n = math.prod(source)
    co = int(layer["out_shape"][0])
    limit = min(cfg.weight_depth // rows * rows, cfg.banks * cfg.fmap_depth,
                2 ** cfg.channel_bits - 1)
    if limit < 1:
        raise SPSError(f"layer {layer['name']!r}: a pass of {rows} weight words does not fit "
                       f"the accelerator's {cfg.weight_depth}")
    count = math.ceil(n / limit)
    size = min(limit, -(-math.ceil(n / count) // rows) * rows)
    spans = [(start, min(n, start + size)) for start in range(0, n, size)]
    one = slice(0, 1)
    jobs = []
    for c0 in range(0, co, cols):
        channels = slice(c0, min(co, c0 + cols))
        for i, (start, stop) in enumerate(spans):
            first, last = i == 0, i == len(spans) - 1
            name = f"{layer['name']}.c{c0}r{start}"
            sub = _sub_layer(layer, name, [stop - start, 1, 1],
                             [channels.stop - channels.start, 1, 1], channels)
            sub.update(acc_continue=not first, acc_partial=not last)
            plan = plan_layer(sub, (stop - start, 1, 1), cfg)
            if not isinstance(plan, LayerPlan):
                raise SPSError(f"layer {layer['name']!r}: job {name}: {plan}")
            jobs.append(Job(sub, None if weight is None else
                            np.asarray(weight)[channels, start:stop], plan,
                            (stop - start, 1, 1), one, one, channels, one, one, one, one,
                            reduction=(start, stop), first=first, last=last))
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
    each placed in the layer's output. A reduction chunk's tile is its slice of the
    flattened ``x``; only the last chunk of a group has an output (``run_job`` returns None
    for the others: their sums stay in the accumulator), e.g. :func:`golden_runner`'s."""
    y = np.zeros(layer["out_shape"], np.int8)
    for job in jobs:
        if job.reduction is not None:
            tile = np.ravel(x)[slice(*job.reduction)].reshape(job.source)
        else:
            tile = x if job.plan.kind == "fc" else x[:, job.rows, job.cols]
        out = run_job(job, np.ascontiguousarray(tile))
        if not job.last:
            continue
        out = np.asarray(out, np.int8).reshape(job.layer["out_shape"])
        y[job.channels, job.out_rows, job.out_cols] = out[:, job.keep_rows, job.keep_cols]
    return y


def golden_runner():
    """A ``run_job`` for :func:`run_jobs` that computes each job as the core does, in
    integers: a job through :func:`compiler.golden.run_layer`, a reduction chunk through a
    model of the accumulator, whose int64 sums are carried from one job to the next (the
    first chunk of a group starts them with the bias, the last requantizes them; the others
    return None)."""
    from compiler import golden

    state = {"channels": None, "sums": None}

    def run_job(job, tile):
        if job.reduction is None:
            state["channels"] = None
            return golden.run_layer(job.layer, job.weight, [tile])
        layer = job.layer
        part = job.weight[:, :, 0, 0].astype(np.int64) @ np.ravel(tile).astype(np.int64)
        if job.first:
            sums = np.asarray(layer["bias"], np.int64) + part
        else:
            if state["channels"] != (job.channels.start, job.channels.stop):
                raise SPSError(f"job {layer['name']!r} continues sums the accumulator does "
                               f"not hold")
            sums = state["sums"] + part
        state["channels"], state["sums"] = (job.channels.start, job.channels.stop), sums
        if not job.last:
            return None
        state["channels"] = None
        return golden.requantize(sums[:, None, None], layer["mult"], layer["shift"],
                                 layer["relu"])

    return run_job
