"""Random damage to a compiled model directory, and a tally of what ``sps`` makes of it.

:func:`corrupt` applies one random fault to a copy of a compiled model: a manifest key deleted,
a value of another type, a number out of range or a list of the wrong length, an image file
with a byte flipped or cut short, or a truncated manifest. The tests draw the faults through
hypothesis; ``python sim_tests/support/corrupt.py MODEL X.npy N`` feeds N seeded faults to
``sps golden`` in-process and counts clean refusals, successes and tracebacks (run it from
another checkout with that checkout on ``PYTHONPATH`` to measure that code).
"""

import contextlib
import io
import json
import random
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

KINDS = ("delete", "retype", "range", "length", "flip", "truncate", "manifest")
#: Values of other types, for ``retype``.
OTHER_TYPES = (None, "x", 7, -3.5, True, [], {}, [1, 2], {"k": 1})
#: Out-of-range numbers, for ``range``.
EXTREMES = (0, -1, 1, 2, 255, 2**15, 2**31, -(2**31) - 1, 2**40, 2**63, 10**30, 0.5, -1e300)


def _fields(node, path=()):
    """``(path, value)`` of every dict entry and list element below ``node``."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield path + (key,), value
        if isinstance(value, dict | list):
            yield from _fields(value, path + (key,))


def _set(manifest, path, value):
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


_DELETE = object()


def _pick_field(rng, manifest, want=lambda value: True, descend=True):
    """A dict entry whose value passes ``want``, or (half the time, if ``descend`` and it is a
    list) one of its elements; None if there is none."""
    fields = [(p, v) for p, v in _fields(manifest) if isinstance(p[-1], str) and want(v)]
    if not fields:
        return None
    path, value = rng.choice(fields)
    if descend and isinstance(value, list) and value and rng.random() < 0.5:
        i = rng.randrange(len(value))
        path, value = path + (i,), value[i]
    return path, value


def corrupt(model_dir, rng):
    """Damage ``model_dir`` in place with one fault drawn from ``rng`` (a ``random.Random``);
    returns a description such as ``"range layers/1/mult/3 = 0"``."""
    model_dir = Path(model_dir)
    manifest_file = model_dir / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    kind = rng.choice(KINDS)
    if kind in ("flip", "truncate"):
        file = rng.choice(sorted(p for p in model_dir.rglob("*") if p.is_file()
                                 and p.name != "manifest.json"))
        data = bytearray(file.read_bytes())
        if kind == "flip" and data:
            i = rng.randrange(len(data))
            data[i] ^= rng.randrange(1, 256)
        else:
            data = data[:rng.randrange(len(data))] if data else data
        file.write_bytes(bytes(data))
        return f"{kind} {file.relative_to(model_dir)}"
    if kind == "manifest":
        text = manifest_file.read_text()
        manifest_file.write_text(text[:rng.randrange(len(text))])
        return "manifest truncated"
    if kind == "delete":
        path, _ = _pick_field(rng, manifest, descend=False)
        value = _DELETE
    elif kind == "retype":
        path, old = _pick_field(rng, manifest)
        value = rng.choice([v for v in OTHER_TYPES if type(v) is not type(old)])
    elif kind == "range":
        path, old = _pick_field(rng, manifest, _numeric)
        if not isinstance(old, int | float) or isinstance(old, bool):
            i = rng.randrange(len(old))
            path, old = path + (i,), old[i]
        value = rng.choice([*EXTREMES, old + 1, old - 1, -old, old * 2])
    else:                                              # length: a list one longer or shorter
        path, old = _pick_field(rng, manifest, lambda v: isinstance(v, list) and v,
                                descend=False)
        value = old[:-1] if rng.random() < 0.5 else [*old, old[-1]]
    _set(manifest, path, value)
    manifest_file.write_text(json.dumps(manifest, indent=1))
    shown = "/".join(str(k) for k in path)
    return f"{kind} {shown}" + ("" if value is _DELETE else f" = {json.dumps(value)[:40]}")


def _numeric(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, list) and value and all(_numeric(v) for v in value)


def run_sps(argv):
    """``sps argv`` in-process: ``(status, stderr lines, traceback or None)``."""
    from sps.cli import main  # deferred: the checkout on sys.path decides which

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main([str(a) for a in argv])
    except SystemExit as e:
        status = e.code
    except Exception:
        return None, err.getvalue().splitlines(), traceback.format_exc()
    return status, err.getvalue().splitlines(), None


def tally(model, x, count, seed=0):
    """Feed ``count`` seeded corruptions of ``model`` to ``sps golden``; count the outcomes."""
    counts = {"refused": 0, "succeeded": 0, "traceback": 0, "other": 0}
    examples = []
    rng = random.Random(seed)
    for _ in range(count):
        with tempfile.TemporaryDirectory() as tmp:
            damaged = Path(tmp) / "m"
            shutil.copytree(model, damaged)
            what = corrupt(damaged, rng)
            status, err, tb = run_sps(["golden", damaged, "--input", x, "-o", Path(tmp) / "y.npy"])
        if tb is not None:
            counts["traceback"] += 1
            examples.append(f"{what}: {tb.strip().splitlines()[-1]}")
        elif status == 0:
            counts["succeeded"] += 1
        elif status == 2 and len(err) == 1 and err[0].startswith("sps: error: "):
            counts["refused"] += 1
        else:
            counts["other"] += 1
            examples.append(f"{what}: status {status}, {err}")
    return counts, examples


if __name__ == "__main__":
    model_arg, x_arg, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    result, seen = tally(model_arg, x_arg, n)
    print(json.dumps(result))
    print("\n".join(seen))
