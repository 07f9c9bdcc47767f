"""Random compiled models for the hardware tests, built straight from ``docs/spec.md``
sections 3 and 4.

``random_model([spec, ...])`` chains layers into a :class:`compiler.images.CompiledModel`;
each spec is a dict with ``kind`` ("conv3", "conv1" or "fc") and ``co`` plus optional
``keep``, ``patterns``, ``period``, ``pool``, ``relu``, ``stride`` and, for the first layer,
the input shape ``ci, h, w``; or a layer the hardware leaves to the host: ``kind`` "add"
(with ``other``, the second input), "avgpool" or "maxpool" (3x3, stride 2). ``src`` names a
layer's input (default: the previous layer). Weights keep only the taps of each channel's
pattern; biases respect the int32 headroom the compiler guarantees.
"""

import numpy as np

from compiler import images, pps
from sps_hw.actions import ACTION_KINDS

POOL2 = {"k": 2, "s": 2, "p": 0}


def layer(kind, **options):
    """One layer spec for :func:`random_model`."""
    return {"kind": kind, **options}


def _params(rng, co, weight, extreme):
    headroom = 2**31 - 1 - 128 * np.abs(weight.reshape(co, -1).astype(np.int64)).sum(axis=1)
    if extreme:
        bias = np.where(rng.random(co) < 0.5, headroom, -headroom)
        mult = rng.integers(2**30, 2**31, co)
        shift = rng.integers(1, 64, co)
    else:
        # Shifts that spread the outputs over int8 rather than saturating them.
        terms = max(1, int(np.count_nonzero(weight[0])))
        spread = np.sqrt(terms) * 74.0 * np.abs(weight[weight != 0]).mean() if weight.any() \
            else 1.0
        bias = rng.integers(-2000, 2000, co)
        mult = rng.integers(2**14, 2**15, co)
        shift = np.full(co, max(1, int(np.log2(2**14.5 * spread / 48))))
    return [int(v) for v in bias], [int(v) for v in mult], [int(v) for v in shift]


def random_model(specs, seed=0, extreme=False, input_shape=None):
    """A compiled model of the layers ``specs`` (see the module documentation)."""
    rng = np.random.default_rng(seed)
    first = specs[0]
    shape = start = tuple(input_shape or (first["ci"], first["h"], first["w"]))
    src, layers, weights = "input", [], {}
    shapes = {"input": shape}
    for i, spec in enumerate(specs):
        name = spec.get("name", f"l{i}")
        kind = spec["kind"]
        src = spec.get("src", src)
        shape = shapes[src]
        ci, h, w = shape
        if kind in ("add", "avgpool", "maxpool"):
            entry = {"name": name, "op": kind, "inputs": [src], "in_shape": list(shape)}
            if kind == "add":
                entry["inputs"].append(spec["other"])
                entry.update(mult_a=int(rng.integers(2**13, 2**14)),
                             mult_b=int(rng.integers(2**13, 2**14)), shift=15, relu=True,
                             out_shape=list(shape))
            elif kind == "avgpool":
                entry.update(mult=int(rng.integers(2**13, 2**14)), shift=14 + int(np.log2(h * w)),
                             relu=False, out_shape=[ci, 1, 1])
            else:
                entry.update(kernel=3, stride=2, pad=1,
                             out_shape=[ci, (h + 1) // 2, (w + 1) // 2])
            layers.append(entry)
            src, shapes[name] = name, tuple(entry["out_shape"])
            continue
        co = spec["co"]
        stride = spec.get("stride", 1)
        pool = POOL2 if spec.get("pool") else None
        entry = {"name": name, "op": "conv", "inputs": [src], "stride": stride,
                 "relu": bool(spec.get("relu", True)), "pool": pool, "permutation": None}
        if kind == "fc":
            in_shape, k, pad = [ci * h * w, 1, 1], 1, 0
            out = [co, 1, 1]
        else:
            k, pad = (3, 1) if kind == "conv3" else (1, 0)
            in_shape = [ci, h, w]
            oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
            oh, ow = (oh // 2, ow // 2) if pool else (oh, ow)
            out = [co, oh, ow]
        cin = in_shape[0]
        if kind == "conv3":
            keep = spec.get("keep", 4)
            npat = 1 if keep == 9 else spec.get("patterns", 4)
            period = 1 if keep == 9 else spec.get("period", 4)
            cands = pps.candidate_masks(keep)
            library = sorted(int(v) for v in rng.choice(cands, min(npat, len(cands)),
                                                        replace=False))
            assignment = [int(v) for v in rng.integers(0, len(library), period)]
            mask = pps.layer_mask(library, assignment, co, cin)
        else:
            keep, library, assignment = 1, [1], [0]
            mask = np.ones((co, cin, 1, 1), bool)
        if extreme:
            weight = rng.choice(np.array([-128, 127, -127], np.int8), size=(co, cin, k, k))
        else:
            weight = rng.integers(-128, 128, size=(co, cin, k, k)).astype(np.int8)
        weight = np.where(mask, weight, 0).astype(np.int8)
        bias, mult, shift = _params(rng, co, weight, extreme)
        entry.update(in_shape=in_shape, out_shape=out, kernel=k, pad=pad, keep=keep,
                     period=len(assignment), library=library, assignment=assignment,
                     bias=bias, mult=mult, shift=shift)
        layers.append(entry)
        weights[name] = weight
        src, shapes[name] = name, tuple(out)
    for entry in layers:                # the keys only people and --compare read
        entry["scale"] = 1.0
        if entry["op"] == "conv":
            entry.update(w_scale=[1.0] * entry["out_shape"][0],
                         pruning={"retained": 1.0, "upper_bound": 1.0, "patdnn": 1.0,
                                  "permuted": False})
    options = {"keep": 4, "patterns": 4, "period": 4, "permute": False, "prune_first": False,
               "seed": seed, "calib_samples": 1}
    manifest = {"format": images.FORMAT, "version": images.VERSION, "source": "test",
                "source_sha256": None, "weights": None, "options": options,
                "input": {"name": "input", "shape": list(start), "scale": 1.0},
                "output": {"name": layers[-1]["name"], "shape": layers[-1]["out_shape"],
                           "scale": 1.0},
                "layers": layers}
    return images.CompiledModel(manifest, weights)


def random_specs(rng):
    """A short chain of layers of awkward shapes: odd sizes, channel counts that are not
    multiples of the array, several keeps, pools, stride 2, a final 1x1 or FC (``rng``: a
    numpy Generator)."""
    h, w = int(rng.integers(2, 8)), int(rng.integers(2, 9))
    specs = [layer("conv3", ci=int(rng.integers(1, 6)), h=h, w=w,
                   co=int(rng.integers(1, 8)), keep=int(rng.choice([9, 4, 2, 5])),
                   pool=bool(rng.random() < 0.4), patterns=int(rng.integers(1, 5)),
                   period=int(rng.integers(1, 6)), relu=bool(rng.random() < 0.7))]
    if specs[0]["pool"] and (h < 4 or w < 4):
        specs[0]["pool"] = False
    specs += [layer(str(rng.choice(["conv3", "conv1"])), co=int(rng.integers(1, 9)),
                    keep=int(rng.choice([4, 9, 3])), relu=bool(rng.random() < 0.7),
                    stride=2 if rng.random() < 0.3 else 1)
              for _ in range(int(rng.integers(1, 3)))]
    specs.append(layer(str(rng.choice(["fc", "conv1"])), co=int(rng.integers(1, 7)),
                       relu=False))
    return specs


def sample_input(model, seed):
    """A random int8 input of compiled ``model``."""
    shape = tuple(model.manifest["input"]["shape"])
    return np.random.default_rng(seed).integers(-128, 128, size=shape).astype(np.int8)


def stats_monitor(dut, stats):
    """An amaranth.sim process appending ``(layer, cycles)`` of every ``dut.stats`` item."""
    async def monitor(ctx):
        async for _, _, valid, index, cycles in ctx.tick().sample(
                dut.stats.valid, dut.stats.payload.layer, dut.stats.payload.cycles):
            if valid:
                stats.append((index, cycles))
    return monitor


def actions_monitor(dut, actions):
    """An amaranth.sim process appending ``(layer, {kind: count})`` of every ``dut.actions``
    item."""
    async def monitor(ctx):
        async for _, _, valid, payload in ctx.tick().sample(dut.actions.valid,
                                                            dut.actions.payload):
            if valid:
                actions.append((payload.layer, {kind: payload[kind] for kind in ACTION_KINDS}))
    return monitor
