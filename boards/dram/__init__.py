"""External memory controllers for the boards: LiteDRAM cores generated as Verilog
(:mod:`boards.dram.litedram_gen`; needs the ``dram`` extra: ``litex``, ``litedram``, ``migen``)."""
