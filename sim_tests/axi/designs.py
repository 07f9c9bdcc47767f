"""The designs the cocotb tests run: a reader and a writer on one AXI4 port, and a register
file."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.axi import (
    AXI4Signature,
    BurstReader,
    BurstWriter,
    Register,
    RegisterFile,
    command_layout,
    join,
)

ADDR_WIDTH, BEATS_WIDTH = 32, 16

#: The register file of the cocotb test: the issue's control and status block in miniature.
REGISTERS = [
    Register("control", "rw", 32, init=0x100),
    Register("start", "pulse", 1),
    Register("status", "w1c", 2),          # bit 0 done, bit 1 error
    Register("irq_enable", "rw", 2),
    Register("base", "rw", 32),
    Register("cycles", "ro", 32),
]


class DmaPair(wiring.Component):
    """A :class:`BurstReader` (``rd_*``) and a :class:`BurstWriter` (``wr_*``) sharing
    ``m_axi``."""

    def __init__(self, *, data_width, max_burst, max_outstanding):
        kwargs = {"addr_width": ADDR_WIDTH, "data_width": data_width,
                  "beats_width": BEATS_WIDTH, "max_burst": max_burst,
                  "max_outstanding": max_outstanding}
        self.reader, self.writer = BurstReader(**kwargs), BurstWriter(**kwargs)
        command = stream.Signature(command_layout(ADDR_WIDTH, BEATS_WIDTH))
        super().__init__({
            "m_axi": Out(AXI4Signature(addr_width=ADDR_WIDTH, data_width=data_width)),
            "rd_cmd": In(command), "rd_data": Out(stream.Signature(data_width)),
            "rd_busy": Out(1), "rd_error": Out(1), "rd_stalls": Out(32),
            "wr_cmd": In(command), "wr_data": In(stream.Signature(data_width)),
            "wr_busy": Out(1), "wr_error": Out(1), "wr_stalls": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader, m.submodules.writer = self.reader, self.writer
        join(m, self.m_axi, self.reader.m_axi, self.writer.m_axi)
        for prefix, dma in (("rd", self.reader), ("wr", self.writer)):
            wiring.connect(m, wiring.flipped(getattr(self, f"{prefix}_cmd")), dma.cmd)
            if prefix == "rd":
                wiring.connect(m, dma.data, wiring.flipped(self.rd_data))
            else:
                wiring.connect(m, wiring.flipped(self.wr_data), dma.data)
            for name in ("busy", "error", "stalls"):
                m.d.comb += getattr(self, f"{prefix}_{name}").eq(getattr(dma, name))
        return m


def register_file():
    return RegisterFile(REGISTERS, irq=("status", "irq_enable"))
