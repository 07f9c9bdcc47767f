"""The points of a sweep: the cross product of axis values, from ``--grid`` or a TOML file.

``--grid 'board=ulx3s-85f,icebreaker; rows=8,16; cols=8; keep=4,9'`` names each axis once
with its values; a TOML sweep file has one ``[grid]`` table, or several ``[[grid]]`` tables
whose points are joined (so each board can have its own arrays)::

    [[grid]]
    board = "icebreaker"
    rows = [2]
    cols = [1, 2]
    keep = [4, 9]

Axes left out take :data:`DEFAULTS`; ``rows`` and ``cols`` default to the board's own array.
A point is a dict of every axis; equal points are kept once.
"""

import itertools
import tomllib

from boards.cli import BOARD_NAMES
from compiler.errors import SPSError

__all__ = ["AXES", "DEFAULTS", "expand", "parse_grid", "read_sweep_file"]

#: axis -> (lowest value, highest value) of an integer axis; ``board`` takes names.
AXES = {"board": None, "rows": (1, 256), "cols": (1, 256), "keep": (1, 9),
        "patterns": (1, 64), "period": (1, 4096), "seed": (0, 2**32 - 1)}
#: The values of axes a grid leaves out (the defaults of ``sps compile``).
DEFAULTS = {"keep": 4, "patterns": 4, "period": 8, "seed": 0}


def _value(axis, text, where):
    if axis == "board":
        if text not in BOARD_NAMES:
            raise SPSError(f"{where}: unknown board {text!r}; expected one of "
                           f"{', '.join(BOARD_NAMES)}")
        return text
    low, high = AXES[axis]
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = None
    if value is None or isinstance(text, bool) or isinstance(text, float) \
            or not low <= value <= high:
        raise SPSError(f"{where}: {axis} must be an integer in {low}..{high}, not {text!r}")
    return value


def _axes(table, where):
    """``{axis: [values]}`` of one grid, checked."""
    unknown = sorted(set(table) - set(AXES))
    if unknown:
        raise SPSError(f"{where}: unknown axis {unknown[0]!r}; expected {', '.join(AXES)}")
    if "board" not in table:
        raise SPSError(f"{where}: no board axis; name at least one board "
                       f"({', '.join(BOARD_NAMES)})")
    axes = {}
    for axis, values in table.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise SPSError(f"{where}: axis {axis} has no values")
        axes[axis] = [_value(axis, v, where) for v in values]
    return axes


def parse_grid(text):
    """``{axis: [values]}`` of a ``--grid`` string: ``axis=v1,v2; axis=v3``."""
    table = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        axis, eq, values = part.partition("=")
        axis = axis.strip()
        if not eq or not axis:
            raise SPSError(f"--grid: expected 'axis=value,value', not {part!r}")
        if axis in table:
            raise SPSError(f"--grid: axis {axis!r} given twice")
        table[axis] = [v.strip() for v in values.split(",")]
        if "" in table[axis]:
            raise SPSError(f"--grid: axis {axis!r} has an empty value in {part!r}")
    return [_axes(table, "--grid")]


def read_sweep_file(path):
    """The grids of a TOML sweep file (``[grid]`` or ``[[grid]]`` tables)."""
    where = f"--sweep {path}"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise SPSError(f"{where}: cannot be read ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise SPSError(f"{where}: not valid TOML ({e})") from None
    grids = data.get("grid")
    if set(data) != {"grid"} or not grids:
        raise SPSError(f"{where}: expected only [grid] or [[grid]] tables, found "
                       f"{', '.join(sorted(data)) or 'nothing'}")
    grids = grids if isinstance(grids, list) else [grids]
    return [_axes(table, f"{where} grid {n + 1}") for n, table in enumerate(grids)]


def expand(grids, arrays):
    """The points of ``grids``, in order, each once; ``arrays[board]`` is the board's own
    ``(rows, cols)``, the default of those axes."""
    points, seen = [], set()
    for axes in grids:
        names = list(axes)
        for values in itertools.product(*(axes[n] for n in names)):
            given = dict(zip(names, values))
            rows, cols = arrays[given["board"]]
            point = {"board": given["board"], "rows": rows, "cols": cols, **DEFAULTS, **given}
            point = {axis: point[axis] for axis in AXES}
            frozen = tuple(point.values())
            if frozen not in seen:
                seen.add(frozen)
                points.append(point)
    return points
