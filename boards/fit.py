"""Does a compiled model fit a board? An estimate from the memory map of ``docs/hardware.md``.

The packed images of the SPS core are counted with the formulas of ``docs/hardware.md``
section 3 (words per region for an ``R x C`` array), staged twice (the committed copy and the
upload copy, see ``boards/link/staged.py``); the feature buffers, the accumulator and the line
buffers with section 2's sizes (:func:`requirements`, an estimate for sizing boards).
:func:`check_fit` packs the model for the board's core (``sps_hw.program``) and refuses,
before any synthesis, a model whose images exceed the core's memories, with the numbers.

A model larger than the block RAM can run from the board's external memory through the tile
engine (``sps_hw.engine``): :func:`check_dram_fit` packs it into one memory image
(``sps_hw.dram.pack``: job table, tensors, images); when that exceeds half the board's DRAM
(``BoardSpec.dram_bytes``; the other half stages uploads) the layers with the largest images
run on the host instead; it refuses the model when its tensors and tables alone exceed that.
:func:`fit_board` decides between the two for ``sps build``.
"""

import math

from compiler.errors import SPSError
from sps_hw.dram import pack as pack_dram
from sps_hw.program import build as build_program
from sps_hw.top import rom_widths

__all__ = ["check_dram_fit", "check_fit", "dram_fit", "fit_board", "hardware_layers",
           "requirements"]

PARAM_BITS = 32 + 32 + 6          # bias, mult, shift per output channel
DESCRIPTOR_BITS = 128             # one layer descriptor (an upper bound)


def _shapes(manifest):
    shapes = {"input": tuple(manifest["input"]["shape"])}
    for layer in manifest["layers"]:
        shapes[layer["name"]] = tuple(layer["out_shape"])
    return shapes


def hardware_layers(manifest):
    """The conv layers the array runs: 3x3 (pad 1) and 1x1/FC (pad 0), stride 1, or stride
    2 without a pool."""
    out = []
    for layer in manifest["layers"]:
        if layer["op"] != "conv" or layer["stride"] not in (1, 2) or \
                (layer["stride"] == 2 and layer.get("pool")):
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


def check_fit(model, spec, name="model"):
    """Does compiled ``model`` (a :class:`compiler.images.CompiledModel`) fit the SPS core of
    board ``spec``? Returns the fit (where each layer runs, the words each image memory needs
    and holds); :class:`SPSError` with the numbers if it does not.

    The board's core has fixed sizes (``spec.config``): layers larger than its buffers run on
    the host (``sps run`` does that between the hardware segments); a model is refused when
    its packed images exceed the core's image memories, when it needs a larger pattern
    library, or when no layer at all runs on the hardware.
    """
    cfg = spec.config
    unbounded = cfg.replace(weight_depth=2**31, index_depth=2**24, library_depth=2**24,
                            param_depth=2**24, layer_depth=2**16, max_patterns=2**8)
    program = build_program(model, unbounded)
    words = {rom: {"used": len(program.images[rom]), "available": depth, "bits": bits}
             for rom, (bits, depth) in rom_widths(cfg).items()}
    fit = {"rows": cfg.rows, "cols": cfg.cols, "config": cfg.as_dict(),
           "hardware_layers": [n for n in program.order if n in program.plans],
           "host_layers": dict(program.host), "segments": len(program.segments),
           "words": words}
    if not program.segments:
        reasons = "; ".join(f"{n}: {r}" for n, r in program.host.items())
        raise SPSError(f"{name} does not fit {spec.name}: no layer runs on its "
                       f"{cfg.rows}x{cfg.cols} core (max_hw {cfg.max_hw}, max_width "
                       f"{cfg.max_width}, fmap_depth {cfg.fmap_depth}): {reasons}")
    over = [f"{rom} {w['used']:,} words of {w['bits']} bits > {w['available']:,}"
            for rom, w in words.items() if w["used"] > w["available"]]
    patterns = max([len(model.layer(n)["library"]) for n, p in program.plans.items()
                    if p.conv3] + [1])
    if patterns > cfg.max_patterns:
        over.append(f"pattern library of {patterns} > {cfg.max_patterns}")
    if over:
        raise SPSError(f"{name} does not fit {spec.name}: on its {cfg.rows}x{cfg.cols} core "
                       f"the packed images need {', '.join(over)}")
    return fit


#: ``regions`` of a :class:`sps_hw.dram.DramImage` by kind -> the key of the DRAM fit.
_REGION_KINDS = {"directory": "table", "table": "table", "tensor": "tensors",
                 "image": "images"}


def _dram_fit(model, spec):
    """``(fit, image, reason)``: the DRAM fit of ``model`` on ``spec`` and its image, or a
    reason (without the model's and board's names) why it does not fit, and ``None`` s."""
    cfg = spec.dram_config
    if not spec.dram_bytes:
        return None, None, ("the board has no external memory (dram_bytes 0) for the tile "
                            "engine to run a model larger than its block RAM from")
    half = spec.dram_half_bytes
    try:
        image = pack_dram(model, cfg)
        host = _to_host(image, half)
        if host:
            image = pack_dram(model, cfg, host)
    except SPSError as error:
        return None, None, f"the tile engine's {cfg.rows}x{cfg.cols} core cannot run it: {error}"
    regions = dict.fromkeys(_REGION_KINDS.values(), 0)
    for region in image.regions:
        regions[_REGION_KINDS[region["kind"]]] += region["bytes"]
    fit = {"dram_bytes": spec.dram_bytes, "image_bytes": len(image.data),
           "jobs": len(image.jobs), "host_layers": dict(image.host), "regions": regions}
    if not image.jobs:
        reasons = "; ".join(f"{n}: {r}" for n, r in image.host.items())
        return fit, image, (f"no layer runs on its tile engine ({cfg.rows}x{cfg.cols} core): "
                            f"{reasons}")
    if len(image.data) > half:
        return fit, image, (f"its external-memory image of {len(image.data):,} bytes > the "
                            f"{half:,} bytes of half the DRAM (an upload is staged in the "
                            f"half the running model does not use)")
    return fit, image, None


def _to_host(image, half):
    """The layers of packed ``image`` to leave to the host so that it fits ``half`` bytes:
    the ones with the most image bytes first (VGG16's dense fc6 before any convolution),
    as ``{name: why}`` for :func:`sps_hw.dram.pack`; none when it fits already or when its
    tensors and tables alone exceed ``half``."""
    excess = len(image.data) - half
    if excess <= 0:
        return {}
    sizes = dict.fromkeys(image.layers, 0)
    for region in image.regions:
        if region["kind"] == "image":
            sizes[region["name"].rsplit("/", 1)[0]] += region["bytes"]
    if excess > sum(sizes.values()):            # its tensors and tables alone are too large
        return {}
    host = {}
    for name, size in sorted(sizes.items(), key=lambda item: -item[1]):
        if excess <= 0 or size == 0:
            break
        host[name] = (f"its {size:,} image bytes are left out of the external-memory image "
                      f"to fit half the DRAM ({half:,} bytes)")
        excess -= size
    return host


def dram_fit(model, spec, name="model"):
    """``(fit, image)``: :func:`check_dram_fit`'s fit and the packed
    :class:`sps_hw.dram.DramImage` (what ``sps build`` writes as ``dram.bin``)."""
    fit, image, reason = _dram_fit(model, spec)
    if reason:
        raise SPSError(f"{name} does not fit {spec.name}: {reason}")
    return fit, image


def check_dram_fit(model, spec, name="model"):
    """Does compiled ``model`` fit the external memory of board ``spec`` (run by the tile
    engine, ``sps_hw.engine``, with the board's core ``spec.config``)?

    Packs it (``sps_hw.dram.pack``) and returns ``{"dram_bytes", "image_bytes", "jobs",
    "host_layers", "regions"}``: the board's DRAM, the bytes of the image, its job records,
    the layers left to the host (name -> why) and the bytes of the ``table``, ``tensors``
    and ``images`` (each region's own bytes, without the alignment between them).
    :class:`SPSError` (one line naming the model, the board and the numbers) when the image
    exceeds the DRAM, the board has none, or no layer runs on the engine.
    """
    return dram_fit(model, spec, name)[0]


def fit_board(model, spec, name="model"):
    """Where compiled ``model`` runs on board ``spec``: ``("block_ram", fit, None)`` with
    :func:`check_fit`'s fit when the core holds it; otherwise ``("dram", fit, image)`` with
    :func:`check_dram_fit`'s fit (plus ``"block_ram"``: :func:`check_fit`'s refusal) and
    the packed image when the board's DRAM does (the tile engine runs it). :class:`SPSError`
    when neither: one line, the block-RAM refusal of :func:`check_fit` followed by the
    reason the DRAM does not hold it either.
    """
    try:
        return "block_ram", check_fit(model, spec, name=name), None
    except SPSError as error:
        block_ram = str(error)
    fit, image, reason = _dram_fit(model, spec)
    if reason:
        raise SPSError(f"{block_ram}; nor from external memory: {reason}")
    return "dram", {**fit, "block_ram": block_ram}, image
