"""Weight storage of a pruned network under SPS and other sparse formats: report, table, plot.

:func:`storage_report` sums :func:`compiler.formats.layer_storage` over the conv layers (what
papers quote) and over every weighted layer (FC included), and gives each format's total and
index storage as a multiple of SPS's. ``sps report storage`` prints :func:`format_table` or
the report as JSON and can draw :func:`plot`. ``docs/storage.md`` compares with the paper.
"""

from pathlib import Path

import numpy as np

from . import formats, images, models, pipeline, pps
from .errors import SPSError
from .fileio import atomic_write
from .graph import Layer, Network

_BIT_KEYS = ("value_bits", "index_bits", "total_bits")


def prune_for_report(model_arg, *, keep=4, patterns=4, period=8, seed=0, prune_first=False):
    """A built-in network by name (or a float :class:`Network`, pruned in place) pruned to
    PPS without channel permutation, which changes no format's storage."""
    net = models.builtin(model_arg, seed=seed) if isinstance(model_arg, str) else model_arg
    if not isinstance(net, Network):
        raise TypeError(f"model_arg must be a built-in name or a Network, not "
                        f"{type(model_arg).__name__}")
    pps.prune_network(net, keep=keep, patterns=patterns, period=period, permute=False,
                      prune_first=prune_first, seed=seed)
    return net


def load_pruned(model, *, keep=4, patterns=4, period=8, seed=0, prune_first=False):
    """The pruned network ``model`` names: a compiled directory (its own pruning, the options
    are ignored), or an ``.onnx``/``.npz`` file or built-in name pruned as in
    :func:`prune_for_report`."""
    if Path(str(model)).is_dir():
        return network_from_compiled(images.load(model))
    return prune_for_report(pipeline.load_network(model, seed=seed), keep=keep,
                            patterns=patterns, period=period, seed=seed,
                            prune_first=prune_first)


def network_from_compiled(model):
    """The layer structure of a :class:`compiler.images.CompiledModel` as a :class:`Network`
    carrying each conv's ``mask`` and ``pps`` (weights are not needed to count storage)."""
    man = model.manifest
    name = Path(str(man.get("source", "model"))).stem or "model"
    net = Network(name, tuple(man["input"]["shape"]))
    for entry in man["layers"]:
        try:
            layer = Layer(entry["name"], entry["op"], list(entry["inputs"]),
                          tuple(entry["in_shape"]), tuple(entry["out_shape"]),
                          kernel=entry.get("kernel", 1))
            if entry["op"] == "conv":
                layer.pps = {key: entry[key]
                             for key in ("keep", "period", "library", "assignment")}
                if images.is_pps(entry):
                    layer.mask = images.kept_mask(entry)
        except KeyError as e:
            raise SPSError(f"manifest layer {entry.get('name', '?')!r}: missing key "
                           f"{e.args[0]!r}") from None
        net.layers.append(layer)
    return net


def _layer_shape(layer):
    shape = (int(layer.out_shape[0]), int(layer.in_shape[0]), int(layer.kernel), int(layer.kernel))
    if layer.mask is not None and tuple(layer.mask.shape) != shape:
        raise SPSError(f"layer {layer.name!r}: mask has shape {list(layer.mask.shape)}, "
                       f"expected {list(shape)}")
    return shape


def _sum(per_layer):
    return {name: {key: sum(entry[name][key] for entry in per_layer) for key in _BIT_KEYS}
            for name in formats.FORMATS}


def _ratio(num, den):
    return num / den if num and den else None


def ratios(totals):
    """``{format: {"total", "index"}}``: each format's storage over SPS's. The index ratio is
    ``None`` where the format or SPS stores no index (dense layers, the dense format)."""
    sps = totals["sps"]
    return {name: {"total": _ratio(bits["total_bits"], sps["total_bits"]),
                   "index": _ratio(bits["index_bits"], sps["index_bits"])}
            for name, bits in totals.items()}


def versus_sparse(rat):
    """Min, arithmetic mean, geometric mean and max of the ratios over the sparse formats."""
    stats = {"min": np.min, "mean": np.mean, "max": np.max,
             "geomean": lambda v: np.exp(np.mean(np.log(v)))}
    out = {stat: {} for stat in stats}
    for kind in ("total", "index"):
        vals = [rat[f][kind] for f in formats.SPARSE_FORMATS if rat[f][kind] is not None]
        for stat, fn in stats.items():
            out[stat][kind] = float(fn(np.array(vals))) if vals else None
    return out


def assumptions(conv):
    """The bit-width conventions of a report, as data."""
    idx, ptr = conv["index_bits"], conv["pointer_bits"]
    return {
        "convention": conv["name"],
        "value_bits": conv["value_bits"],
        "index_bits": idx if idx else "minimal: ceil(log2(dim)) per layer and field",
        "pointer_bits": ptr if ptr else "minimal: ceil(log2(nnz + 1)) per layer",
        "rlc_run_bits": conv["run_bits"],
        "matrix_view": "conv [Co, Ci, k, k] as [Co, Ci*k*k]: rows = output channels, "
                       "columns (i, ky, kx); FC as [Co, Ci]",
        "csr": "column index per non-zero + Co + 1 row pointers",
        "csc": "row index per non-zero + Ci*k*k + 1 column pointers",
        "coo": "(row, column) index pair per non-zero",
        "bitmap": "1 bit per weight",
        "rlc": "run field per stored value, scanning o, i, ky, kx; a gap of g zeros adds "
               "g // 2**run_bits filler entries (value + run), counted as index",
        "sps": "P * ceil(log2 K) + K * k*k index bits per PPS layer; dense layers: none",
        "nnz": "kept weights of the pruning mask (weights quantized to 0 still count)",
        "conv_totals": "formats/ratios cover conv layers only; whole_model adds FC layers",
        "ratios": "format / SPS; index ratio null where either stores no index",
    }


def storage_report(net, *, convention="minimal"):
    """Storage of every weighted layer of the pruned ``net`` in every format.

    Returns a JSON-ready dict: ``model``, ``assumptions``, ``formats`` and ``ratios`` (conv
    layers only), ``versus_sparse`` (min/mean/geomean/max ratio over the sparse formats),
    ``whole_model`` (the same three keys over every layer) and ``layers`` (per layer
    ``name``, ``kind`` conv|fc, ``shape``, ``nnz``, ``formats``).
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a compiler.graph.Network, not {type(net).__name__}")
    conv = formats.get_convention(convention)
    layers = []
    for layer in net.convs():
        shape = _layer_shape(layer)
        pps = layer.pps or {}
        library, assignment = pps.get("library"), pps.get("assignment")
        if assignment is not None and pps.get("period", len(assignment)) != len(assignment):
            raise SPSError(f"layer {layer.name!r}: period {pps['period']} but the assignment "
                           f"table has {len(assignment)} entries")
        try:
            per = formats.layer_storage(shape if layer.mask is None else layer.mask,
                                        library=library, assignment=assignment,
                                        convention=conv)
        except SPSError as e:
            raise SPSError(f"layer {layer.name!r}: {e}") from None
        nnz = per["csr"]["value_bits"] // conv["value_bits"]
        layers.append({"name": layer.name, "kind": "fc" if layer.is_fc else "conv",
                       "shape": list(shape), "nnz": int(nnz), "formats": per})
    if not layers:
        raise SPSError(f"{net.name}: the network has no conv or fc layers to store")
    conv_totals = _sum([entry["formats"] for entry in layers if entry["kind"] == "conv"])
    all_totals = _sum([entry["formats"] for entry in layers])
    conv_ratios, all_ratios = ratios(conv_totals), ratios(all_totals)
    return {
        "model": net.name,
        "assumptions": assumptions(conv),
        "formats": conv_totals,
        "ratios": conv_ratios,
        "versus_sparse": versus_sparse(conv_ratios),
        "whole_model": {"formats": all_totals, "ratios": all_ratios,
                        "versus_sparse": versus_sparse(all_ratios)},
        "layers": layers,
    }


# --- text -------------------------------------------------------------------------------------

def human_bits(bits):
    """``bits`` in readable SI units: ``676 bit``, ``14.71 Mbit``."""
    bits = int(bits)
    for scale, unit in ((1e9, "Gbit"), (1e6, "Mbit"), (1e3, "kbit")):
        if abs(bits) >= scale:
            return f"{bits / scale:.4g} {unit}"
    return f"{bits} bit"


def _times(r):
    if r is None:
        return "-"
    return f"{r:,.0f}x" if r >= 100 else f"{r:.3g}x"


def _totals_lines(title, totals, rat, spread):
    rows = [(name, human_bits(b["value_bits"]), human_bits(b["index_bits"]),
             human_bits(b["total_bits"]), _times(rat[name]["total"]), _times(rat[name]["index"]))
            for name, b in totals.items()]
    for stat in ("min", "mean", "geomean", "max"):
        rows.append((f"sparse {stat}", "", "", "", _times(spread[stat]["total"]),
                     _times(spread[stat]["index"])))
    head = ("format", "values", "index", "total", "total/SPS", "index/SPS")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return [title, fmt.format(*head)] + [fmt.format(*r) for r in rows]


def format_table(report):
    """Aligned text: total bits per layer and format, conv and whole-model totals with the
    ratios to SPS, and the assumptions."""
    names = list(formats.FORMATS)
    head = ["layer", "kind", "shape", "nnz"] + names + ["sps index"]
    rows = [[e["name"], e["kind"], "x".join(map(str, e["shape"])), f"{e['nnz']:,}"]
            + [human_bits(e["formats"][f]["total_bits"]) for f in names]
            + [human_bits(e["formats"]["sps"]["index_bits"])] for e in report["layers"]]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [f"Weight storage of {report['model']} (total bits per layer and format)",
             fmt.format(*head)] + [fmt.format(*r) for r in rows] + [""]
    lines += _totals_lines("Convolution layers:", report["formats"], report["ratios"],
                           report["versus_sparse"])
    whole = report["whole_model"]
    lines += [""] + _totals_lines("Whole model (conv + fc):", whole["formats"],
                                  whole["ratios"], whole["versus_sparse"])
    lines += ["", "Assumptions:"] + [f"  {k}: {v}" for k, v in report["assumptions"].items()]
    return "\n".join(lines)


# --- plot -------------------------------------------------------------------------------------

def plot(report, path):
    """Write a PNG bar chart per format: values + index stacked (linear, left) and index
    alone (log, right), for the conv layers (top) and the whole model (bottom), each bar
    labelled with its ratio to SPS."""
    # deferred: matplotlib takes ~0.5 s to import and only --plot needs it; no pyplot: no
    # global state, Agg canvas
    from matplotlib.figure import Figure

    names = list(formats.FORMATS)
    x = np.arange(len(names))
    parts = (("conv layers", report["formats"], report["ratios"]),
             ("whole model", report["whole_model"]["formats"], report["whole_model"]["ratios"]))
    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(2, 2)
    for (label, totals, rat), (ax_total, ax_index) in zip(parts, axes):
        value = np.array([totals[f]["value_bits"] for f in names], dtype=np.float64)
        index = np.array([totals[f]["index_bits"] for f in names], dtype=np.float64)
        ax_total.bar(x, value / 1e6, 0.6, label="values", color="tab:blue")
        bars = ax_total.bar(x, index / 1e6, 0.6, bottom=value / 1e6, label="index",
                            color="tab:orange")
        ibars = ax_index.bar(x, np.where(index > 0, index, np.nan), 0.6, color="tab:orange")
        for b, f in zip(bars, names):
            ax_total.annotate(_times(rat[f]["total"]), (b.get_x() + b.get_width() / 2,
                              (value[names.index(f)] + index[names.index(f)]) / 1e6),
                              ha="center", va="bottom", fontsize=8)
        for b, f in zip(ibars, names):
            if rat[f]["index"] is not None:
                ax_index.annotate(_times(rat[f]["index"]), (b.get_x() + b.get_width() / 2,
                                  b.get_height()), ha="center", va="bottom", fontsize=8)
        ax_total.set_ylabel("weight storage (Mbit)")
        ax_total.set_title(f"{label}: values + index (ratio to SPS)")
        ax_total.margins(y=0.12)
        ax_total.legend(fontsize=8)
        ax_index.set_yscale("log")
        ax_index.set_ylabel("index storage (bit, log scale)")
        ax_index.set_title(f"{label}: index only (dense format: none)")
        ax_index.margins(y=0.15)
        for ax in (ax_total, ax_index):
            ax.set_xticks(x, names)
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{report['model']}: weight storage per format "
                 f"({report['assumptions']['convention']} field widths)")
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100), "--plot")
