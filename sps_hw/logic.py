"""Comparisons with constants as plain logic: Yosys builds ``value > const`` as a carry chain,
which on an iCE40 takes a logic cell per bit and more to place the chain."""

from amaranth.hdl import Const

__all__ = ["gt_const"]


def gt_const(value, const):
    """``value > const`` for a constant, as plain logic (yosys would use a carry chain)."""
    if const < 0:
        return Const(1, 1)
    if const >> len(value):
        return Const(0, 1)
    gt = Const(0, 1)
    for i in range(len(value)):                 # from the least significant bit up
        gt = (value[i] & gt) if const >> i & 1 else (value[i] | gt)
    return gt
