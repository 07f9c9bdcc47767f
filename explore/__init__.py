"""Design-space exploration on Dask: ``sps explore`` (``docs/explore.md``).

A sweep is a list of points (:mod:`explore.grid`), each a board, an array and the PPS
options; :func:`explore.point.evaluate` runs one on a Dask worker (compile, fit, cycle model,
accuracy, optionally a board build), :mod:`explore.sweep` sends the points to a cluster and
commits each result to the SQLite store of :mod:`explore.store` as it arrives, and
:mod:`explore.pareto` writes ``points.csv``, ``pareto.csv`` and ``pareto.png``.

This layer sits above ``boards`` and below the ``sps`` command: it imports ``compiler``,
``sps_hw`` and ``boards``, none of which imports it.
"""
