"""From a compiled model to what the accelerator runs: layer plans, segments and packed ROMs.

:func:`build` decides which layers the hardware runs (:func:`sps_hw.model.plan_layer`),
groups them into *segments* (chains of hardware layers, each reading only the previous one's
output), and packs the canonical images of ``docs/spec.md`` section 4 into the physical ROM
words of the accelerator (``docs/hardware.md``, section 3). :func:`fit_config` sizes an
accelerator so that a model fits.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler import golden, pps
from compiler.errors import SPSError

from .config import ROM_NAMES, Config
from .indexing import tap_list
from .model import LayerPlan, network_layers, plan_layer
from .top import descriptor_layout, rom_bits, rom_shapes

__all__ = ["Program", "Segment", "build", "fit_config", "hex_lines", "run_network",
           "write_images"]

#: The pattern library of 1x1 and FC layers: the newest pixel of the window (tap 8).
NEWEST_TAP_MASK = 1 << 8


@dataclass
class Segment:
    """A chain of hardware layers: ``source`` (a tensor name) in, ``layers[-1]`` out."""

    layers: list
    source: str
    in_channels: int
    in_hw: int
    out_shape: tuple

    @property
    def output(self):
        return self.layers[-1]


@dataclass
class Program:
    """What an accelerator runs for one model: plans, where each layer runs, ROM images."""

    cfg: Config
    plans: dict                    # hardware layer name -> LayerPlan
    host: dict                     # host layer name -> reason
    order: list                    # all layer names in execution order
    segments: list
    images: dict = field(default_factory=dict)   # ROM name -> list of int words

    def where(self, name):
        return "hardware" if name in self.plans else "host"


def _taps(library, assignment, ci, keep, name):
    """``[ci, keep]`` taps (ascending) of every stored input channel of a 3x3 layer."""
    table = []
    for mask in library:
        taps = pps.mask_taps(mask)
        if len(taps) != keep:
            raise SPSError(f"layer {name!r}: pattern {mask:#05x} keeps {len(taps)} taps, "
                           f"expected keep = {keep}")
        table.append(taps)
    table = np.array(table, dtype=np.int64)
    return table[np.asarray(assignment)[np.arange(ci) % len(assignment)]]


def pack_weights(plan, layer, weight, cfg):
    """The weight-ROM words of one layer, ``[total * rows, cols]`` int8, in pass order."""
    rows, cols = cfg.rows, cfg.cols
    co = plan.out_channels
    weight = np.asarray(weight)
    if plan.kind == "conv3":
        ci = plan.in_channels
        taps = _taps(layer["library"], layer["assignment"], ci, plan.keep, plan.name)
        q = np.arange(plan.reduction)
        c, s = q // plan.keep, q % plan.keep
        t = taps[c, s]
        compact = weight[:, c, t // 3, t % 3]                        # [Co, Q]
        padded = np.zeros((plan.groups * cols, plan.passes * rows), np.int8)
        padded[:co, :plan.reduction] = compact
        words = padded.reshape(plan.groups, cols, plan.passes, rows).transpose(0, 2, 3, 1)
    elif plan.kind == "conv1":
        padded = np.zeros((plan.groups * cols, plan.passes * rows), np.int8)
        padded[:co, :plan.reduction] = weight[:, :, 0, 0]
        words = padded.reshape(plan.groups, cols, plan.passes, rows).transpose(0, 2, 3, 1)
    else:
        flat = weight[:, :, 0, 0].reshape(co, plan.in_channels, plan.subs)
        padded = np.zeros((plan.groups * cols, plan.passes * rows, plan.subs), np.int8)
        padded[:co, :plan.in_channels] = flat
        words = padded.reshape(plan.groups, cols, plan.passes, rows, plan.subs)
        words = words.transpose(0, 4, 2, 3, 1)                       # g, sub, p, r, c
    return np.ascontiguousarray(words.reshape(-1, cols))


def _words(array):
    """Integer ROM words of an ``[n, lanes]`` int8 array, lane 0 in the low byte."""
    raw = np.ascontiguousarray(array).view(np.uint8)
    return [int.from_bytes(row.tobytes(), "little") for row in raw]


def _chain(layers, plans):
    """Group hardware layers into segments: a layer continues the segment of the layer
    before it if it reads that layer's output and nothing else reads it."""
    readers = {}
    for layer in layers:
        for src in layer["inputs"]:
            readers.setdefault(src, []).append(layer["name"])
    groups, prev = [], None
    for layer in layers:
        name = layer["name"]
        if name not in plans:
            prev = None
            continue
        src = layer["inputs"][0]
        if prev is not None and src == prev and readers.get(prev) == [name]:
            groups[-1].append(name)
        else:
            groups.append([name])
        prev = name
    return groups


def build(model, cfg, *, hardware=True):
    """The :class:`Program` of a compiled model (a :class:`compiler.images.CompiledModel`)
    on accelerator ``cfg``; ``hardware=False`` runs every layer on the host.

    Raises :class:`SPSError` if the model's ROM contents do not fit ``cfg``'s ROM depths.
    """
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
    layers = model.layers
    shapes = {"input": tuple(model.manifest["input"]["shape"])}
    plans, host = {}, {}
    for layer in layers:
        name = layer["name"]
        plan = plan_layer(layer, shapes[layer["inputs"][0]], cfg) if hardware else "host only"
        shapes[name] = tuple(layer["out_shape"])
        if isinstance(plan, LayerPlan):
            plans[name] = plan
        else:
            host[name] = plan
    by_name = {layer["name"]: layer for layer in layers}
    segments = []
    for names in _chain(layers, plans):
        first = plans[names[0]]
        segments.append(Segment(names, by_name[names[0]]["inputs"][0], first.in_channels,
                                first.in_hw, tuple(by_name[names[-1]]["out_shape"])))
    program = Program(cfg, plans, host, [layer["name"] for layer in layers], segments)
    program.images = _pack(program, by_name, model.weights, cfg)
    return program


def _descriptor_words(cfg, value):
    """A descriptor as descriptor-ROM words (``cfg.layer_words`` of them, low bits first)."""
    words = cfg.layer_words
    if words == 1:
        return [value]
    width = rom_bits(rom_shapes(cfg)["layers"][0])
    return [(value >> (width * i)) & ((1 << width) - 1) for i in range(words)]


def _pack(program, by_name, weights, cfg):
    shapes = rom_shapes(cfg)
    desc_layout = descriptor_layout(cfg)
    param_layout, _ = shapes["params"]
    images = {name: [] for name in ROM_NAMES}
    for seg in program.segments:
        for name in seg.layers:
            plan, layer = program.plans[name], by_name[name]
            if plan.kind == "conv3":
                library, assignment = list(layer["library"]), list(layer["assignment"])
            else:
                library, assignment = [NEWEST_TAP_MASK], [0]
            if len(library) > cfg.max_patterns:
                raise SPSError(f"layer {name!r}: {len(library)} patterns > max_patterns "
                               f"{cfg.max_patterns} of the accelerator")
            words = pack_weights(plan, layer, weights[name], cfg)
            groups = plan.groups * cfg.cols
            pad = groups - plan.out_channels
            bias = np.concatenate([np.asarray(layer["bias"], np.int64), np.zeros(pad, np.int64)])
            mult = np.concatenate([np.asarray(layer["mult"], np.int64), np.ones(pad, np.int64)])
            shift = np.concatenate([np.asarray(layer["shift"], np.int64),
                                    np.ones(pad, np.int64)])
            if np.any(bias < -2**31) or np.any(bias >= 2**31) or np.any(mult < 1) or \
                    np.any(mult >= 2**31) or np.any(shift < 1) or np.any(shift > 63):
                raise SPSError(f"layer {name!r}: bias must be int32, mult in 1..2**31-1 and "
                               f"shift in 1..63")
            if np.any(mult >= 2 ** (cfg.mult_bits - 1)):
                raise SPSError(f"layer {name!r}: mult {int(mult.max())} does not fit the "
                               f"accelerator's {cfg.mult_bits}-bit requantizer (at most "
                               f"{2 ** (cfg.mult_bits - 1) - 1})")
            bases = {"weight_base": len(images["weights"]), "index_base": len(images["index"]),
                     "param_base": len(images["params"])}
            images["weights"] += _words(words)
            # Index: the library address of each phase's pattern; library: tap lists.
            images["index"] += [len(images["library"]) + int(a) for a in assignment]
            images["library"] += [tap_list(int(v)) for v in library]
            for g in range(plan.groups):
                sl = slice(g * cfg.cols, (g + 1) * cfg.cols)
                images["params"].append(param_layout.const({
                    "bias": [int(v) for v in bias[sl]], "mult": [int(v) for v in mult[sl]],
                    "shift": [int(v) for v in shift[sl]]}).as_value().value)
            fields = {f: getattr(plan, f) for f in (
                "height", "width", "hw", "acc_hw", "in_hw", "out_hw", "in_channels",
                "out_channels",
                "keep", "reduction", "passes", "subs", "groups", "ring", "t_feed", "t_walk")}
            # The schedule in the form the controller compares it in (controller.Descriptor).
            fields.update(last_pass=plan.total - 1, last_slot=plan.cycle - 1,
                          lead_from=plan.hw - plan.lead)
            if plan.acc_partial and name != seg.layers[-1]:
                raise SPSError(f"layer {name!r} leaves its sums in the accumulator "
                               f"(acc_partial): no layer can read its output")
            images["layers"] += _descriptor_words(cfg, desc_layout.const({
                "valid": 1, "seg_first": int(name == seg.layers[0]),
                # A partial layer writes no output: there is nothing to drain.
                "seg_last": int(name == seg.layers[-1] and not plan.acc_partial),
                "conv3": int(plan.conv3),
                "relu": int(plan.relu), "pool": int(plan.pool), "stride2": int(plan.stride == 2),
                "acc_continue": int(plan.acc_continue), "acc_partial": int(plan.acc_partial),
                "period": len(assignment),
                **fields, **bases}).as_value().value)
    images["layers"] += _descriptor_words(cfg, 0)               # terminator
    for name, (_, depth) in shapes.items():
        if len(images[name]) > depth:
            raise SPSError(f"the model needs {len(images[name])} words of the {name} ROM, the "
                           f"accelerator has {depth}; generate it with the model "
                           f"(--model) or larger ROMs")
    return images


def fit_config(model, rows=8, cols=8, **given):
    """A :class:`Config` of ``rows x cols`` whose buffers and ROMs fit every layer of
    ``model`` that the hardware can run; parameters in ``given`` are kept as they are."""
    base = Config(rows=rows, cols=cols)
    huge = base.replace(max_hw=2**20, max_width=2**20, fmap_depth=2**30, **{
        k: v for k, v in given.items() if k in ("max_hw", "max_width", "fmap_depth")})
    layers, input_shape = network_layers(model)
    shapes = {"input": input_shape}
    need = {"max_hw": 1, "max_width": 1, "fmap_depth": 1}
    banks = huge.banks
    for layer in layers:
        plan = plan_layer(layer, shapes[layer["inputs"][0]], huge)
        shapes[layer["name"]] = tuple(layer["out_shape"])
        if not isinstance(plan, LayerPlan):
            continue
        need["max_hw"] = max(need["max_hw"], plan.hw, plan.in_hw, plan.out_hw)
        if plan.conv3:
            need["max_width"] = max(need["max_width"], plan.width)
        need["fmap_depth"] = max(need["fmap_depth"],
                                 math.ceil(plan.in_channels / banks) * plan.in_hw,
                                 math.ceil(plan.out_channels / banks) * plan.out_hw)
    sizes = {k: given.get(k, v) for k, v in need.items()}
    sizes["max_width"] = min(sizes["max_width"], sizes["max_hw"])
    cfg = base.replace(**sizes)
    cfg = cfg.replace(**{k: v for k, v in given.items() if k not in sizes})
    program = build(model, cfg.replace(weight_depth=2**31, index_depth=2**20,
                                       library_depth=2**20, param_depth=2**20,
                                       layer_depth=2**12, max_patterns=2**8))
    depth = {name: max(1, len(words)) for name, words in program.images.items()}
    patterns = max([len(model.layer(n)["library"]) for n, p in program.plans.items()
                    if p.conv3] + [1])
    derived = {"weight_depth": depth["weights"], "index_depth": depth["index"],
               "library_depth": depth["library"], "param_depth": depth["params"],
               "layer_depth": max(2, -(-depth["layers"] // cfg.layer_words)),
               "max_patterns": max(2, patterns)}
    return cfg.replace(**{k: given.get(k, v) for k, v in derived.items()})


def hex_lines(words, bits):
    """``$readmemh`` text: one word per line, ``ceil(bits / 4)`` hex digits."""
    digits = max(1, -(-bits // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def write_images(program, directory):
    """Write the packed ROM images ``<name>.hex`` of ``program`` into ``directory``."""
    directory = Path(directory)
    for name, (shape, _) in rom_shapes(program.cfg).items():
        words = program.images.get(name, [])
        (directory / f"{name}.hex").write_text(hex_lines(words or [0], rom_bits(shape)))
    return directory


def run_network(model, program, x, run_segment):
    """Run compiled ``model`` on int8 input ``x``: each hardware segment of ``program`` through
    ``run_segment(index, tensor)`` (its index in ``program.segments`` and its input tensor;
    returns the segment's output values), every other layer on the host through
    ``compiler.golden``. Returns ``{tensor name: int8 array}`` of every tensor computed (the
    hardware segments' outputs, not their inner layers')."""
    acts = {"input": np.asarray(x, np.int8)}
    first = {seg.layers[0]: i for i, seg in enumerate(program.segments)}
    for layer in model.layers:
        name = layer["name"]
        if name in first:
            seg = program.segments[first[name]]
            y = np.asarray(run_segment(first[name], acts[seg.source]), np.int8)
            acts[seg.output] = y.reshape(seg.out_shape)
        elif name not in program.plans:
            acts[name] = golden.run_layer(layer, model.weights.get(name),
                                          [acts[src] for src in layer["inputs"]])
    return acts
