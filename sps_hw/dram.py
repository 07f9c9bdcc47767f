"""The external-memory image of a compiled model for the tile engine (:mod:`sps_hw.engine`):
one binary holding the job table, every tensor and every image, and a JSON map of it.

Layout (byte offsets, each region aligned to :data:`ALIGN`): the segment directory (one
:data:`SEGMENT_FORMAT` record per *segment*, a run of consecutive engine jobs between host
steps: where its jobs are, the one tensor it reads from outside and the tensor it ends with;
``boards.dram.core`` runs segments for the host link), the job table (one
:data:`~sps_hw.engine.RECORD_BYTES` record per job, in execution order), then the tensors
(the network input and every layer's output, int8 in C, H, W order), then the images the
jobs stage (little-endian words of ``ceil(width / 8)`` bytes, as ``sps build``'s ``.bin``
images; identical images are stored once). A job stages an image only when it differs from
the one its memory holds from the job before, and finds its input already in the core when
the job before read the same tile. A reduction chunk (:mod:`sps_hw.jobs`) loads its slice of
the flattened source as one run; the chunks that leave their sums in the core store an empty
crop (0 channels: the writer takes it and writes nothing).

Layers the array cannot run (:func:`sps_hw.model.plan_layer`), and those the caller leaves to
the host (a board whose DRAM cannot hold their images), are *host steps*: the table is
run in *steps*, ``("jobs", first, count)`` through the engine and ``("host", name)`` by the
host between them (reading and writing the tensors in the image).
"""

import copy
import hashlib
import json
import struct
from dataclasses import dataclass, field

import numpy as np

from compiler import images as model_images
from compiler.errors import SPSError

from .config import ROM_NAMES, Config, word_bytes
from .engine import RECORD_BYTES, VECTOR_CHUNK, VECTOR_WIDTH, job_layout
from .jobs import VectorJob, plan_jobs, plan_vector_jobs
from .model import LayerPlan, plan_layer
from .program import build
from .top import descriptor_layout, rom_widths

__all__ = ["ALIGN", "SEGMENT_BYTES", "SEGMENT_FORMAT", "DramImage", "JobEntry", "Segment",
           "pack"]

#: Alignment of every region in bytes (a beat of a 512-bit bus).
ALIGN = 64
#: A segment record (little-endian): byte address of its first job record, job count, input
#: tensor address and bytes, output tensor address and bytes (0 bytes: not one tensor).
SEGMENT_FORMAT = "<IIIIII8x"
SEGMENT_BYTES = struct.calcsize(SEGMENT_FORMAT)


@dataclass
class Segment:
    """Jobs ``first .. first + count - 1`` (one ``("jobs", ...)`` step), the layers they
    run, the tensor they read that no job of theirs writes (``None`` unless exactly one) and
    the tensor of their last layer."""

    first: int
    count: int
    layers: list
    input: str
    output: str


@dataclass
class JobEntry:
    """One record of the table: the layer it belongs to, its :class:`~sps_hw.jobs.Job`, the
    record's fields, and the bytes it stages and loads."""

    layer: str
    job: object
    record: dict
    staged: dict
    load_bytes: int
    resident: bool


@dataclass
class DramImage:
    """The packed image: ``data`` (bytes), ``tensors`` (``{name: {"offset", "shape"}}``),
    ``regions`` (every region of the map), ``jobs`` (:class:`JobEntry` per record) and
    ``steps`` (``("jobs", first, count)`` or ``("host", layer name)``, in order)."""

    cfg: Config
    data: bytearray
    tensors: dict
    regions: list
    jobs: list
    steps: list
    table: int = 0
    segments: list = field(default_factory=list)    # Segment per ("jobs", ...) step
    output: str = ""
    layers: dict = field(default_factory=dict)      # layer name -> [job indices]
    order: list = field(default_factory=list)       # every layer name, in order
    host: dict = field(default_factory=dict)        # host layer name -> why

    def costs(self, first=0, count=None):
        """The :class:`~sps_hw.tiling.JobCost` of jobs ``first .. first + count - 1``."""
        from .tiling import JobCost, vector_cost

        out = []
        for entry in self.jobs[first:None if count is None else first + count]:
            job, store = entry.job, entry.record["store"]
            if isinstance(job, VectorJob):
                out.append(vector_cost(job))
                continue
            oc, oh, ow = job.layer["out_shape"]
            rows, cols = store["rows"], store["cols"]
            drain = not job.plan.acc_partial        # a partial chunk's sums stay in the core
            out.append(JobCost(
                staged=tuple(entry.staged.get(name, 0) for name in ROM_NAMES),
                load=entry.load_bytes, compute=job.plan.cycles,
                drained=oc * oh * ow if drain else 0, drain=drain,
                store_channels=store["channels"],
                written=store["channels"] * (store["keep_row1"] - store["keep_row0"])
                * (store["keep_col1"] - store["keep_col0"]),
                tail=rows * cols - (store["keep_row1"] - 1) * cols - store["keep_col1"]))
        return out

    def map(self):
        """The JSON map of the image."""
        return {"size": len(self.data), "record_bytes": RECORD_BYTES, "table": self.table,
                "jobs": len(self.jobs), "output": self.output,
                "segments": [vars(s) for s in self.segments],
                "tensors": self.tensors, "regions": self.regions,
                "steps": [list(s) for s in self.steps],
                "layers": self.layers, "host": self.host}

    def write(self, directory):
        """``dram.bin`` and ``dram.json`` into ``directory``."""
        (directory / "dram.bin").write_bytes(bytes(self.data))
        (directory / "dram.json").write_text(json.dumps(self.map(), indent=1) + "\n")

    def tensor(self, name, data=None):
        """The int8 tensor ``name`` in ``data`` (the image's own bytes by default)."""
        t = self.tensors[name]
        raw = (self.data if data is None else data)[t["offset"]:t["offset"] + t["bytes"]]
        return np.frombuffer(bytes(raw), np.int8).reshape(t["shape"])

    def put_tensor(self, name, value, data=None):
        """Write int8 tensor ``name`` into ``data`` (the image's own bytes by default)."""
        t = self.tensors[name]
        value = np.asarray(value, np.int8).reshape(t["shape"])
        (self.data if data is None else data)[t["offset"]:t["offset"] + t["bytes"]] = \
            value.tobytes()


def _align(n):
    return -(-n // ALIGN) * ALIGN


def _job_model(model, job):
    """A compiled model of the one layer of ``job``."""
    manifest = copy.deepcopy(model.manifest)
    manifest["input"]["shape"] = list(job.source)
    manifest["layers"] = [job.layer]
    manifest["output"] = dict(manifest["output"], name=job.layer["name"],
                              shape=job.layer["out_shape"])
    return model_images.CompiledModel(manifest, {job.layer["name"]: job.weight})


def _image_bytes(words, width):
    n = word_bytes(width)
    return b"".join(int(w).to_bytes(n, "little") for w in words)


def pack(model, cfg, host=None):
    """The :class:`DramImage` of compiled ``model`` on a tile engine with core ``cfg``;
    ``host`` maps layers to leave to the host anyway to the reason (say, the image's room)."""
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
    host = dict(host or {})
    unknown = set(host) - {layer["name"] for layer in model.layers}
    if unknown:
        raise ValueError(f"host names layers the model does not have: {sorted(unknown)}")
    shapes = {"input": tuple(model.manifest["input"]["shape"])}
    for layer in model.layers:
        shapes[layer["name"]] = tuple(layer["out_shape"])
    # The work: per layer its jobs, or a host step.
    work = []
    for layer in model.layers:
        name = layer["name"]
        source = shapes[layer["inputs"][0]]
        if name in host:
            work.append((layer, None))
            continue
        if layer["op"] != "conv":
            try:
                work.append((layer, plan_vector_jobs(layer, max_width=VECTOR_WIDTH,
                                                     chunk=VECTOR_CHUNK)))
            except SPSError as error:
                host[name] = str(error).split(": ", 1)[-1]
                work.append((layer, None))
            continue
        plan = plan_layer(layer, source, cfg.replace(
            max_hw=2**20, max_width=2**20, fmap_depth=2**30, weight_depth=2**31,
            param_depth=2**20))
        if isinstance(plan, LayerPlan):
            work.append((layer, plan_jobs(layer, model.weights[name], source, cfg)))
        else:
            host[name] = plan
            work.append((layer, None))
    widths = rom_widths(cfg)
    desc = descriptor_layout(cfg)
    # The directory and the table, then the tensors: their offsets go into the records.
    n_segments = sum(1 for i, (_, jobs) in enumerate(work)
                     if jobs is not None and (i == 0 or work[i - 1][1] is None))
    table = _align(n_segments * SEGMENT_BYTES)
    n_jobs = sum(len(jobs) for _, jobs in work if jobs)
    offset = _align(table + n_jobs * RECORD_BYTES)
    tensors, regions = {}, [
        {"name": "segments", "kind": "directory", "offset": 0,
         "bytes": n_segments * SEGMENT_BYTES},
        {"name": "jobs", "kind": "table", "offset": table, "bytes": n_jobs * RECORD_BYTES}]
    for name, shape in shapes.items():
        nbytes = int(np.prod(shape))
        tensors[name] = {"offset": offset, "shape": list(shape), "bytes": nbytes}
        regions.append({"name": name, "kind": "tensor", "offset": offset, "bytes": nbytes})
        offset = _align(offset + nbytes)
    blobs, blob_at = [], {}

    def place(raw, label):
        nonlocal offset
        key = hashlib.sha256(raw).hexdigest()
        if key not in blob_at:
            blob_at[key] = offset
            blobs.append((offset, raw))
            regions.append({"name": label, "kind": "image", "offset": offset,
                            "bytes": len(raw)})
            offset = _align(offset + len(raw))
        return blob_at[key]

    record_layout = job_layout()
    active = dict.fromkeys(ROM_NAMES)
    entries, steps, by_layer = [], [], {}
    previous = None                         # (layer, tile) of the job before
    for layer, jobs in work:
        name = layer["name"]
        if jobs is None:
            steps.append(("host", name))
            previous = None
            continue
        first = len(entries)
        src = tensors[layer["inputs"][0]]
        out = tensors[name]
        _, oh, ow = out["shape"]
        if isinstance(jobs[0], VectorJob):
            other = tensors[layer["inputs"][-1]]
            for job in jobs:
                entries.append(_vector_entry(name, job, src, other, out))
            previous = None
            jobs = ()
        for job in jobs:
            program = build(_job_model(model, job), cfg)
            resident = previous == (name, job.tile)
            images = dict(program.images)
            if resident:
                images["layers"] = _set_resident(cfg, desc, images["layers"])
            record = {"images": [], "load": {}, "store": {}}
            staged = {}
            for rom in ROM_NAMES:
                raw = _image_bytes(images[rom], widths[rom][0])
                if rom != "layers" and raw == active[rom]:
                    record["images"].append({"addr": 0, "bytes": 0})
                    continue
                active[rom] = raw
                staged[rom] = len(raw)
                record["images"].append({"addr": place(raw, f"{name}/{rom}"),
                                         "bytes": len(raw)})
            ci, sh, sw = src["shape"]
            if job.reduction is not None:
                # Its slice of the flattened source in; the group's outputs out after the
                # last chunk, nothing after the others (an empty crop: the writer takes it
                # and writes nothing).
                start, stop = job.reduction
                n = job.channels.stop - job.channels.start
                load = _run(src["offset"] + start, stop - start)
                store = {"base": out["offset"] + job.channels.start,
                         "channels": 1 if job.last else 0, "rows": 1, "cols": n,
                         "row_pitch": 0, "channel_pitch": 0, "keep_row0": 0,
                         "keep_row1": 1, "keep_col0": 0, "keep_col1": n}
            elif job.plan.kind == "fc":
                # The whole source in, the chunk's outputs out: one run each.
                n = job.channels.stop - job.channels.start
                load = {"base": src["offset"], "channels": 1, "rows": 1, "cols": ci * sh * sw,
                        "row_pitch": 0, "channel_pitch": 0}
                store = {"base": out["offset"] + job.channels.start, "channels": 1, "rows": 1,
                         "cols": n, "row_pitch": 0, "channel_pitch": 0, "keep_row0": 0,
                         "keep_row1": 1, "keep_col0": 0, "keep_col1": n}
            else:
                load = {"base": src["offset"] + job.rows.start * sw + job.cols.start,
                        "channels": ci, "rows": job.rows.stop - job.rows.start,
                        "cols": job.cols.stop - job.cols.start, "row_pitch": sw,
                        "channel_pitch": sh * sw}
                jc, jh, jw = job.layer["out_shape"]
                store = {"base": out["offset"] + job.channels.start * oh * ow
                         + job.out_rows.start * ow + job.out_cols.start,
                         "channels": jc, "rows": jh, "cols": jw, "row_pitch": ow,
                         "channel_pitch": oh * ow,
                         "keep_row0": job.keep_rows.start, "keep_row1": job.keep_rows.stop,
                         "keep_col0": job.keep_cols.start, "keep_col1": job.keep_cols.stop}
            load = _merged(load)
            load_bytes = load["channels"] * load["rows"] * load["cols"]
            if resident:
                load = dict(load, channels=0)
                load_bytes = 0
            record["load"], record["store"] = load, store
            entries.append(JobEntry(name, job, record, staged, load_bytes, resident))
            previous = (name, job.tile)
        by_layer[name] = list(range(first, len(entries)))
        count = len(entries) - first
        if steps and steps[-1][0] == "jobs":
            steps[-1] = ("jobs", steps[-1][1], steps[-1][2] + count)
        else:
            steps.append(("jobs", first, count))
    data = bytearray(offset)
    for at, raw in blobs:
        data[at:at + len(raw)] = raw
    for i, entry in enumerate(entries):
        value = record_layout.const(entry.record).as_value().value
        at = table + i * RECORD_BYTES
        data[at:at + RECORD_BYTES] = value.to_bytes(RECORD_BYTES, "little")
    segments = _segments(model, steps, entries)
    assert len(segments) == n_segments
    for i, seg in enumerate(segments):
        ends = [(tensors[name]["offset"], tensors[name]["bytes"]) if name else (0, 0)
                for name in (seg.input, seg.output)]
        data[i * SEGMENT_BYTES:(i + 1) * SEGMENT_BYTES] = struct.pack(
            SEGMENT_FORMAT, table + seg.first * RECORD_BYTES, seg.count, *ends[0], *ends[1])
    image = DramImage(cfg, data, tensors, regions, entries, steps, table=table,
                      segments=segments, output=model.manifest["output"]["name"],
                      layers=by_layer, order=[layer["name"] for layer in model.layers],
                      host=host)
    return image


def _segments(model, steps, entries):
    """The :class:`Segment` of each ``("jobs", first, count)`` step."""
    inputs = {layer["name"]: layer["inputs"] for layer in model.layers}
    out = []
    for kind, *args in steps:
        if kind != "jobs":
            continue
        first, count = args
        layers = list(dict.fromkeys(e.layer for e in entries[first:first + count]))
        outside = list(dict.fromkeys(t for name in layers for t in inputs[name]
                                     if t not in layers))
        out.append(Segment(first, count, layers, outside[0] if len(outside) == 1 else None,
                           layers[-1]))
    return out


def _merged(rect):
    """``rect`` with its rows joined into one run where they follow each other in memory,
    and its channels too (fewer, longer runs: the reader takes a run every other cycle)."""
    rect = dict(rect)
    if rect["rows"] > 1 and rect["cols"] == rect["row_pitch"]:
        rect.update(cols=rect["rows"] * rect["cols"], rows=1)
    if rect["rows"] == 1 and rect["channels"] > 1 and rect["cols"] == rect["channel_pitch"]:
        rect.update(cols=rect["channels"] * rect["cols"], channels=1)
    return rect


def _run(base, nbytes):
    """A rectangle of one run of ``nbytes`` at ``base``."""
    return {"base": base, "channels": 1 if nbytes else 0, "rows": 1, "cols": nbytes,
            "row_pitch": 0, "channel_pitch": 0}


def _vector_entry(name, job, a, b, out):
    """The :class:`JobEntry` of a :class:`~sps_hw.jobs.VectorJob` of layer ``name`` reading
    tensors ``a`` and ``b`` and writing ``out`` (entries of the image's tensor map)."""
    n = job.out[1]
    record = {"vector": 1, "images": [{"addr": 0, "bytes": 0}] * len(ROM_NAMES),
              "load": _run(a["offset"] + job.a[0], job.a[1]),
              "load_b": _run(b["offset"] + job.b[0], job.b[1]),
              "store": dict(_run(out["offset"] + job.out[0], n), keep_row0=0, keep_row1=1,
                            keep_col0=0, keep_col1=n),
              "command": job.command}
    return JobEntry(name, job, record, {}, job.a[1] + job.b[1], False)


def _set_resident(cfg, desc, words):
    """The descriptor image ``words`` with its first descriptor's ``resident`` flag set."""
    bit = {name: f.offset for name, f in desc}["resident"]
    width = rom_widths(cfg)["layers"][0]
    words = list(words)
    words[bit // width] |= 1 << (bit % width)
    return words
