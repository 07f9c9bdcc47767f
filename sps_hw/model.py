"""The analytical model of the accelerator: per-layer geometry, schedule and cycle count.

:func:`plan_layer` decides whether the hardware runs a layer and, if so, computes everything
the controller needs (written into the layer's descriptor) and the exact number of cycles
the RTL takes. The schedule (see ``docs/hardware.md``, section 4) runs every pass in

    S = max(HW, R, C - 1, read_latency + 2)

cycles, and a layer takes

    cycles = fetch_cycles(cfg) + t_feed + N * S + HW + Stages.of(cfg).latency

where ``t_feed = max(0, R + D - HW)`` and ``N`` is the number of passes. The system tests
compare this with the cycle counter of the RTL for every layer they run.
"""

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from compiler import images, pipeline
from compiler.graph import Network

from .config import Config
from .controller import fetch_cycles
from .top import Stages

__all__ = ["LayerPlan", "layer_cycles", "min_pass_cycles", "plan_layer"]


def min_pass_cycles(cfg):
    """The shortest pass: a pixel's accumulator entry is read again a pass after it was read,
    which must be after its new total was written (``Accumulator.rmw_cycles``)."""
    return cfg.read_latency + 2
#: The only fused pool the hardware runs (``docs/spec.md`` section 3.3; others run on the host).
POOL2 = {"k": 2, "s": 2, "p": 0}


@dataclass
class LayerPlan:
    """A layer as the hardware runs it; field names match the descriptor (``Descriptor``)."""

    name: str
    kind: str              # "conv3", "conv1" or "fc"
    in_channels: int       # channels of the input tensor as stored (FC: of the source)
    out_channels: int
    keep: int
    height: int
    width: int
    hw: int                # pixel slots per pass: the input pixels (1 for FC)
    acc_hw: int            # output pixels per pass, pre-pool: hw, or stride 2's quarter
    tail: int              # slots of the last pass up to its last output (hw at stride 1)
    in_hw: int             # pixels per channel of the input tensor
    out_hw: int            # pixels per channel of the output tensor (after the pool)
    subs: int              # FC: one sub-pass per input pixel; else 1
    reduction: int         # Q, reduction indices per (group, sub-pass)
    passes: int            # NP = ceil(Q / R)
    groups: int            # G = ceil(Co / C)
    total: int             # N = G * subs * NP
    lead: int              # D
    ring: int
    cycle: int             # S
    t_feed: int
    t_walk: int
    cycles: int
    macs: int              # useful multiply-accumulates
    dense_macs: int        # multiply-accumulates of the same layer unpruned
    relu: bool
    pool: bool
    stride: int = 1
    # A reduction chunk (sps_hw.jobs): the accumulator continues the sums the job before
    # left (no bias), and/or leaves its sums for the next job (no requantize, no output).
    acc_continue: bool = False
    acc_partial: bool = False

    @property
    def conv3(self):
        return self.kind == "conv3"

    def utilization(self, cfg):
        return self.macs / (cfg.rows * cfg.cols * self.cycles)

    def as_dict(self):
        return asdict(self)


def layer_cycles(cfg, *, hw, lead, total, tail=None):
    """``(S, t_feed, t_walk, cycles)`` of a layer of ``total`` passes of ``hw`` pixel slots
    on accelerator ``cfg``, whose last output is issued in slot ``tail - 1`` of the last pass
    (default ``hw``: the last slot)."""
    rows, cols = cfg.rows, cfg.cols
    cycle = max(hw, rows, cols - 1, min_pass_cycles(cfg))
    t_feed = max(0, rows + lead - hw)
    t_walk = t_feed + hw - lead - rows
    cycles = fetch_cycles(cfg) + t_feed + total * cycle + (hw if tail is None else tail) + \
        Stages.of(cfg).latency
    return cycle, t_feed, t_walk, cycles


def plan_layer(layer, source_shape, cfg):
    """The :class:`LayerPlan` of a manifest layer dict on accelerator ``cfg``, or a string
    saying why the hardware does not run it (then it runs on the host).

    ``source_shape`` is the shape of the tensor the layer reads (its input's ``out_shape``).
    Only ``op``, ``in_shape``, ``out_shape``, ``kernel``, ``stride``, ``pad``, ``keep``,
    ``relu`` and ``pool`` are used, so a layer needs no weights to be planned; a reduction
    chunk's job (:func:`sps_hw.jobs.plan_jobs`) also has ``acc_continue`` and
    ``acc_partial`` (the plan's fields of those names).
    """
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
    op = layer["op"]
    if op != "conv":
        return f"{op} runs on the host"
    k, stride, pad = layer["kernel"], layer["stride"], layer["pad"]
    if stride not in (1, 2):
        return f"stride {stride}"
    if not ((k == 3 and pad == 1) or (k == 1 and pad == 0)):
        return f"{k}x{k} kernel with padding {pad}"
    pool = layer.get("pool")
    if pool and dict(pool) != POOL2:
        return f"fused pool {pool} (the hardware pools 2x2, stride 2)"
    if pool and stride == 2:
        return "stride 2 with a fused pool"
    ci, h, w = (int(v) for v in layer["in_shape"])
    co = int(layer["out_shape"][0])
    source = tuple(int(v) for v in source_shape)
    rows, cols, banks = cfg.rows, cfg.cols, cfg.banks
    if k == 3:
        keep = int(layer["keep"])
        if h < 2 or w < 2:
            return f"3x3 on a {h}x{w} map (needs at least 2 rows and 2 columns)"
        if w > cfg.max_width:
            return f"width {w} > max_width {cfg.max_width}"
        kind, hw, in_channels, in_hw, subs = "conv3", h * w, ci, h * w, 1
        lead, ring, reduction = w + 1, w, ci * keep
    elif source == (ci, h, w):
        keep = 1
        kind, hw, in_channels, in_hw, subs = "conv1", h * w, ci, h * w, 1
        lead, ring, reduction = 0, 1, ci
    else:                              # FC on a flattened [C, H, W] tensor
        keep = 1
        kind, hw, in_channels = "fc", 1, source[0]
        in_hw = subs = source[1] * source[2]
        lead, ring, reduction = 0, 1, in_channels
    if hw > cfg.max_hw or in_hw > cfg.max_hw:
        return f"{max(hw, in_hw)} pixels > max_hw {cfg.max_hw}"
    if stride == 2 and kind == "fc":
        return "stride 2 on a flattened input"
    # Stride 2 issues the outputs at the even rows and columns of every pass's pixel slots.
    acc_hw, tail = hw, hw
    if stride == 2:
        acc_hw = ((h + 1) // 2) * ((w + 1) // 2)
        tail = (h - 1) // 2 * 2 * w + (w - 1) // 2 * 2 + 1
    out_hw = (h // 2) * (w // 2) if (pool and kind != "fc") else acc_hw
    if pool and out_hw == 0:
        return "pool of a map smaller than 2x2"
    for what, channels, pixels in (("input", in_channels, in_hw), ("output", co, out_hw)):
        need = math.ceil(channels / banks) * pixels
        if need > cfg.fmap_depth:
            return (f"{what} tensor needs {need} words per bank > fmap_depth "
                    f"{cfg.fmap_depth}")
        if channels >= 2 ** cfg.channel_bits:
            return f"{channels} {what} channels (channel_bits {cfg.channel_bits})"
    passes = math.ceil(reduction / rows)
    groups = math.ceil(co / cols)
    acc_continue, acc_partial = bool(layer.get("acc_continue")), bool(layer.get("acc_partial"))
    if (acc_continue or acc_partial) and groups > 1:
        # The accumulator holds one group's sums per pixel: every group's would collide.
        return f"a reduction chunk of {groups} output groups (the accumulator holds one)"
    total = groups * subs * passes
    cycle, t_feed, t_walk, cycles = layer_cycles(cfg, hw=hw, lead=lead, total=total,
                                                 tail=tail)
    if max(total, reduction) >= 2 ** cfg.count_bits or \
            max(cycle - 1, t_feed, t_walk) >= 2 ** cfg.slot_bits:
        return (f"{total} passes of {cycle} cycles, reduction {reduction} (the counters "
                f"hold 2**{cfg.count_bits}, the slots 2**{cfg.slot_bits})")
    macs = co * reduction * subs * acc_hw
    return LayerPlan(
        name=layer["name"], kind=kind, in_channels=in_channels, out_channels=co, keep=keep,
        height=1 if kind == "fc" else h, width=1 if kind == "fc" else w, hw=hw,
        acc_hw=acc_hw, tail=tail, in_hw=in_hw, out_hw=out_hw, subs=subs, reduction=reduction,
        passes=passes, groups=groups, total=total, lead=lead, ring=ring, cycle=cycle,
        t_feed=t_feed, t_walk=t_walk, cycles=cycles, macs=macs,
        dense_macs=co * ci * k * k * acc_hw, relu=bool(layer["relu"]),
        pool=bool(pool) and kind != "fc", stride=stride, acc_continue=acc_continue,
        acc_partial=acc_partial)


def network_layers(model, keep=None):
    """``(layers, input_shape)`` of a compiled model, a model directory, a built-in name or a
    float :class:`compiler.graph.Network`.

    For a network that was not compiled, layer dicts carry what :func:`plan_layer` needs,
    with ``keep`` from the compiler's defaults (3x3 layers keep 4, except the first conv
    reading the network input, which stays dense), or ``keep`` for every 3x3 layer.
    """
    if isinstance(model, images.CompiledModel):
        return model.layers, tuple(model.manifest["input"]["shape"])
    path = Path(str(model))
    if not isinstance(model, Network) and (path / "manifest.json").is_file():
        loaded = images.load(path, verify=False)
        return loaded.layers, tuple(loaded.manifest["input"]["shape"])
    net = model if isinstance(model, Network) else pipeline.load_network(str(model))
    layers = []
    first = next((c.name for c in net.convs() if "input" in c.inputs), None)
    for layer in net.layers:
        entry = {"name": layer.name, "op": layer.op, "inputs": list(layer.inputs),
                 "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape),
                 "kernel": layer.kernel, "stride": layer.stride, "pad": layer.pad,
                 "relu": layer.relu, "pool": layer.pool}
        if layer.op == "conv" and layer.kernel == 3 and keep is not None:
            entry["keep"] = keep
        elif layer.op == "conv":
            entry["keep"] = 4 if layer.kernel == 3 and layer.name != first else \
                layer.kernel ** 2
        layers.append(entry)
    return layers, tuple(net.input_shape)


def cycle_report(model, cfg, keep=None):
    """Per-layer cycles, utilization and dense-equivalent throughput of a whole network
    (``keep``: every 3x3 layer of an uncompiled network pruned to that many taps).

    Returns ``{"rows", "cols", "layers": [...], "total_cycles", "macs", "utilization",
    "dense_ops_per_multiplier_cycle"}``; host layers have ``"runs": "host"`` and a reason.
    """
    layers, input_shape = network_layers(model, keep)
    shapes = {"input": input_shape}
    rows, total, macs, dense = [], 0, 0, 0
    for layer in layers:
        shapes[layer["name"]] = tuple(layer["out_shape"])
        plan = plan_layer(layer, shapes[layer["inputs"][0]], cfg)
        if isinstance(plan, str):
            rows.append({"name": layer["name"], "op": layer["op"], "runs": "host",
                         "reason": plan})
            continue
        util = plan.utilization(cfg)
        rows.append({
            "name": plan.name, "op": plan.kind, "runs": "hardware", "keep": plan.keep,
            "passes": plan.total, "cycles_per_pass": plan.cycle, "cycles": plan.cycles,
            "macs": plan.macs, "dense_macs": plan.dense_macs, "utilization": round(util, 4),
            "dense_ops_per_multiplier_cycle": round(
                plan.dense_macs / (cfg.rows * cfg.cols * plan.cycles), 4)})
        total += plan.cycles
        macs += plan.macs
        dense += plan.dense_macs
    mults = cfg.rows * cfg.cols
    return {"rows": cfg.rows, "cols": cfg.cols, "layers": rows, "total_cycles": total,
            "macs": macs, "utilization": round(macs / (mults * total), 4) if total else None,
            "dense_ops_per_multiplier_cycle": round(dense / (mults * total), 4)
            if total else None}


def format_report(report):
    """A text table of :func:`cycle_report`."""
    head = (f"{'layer':<22} {'runs':<9} {'keep':>4} {'passes':>8} {'S':>6} {'cycles':>12} "
            f"{'util':>6} {'dense/mult/cyc':>14}")
    lines = [f"array {report['rows']} x {report['cols']}", head, "-" * len(head)]
    for r in report["layers"]:
        if r["runs"] == "host":
            lines.append(f"{r['name']:<22} {'host':<9} {r['reason']}")
            continue
        lines.append(f"{r['name']:<22} {'hardware':<9} {r['keep']:>4} {r['passes']:>8} "
                     f"{r['cycles_per_pass']:>6} {r['cycles']:>12} {r['utilization']:>6.1%} "
                     f"{r['dense_ops_per_multiplier_cycle']:>14.3f}")
    if report["total_cycles"]:
        lines.append(f"{'total':<22} {'':<9} {'':>4} {'':>8} {'':>6} "
                     f"{report['total_cycles']:>12} {report['utilization']:>6.1%} "
                     f"{report['dense_ops_per_multiplier_cycle']:>14.3f}")
    return "\n".join(lines)
