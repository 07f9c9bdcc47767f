"""Energy per inference: action counts of the accelerator priced from cited per-FPGA tables
(``docs/energy.md``). Above ``compiler``, ``sps_hw`` and ``boards``; imported only by ``sps``
(and optionally ``explore``)."""
