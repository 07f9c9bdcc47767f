"""What pruning and quantization cost: the int8 result against the float model.

The int8 input is dequantized with the manifest's input scale and run through the float
network twice, with its dense weights and with the pruned ones; the int8 output is
dequantized with the output scale and compared with both.
"""

import numpy as np

from . import graph, pipeline


def _metrics(y, ref):
    y, ref = y.ravel().astype(np.float64), ref.ravel().astype(np.float64)
    norm = np.linalg.norm(ref)
    return {"rel_error": float(np.linalg.norm(y - ref) / norm) if norm else None,
            "cosine": float(y @ ref / (np.linalg.norm(y) * norm)) if norm and y.any() else None,
            "argmax": int(np.argmax(y))}


def compare(model, x, y):
    """Rows for the float dense, float pruned and int8 outputs on int8 input ``x``.

    Each row gives the relative L2 error and cosine similarity to the float dense output
    and the arg-max (the predicted class for a classifier).
    """
    net = pipeline.float_networks(model)
    xf = x.astype(np.float32) * np.float32(model.manifest["input"]["scale"])
    out = model.manifest["output"]["name"]
    dense = graph.forward(net, xf, pruned=False)[out]
    pruned = graph.forward(net, xf, pruned=True)[out]
    quant = y.astype(np.float32) * np.float32(model.manifest["output"]["scale"])
    return [{"model": name, **_metrics(val, dense)} for name, val in
            (("float dense", dense), ("float pruned", pruned), ("int8 pruned", quant))]


def format_table(rows):
    """A small aligned table of :func:`compare` rows."""
    lines = [f"{'model':<14}{'rel. error':>12}{'cosine':>10}{'argmax':>8}"]
    for r in rows:
        err = "-" if r["rel_error"] is None else f"{r['rel_error']:.4f}"
        cos = "-" if r["cosine"] is None else f"{r['cosine']:.4f}"
        lines.append(f"{r['model']:<14}{err:>12}{cos:>10}{r['argmax']:>8}")
    return "\n".join(lines)
