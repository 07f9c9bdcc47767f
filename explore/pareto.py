"""What a sweep writes for its user: ``points.csv``, ``pareto.csv`` and ``pareto.png``.

The Pareto front is taken over the points that fit (status ``ok``) and these objectives:
dense-equivalent GOPS (higher is better), area (``lut`` or ``dsp``, lower is better) and,
where the model has a data set, accuracy (higher is better). There is no energy model yet, so
energy per inference is not an objective; an ``energy`` column would join :func:`objectives`
as one more minimized objective.
"""

import csv
import io

from compiler.fileio import atomic_write

from .store import COLUMNS

__all__ = ["front", "objectives", "plot", "write_csv", "write_outputs"]

AREA_LABEL = {"lut": "logic (LUT4 / logic cells / LUT)", "dsp": "DSP blocks"}


def objectives(rows, area="lut"):
    """``[(column, +1 maximize or -1 minimize)]`` for ``rows``."""
    found = [("gops", 1), (area, -1)]
    if any(r["accuracy"] is not None for r in rows):
        found.append(("accuracy", 1))
    return found


def front(rows, area="lut"):
    """The rows with status ``ok`` that no other such row dominates, by GOPS (descending)."""
    ok = [r for r in rows if r["status"] == "ok"]
    goals = objectives(ok, area)

    scores = [[sense * r[c] for c, sense in goals] for r in ok]
    kept = [r for r, s in zip(ok, scores)
            if not any(all(a >= b for a, b in zip(t, s)) and t != s for t in scores)]
    return sorted(kept, key=lambda r: -r["gops"])


def write_csv(path, rows):
    """``rows`` (dicts of :data:`~explore.store.COLUMNS`) as a CSV file, atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = text.getvalue().encode()
    atomic_write(path, lambda f: f.write(data))


def plot(path, rows, best, area="lut", title=""):
    """GOPS against area of every point that fits (colour: board, marker: keep), the front
    joined by a line, points that do not fit as grey crosses; a second panel of accuracy
    against GOPS where the model has a data set."""
    # deferred: matplotlib takes ~0.5 s to import; no pyplot: no global state, Agg canvas
    from matplotlib.figure import Figure

    ok = [r for r in rows if r["status"] == "ok"]
    accuracy = any(r["accuracy"] is not None for r in ok)
    fig = Figure(figsize=(11 if accuracy else 7.5, 4.2), layout="constrained")
    axes = fig.subplots(1, 2 if accuracy else 1, squeeze=False)[0]
    markers = dict(zip(sorted({r["keep"] for r in ok}), "os^Dvp*hX"))
    colors = {b: f"C{i}" for i, b in enumerate(sorted({r["board"] for r in rows}))}
    panels = [(axes[0], area, "gops")] + ([(axes[1], "gops", "accuracy")] if accuracy else [])
    for ax, x, y in panels:
        others = [r for r in rows if r["status"] != "ok" and r[x] is not None and r[y]]
        ax.scatter([r[x] for r in others], [r[y] for r in others], marker="x", c="0.75",
                   s=18, label="does not fit / failed" if others else None)
        for (board, keep), group in _groups(ok).items():
            ax.scatter([r[x] for r in group], [r[y] for r in group], c=colors[board],
                       marker=markers[keep], s=28, label=f"{board}, keep {keep}")
        if not accuracy:                # a front of two objectives is a line
            line = sorted(best, key=lambda r: (r[x], r[y]))
            ax.plot([r[x] for r in line], [r[y] for r in line], "k-", lw=0.8, alpha=0.6)
        ax.scatter([r[x] for r in best], [r[y] for r in best], facecolors="none",
                   edgecolors="k", s=80, lw=1.0, label="Pareto front")
        ax.set_xlabel(AREA_LABEL.get(x, "dense-equivalent GOPS"))
        ax.set_ylabel("dense-equivalent GOPS" if y == "gops" else "top-1 accuracy")
        for axis, column in ((ax.xaxis, x), (ax.yaxis, y)):
            _scale(ax, axis, [r[column] for r in rows if r[column]])
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="outside right upper")
    fig.suptitle(title, fontsize=10)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))


def _scale(ax, axis, values):
    """A log scale with plain tick labels where ``values`` span more than 8x."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    if values and max(values) > 8 * min(values):
        (ax.set_xscale if axis is ax.xaxis else ax.set_yscale)("log")
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _groups(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["board"], r["keep"]), []).append(r)
    return dict(sorted(groups.items()))


def write_outputs(results, rows, area="lut", title=""):
    """``points.csv``, ``pareto.csv`` and ``pareto.png`` of ``rows`` in ``results``;
    returns the front."""
    best = front(rows, area)
    write_csv(results / "points.csv", rows)
    write_csv(results / "pareto.csv", best)
    plot(results / "pareto.png", rows, best, area, title)
    return best
