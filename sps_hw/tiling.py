"""Tiled execution from external memory: how a layer is cut into tiles, the bytes each tile
moves and the cycles it takes with a given memory (``docs/tiling.md``).

A convolution's output is cut into ``th x tw`` tiles. A tile's input (its pixels plus the
halo its windows reach, clipped to the image) for *all* its input channels is loaded into one
feature buffer while the previous tile computes in the other; the tile then runs like a layer
of today's core on a ``in_h x in_w`` map: every output group, every pass, the weights streamed
from memory one array row per cycle in pass order, the output groups written back as they
finish. So per tile

    compute = layer_cycles(T_in = in_h * in_w pixels per pass, lead D, N passes)
    bytes   = weights (N * R * C) + params (G words) + descriptor
              + the next tile's input + this tile's output,

and with a memory of ``B`` bytes per cycle and latency ``L`` the tile takes
``max(compute, ceil(bytes / B))`` cycles, the excess being *stall*. The first tile's input
(``L + ceil(bytes / B)``) and the last tile's output are not overlapped. This is the model the
tile engine is to be built to; until it is, no RTL counts these cycles (``docs/tiling.md``).
"""

import math
from collections import Counter
from dataclasses import asdict, dataclass

from .config import Config
from .model import layer_cycles, network_layers
from .top import rom_bits, rom_shapes

__all__ = ["Memory", "TilePlan", "memory_report", "plan_tiles", "sdram_memory"]


@dataclass(frozen=True)
class Memory:
    """An external memory as the core sees it: sustained bytes per core cycle and the cycles
    from a read request to its first data."""

    bytes_per_cycle: float
    latency: int = 0
    name: str = "memory"

    def __post_init__(self):
        if not (isinstance(self.bytes_per_cycle, (int, float)) and self.bytes_per_cycle > 0):
            raise ValueError(f"bytes_per_cycle must be a positive number, not "
                             f"{self.bytes_per_cycle!r}")
        if not isinstance(self.latency, int) or self.latency < 0:
            raise ValueError(f"latency must be a non-negative int, not {self.latency!r}")

    def cycles(self, nbytes):
        """Cycles to move ``nbytes`` at the sustained rate (no latency)."""
        return math.ceil(nbytes / self.bytes_per_cycle)


def sdram_memory(kind, clock_mhz):
    """The two memories of the benchmark, at a core clock of ``clock_mhz``: ``"sdr16"``, a
    16-bit SDR SDRAM clocked with the core (2 bytes a cycle), and ``"ddr3-667"``, a 16-bit
    DDR3-667 (1334 MB/s). Peak rates: refresh and bank conflicts are not modelled."""
    if kind == "sdr16":
        return Memory(2.0, 10, f"16-bit SDR SDRAM at {clock_mhz:g} MHz")
    if kind == "ddr3-667":
        return Memory(round(1334 / clock_mhz, 3), 20, "16-bit DDR3-667")
    raise ValueError(f"memory kind must be 'sdr16' or 'ddr3-667', not {kind!r}")


@dataclass
class TilePlan:
    """A layer cut into tiles, with its traffic and cycles on a :class:`Memory`."""

    name: str
    kind: str            # "conv3", "conv1" or "fc"
    stride: int
    tile: tuple          # (th, tw) output pixels per tile (pre-pool)
    tiles: int
    passes: int          # N per tile
    compute_cycles: int
    stall_cycles: int
    read_bytes: dict     # {"input", "weights", "params", "descriptors", "index"}
    write_bytes: int
    pixel_efficiency: float   # output pixels / input pixels streamed (halo overhead)

    @property
    def cycles(self):
        return self.compute_cycles + self.stall_cycles

    def as_dict(self):
        return {**asdict(self), "cycles": self.cycles}


def _bytes_per_word(cfg):
    return {name: math.ceil(rom_bits(shape) / 8) for name, (shape, _) in rom_shapes(cfg).items()}


def _spans(n_out, t, stride, k, pad, n_in):
    """``[(outputs, inputs)]`` of the tiles of one dimension in order: ``t`` outputs per
    tile and the input positions their windows reach, clipped to the map."""
    spans = []
    for start in range(0, n_out, t):
        count = min(t, n_out - start)
        lo = max(0, start * stride - pad)
        hi = min(n_in, (start + count - 1) * stride - pad + k)
        spans.append((count, hi - lo))
    return spans


def _geometry(layer, source):
    """``(kind, k, stride, pad, ci, h, w, co, ho, wo, keep, pool)`` of a hardware layer or a
    string saying why it is not one."""
    if layer["op"] != "conv":
        return f"{layer['op']} (no hardware unit yet)"
    k, stride, pad = layer["kernel"], layer["stride"], layer["pad"]
    ci, h, w = (int(v) for v in layer["in_shape"])
    co, ho, wo = (int(v) for v in layer["out_shape"])
    pool = bool(layer.get("pool"))
    if pool:
        ho, wo = ho * 2, wo * 2                       # the conv's own output, pre-pool
    if tuple(int(v) for v in source) != (ci, h, w):
        return ("fc", 1, 1, 0, int(source[0]), 1, 1, co, 1, 1, 1, False,
                int(source[1]) * int(source[2]))
    if (k, pad) == (3, 1) and stride in (1, 2):
        return ("conv3", k, stride, pad, ci, h, w, co, ho, wo, int(layer["keep"]), pool, 1)
    if (k, pad) == (1, 0) and stride in (1, 2):
        return ("conv1", k, stride, pad, ci, h, w, co, ho, wo, 1, pool, 1)
    return f"{k}x{k} stride {stride} kernel (the windows are 3x3)"


def _streamed(kind, out_n, in_n):
    """Input positions a pass streams in one dimension: a 1x1 stride-2 layer reads only the
    pixels it uses; a 3x3 layer streams everything its windows see. (Loads read the rows a
    tile streams, each as one run of columns from its first to its last.)"""
    return out_n if kind == "conv1" else in_n


def plan_tiles(layer, source, cfg, memory):
    """The :class:`TilePlan` of a manifest layer dict (``source``: its input tensor's shape)
    on accelerator ``cfg`` with ``memory``, or a string saying why the hardware cannot run
    it."""
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
    if not isinstance(memory, Memory):
        raise TypeError(f"memory must be a sps_hw.tiling.Memory, not {memory!r}")
    geom = _geometry(layer, source)
    if isinstance(geom, str):
        return geom
    kind, k, stride, pad, ci, h, w, co, ho, wo, keep, pool, subs = geom
    rows, cols, banks = cfg.rows, cfg.cols, cfg.banks
    words = _bytes_per_word(cfg)
    groups = math.ceil(co / cols)
    passes = groups * subs * math.ceil(ci * keep / rows)
    per_channel = math.ceil(ci / banks)            # words per bank per input pixel

    def tiling(th, tw):
        """``{(output pixels, streamed pixels, loaded pixels): tiles}``."""
        ys = Counter(_spans(ho, th, stride, k, pad, h))
        xs = Counter(_spans(wo, tw, stride, k, pad, w))
        tiles = Counter()
        for (oy, iy), ny in ys.items():
            for (ox, ix), nx in xs.items():
                tiles[oy * ox, _streamed(kind, oy, iy) * _streamed(kind, ox, ix),
                      _streamed(kind, oy, iy) * ix] += ny * nx
        return tiles

    if kind == "fc":
        best = (1, 1)
    else:
        step = 2 if pool else 1
        best, best_key = None, None
        for th in sorted({-(-ho // n) for n in range(1, ho + 1)}):
            for tw in sorted({-(-wo // n) for n in range(1, wo + 1)}):
                th_, tw_ = th + th % step, tw + tw % step
                in_h, in_w = (th_ - 1) * stride + k, (tw_ - 1) * stride + k
                if th_ * tw_ > cfg.max_hw or (k == 3 and min(in_w, w) > cfg.max_width):
                    continue
                if per_channel * min(in_h, h) * min(in_w, w) > cfg.fmap_depth:
                    continue
                tiles = tiling(th_, tw_)
                key = (sum(n * _cycles(cfg, kind, t, passes, tw_, stride)
                           for (_, t, _), n in tiles.items()), tiles.total())
                if best_key is None or key < best_key:
                    best, best_key = (th_, tw_), key
        if best is None:
            return (f"{ci} input channels: not even one output row fits a feature buffer "
                    f"({cfg.fmap_depth} words per bank, max_width {cfg.max_width})")
    th, tw = best
    if kind == "fc":
        tiles = [(1, 1, subs)]
    else:                              # in raster order
        tiles = [(oy * ox, _streamed(kind, oy, iy) * _streamed(kind, ox, ix),
                  _streamed(kind, oy, iy) * ix)
                 for oy, iy in _spans(ho, th, stride, k, pad, h)
                 for ox, ix in _spans(wo, tw, stride, k, pad, w)]
    weight_bytes = passes * rows * words["weights"]
    param_bytes = groups * words["params"]
    descriptor_bytes = words["layers"] * max(1, cfg.layer_words)
    index_bytes = (layer.get("period", 1) * words["index"]
                   + len(layer.get("library", [1])) * words["library"])
    pool_div = 4 if pool else 1
    loads = [ci * loaded for _, _, loaded in tiles]
    outputs = [co * out // pool_div for out, _, _ in tiles]
    # The first tile's input (and the layer's index words) load before anything runs; each
    # tile then moves its weights, parameters, descriptor and output and the next tile's
    # input; the last tile's final output group is written after it ends.
    stall = memory.latency + memory.cycles(loads[0] + index_bytes) + \
        memory.cycles(math.ceil(outputs[-1] / groups))
    compute = 0
    for i, (_, streamed, _) in enumerate(tiles):
        c = _cycles(cfg, kind, streamed, passes, tw, stride)
        moved = weight_bytes + param_bytes + descriptor_bytes + outputs[i] + \
            (loads[i + 1] if i + 1 < len(tiles) else 0)
        compute += c
        stall += max(0, memory.cycles(moved) - c)
    n = len(tiles)
    return TilePlan(
        name=layer["name"], kind=kind, stride=stride, tile=(th, tw), tiles=n, passes=passes,
        compute_cycles=compute, stall_cycles=stall,
        read_bytes={"input": sum(loads), "weights": n * weight_bytes,
                    "params": n * param_bytes, "descriptors": n * descriptor_bytes,
                    "index": index_bytes},
        write_bytes=sum(outputs),
        pixel_efficiency=round(sum(o for o, _, _ in tiles) / sum(s for _, s, _ in tiles), 4))


def _cycles(cfg, kind, streamed, passes, tw, stride):
    """Cycles of one tile: the layer schedule on the streamed pixels; a 3x3 window's first
    output completes ``in_w + 1`` pixels into the stream."""
    lead = (tw - 1) * stride + 3 + 1 if kind == "conv3" else 0
    return layer_cycles(cfg, hw=streamed, lead=lead, total=passes)[3]


def memory_report(model, cfg, memory, keep=None):
    """Per-layer tiles, bytes and cycles of a network from external memory. Returns
    ``{"rows", "cols", "memory", "layers": [...], "totals": {...}}``; layers the tile engine
    cannot run have ``"runs": "host"`` and a reason."""
    layers, input_shape = network_layers(model, keep)
    shapes = {"input": input_shape}
    out, totals = [], {"compute_cycles": 0, "stall_cycles": 0, "read_bytes": 0,
                       "weight_bytes": 0, "write_bytes": 0, "macs": 0, "dense_macs": 0}
    for layer in layers:
        shapes[layer["name"]] = tuple(layer["out_shape"])
        plan = plan_tiles(layer, shapes[layer["inputs"][0]], cfg, memory)
        if isinstance(plan, str):
            out.append({"name": layer["name"], "op": layer["op"], "runs": "host",
                        "reason": plan})
            continue
        row = {"runs": "hardware", **plan.as_dict(),
               "bound": "memory" if plan.stall_cycles > plan.compute_cycles // 10 else
               "compute"}
        ci, co = layer["in_shape"][0], layer["out_shape"][0]
        pixels = math.prod(layer["out_shape"][1:]) * (4 if layer.get("pool") else 1)
        row["macs"] = co * ci * layer.get("keep", 1) * pixels
        row["dense_macs"] = co * ci * layer["kernel"] ** 2 * pixels
        out.append(row)
        totals["compute_cycles"] += plan.compute_cycles
        totals["stall_cycles"] += plan.stall_cycles
        totals["read_bytes"] += sum(plan.read_bytes.values())
        totals["weight_bytes"] += plan.read_bytes["weights"]
        totals["write_bytes"] += plan.write_bytes
        totals["macs"] += row["macs"]
        totals["dense_macs"] += row["dense_macs"]
    totals["cycles"] = totals["compute_cycles"] + totals["stall_cycles"]
    return {"rows": cfg.rows, "cols": cfg.cols, "memory": asdict(memory), "layers": out,
            "totals": totals}
