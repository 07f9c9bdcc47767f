"""An AXI4-Lite register file: control and status registers, start pulses, an interrupt."""

import keyword

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..checks import check_int
from .signature import LITE_DATA_WIDTHS, RESP_OKAY, RESP_SLVERR, AXI4LiteSignature

__all__ = ["ACCESS", "Register", "RegisterFile"]

#: Register kinds: ``rw`` a control register (written and read back by the bus, its value on
#: an ``Out`` port), ``ro`` a status register (an ``In`` port the bus reads), ``pulse`` a
#: write-1-to-act register (each bit written 1 is high on its ``Out`` port for one cycle;
#: reads 0), ``w1c`` a sticky status register (bits set by its ``In`` port, cleared by
#: writing 1; a set wins over a clear in the same cycle).
ACCESS = ("rw", "ro", "pulse", "w1c")


class Register:
    """One register of a :class:`RegisterFile`: ``width`` bits (the low bits of its word) of
    kind ``access`` (see :data:`ACCESS`); ``init`` is the reset value of an ``rw`` or ``w1c``
    register."""

    def __init__(self, name, access, width=32, *, init=0):
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) \
                or name.startswith("_"):
            raise ValueError(f"register name must be an identifier not starting with '_', "
                             f"not {name!r}")
        if access not in ACCESS:
            raise ValueError(f"access must be one of {', '.join(map(repr, ACCESS))}, "
                             f"not {access!r}")
        check_int("width", width, minimum=1, maximum=64)
        check_int("init", init, minimum=0, maximum=(1 << width) - 1)
        if init and access not in ("rw", "w1c"):
            raise ValueError(f"a {access} register has no reset value; init must be 0, "
                             f"not {init!r}")
        self.name, self.access, self.width, self.init = name, access, width, init

    def __repr__(self):
        init = f", init={self.init:#x}" if self.init else ""
        return f"Register({self.name!r}, {self.access!r}, {self.width}{init})"


class RegisterFile(wiring.Component):
    """AXI4-Lite subordinate with ``registers`` at consecutive words from offset 0, in order
    (``offsets`` maps each name to its byte offset).

    Writes honour ``wstrb``; AW and W are each held in a register until the other arrives (in
    either order, or together), then the write takes effect and B answers; one write is
    answered at a time. A read answers on R the cycle after AR is taken. An address past the
    last register is answered ``SLVERR`` (reads return 0, writes do nothing); a write to an
    ``ro`` register is answered ``OKAY`` and ignored. The low bits of addresses below the
    word size are ignored.

    Parameters
    ----------
    registers : sequence of :class:`Register`
    data_width : int
        32 or 64; a register is at most this wide.
    addr_width : int
        Byte address width of ``s_axi``; the registers must fit.
    irq : tuple of str, optional
        ``(status, enable)``: a ``w1c`` and an ``rw`` register of one width; then ``irq`` is
        high while a bit is set in both.

    Members
    -------
    s_axi : ``In(AXI4LiteSignature(addr_width=addr_width, data_width=data_width))``
    <name> : one port per register: ``Out(width)`` for ``rw`` (its value) and ``pulse``,
        ``In(width)`` for ``ro`` (the value read) and ``w1c`` (bits to set).
    irq : ``Out(1)``, with ``irq`` only.
    """

    def __init__(self, registers, *, data_width=32, addr_width=12, irq=None):
        registers = tuple(registers)
        for reg in registers:
            if not isinstance(reg, Register):
                raise TypeError(f"registers must be Register objects, not {reg!r}")
        if not registers:
            raise ValueError("a register file needs at least one register")
        check_int("data_width", data_width)
        if data_width not in LITE_DATA_WIDTHS:
            raise ValueError(f"data_width must be 32 or 64, not {data_width!r}")
        check_int("addr_width", addr_width, minimum=1, maximum=64)
        by_name = {}
        for reg in registers:
            if reg.name in by_name or reg.name in ("s_axi", "irq"):
                raise ValueError(f"register name {reg.name!r} is used twice or is a port "
                                 f"name of the register file (s_axi, irq)")
            if reg.width > data_width:
                raise ValueError(f"register {reg.name!r} has {reg.width} bits, more than the "
                                 f"{data_width}-bit bus")
            by_name[reg.name] = reg
        word_bytes = data_width // 8
        if len(registers) * word_bytes > 1 << addr_width:
            raise ValueError(f"{len(registers)} registers of {word_bytes} bytes do not fit "
                             f"in addr_width {addr_width}")
        if irq is not None:
            if not isinstance(irq, tuple) or len(irq) != 2:
                raise TypeError(f"irq must be a (status, enable) tuple of names, not {irq!r}")
            status, enable = (by_name.get(name) for name in irq)
            if status is None or enable is None or status.access != "w1c" or \
                    enable.access != "rw" or status.width != enable.width:
                raise ValueError(f"irq must name a w1c and an rw register of one width, "
                                 f"not {irq!r}")
        self.registers, self.irq_registers = registers, irq
        self.offsets = {reg.name: i * word_bytes for i, reg in enumerate(registers)}
        members = {"s_axi": In(AXI4LiteSignature(addr_width=addr_width,
                                                 data_width=data_width))}
        for reg in registers:
            if reg.access == "rw":
                members[reg.name] = Out(reg.width, init=reg.init)
            else:
                members[reg.name] = Out(reg.width) if reg.access == "pulse" else In(reg.width)
        if irq is not None:
            members["irq"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axi
        shift = (bus.signature.data_width // 8).bit_length() - 1
        values = {reg.name: Signal(reg.width, init=reg.init, name=f"{reg.name}_value")
                  for reg in self.registers if reg.access in ("rw", "w1c")}

        # Write: AW and W each wait in a register for the other.
        aw_held, w_held = Signal(), Signal()
        waddr = Signal(len(bus.awaddr) - shift)
        wdata, wstrb = Signal.like(bus.wdata), Signal.like(bus.wstrb)
        write = Signal()
        m.d.comb += [bus.awready.eq(~aw_held), bus.wready.eq(~w_held),
                     write.eq(aw_held & w_held & ~bus.bvalid)]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_held.eq(1), waddr.eq(bus.awaddr[shift:])]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_held.eq(1), wdata.eq(bus.wdata), wstrb.eq(bus.wstrb)]
        with m.If(write):
            m.d.sync += [aw_held.eq(0), w_held.eq(0), bus.bvalid.eq(1),
                         bus.bresp.eq(RESP_SLVERR)]
        with m.Elif(bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        mask = Cat(bit.replicate(8) for bit in wstrb)

        for i, reg in enumerate(self.registers):
            port = getattr(self, reg.name)
            hit = Signal(name=f"{reg.name}_write")
            bits = Signal(reg.width, name=f"{reg.name}_bits")      # the bits written 1
            m.d.comb += [hit.eq(write & (waddr == i)), bits.eq(wdata & mask)]
            with m.If(hit):
                m.d.sync += bus.bresp.eq(RESP_OKAY)
            if reg.access == "rw":
                value = values[reg.name]
                m.d.comb += port.eq(value)
                with m.If(hit):
                    m.d.sync += value.eq((value & ~mask[:reg.width]) | bits)
            elif reg.access == "pulse":
                m.d.sync += port.eq(bits & hit.replicate(reg.width))
            elif reg.access == "w1c":
                value = values[reg.name]
                m.d.sync += value.eq((value & ~(bits & hit.replicate(reg.width))) | port)

        # Read: R answers the cycle after AR is taken.
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(0), bus.rresp.eq(RESP_SLVERR)]
            with m.Switch(bus.araddr[shift:]):
                for i, reg in enumerate(self.registers):
                    with m.Case(i):
                        m.d.sync += bus.rresp.eq(RESP_OKAY)
                        if reg.access == "ro":
                            m.d.sync += bus.rdata.eq(getattr(self, reg.name))
                        elif reg.access != "pulse":
                            m.d.sync += bus.rdata.eq(values[reg.name])
        with m.Elif(bus.rready):
            m.d.sync += bus.rvalid.eq(0)

        if self.irq_registers is not None:
            status, enable = self.irq_registers
            m.d.comb += self.irq.eq((values[status] & values[enable]).any())
        return m
