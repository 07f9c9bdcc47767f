"""The ``sps`` command and ``make bench``: the top of the stack, assembling the commands and
benchmarks of the compiler (:mod:`compiler`), the hardware (:mod:`sps_hw`) and the boards
(:mod:`boards`). Nothing below imports it (``sim_tests/test_layers.py``)."""
