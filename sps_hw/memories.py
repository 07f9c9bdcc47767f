"""ROMs filled from the packed images, and the banked feature buffers."""

import numpy as np
from amaranth.hdl import Module, Shape, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import Out

__all__ = ["READMEMH_ATTR", "ROM", "FeatureBuffer"]

#: Memory attribute naming the ``$readmemh`` image of a ROM in the emitted Verilog.
READMEMH_ATTR = "sps_readmemh"


class ROM(wiring.Component):
    """A read-only memory of ``depth`` words of ``shape``, with one synchronous read port.

    ``init`` (an integer array, or None for zeros) fills it for simulation in Amaranth;
    ``image`` names the ``$readmemh`` file that fills it in the emitted Verilog (see
    :mod:`sps_hw.verilog`), so the Verilog does not depend on the network.
    """

    def __init__(self, *, shape, depth, init=None, image=None):
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise TypeError(f"depth must be an int, not {depth!r}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        if image is not None and (not isinstance(image, str) or "/" in image):
            raise ValueError(f"image must be a plain file name, not {image!r}")
        Shape.cast(shape)                  # a ShapeLike: a shape or a data layout
        self.shape = shape
        self.depth, self.image = depth, image
        if init is None:
            self.init = []
        else:
            init = np.asarray(init)
            if init.ndim != 1 or len(init) > depth:
                raise ValueError(f"init must be a list of at most {depth} words, not shape "
                                 f"{init.shape}")
            self.init = [int(v) for v in init]
            if isinstance(shape, data.Layout):       # words are given as raw bits
                self.init = [data.Const(shape, v) for v in self.init]
        super().__init__({
            "read": Out(memory.ReadPort.Signature(addr_width=max(1, (depth - 1).bit_length()),
                                                  shape=self.shape)),
        })

    def elaborate(self, platform):
        m = Module()
        attrs = {READMEMH_ATTR: self.image} if self.image else {}
        # At least 2 words, so that the address is at least 1 bit wide like the port's.
        m.submodules.mem = mem = memory.Memory(shape=self.shape, depth=max(2, self.depth),
                                               init=self.init, attrs=attrs)
        wiring.connect(m, wiring.flipped(self.read), mem.read_port())
        return m


class FeatureBuffer(wiring.Component):
    """``banks`` int8 memories of ``depth`` words, each with one read and one write port."""

    def __init__(self, *, banks, depth):
        for name, value in (("banks", banks), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self.banks, self.depth = banks, depth
        addr_width = max(1, (depth - 1).bit_length())
        super().__init__({
            "read": Out(memory.ReadPort.Signature(addr_width=addr_width,
                                                  shape=signed(8))).array(banks),
            "write": Out(memory.WritePort.Signature(addr_width=addr_width,
                                                    shape=signed(8))).array(banks),
        })

    def elaborate(self, platform):
        m = Module()
        for b in range(self.banks):
            bank = memory.Memory(shape=signed(8), depth=max(2, self.depth), init=[])
            m.submodules[f"bank{b}"] = bank
            wiring.connect(m, wiring.flipped(self.write[b]), bank.write_port())
            wiring.connect(m, wiring.flipped(self.read[b]), bank.read_port())
        return m
