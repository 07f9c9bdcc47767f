"""Does a compiled model fit a board? An estimate from the memory map of ``docs/hardware.md``.

The packed images of the SPS core are counted with the formulas of ``docs/hardware.md``
section 3 (words per region for an ``R x C`` array), staged twice (the committed copy and the
upload copy, see ``boards/link/staged.py``); the feature buffers, the accumulator and the line
buffers with section 2's sizes. :func:`check_fit` compares the total with the board's block RAM
and refuses, before any synthesis, a model that cannot fit, with the numbers. When the packer
of ``sps_hw`` exists, its exact word counts replace the estimate (``images=``).
"""

import math

from compiler.errors import SPSError

__all__ = ["check_fit", "hardware_layers", "requirements"]

PARAM_BITS = 32 + 32 + 6          # bias, mult, shift per output channel
DESCRIPTOR_BITS = 128             # one layer descriptor (an upper bound)


def _shapes(manifest):
    shapes = {"input": tuple(manifest["input"]["shape"])}
    for layer in manifest["layers"]:
        shapes[layer["name"]] = tuple(layer["out_shape"])
    return shapes


def hardware_layers(manifest):
    """The conv layers the array runs: 3x3 (pad 1) and 1x1/FC (pad 0), stride 1."""
    out = []
    for layer in manifest["layers"]:
        if layer["op"] != "conv" or layer["stride"] != 1:
            continue
        if (layer["kernel"], layer["pad"]) in ((3, 1), (1, 0)):
            out.append(layer)
    return out


def requirements(manifest, rows, cols):
    """Words and bits the model needs on an ``rows x cols`` array (see the module docstring)."""
    shapes = _shapes(manifest)
    nb = max(rows, cols)
    words = {"weights": 0, "index": 0, "library": 0, "params": 0, "layers": 1}
    fmap_depth, acc_words, line_width = 0, 0, 0
    layers = hardware_layers(manifest)
    for layer in layers:
        src = shapes[layer["inputs"][0]]
        co = layer["out_shape"][0]
        if tuple(layer["in_shape"]) != src:           # FC on a flattened tensor
            ci, keep, ns = src[0], 1, src[1] * src[2]
        else:
            ci, keep, ns = layer["in_shape"][0], layer["keep"], 1
        passes = math.ceil(co / cols) * ns * math.ceil(ci * keep / rows)
        words["weights"] += passes * rows
        words["index"] += layer.get("period", 1)
        words["library"] += len(layer.get("library", [1]))
        words["params"] += math.ceil(co / cols)
        words["layers"] += 1
        pooled = 4 if layer.get("pool") else 1
        hw = layer["out_shape"][1] * layer["out_shape"][2] * pooled
        acc_words = max(acc_words, hw)
        for shape in (src, tuple(layer["out_shape"])):
            fmap_depth = max(fmap_depth, math.ceil(shape[0] / nb) * shape[1] * shape[2])
        if layer["kernel"] == 3:
            line_width = max(line_width, src[2])
    widths = {"weights": 8 * cols, "index": 8, "library": 9, "params": PARAM_BITS * cols,
              "layers": DESCRIPTOR_BITS}
    image_bits = {r: words[r] * widths[r] for r in words}
    bits = {
        "images": 2 * sum(image_bits.values()),
        "feature_maps": 2 * nb * fmap_depth * 8,
        "accumulator": cols * acc_words * 32,
        "line_buffers": rows * 2 * line_width * 8,
    }
    return {"rows": rows, "cols": cols, "hardware_layers": len(layers), "words": words,
            "word_bits": widths, "image_bits": image_bits, "bits": bits,
            "total_bits": sum(bits.values())}


def check_fit(manifest, spec, name="model"):
    """:func:`requirements` on ``spec``'s array; :class:`SPSError` if it exceeds the board."""
    req = requirements(manifest, spec.rows, spec.cols)
    budget = spec.budget.get("bram_bits", 0) + spec.budget.get("spram_bits", 0)
    req["available_bits"] = budget
    if req["total_bits"] > budget:
        b = req["bits"]
        raise SPSError(
            f"{name} does not fit {spec.name}: on its {spec.rows}x{spec.cols} array it needs "
            f"{req['total_bits']:,} bits of block RAM (images {b['images']:,} with the staging "
            f"copy, feature maps {b['feature_maps']:,}, accumulator {b['accumulator']:,}, line "
            f"buffers {b['line_buffers']:,}); the {spec.device} has {budget:,}")
    return req
