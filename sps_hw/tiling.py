"""What running a network job by job from external memory costs: bytes read and written and
cycles, with a given memory: the model of the tile engine (:mod:`sps_hw.engine`,
``docs/tiling.md``), exact against its RTL.

Each layer runs as the jobs of :func:`sps_hw.jobs.plan_jobs`, in their order, and the engine
does per job (one byte a cycle through its reader and its writer): read the job's record and
*stage* the images that differ from the ones the core holds, while the previous job computes;
wait until the core is idle and the previous output is written; commit; *load* the tile's
input (unless it is resident); the core *computes* (the job's
:class:`~sps_hw.model.LayerPlan` cycles) and *drains* its output through the writer.
:func:`engine_cycles` follows that sequence cycle by cycle from constants measured on the
RTL under cocotbext-axi's ``AxiRam``: every read command takes its bytes plus
:data:`READ_OVERHEAD` cycles, plus the memory's latency beyond the first cycle; a drain takes
its bytes plus :data:`DRAIN_PER_CHANNEL` cycles a channel plus :data:`DRAIN_OVERHEAD`; the
last write answers ``latency`` cycles after the drain's last written byte.
A reduction chunk that leaves its sums in the accumulator (:mod:`sps_hw.jobs`) drains and
writes nothing: its core is idle as its layer ends.
Everything but ``compute`` is *stall*.
"""

import math
from dataclasses import asdict, dataclass

from compiler.errors import SPSError

from .config import ROM_NAMES, Config
from .engine import RECORD_BYTES, VECTOR_CHUNK, VECTOR_WIDTH
from .jobs import VectorJob, plan_jobs, plan_vector_jobs
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


#: Cycles a read command of the engine takes beyond its bytes (issue, the reader's pipeline,
#: the RAM's own first cycle; measured).
READ_OVERHEAD = 8
#: Cycles from the vector unit's last input byte to the engine's next state, and from the
#: unit's end to the writer's without the memory's latency (measured).
VECTOR_LAST, VECTOR_WRITE = 1, 2
#: Cycles a job's drain takes beyond its bytes: per output channel, and once (with the
#: engine's reads of 2 cycles, the tensor drainer's ``latency`` of 3 among them).
DRAIN_PER_CHANNEL, DRAIN_OVERHEAD = 0, 5


@dataclass(frozen=True)
class JobCost:
    """What the engine does for one job: the bytes it stages per image
    (:data:`~sps_hw.config.ROM_NAMES` order, 0: the active image is kept), the bytes it
    loads (0: the input is resident), the core's cycles, the bytes it drains, in
    ``store_channels`` channels of the writer's command, of which ``written`` go to memory,
    the last of them ``tail`` bytes before the end of the drain (a partial reduction chunk:
    ``drain`` False, 0 of each)."""

    staged: tuple
    load: int
    compute: int
    drained: int
    store_channels: int
    written: int
    tail: int
    #: A job of the vector unit: the bytes of its second operand, and the cycles it takes
    #: after its last input byte (None: a job of the core).
    load_b: int = 0
    post: int | None = None
    #: A job of the core that drains its output; False for a reduction chunk that leaves
    #: its sums in the accumulator (no drain: the core fetches the terminator at once).
    drain: bool = True

    @property
    def read_bytes(self):
        return RECORD_BYTES + sum(self.staged) + self.load + self.load_b


def vector_cost(job):
    """The :class:`JobCost` of a :class:`~sps_hw.jobs.VectorJob`."""
    n = job.out[1]
    inputs = job.a[1] + job.b[1]
    return JobCost(staged=(0,) * len(ROM_NAMES), load=job.a[1], compute=job.cycles,
                   drained=n, store_channels=1, written=n, tail=0, load_b=job.b[1],
                   post=job.cycles - 1 - inputs)


def engine_cycles(costs, memory):
    """Each job's cycles when the engine runs ``costs`` (:class:`JobCost`, one run of the
    table) with ``memory``: from its commit to the next job's (the first job's from the
    start, the last job's to the end). Exact on the RTL for a memory of at least one byte a
    cycle (a narrower one scales the reads)."""
    late = max(0, memory.latency - 1)

    def read(nbytes):                   # a read command, from its issue to the state after
        return READ_OVERHEAD + late + math.ceil(nbytes / min(1.0, memory.bytes_per_cycle))

    commits = []
    nxt, core_idle, writer_idle, vector_idle = 1, 0, 0, 0   # the engine's NEXT; when free
    for cost in costs:
        # FETCH, the record, DECODE, then per image STAGE (and its read when staged).
        wait = nxt + 1 + read(RECORD_BYTES) + 1 + sum(read(n) if n else 1 for n in cost.staged)
        commit = max(wait, core_idle, writer_idle, vector_idle)
        commits.append(commit)
        if cost.post is not None:       # the vector unit: its operands, one after the other
            nxt = commit + 1 + read(cost.load) + (read(cost.load_b) if cost.load_b else 0)
            vector_idle = nxt - VECTOR_LAST + cost.post + 1
            writer_idle = vector_idle + VECTOR_WRITE + memory.latency
            continue
        if cost.load:
            prep = nxt = commit + 1 + read(cost.load)
        else:
            prep, nxt = commit + 4, commit + 2
        if not cost.drain:              # from the layer's end straight to the terminator
            core_idle = prep + cost.compute
            writer_idle = 0
            continue
        drained = prep + cost.compute - 2 + DRAIN_OVERHEAD + cost.drained \
            + DRAIN_PER_CHANNEL * cost.store_channels
        core_idle = drained + 3
        writer_idle = drained + 3 + memory.latency - cost.tail if cost.written else 0
    ends = commits[1:] + [max(nxt + 1, core_idle, writer_idle)]
    return [end - (start if i else 0) for i, (start, end) in enumerate(zip(commits, ends))]


@dataclass
class LayerTraffic:
    """One layer run job by job: its jobs, bytes and cycles."""

    name: str
    kind: str                 # "conv3", "conv1", "fc" or the vector unit's op
    jobs: int
    tiles: int
    tile: tuple               # (rows, cols) of the largest tile's output (pre-pool)
    compute_cycles: int
    stall_cycles: int
    read_bytes: dict          # {"input", "weights", "params", "index", "library", "layers",
                              #  "records"}
    write_bytes: int          # the layer's output
    drained_bytes: int        # what the jobs put out (their halos included)

    @property
    def cycles(self):
        return self.compute_cycles + self.stall_cycles

    def as_dict(self):
        return {**asdict(self), "cycles": self.cycles}


def _word_bytes(cfg):
    return {name: math.ceil(rom_bits(shape) / 8) for name, (shape, _) in rom_shapes(cfg).items()}


def _image_keys(layer, job, cfg):
    """What each image of ``job`` holds, as a key equal for equal contents, and its bytes."""
    words = _word_bytes(cfg)
    plan = job.plan
    if plan.kind == "conv3":
        # A network that was not compiled has no patterns yet: one per layer, as compiled.
        index = library = (tuple(layer["library"]), tuple(layer["assignment"])) \
            if "library" in layer else ("uncompiled", layer["name"])
        n_index = len(layer.get("assignment", [0]))
        n_library = len(layer.get("library", [0]))
    else:
        index = library = "dense"
        n_index = n_library = 1
    chunk = (layer["name"], job.chunk)
    # A reduction chunk's weights are its group's over its slice of the reduction; every
    # chunk of the group has the group's parameters.
    return {"weights": ((*chunk, job.reduction), plan.total * cfg.rows * words["weights"]),
            "index": (index, n_index * words["index"]),
            "library": (library, n_library * words["library"]),
            "params": (chunk, plan.groups * words["params"]),
            "layers": (None, 2 * cfg.layer_words * words["layers"])}


def job_costs(layer, jobs, cfg, active=None, previous=None):
    """The :class:`JobCost` of each of a layer's ``jobs`` (:func:`~sps_hw.jobs.plan_jobs`),
    as :mod:`sps_hw.dram` packs them: ``active`` maps each image to the key of what the core
    holds (updated), ``previous`` is ``(layer, tile)`` of the job before (None at the start
    of a run). Returns ``(costs, previous)``."""
    active = {} if active is None else active
    costs = []
    for job in jobs:
        if isinstance(job, VectorJob):
            costs.append(vector_cost(job))
            previous = None
            continue
        staged = []
        for name, (key, nbytes) in _image_keys(layer, job, cfg).items():
            if key is not None and active.get(name) == key:
                staged.append(0)
                continue
            active[name] = key
            staged.append(nbytes)
        resident = previous == (layer["name"], job.tile)
        plan = job.plan
        load = 0 if resident else math.prod(job.source)
        oc, oh, ow = job.layer["out_shape"]
        kr, kc = job.keep_rows, job.keep_cols
        if job.reduction is not None and not job.last:     # its sums stay in the core
            costs.append(JobCost(staged=tuple(staged), load=load, compute=plan.cycles,
                                 drained=0, store_channels=0, written=0, tail=0, drain=False))
            previous = (layer["name"], job.tile)
            continue
        if plan.kind == "fc" or job.reduction is not None:   # the outputs are one run
            store_channels, written, tail = 1, oc, 0
        else:
            store_channels, written = oc, oc * (kr.stop - kr.start) * (kc.stop - kc.start)
            tail = oh * ow - (kr.stop - 1) * ow - kc.stop
        costs.append(JobCost(staged=tuple(staged), load=load, compute=plan.cycles,
                             drained=oc * oh * ow, store_channels=store_channels,
                             written=written, tail=tail))
        previous = (layer["name"], job.tile)
    return costs, previous


def layer_traffic(layer, source_shape, cfg, memory):
    """The :class:`LayerTraffic` of a manifest layer dict reading a tensor of
    ``source_shape`` on accelerator ``cfg`` with ``memory``, run on its own, or a string
    saying why it does not run as jobs."""
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
    if not isinstance(memory, Memory):
        raise TypeError(f"memory must be a sps_hw.tiling.Memory, not {memory!r}")
    jobs = _jobs(layer, source_shape, cfg)
    if isinstance(jobs, str):
        return jobs
    costs, _ = job_costs(layer, jobs, cfg)
    return _traffic(layer, jobs, costs, engine_cycles(costs, memory))


def _jobs(layer, source_shape, cfg):
    """The jobs of ``layer`` (of the core or the vector unit), or why it runs on the host."""
    try:
        if layer["op"] != "conv":
            # A network that was not compiled has no multipliers yet: any valid ones time it.
            timing = {"mult": 1 << 14, "mult_a": 1 << 14, "mult_b": 1 << 14, "shift": 15,
                      "relu": bool(layer.get("relu", False))}
            return plan_vector_jobs({**timing, **layer}, max_width=VECTOR_WIDTH,
                                    chunk=VECTOR_CHUNK)
        return plan_jobs(layer, None, source_shape, cfg)
    except SPSError as error:
        return str(error).split(": ", 1)[-1]


def _traffic(layer, jobs, costs, spans):
    reads = dict.fromkeys(("input", *ROM_NAMES, "records"), 0)
    for cost in costs:
        reads["input"] += cost.load
        reads["records"] += RECORD_BYTES
        for name, nbytes in zip(ROM_NAMES, cost.staged):
            reads[name] += nbytes
        reads["input"] += cost.load_b
    compute = sum(c.compute for c in costs)
    if isinstance(jobs[0], VectorJob):
        kind, tiles, tile = layer["op"], 1, tuple(layer["in_shape"][1:])
    else:
        largest = max(jobs, key=lambda j: (j.out_rows.stop - j.out_rows.start)
                      * (j.out_cols.stop - j.out_cols.start))
        scale = 2 if layer.get("pool") else 1
        kind = "fc" if jobs[0].reduction is not None else jobs[0].plan.kind
        tiles = len({job.tile for job in jobs})
        tile = (scale * (largest.out_rows.stop - largest.out_rows.start),
                scale * (largest.out_cols.stop - largest.out_cols.start))
    return LayerTraffic(
        name=layer["name"], kind=kind, jobs=len(jobs), tiles=tiles, tile=tile,
        compute_cycles=compute, stall_cycles=sum(spans) - compute, read_bytes=reads,
        write_bytes=math.prod(layer["out_shape"]),
        drained_bytes=sum(c.drained for c in costs))


def memory_report(model, cfg, memory, keep=None):
    """Per-layer jobs, bytes and cycles of a network run from external memory, as the tile
    engine runs it: one table, a job's images staged only when they change, inputs resident
    between a tile's chunks, a host layer ending a run. Returns ``{"rows", "cols", "memory",
    "layers": [...], "totals": {...}}``; a host layer has ``"runs": "host"`` and a reason."""
    layers, input_shape = network_layers(model, keep)
    shapes = {"input": input_shape}
    work, active, previous = [], {}, None
    for layer in layers:
        shapes[layer["name"]] = tuple(layer["out_shape"])
        jobs = _jobs(layer, shapes[layer["inputs"][0]], cfg)
        if isinstance(jobs, str):
            work.append((layer, jobs, None))
            active, previous = {}, None
            continue
        costs, previous = job_costs(layer, jobs, cfg, active, previous)
        work.append((layer, jobs, costs))
    # Each run of consecutive engine layers is one table: its jobs' cycles.
    spans, run = {}, []
    for layer, _, costs in [*work, (None, None, None)]:
        if costs is not None:
            run.append((layer["name"], costs))
            continue
        cycles = engine_cycles([c for _, cs in run for c in cs], memory)
        for name, cs in run:
            spans[name], cycles = cycles[:len(cs)], cycles[len(cs):]
        run = []
    out = []
    totals = dict.fromkeys(("compute_cycles", "stall_cycles", "read_bytes", "weight_bytes",
                            "write_bytes", "macs", "dense_macs"), 0)
    for layer, jobs, costs in work:
        if costs is None:
            out.append({"name": layer["name"], "op": layer["op"], "runs": "host",
                        "reason": jobs})
            continue
        traffic = _traffic(layer, jobs, costs, spans[layer["name"]])
        macs = dense = 0
        if layer["op"] == "conv":
            ci, co = layer["in_shape"][0], layer["out_shape"][0]
            pixels = math.prod(layer["out_shape"][1:]) * (4 if layer.get("pool") else 1)
            macs = co * ci * layer.get("keep", 1) * pixels
            dense = co * ci * layer["kernel"] ** 2 * pixels
        row = {"runs": "hardware", **traffic.as_dict(),
               "bound": "memory" if traffic.stall_cycles > traffic.compute_cycles else
               "compute", "macs": macs, "dense_macs": dense}
        out.append(row)
        totals["compute_cycles"] += traffic.compute_cycles
        totals["stall_cycles"] += traffic.stall_cycles
        totals["read_bytes"] += sum(traffic.read_bytes.values())
        totals["weight_bytes"] += traffic.read_bytes["weights"]
        totals["write_bytes"] += traffic.write_bytes
        totals["macs"] += macs
        totals["dense_macs"] += dense
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
