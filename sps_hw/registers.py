"""Delay lines: a value carried along a pipeline by a chain of registers."""

from amaranth.hdl import Signal

__all__ = ["delayed"]


def delayed(m, value, cycles, name):
    """``value`` ``cycles`` cycles later, through registers named ``<name>_d<i>`` in ``m``."""
    for i in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{i + 1}")
        m.d.sync += reg.eq(value)
        value = reg
    return value
