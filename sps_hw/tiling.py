"""What running a network job by job from external memory costs: bytes read and written and
cycles with a given memory (``docs/tiling.md``).

Each layer runs as the jobs of :func:`sps_hw.jobs.plan_jobs`, in their order. The tile
engine is to do, per job: *stage* its descriptor, and the chunk's images (parameters,
weights, index, library) when the chunk changes, into the inactive banks while the previous
job computes; commit what it staged; *load* the tile's input when the tile changes;
*compute* (the job's :class:`~sps_hw.model.LayerPlan` cycles, exact); *drain* its output, of
which the tile's own pixels are written to memory. Loads and drains move one byte per
feature-buffer bank a cycle (feature maps are stored channel-blocked in memory, ``banks``
channels of a pixel side by side), staging one weight word (``cols`` bytes) a cycle; with a
memory of ``B`` bytes per cycle and read latency ``L``:

    stage = L + ceil(image bytes / min(B, cols))     load = L + ceil(input bytes / min(B, banks))
    drain = ceil(output bytes / min(B, banks))
    cycles = stage(first) + sum over jobs of
             load + compute + drain + max(0, stage(next) - compute)

Everything but ``compute`` is *stall*. This is the model the tile engine is to be built to;
until it is, no RTL counts these cycles.
"""

import math
from dataclasses import asdict, dataclass

from compiler.errors import SPSError

from .config import Config
from .jobs import plan_jobs
from .model import network_layers
from .top import rom_bits, rom_shapes

__all__ = ["DRAM_SIZES", "LayerTraffic", "Memory", "format_memory_report", "layer_traffic",
           "memory_report", "sdram_memory"]

#: Buffer and memory sizes of a core that runs from external memory (``docs/tiling.md``):
#: two 64 KiB feature buffers of 8 banks, a 4096-pixel accumulator, 256-wide line buffers,
#: 8192 weight words.
DRAM_SIZES = {"max_hw": 4096, "max_width": 256, "fmap_depth": 8192, "weight_depth": 8192,
              "param_depth": 64}


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

    def cycles(self, nbytes, width):
        """Cycles to move ``nbytes`` through a path of ``width`` bytes a cycle."""
        return math.ceil(nbytes / min(width, self.bytes_per_cycle))


def sdram_memory(kind, clock_mhz):
    """The two memories of the benchmark at a core clock of ``clock_mhz``: ``"sdr16"``, a
    16-bit SDR SDRAM clocked with the core (2 bytes a cycle), and ``"ddr3-667"``, a 16-bit
    DDR3-667 (1334 MB/s). Peak rates: refresh and bank conflicts are not modelled."""
    if kind == "sdr16":
        return Memory(2.0, 10, f"16-bit SDR SDRAM at {clock_mhz:g} MHz")
    if kind == "ddr3-667":
        return Memory(round(1334 / clock_mhz, 3), 20, "16-bit DDR3-667")
    raise ValueError(f"memory kind must be 'sdr16' or 'ddr3-667', not {kind!r}")


@dataclass
class LayerTraffic:
    """One layer run job by job: its jobs, bytes and cycles."""

    name: str
    kind: str                 # "conv3", "conv1" or "fc"
    jobs: int
    tiles: int
    tile: tuple               # (rows, cols) of the largest tile's output (pre-pool)
    compute_cycles: int
    stall_cycles: int
    read_bytes: dict          # {"input", "weights", "params", "index", "descriptors"}
    write_bytes: int          # the layer's output
    drained_bytes: int        # what the jobs put out (their halos included)

    @property
    def cycles(self):
        return self.compute_cycles + self.stall_cycles

    def as_dict(self):
        return {**asdict(self), "cycles": self.cycles}


def _word_bytes(cfg):
    return {name: math.ceil(rom_bits(shape) / 8) for name, (shape, _) in rom_shapes(cfg).items()}


def layer_traffic(layer, source_shape, cfg, memory):
    """The :class:`LayerTraffic` of a manifest layer dict reading a tensor of
    ``source_shape`` on accelerator ``cfg`` with ``memory``, or a string saying why it does
    not run as jobs."""
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
    if not isinstance(memory, Memory):
        raise TypeError(f"memory must be a sps_hw.tiling.Memory, not {memory!r}")
    if layer["op"] != "conv":
        return f"{layer['op']} (no hardware unit yet)"
    try:
        jobs = plan_jobs(layer, None, source_shape, cfg)
    except SPSError as error:
        return str(error).split(": ", 1)[-1]
    words = _word_bytes(cfg)
    reads = dict.fromkeys(("input", "weights", "params", "index", "descriptors"), 0)
    stage, compute, stall, drained = [], 0, 0, 0
    for i, job in enumerate(jobs):
        plan = job.plan
        # Every job stages its descriptor, and the chunk's images when the chunk changes.
        parts = {"descriptors": cfg.layer_words * words["layers"]}
        if i == 0 or job.chunk != jobs[i - 1].chunk:
            parts.update(weights=plan.total * cfg.rows * words["weights"],
                         params=plan.groups * words["params"],
                         index=len(job.layer.get("assignment", [0])) * words["index"]
                         + len(job.layer.get("library", [0])) * words["library"])
        for key, value in parts.items():
            reads[key] += value
        stage.append(memory.latency + memory.cycles(sum(parts.values()), cfg.cols))
    for i, job in enumerate(jobs):
        plan = job.plan
        load = 0
        if i == 0 or job.tile != jobs[i - 1].tile:
            nbytes = plan.in_channels * plan.in_hw
            reads["input"] += nbytes
            load = memory.latency + memory.cycles(nbytes, cfg.banks)
        out = plan.out_channels * plan.out_hw
        drained += out
        following = stage[i + 1] if i + 1 < len(jobs) else 0
        compute += plan.cycles
        stall += load + memory.cycles(out, cfg.banks) + max(0, following - plan.cycles)
    stall += stage[0]
    largest = max(jobs, key=lambda j: (j.out_rows.stop - j.out_rows.start)
                  * (j.out_cols.stop - j.out_cols.start))
    scale = 2 if layer.get("pool") else 1
    return LayerTraffic(
        name=layer["name"], kind=jobs[0].plan.kind, jobs=len(jobs),
        tiles=len({job.tile for job in jobs}),
        tile=(scale * (largest.out_rows.stop - largest.out_rows.start),
              scale * (largest.out_cols.stop - largest.out_cols.start)),
        compute_cycles=compute, stall_cycles=stall, read_bytes=reads,
        write_bytes=math.prod(layer["out_shape"]), drained_bytes=drained)


def memory_report(model, cfg, memory, keep=None):
    """Per-layer jobs, bytes and cycles of a network from external memory. Returns
    ``{"rows", "cols", "memory", "layers": [...], "totals": {...}}``; a layer that does not
    run as jobs has ``"runs": "host"`` and a reason."""
    layers, input_shape = network_layers(model, keep)
    shapes = {"input": input_shape}
    out = []
    totals = dict.fromkeys(("compute_cycles", "stall_cycles", "read_bytes", "weight_bytes",
                            "write_bytes", "macs", "dense_macs"), 0)
    for layer in layers:
        shapes[layer["name"]] = tuple(layer["out_shape"])
        source = shapes[layer["inputs"][0]]
        traffic = layer_traffic(layer, source, cfg, memory)
        if isinstance(traffic, str):
            out.append({"name": layer["name"], "op": layer["op"], "runs": "host",
                        "reason": traffic})
            continue
        ci, co = layer["in_shape"][0], layer["out_shape"][0]
        pixels = math.prod(layer["out_shape"][1:]) * (4 if layer.get("pool") else 1)
        row = {"runs": "hardware", **traffic.as_dict(),
               "bound": "memory" if traffic.stall_cycles > traffic.compute_cycles else
               "compute",
               "macs": co * ci * layer.get("keep", 1) * pixels,
               "dense_macs": co * ci * layer["kernel"] ** 2 * pixels}
        out.append(row)
        totals["compute_cycles"] += traffic.compute_cycles
        totals["stall_cycles"] += traffic.stall_cycles
        totals["read_bytes"] += sum(traffic.read_bytes.values())
        totals["weight_bytes"] += traffic.read_bytes["weights"]
        totals["write_bytes"] += traffic.write_bytes
        totals["macs"] += row["macs"]
        totals["dense_macs"] += row["dense_macs"]
    totals["cycles"] = totals["compute_cycles"] + totals["stall_cycles"]
    return {"rows": cfg.rows, "cols": cfg.cols, "memory": asdict(memory), "layers": out,
            "totals": totals}


def format_memory_report(report):
    """A text table of :func:`memory_report`."""
    mem = report["memory"]
    head = (f"{'layer':<22} {'runs':<9} {'jobs':>5} {'tile':>9} {'compute':>12} "
            f"{'stall':>12} {'read B':>12} {'written B':>10} {'bound':>8}")
    lines = [f"array {report['rows']} x {report['cols']}, {mem['name']}: "
             f"{mem['bytes_per_cycle']:g} B/cycle, latency {mem['latency']}", head,
             "-" * len(head)]
    for r in report["layers"]:
        if r["runs"] == "host":
            lines.append(f"{r['name']:<22} {'host':<9} {r['reason']}")
            continue
        tile = f"{r['tile'][0]}x{r['tile'][1]}"
        lines.append(f"{r['name']:<22} {'hardware':<9} {r['jobs']:>5} {tile:>9} "
                     f"{r['compute_cycles']:>12} {r['stall_cycles']:>12} "
                     f"{sum(r['read_bytes'].values()):>12} {r['write_bytes']:>10} "
                     f"{r['bound']:>8}")
    t = report["totals"]
    if t["cycles"]:
        lines.append(f"{'total':<22} {'':<9} {'':>5} {'':>9} {t['compute_cycles']:>12} "
                     f"{t['stall_cycles']:>12} {t['read_bytes']:>12} {t['write_bytes']:>10} "
                     f"{t['stall_cycles'] / t['cycles']:>7.1%}")
    return "\n".join(lines)
