"""Delay lines: a value carried along a pipeline by a chain of registers."""

from amaranth.hdl import Signal

__all__ = ["delayed"]


def delayed(m, value, cycles, name, *, reset_less=False):
    """``value`` ``cycles`` cycles later, through registers named ``<name>_d<i>`` in ``m``
    (``reset_less`` for data no reset needs to clear: no reset logic in front of them)."""
    for i in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{i + 1}", reset_less=reset_less)
        m.d.sync += reg.eq(value)
        value = reg
    return value
