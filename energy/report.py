"""Energy per inference of SPS against dense and the other sparse formats on one board.

:func:`energy_report` prices every layer of a network on a board's array (``rows x cols`` at
its clock, the buffer sizes lifted so that any layer fits: external memory is not modelled
beyond the weights) for seven designs on the same work:

``sps``     the model's own keep (compiled or pruned as ``sps compile`` would): the actions
            :func:`sps_hw.actions.predict` counts on the generator's plans;
``dense``   every 3x3 layer at keep 9 on the same generator (its plans, its actions);
``csr`` ... ``rlc``  the same array fed from that format (:mod:`energy.formats`).

Layers the RTL does not run are priced analytically when they are convolutions (a 7x7 conv
as the 1x1 conv of its im2col tensor of ``Ci * keep`` channels: the same MACs on the same
array) and left out of every design otherwise (residual adds and pools: no MACs,
the same work in every design); the report lists both. ``weights_from`` says where the
weights come from: ``"dram"`` (default: VGG16 and ResNet-50 do not fit any of the boards'
block RAM) or ``"bram"`` (held on chip, as the boards do for small models).
"""

from pathlib import Path

import numpy as np

from boards.platforms import board_spec
from compiler import images, models, storage_report
from compiler.errors import SPSError
from compiler.formats import field_bits
from compiler.graph import Network
from sps_hw.actions import predict
from sps_hw.model import plan_layer
from sps_hw.top import rom_widths

from . import formats, pricing
from .pricing import COMPONENTS

__all__ = ["DESIGNS", "energy_report", "format_table", "lifted_config", "plot"]

DESIGNS = ("sps", "dense", *formats.DESIGNS)

#: Buffer and counter sizes lifted so that every layer of a large network plans.
LIFTED = {"max_hw": 2 ** 20, "max_width": 2 ** 16, "fmap_depth": 2 ** 30, "count_bits": 32,
          "channel_bits": 16}


def lifted_config(spec):
    """The board's accelerator with the buffer and counter sizes of :data:`LIFTED`."""
    return spec.config.replace(**LIFTED)


# --- the network ------------------------------------------------------------------------------

def _layer_dict(layer):
    entry = {"name": layer.name, "op": layer.op, "inputs": list(layer.inputs),
             "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape),
             "kernel": layer.kernel, "stride": layer.stride, "pad": layer.pad,
             "relu": layer.relu, "pool": layer.pool}
    if layer.op == "conv":
        entry["keep"] = int((layer.pps or {}).get("keep", layer.kernel ** 2))
    return entry


def load(model, *, keep=4, patterns=4, period=8, seed=0):
    """``(name, layer dicts, input shape, pruned Network)`` of a compiled directory (its own
    pruning), a :class:`Network` (pruned here unless it carries PPS data), or a model file or
    built-in name pruned as ``sps compile`` would."""
    opts = {"keep": keep, "patterns": patterns, "period": period, "seed": seed}
    if isinstance(model, Network):
        net = model if any(c.pps for c in model.convs()) else \
            storage_report.prune_for_report(model, **opts)
        return net.name, [_layer_dict(x) for x in net.layers], tuple(net.input_shape), net
    path = Path(str(model))
    if (path / "manifest.json").is_file():
        compiled = images.load(path)
        net = storage_report.network_from_compiled(compiled)
        name = path.name
        return name, compiled.layers, tuple(compiled.manifest["input"]["shape"]), net
    if not path.exists() and str(model) not in models.BUILTIN:
        raise SPSError(f"{model}: not a compiled model directory, a model file or one of "
                       f"{', '.join(models.BUILTIN)}")
    net = storage_report.load_pruned(model, **opts)
    return net.name, [_layer_dict(x) for x in net.layers], tuple(net.input_shape), net


def _analytic(layer, keep):
    """A conv the RTL does not run, as the 1x1 conv of its im2col tensor on the same array:
    ``Ci * keep`` channels of ``Ho x Wo`` pixels (the same MACs)."""
    ci, co = int(layer["in_shape"][0]), int(layer["out_shape"][0])
    ho, wo = _conv_out(layer)       # before a fused pool (priced without it)
    q = ci * keep
    return {"name": layer["name"], "op": "conv", "inputs": ["im2col"], "in_shape": [q, ho, wo],
            "out_shape": [co, ho, wo], "kernel": 1, "stride": 1, "pad": 0,
            "relu": layer.get("relu", False), "pool": None, "keep": 1}, (q, ho, wo)


def _plan(layer, source, cfg, keep):
    """``(plan, runs, reason)``: the generator's plan, or the analytic one, or ``None`` for a
    layer without MACs."""
    entry = dict(layer, keep=keep) if layer["op"] == "conv" else layer
    plan = plan_layer(entry, source, cfg)
    if not isinstance(plan, str):
        return plan, "hardware", None
    if layer["op"] != "conv":
        return None, "host", plan
    equiv, shape = _analytic(layer, keep)
    eplan = plan_layer(equiv, shape, cfg)
    if isinstance(eplan, str):
        raise SPSError(f"layer {layer['name']!r}: cannot be priced ({plan}; as im2col: {eplan})")
    return eplan, "analytic", plan


def _conv_out(layer):
    """Height and width of a conv's own output (before a fused pool)."""
    _, h, w = (int(v) for v in layer["in_shape"])
    k, s, p = int(layer["kernel"]), int(layer.get("stride", 1)), int(layer.get("pad", 0))
    return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1


def _dense_macs(layer):
    ho, wo = _conv_out(layer)
    k = int(layer["kernel"])
    return int(layer["out_shape"][0]) * int(layer["in_shape"][0]) * k * k * ho * wo


# --- the report -------------------------------------------------------------------------------

def _empty():
    return {"energy_pj": 0.0, "components": dict.fromkeys(COMPONENTS, 0.0), "cycles": 0,
            "weight_bits": 0, "index_bits": 0}


def _add(total, comps, cycles, weight_bits=0, index_bits=0):
    for key, pj in comps.items():
        total["components"][key] += pj
    total["energy_pj"] += sum(comps.values())
    total["cycles"] += int(cycles)
    total["weight_bits"] += int(weight_bits)
    total["index_bits"] += int(index_bits)


def _finish(totals, dense_ops, clk_hz):
    out = {}
    for name, t in totals.items():
        energy = t["energy_pj"]
        out[name] = {
            "energy_pj": energy,
            "components": t["components"],
            "gops_per_watt": dense_ops / (energy * 1e-12) / 1e9 if energy else None,
            "cycles": t["cycles"],
            "time_s": t["cycles"] / clk_hz,
            "weight_bits": t["weight_bits"],
            "index_bits": t["index_bits"],
        }
    base = out["sps"]["energy_pj"]
    ratios = {name: (d["energy_pj"] / base if base else None) for name, d in out.items()}
    return out, ratios


def energy_report(model, *, board="ulx3s-85f", weights_from="dram", table=None, keep=4,
                  patterns=4, period=8, seed=0, masks="pps"):
    """Energy per inference of every design of :data:`DESIGNS` for ``model`` on ``board``.

    ``table``: an energy table dict (:func:`energy.pricing.load_table`), default the board's
    family's. ``masks``: ``"pps"`` (the formats store the model's own PPS masks, as ``sps
    report storage`` does) or ``"random"`` (a random mask of the same density per pruned
    layer, an unstructured pruning). Returns a JSON-ready dict (see ``docs/energy.md``).
    """
    if weights_from not in ("bram", "dram"):
        raise SPSError(f"--weights-from must be bram or dram, not {weights_from!r}")
    if masks not in ("pps", "random"):
        raise SPSError(f"--format-masks must be pps or random, not {masks!r}")
    spec = board_spec(board)
    table = table if table is not None else pricing.default_table(spec.family)
    cfg = lifted_config(spec)
    widths = rom_widths(cfg)
    clk = spec.clk_hz
    name, layers, input_shape, net = load(model, keep=keep, patterns=patterns, period=period,
                                          seed=seed)
    net_layers = {x.name: x for x in net.layers}
    storage = {e["name"]: e for e in storage_report.storage_report(net)["layers"]}
    rng = np.random.default_rng(seed)

    def priced(acts):
        return pricing.price(acts, table, cfg, clk_hz=clk, weights_from=weights_from,
                             rom_widths=widths)

    totals = {d: _empty() for d in DESIGNS}
    conv_totals = {d: _empty() for d in DESIGNS}
    shapes = {"input": input_shape}
    rows, host, dense_ops, conv_ops = [], [], 0, 0
    for layer in layers:
        shapes[layer["name"]] = tuple(layer["out_shape"])
        source = shapes[layer["inputs"][0]]
        if layer["op"] != "conv":
            host.append({"name": layer["name"], "op": layer["op"],
                         "reason": f"{layer['op']} has no MACs: left out of every design"})
            rows.append({"name": layer["name"], "op": layer["op"], "runs": "host"})
            continue
        k = int(layer["kernel"])
        plan, runs, reason = _plan(layer, source, cfg, int(layer["keep"]))
        dplan, _, _ = _plan(layer, source, cfg, k * k)
        ops = 2 * _dense_macs(layer)
        dense_ops += ops
        is_fc = plan.kind == "fc" or net_layers[layer["name"]].is_fc
        if not is_fc:
            conv_ops += ops
        row = {"name": layer["name"], "op": "fc" if is_fc else f"conv{k}x{k}", "runs": runs,
               "keep": int(layer["keep"]), "dense_macs": ops // 2, "energy_pj": {},
               "cycles": {}}
        if reason:
            row["reason"] = reason
        per = {}
        acts = predict(cfg, plan)
        per["sps"] = (priced(acts), plan.cycles, acts["weight_read_bits"], 0)
        dacts = predict(cfg, dplan)
        per["dense"] = (priced(dacts), dplan.cycles, dacts["weight_read_bits"], 0)
        st = storage[layer["name"]]["formats"]
        shape = tuple(storage[layer["name"]]["shape"])
        mask = net_layers[layer["name"]].mask
        if masks == "random" and mask is not None:
            mask = formats.random_mask(shape, int(mask.sum()), rng)
            from compiler.formats import layer_storage
            st = layer_storage(mask)
        fplan = formats.format_plan(plan, formats.row_nnz(mask, shape), cfg)
        coord = field_bits(shape[1] * shape[2] * shape[3])
        for fmt in formats.DESIGNS:
            facts = formats.format_actions(cfg, fplan, st, fmt, coord_bits=coord)
            per[fmt] = (priced(facts), fplan.cycles, facts["value_bits"], facts["index_bits"])
        for design, (comps, cycles, wbits, ibits) in per.items():
            _add(totals[design], comps, cycles, wbits, ibits)
            if not is_fc:
                _add(conv_totals[design], comps, cycles, wbits, ibits)
            row["energy_pj"][design] = sum(comps.values())
            row["cycles"][design] = int(cycles)
        rows.append(row)
    if not dense_ops:
        raise SPSError(f"{name}: the network has no conv or fc layers to price")
    designs, ratios = _finish(totals, dense_ops, clk)
    conv_designs, conv_ratios = _finish(conv_totals, conv_ops, clk) if conv_ops else ({}, {})
    return {
        "model": name,
        "board": spec.name,
        "device": spec.device,
        "family": spec.family,
        "array": {"rows": cfg.rows, "cols": cfg.cols},
        "clock_mhz": clk / 1e6,
        "weights_from": weights_from,
        "format_masks": masks,
        "table": {"family": table["family"], "device": table["device"]},
        "dense_equivalent_ops": dense_ops,
        "designs": designs,
        "ratios": ratios,
        "conv_layers": {"dense_equivalent_ops": conv_ops, "designs": conv_designs,
                        "ratios": conv_ratios},
        "layers": rows,
        "host_layers": host,
        "assumptions": assumptions(weights_from, masks),
    }


def assumptions(weights_from, masks):
    """What the figures assume, as data (``docs/energy.md`` explains each)."""
    return {
        "method": "energy = sum over actions of count x price; counts from "
                  "sps_hw.actions.predict on the generator's plans, prices from the table",
        "array": "the board's rows x cols at its clock; buffers lifted so every layer fits "
                 "(feature maps and the accumulator stay on chip in every design)",
        "weights": {"dram": "weights (and the formats' index) read from DRAM once per "
                            "inference into the on-chip weight memory, then read from it",
                    "bram": "weights (and the formats' index) held in block RAM"}[weights_from],
        "formats": "same array and buffers; the weight memory streams the format's value + "
                   "index bits (minimal widths); one decode (register write of the "
                   "coordinate) per stored entry; one gather (8-bit register read) per MAC; "
                   "per group the longest per-channel list sets the passes",
        "format_masks": {"pps": "the formats store the model's PPS masks",
                         "random": "the formats store a random mask of the same density per "
                                   "pruned layer (unstructured pruning)"}[masks],
        "analytic_layers": "convs the RTL does not run (7x7) priced as the 1x1 conv "
                           "of their im2col tensor (Ci x keep channels) on the same array",
        "host_layers": "adds and pools have no MACs and are left out of every design",
        "padding": "padding MACs priced as useful ones (the DSP is clocked either way)",
        "static": "static power x time + clock energy per cycle, for every cycle of a layer",
        "gops_per_watt": "dense-equivalent: 2 x the dense MACs of the priced layers per joule",
        "ratios": "each design's energy over SPS's",
    }


# --- text -------------------------------------------------------------------------------------

def _mj(pj):
    return f"{pj / 1e9:,.2f}"


def format_table(report):
    """Aligned text: energy per design and component (mJ), GOPS/W and the ratio to SPS."""
    head = ("design", "total mJ", *COMPONENTS, "GOPS/W", "x SPS")
    lines = [f"Energy per inference of {report['model']} on {report['board']} "
             f"({report['array']['rows']} x {report['array']['cols']} at "
             f"{report['clock_mhz']:g} MHz), weights from {report['weights_from']}, "
             f"{report['table']['family']} table, format masks {report['format_masks']}"]

    def block(designs, ratios):
        rows = []
        for name, d in designs.items():
            rows.append((name, _mj(d["energy_pj"]), *(_mj(d["components"][c])
                                                      for c in COMPONENTS),
                         f"{d['gops_per_watt']:.2f}" if d["gops_per_watt"] else "-",
                         f"{ratios[name]:.2f}x" if ratios[name] else "-"))
        widths = [max(len(r[i]) for r in [*rows, head]) for i in range(len(head))]
        fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
        return [fmt.format(*head)] + [fmt.format(*r) for r in rows]

    lines += block(report["designs"], report["ratios"])
    if report["conv_layers"]["designs"]:
        lines += ["", "Convolution layers only:"]
        lines += block(report["conv_layers"]["designs"], report["conv_layers"]["ratios"])
    analytic = [r["name"] for r in report["layers"] if r["runs"] == "analytic"]
    if analytic:
        lines += ["", f"Priced analytically (the RTL runs them on the host): "
                      f"{', '.join(analytic)}"]
    if report["host_layers"]:
        lines += [f"Left out (no MACs): {', '.join(h['name'] for h in report['host_layers'])}"]
    lines += ["", "Assumptions:"] + [f"  {k}: {v}" for k, v in report["assumptions"].items()]
    return "\n".join(lines)


# --- plot -------------------------------------------------------------------------------------

def plot(report, path):
    """A PNG: energy per inference per design, stacked by component, each bar labelled with
    its ratio to SPS; whole network (left) and convolution layers (right)."""
    from matplotlib.figure import Figure  # deferred: ~0.5 s to import, only --plot needs it

    from compiler.fileio import atomic_write

    parts = [("whole network", report["designs"], report["ratios"])]
    if report["conv_layers"]["designs"]:
        parts.append(("convolution layers", report["conv_layers"]["designs"],
                      report["conv_layers"]["ratios"]))
    fig = Figure(figsize=(6 * len(parts), 5), layout="constrained")
    axes = fig.subplots(1, len(parts), squeeze=False)[0]
    colors = dict(zip(COMPONENTS, ("tab:blue", "tab:orange", "tab:red", "tab:green",
                                   "tab:purple", "tab:brown", "tab:gray")))
    for ax, (label, designs, ratios) in zip(axes, parts):
        names = list(designs)
        x = np.arange(len(names))
        bottom = np.zeros(len(names))
        for comp in COMPONENTS:
            vals = np.array([designs[n]["components"][comp] for n in names]) / 1e9
            ax.bar(x, vals, 0.6, bottom=bottom, label=comp, color=colors[comp])
            bottom += vals
        for i, n in enumerate(names):
            ax.annotate(f"{ratios[n]:.2f}x", (x[i], bottom[i]), ha="center", va="bottom",
                        fontsize=8)
        ax.set_xticks(x, names)
        ax.set_ylabel("energy per inference (mJ)")
        ax.set_title(f"{label} (ratio to SPS)")
        ax.margins(y=0.12)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{report['model']} on {report['board']}: weights from "
                 f"{report['weights_from']}, {report['table']['family']} energy table")
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100), "--plot")
