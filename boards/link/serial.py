"""A small piece that keeps the link cheap on an iCE40: a bit-serial CRC (the constant
comparisons are :func:`sps_hw.logic.gt_const`).

The UART gives the link at least ``10 * divisor`` (>= 40) clock cycles per byte, so CRCs are
computed one bit per cycle (8 cycles a byte) instead of byte-parallel.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring

from sps_hw.checks import check_int

from .ports import CRCPort

__all__ = ["SerialCRC"]


class SerialCRC(wiring.Component):
    """A CRC register that takes one data bit per cycle (a Galois LFSR); its port is
    :class:`~.ports.CRCPort` flipped.

    ``start`` loads the initial value (it has priority over ``valid``); ``valid`` shifts
    ``data`` in. ``value`` is the register: for ``reflect=False`` bits go in most significant
    first and ``value`` is the CRC (no final XOR here; a residue check is ``value == 0``); for
    ``reflect=True`` (CRC-32/ISO-HDLC style) bits go in least significant first and the CRC is
    ``value`` XOR the algorithm's output XOR, which the user applies.

    Parameters
    ----------
    width : int
    poly : int
        The generator polynomial in normal (not reflected) notation, e.g. 0x1021.
    init : int
        Initial register value.
    reflect : bool
        Shift right with the reflected polynomial (input and output reflected).
    """

    def __init__(self, width, poly, init, *, reflect):
        check_int("width", width, minimum=2)
        check_int("poly", poly, minimum=0, maximum=(1 << width) - 1)
        check_int("init", init, minimum=0, maximum=(1 << width) - 1)
        self.width, self.poly, self.init, self.reflect = width, poly, init, bool(reflect)
        super().__init__(CRCPort(width).flip())

    def elaborate(self, platform):
        m = Module()
        w = self.width
        reg = Signal(w, init=self.init)
        m.d.comb += self.value.eq(reg)
        if self.reflect:
            poly = int(f"{self.poly:0{w}b}"[::-1], 2)
            fb = reg[0] ^ self.data
            shifted = [reg[i + 1] if i + 1 < w else Const(0, 1) for i in range(w)]
        else:
            poly = self.poly
            fb = reg[w - 1] ^ self.data
            shifted = [reg[i - 1] if i > 0 else Const(0, 1) for i in range(w)]
        nxt = Cat(*[(s ^ fb) if poly >> i & 1 else s for i, s in enumerate(shifted)])
        with m.If(self.start):
            m.d.sync += reg.eq(self.init)
        with m.Elif(self.valid):
            m.d.sync += reg.eq(nxt)
        return m
