"""The designs the cocotb tests run: a reader and a writer on one AXI4 port (the burst DMAs
or the tensor movers), and a register file."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from sps_hw.axi import (
    AXI4Signature,
    BurstReader,
    BurstWriter,
    Register,
    RegisterFile,
    TensorReader,
    TensorWriter,
    join,
)

ADDR_WIDTH, BEATS_WIDTH, SIZE_WIDTH = 32, 16, 16

#: The register file of the cocotb test: the issue's control and status block in miniature.
REGISTERS = [
    Register("control", "rw", 32, init=0x100),
    Register("start", "pulse", 1),
    Register("status", "w1c", 2),          # bit 0 done, bit 1 error
    Register("irq_enable", "rw", 2),
    Register("base", "rw", 32),
    Register("cycles", "ro", 32),
]


class Pair(wiring.Component):
    """A reader (its ports ``rd_<name>``) and a writer (``wr_<name>``) sharing ``m_axi``."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        bus = reader.signature.members["m_axi"].signature
        members = {"m_axi": Out(AXI4Signature(addr_width=bus.addr_width,
                                              data_width=bus.data_width))}
        for prefix, dma in (("rd", reader), ("wr", writer)):
            for name, member in dma.signature.members.items():
                if name != "m_axi":
                    members[f"{prefix}_{name}"] = member
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader, m.submodules.writer = self.reader, self.writer
        join(m, self.m_axi, self.reader.m_axi, self.writer.m_axi)
        for prefix, dma in (("rd", self.reader), ("wr", self.writer)):
            for name, member in dma.signature.members.items():
                if name == "m_axi":
                    continue
                outer, inner = getattr(self, f"{prefix}_{name}"), getattr(dma, name)
                if member.is_signature:
                    wiring.connect(m, wiring.flipped(outer), inner)
                elif member.flow == Out:
                    m.d.comb += outer.eq(inner)
                else:
                    m.d.comb += inner.eq(outer)
        return m


class DmaPair(Pair):
    """A :class:`BurstReader` and a :class:`BurstWriter`."""

    def __init__(self, *, data_width, max_burst, max_outstanding):
        kwargs = {"addr_width": ADDR_WIDTH, "data_width": data_width,
                  "beats_width": BEATS_WIDTH, "max_burst": max_burst,
                  "max_outstanding": max_outstanding}
        super().__init__(BurstReader(**kwargs), BurstWriter(**kwargs))


class TensorPair(Pair):
    """A :class:`TensorReader` and a :class:`TensorWriter`."""

    def __init__(self, *, data_width, max_burst, max_outstanding):
        kwargs = {"addr_width": ADDR_WIDTH, "data_width": data_width,
                  "size_width": SIZE_WIDTH, "max_burst": max_burst,
                  "max_outstanding": max_outstanding}
        super().__init__(TensorReader(**kwargs), TensorWriter(**kwargs))


def register_file():
    return RegisterFile(REGISTERS, irq=("status", "irq_enable"))
