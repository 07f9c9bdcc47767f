# amaranth: UnusedElaboratable=no
"""The AXI4 and AXI4-Lite signatures, the standard port names in the emitted Verilog and
joining a read half and a write half onto one port."""

import re

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from cocotbext.axi import axi_channels, axil_channels

from sps_hw.axi import (
    AXI4LiteSignature,
    AXI4Signature,
    BurstReader,
    BurstWriter,
    RegisterFile,
    join,
    verilog_ports,
)

from .designs import REGISTERS, DmaPair


def header(component, name="top"):
    """The port names of the module Amaranth emits for ``component`` with verilog_ports."""
    text = verilog.convert(component, name=name, ports=verilog_ports(component), emit_src=False)
    ports = re.search(rf"module {name}\((.*?)\);", text, re.DOTALL).group(1)
    return {p.strip() for p in ports.split(",")}


def cocotbext_names(module, prefix, optional):
    """Signals cocotbext-axi's buses of ``module`` (AXI4 or AXI4-Lite) look for as
    ``<prefix>_<signal>``: all the required ones, and the ``optional`` ones."""
    kind = "Axi" if module is axi_channels else "AxiLite"
    names = set()
    for bus in (getattr(module, f"{kind}{ch}Bus") for ch in ("AW", "W", "B", "AR", "R")):
        names |= {f"{prefix}_{s}" for s in bus._signals}
        names |= {f"{prefix}_{s}" for s in bus._optional_signals if s in optional}
    return names


def prefixed(names, prefix):
    return {n for n in names if n.startswith(prefix)}


def width(sig, name):
    return Shape.cast(sig.members[name].shape).width


def test_axi4_members():
    sig = AXI4Signature(addr_width=40, data_width=128, id_width=4)
    assert len(sig.members) == 33
    assert width(sig, "wstrb") == 16 and sig.members["rdata"].flow == In
    assert width(sig, "awid") == 4 and width(sig, "awlen") == 8
    assert width(sig, "araddr") == 40 and sig.members["bready"].flow == Out
    read = AXI4Signature(addr_width=40, data_width=128, id_width=4, write=False)
    write = AXI4Signature(addr_width=40, data_width=128, id_width=4, read=False)
    assert set(read.members) | set(write.members) == set(sig.members)
    assert all(name[0] in "ar" for name in read.members)
    assert sig == AXI4Signature(addr_width=40, data_width=128, id_width=4) != read
    assert hash(sig) == hash(AXI4Signature(addr_width=40, data_width=128, id_width=4))
    assert repr(read) == "AXI4Signature(addr_width=40, data_width=128, id_width=4, write=False)"
    lite = AXI4LiteSignature(addr_width=12, data_width=64)
    assert len(lite.members) == 19 and width(lite, "wstrb") == 8
    assert repr(lite) == "AXI4LiteSignature(addr_width=12, data_width=64)"


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="data_width must be one of 32, 64, 128, 256, not 512"):
        AXI4Signature(addr_width=32, data_width=512)
    with pytest.raises(ValueError, match=r"id_width must be in 1..16, not 0"):
        AXI4Signature(addr_width=32, data_width=64, id_width=0)
    with pytest.raises(TypeError, match="addr_width must be an int"):
        AXI4Signature(addr_width=32.0, data_width=64)
    with pytest.raises(ValueError, match="needs a read half, a write half or both"):
        AXI4Signature(addr_width=32, data_width=64, read=False, write=False)
    with pytest.raises(TypeError, match="read and write must be bools"):
        AXI4Signature(addr_width=32, data_width=64, read=1)
    with pytest.raises(ValueError, match="data_width must be one of 32, 64, not 128"):
        AXI4LiteSignature(addr_width=12, data_width=128)
    with pytest.raises(ValueError, match=r"max_outstanding must be in 1..64, not 0"):
        BurstReader(max_outstanding=0)
    with pytest.raises(ValueError, match=r"max_burst must be in 1..256, not 0"):
        BurstWriter(max_burst=0)


def test_verilog_names_are_the_ones_cocotbext_axi_finds():
    """Every signal cocotbext-axi requires (and the optional ones the signatures have) is a
    port, named <port>_<signal>; other ports keep Amaranth's <port>__<member>."""
    optional = {"awcache", "awprot", "wstrb", "bresp", "arcache", "arprot", "rresp"}
    ports = header(DmaPair(data_width=64, max_burst=16, max_outstanding=2))
    assert prefixed(ports, "m_axi") == cocotbext_names(axi_channels, "m_axi", optional)
    assert {"rd_cmd__valid", "rd_cmd__payload", "wr_data__ready", "rd_busy", "clk"} <= ports
    ports = header(RegisterFile(REGISTERS))
    assert prefixed(ports, "s_axi") == cocotbext_names(axil_channels, "s_axi", optional)
    assert {"control", "start", "status", "cycles"} <= ports
    reader = header(BurstReader())
    assert prefixed(reader, "m_axi") == prefixed(
        cocotbext_names(axi_channels, "m_axi", optional), ("m_axi_ar", "m_axi_r"))


def test_verilog_names_inside_an_interface():
    """An AXI port inside another interface: the path joined by __, then _<signal>."""
    class Outer(wiring.Component):
        def __init__(self):
            super().__init__({"dma": Out(wiring.Signature({
                "m_axi": Out(AXI4Signature(addr_width=32, data_width=32, write=False)),
                "go": In(1)}))})

        def elaborate(self, platform):
            return Module()

    ports = header(Outer())
    assert {"dma__m_axi_araddr", "dma__m_axi_rready", "dma__go"} <= ports
    assert not any("m_axi__" in p for p in ports)


def test_join_checks_its_parts():
    full = AXI4Signature(addr_width=32, data_width=64)
    read = AXI4Signature(addr_width=32, data_width=64, write=False)
    m = Module()
    bus = full.create()
    with pytest.raises(ValueError, match="does not have the widths of bus"):
        join(m, bus, AXI4Signature(addr_width=32, data_width=128, write=False).create())
    with pytest.raises(ValueError, match=r"has members the bus .* lacks or another part has"):
        join(m, bus, read.create(), read.create())
    with pytest.raises(TypeError, match="same direction"):
        join(m, bus, read.flip().create())
    with pytest.raises(TypeError, match="bus must be an AXI4 interface"):
        join(m, AXI4LiteSignature(addr_width=12, data_width=32).create(), read.create())


def test_join_subordinate_halves():
    """A subordinate port passed on to a read-only and a write-only subordinate inside."""
    def subordinate(**halves):
        sig = AXI4Signature(addr_width=32, data_width=32, **halves)

        class Sub(wiring.Component):
            def __init__(self):
                super().__init__({"s_axi": In(sig)})

            def elaborate(self, platform):
                m = Module()
                m.d.comb += [getattr(self.s_axi, name).eq(0x5A) for name, member in
                             self.s_axi.signature.members.items() if member.flow == Out]
                return m
        return Sub()

    class Outer(wiring.Component):
        def __init__(self):
            self.rd, self.wr = subordinate(write=False), subordinate(read=False)
            super().__init__({"s_axi": In(AXI4Signature(addr_width=32, data_width=32))})

        def elaborate(self, platform):
            m = Module()
            m.submodules.rd, m.submodules.wr = self.rd, self.wr
            join(m, self.s_axi, self.rd.s_axi, self.wr.s_axi)
            return m

    dut = Outer()
    seen = {}

    async def bench(ctx):
        ctx.set(dut.s_axi.araddr, 0x1234)
        ctx.set(dut.s_axi.wdata, 0x77)
        seen.update(araddr=ctx.get(dut.rd.s_axi.araddr), wdata=ctx.get(dut.wr.s_axi.wdata),
                    rdata=ctx.get(dut.s_axi.rdata), bresp=ctx.get(dut.s_axi.bresp),
                    awready=ctx.get(dut.s_axi.awready))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"araddr": 0x1234, "wdata": 0x77, "rdata": 0x5A, "bresp": 0x2,
                    "awready": 0}
