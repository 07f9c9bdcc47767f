"""The SPS accelerator in Amaranth HDL, its cycle model and its Verilog generator.

- :class:`Config`: the generator parameters (array, buffers, ROMs);
- :func:`generate`: Verilog and packed ROM images (``sps generate``);
- :func:`simulate_model`: a compiled network on the RTL under cocotb (``sps sim``);
- :func:`cycle_report`: the analytical model for a whole network (``sps report cycles``);
- :class:`~sps_hw.top.Accelerator`: the top-level component.

See ``docs/hardware.md``. Names are imported on first use, so ``import sps_hw`` stays cheap.
"""

__all__ = ["Accelerator", "Config", "cycle_report", "generate", "simulate_model"]

_EXPORTS = {
    "Accelerator": ("top", "Accelerator"),
    "Config": ("config", "Config"),
    "cycle_report": ("model", "cycle_report"),
    "generate": ("generator", "generate"),
    "simulate_model": ("simulation", "run"),
}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sps_hw' has no attribute {name!r}")
    import importlib
    module, attr = _EXPORTS[name]
    return getattr(importlib.import_module(f".{module}", __name__), attr)
