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
    """What pruning, quantization and both cost on int8 input ``x`` with int8 output ``y``.

    Each row compares one output with a reference (relative L2 error, cosine similarity)
    and gives both arg-maxes (the predicted classes of a classifier).
    """
    net = pipeline.float_networks(model)
    xf = x.astype(np.float32) * np.float32(model.manifest["input"]["scale"])
    out = model.manifest["output"]["name"]
    dense = graph.forward(net, xf, pruned=False)[out]
    pruned = graph.forward(net, xf, pruned=True)[out]
    quant = y.astype(np.float32) * np.float32(model.manifest["output"]["scale"])
    outputs = {"float dense": dense, "float pruned": pruned, "int8 pruned": quant}
    pairs = (("float pruned", "float dense"), ("int8 pruned", "float pruned"),
             ("int8 pruned", "float dense"))
    return [{"model": a, "reference": b, **_metrics(outputs[a], outputs[b]),
             "reference_argmax": int(np.argmax(outputs[b]))} for a, b in pairs]


def format_table(rows):
    """A small aligned table of :func:`compare` rows."""
    lines = [f"{'output':<14}{'against':<14}{'rel. error':>11}{'cosine':>9}{'argmax':>10}"]
    for r in rows:
        err = "-" if r["rel_error"] is None else f"{r['rel_error']:.4f}"
        cos = "-" if r["cosine"] is None else f"{r['cosine']:.4f}"
        argmax = f"{r['argmax']}/{r['reference_argmax']}"
        lines.append(f"{r['model']:<14}{r['reference']:<14}{err:>11}{cos:>9}{argmax:>10}")
    return "\n".join(lines)
