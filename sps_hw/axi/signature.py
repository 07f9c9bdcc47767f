"""AXI4 and AXI4-Lite signatures, and the standard port names in the emitted Verilog.

The signatures are flat: one member per AXI signal, named as the AXI specification names it
(``awaddr``, ``wlast``, ``rready``...), seen from the manager (``Out`` is driven by the
manager). Amaranth names a port ``m_axi`` with a member ``awaddr`` ``m_axi__awaddr``;
:func:`verilog_ports` gives ``verilog.convert`` the names SoC tools and cocotbext-axi's
``AxiBus.from_prefix(dut, "m_axi")`` expect, ``m_axi_awaddr``.
"""

from amaranth.hdl import Const, ValueCastable
from amaranth.hdl._ir import PortDirection  # what verilog.convert itself uses
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..checks import check_int

__all__ = [
    "BURST_INCR",
    "DATA_WIDTHS",
    "LITE_DATA_WIDTHS",
    "RESP_DECERR",
    "RESP_OKAY",
    "RESP_SLVERR",
    "AXI4LiteSignature",
    "AXI4Signature",
    "join",
    "verilog_ports",
]

#: Data widths of an :class:`AXI4Signature`.
DATA_WIDTHS = (32, 64, 128, 256)
#: Data widths of an :class:`AXI4LiteSignature`.
LITE_DATA_WIDTHS = (32, 64)
#: ``AxBURST`` of an incrementing burst.
BURST_INCR = 0b01
#: ``xRESP`` values (``EXOKAY``, 0b01, only answers exclusive accesses, which nothing here
#: makes).
RESP_OKAY, RESP_SLVERR, RESP_DECERR = 0b00, 0b10, 0b11


def _check_data_width(data_width, widths):
    check_int("data_width", data_width)
    if data_width not in widths:
        raise ValueError(f"data_width must be one of {', '.join(map(str, widths))}, "
                         f"not {data_width!r}")
    return data_width


def _channels(prefix, fields):
    return {prefix + name: member for name, member in fields.items()}


class AXI4Signature(wiring.Signature):
    """An AXI4 manager interface: INCR bursts of up to 256 beats, no exclusive accesses.

    Each half can be left out (``read=False`` or ``write=False``), so a DMA that only reads has
    only AR and R; :func:`join` puts a read half and a write half on one full port. Left out
    of both halves: ``AxREGION``, ``AxUSER``, ``xUSER`` and ``AxLOCK``/``AxQOS``, whose
    defaults (normal access, no QoS) are what a manager without them means.

    Parameters
    ----------
    addr_width : int
        Byte address width, 12..64.
    data_width : int
        One of :data:`DATA_WIDTHS`.
    id_width : int
        Width of the ID signals, 1..16 (cocotbext-axi needs them present).
    read, write : bool
        Which halves the interface has.

    Members
    -------
    Write half: ``awid``, ``awaddr``, ``awlen`` (8), ``awsize`` (3), ``awburst`` (2),
    ``awcache`` (4), ``awprot`` (3), ``awvalid``, ``awready``; ``wdata``, ``wstrb``
    (``data_width // 8``), ``wlast``, ``wvalid``, ``wready``; ``bid``, ``bresp`` (2),
    ``bvalid``, ``bready``. Read half: ``arid``, ``araddr``, ``arlen``, ``arsize``,
    ``arburst``, ``arcache``, ``arprot``, ``arvalid``, ``arready``; ``rid``, ``rdata``,
    ``rresp``, ``rlast``, ``rvalid``, ``rready``.
    """

    def __init__(self, *, addr_width, data_width, id_width=1, read=True, write=True):
        self._addr_width = check_int("addr_width", addr_width, minimum=12, maximum=64)
        self._data_width = _check_data_width(data_width, DATA_WIDTHS)
        self._id_width = check_int("id_width", id_width, minimum=1, maximum=16)
        if not isinstance(read, bool) or not isinstance(write, bool):
            raise TypeError(f"read and write must be bools, not {read!r} and {write!r}")
        if not (read or write):
            raise ValueError("an AXI4 interface needs a read half, a write half or both")
        self._read, self._write = read, write
        address = {"id": Out(id_width), "addr": Out(addr_width), "len": Out(8),
                   "size": Out(3), "burst": Out(2), "cache": Out(4), "prot": Out(3),
                   "valid": Out(1), "ready": In(1)}
        members = {}
        if write:
            members |= _channels("aw", address)
            members |= _channels("w", {"data": Out(data_width), "strb": Out(data_width // 8),
                                       "last": Out(1), "valid": Out(1), "ready": In(1)})
            members |= _channels("b", {"id": In(id_width), "resp": In(2), "valid": In(1),
                                       "ready": Out(1)})
        if read:
            members |= _channels("ar", address)
            members |= _channels("r", {"id": In(id_width), "data": In(data_width),
                                       "resp": In(2), "last": In(1), "valid": In(1),
                                       "ready": Out(1)})
        super().__init__(members)

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def data_width(self):
        return self._data_width

    @property
    def id_width(self):
        return self._id_width

    @property
    def read(self):
        return self._read

    @property
    def write(self):
        return self._write

    def __eq__(self, other):
        return (type(self) is type(other) and self.addr_width == other.addr_width
                and self.data_width == other.data_width and self.id_width == other.id_width
                and self.read == other.read and self.write == other.write)

    def __hash__(self):
        return hash((type(self), self.addr_width, self.data_width, self.id_width, self.read,
                     self.write))

    def __repr__(self):
        halves = "" if self.read and self.write else \
            ", read=False" if self.write else ", write=False"
        return (f"AXI4Signature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"id_width={self.id_width}{halves})")


class AXI4LiteSignature(wiring.Signature):
    """An AXI4-Lite manager interface.

    Parameters
    ----------
    addr_width : int
        Byte address width, 1..64.
    data_width : int
        One of :data:`LITE_DATA_WIDTHS`.

    Members
    -------
    ``awaddr``, ``awprot`` (3), ``awvalid``, ``awready``; ``wdata``, ``wstrb``
    (``data_width // 8``), ``wvalid``, ``wready``; ``bresp`` (2), ``bvalid``, ``bready``;
    ``araddr``, ``arprot``, ``arvalid``, ``arready``; ``rdata``, ``rresp``, ``rvalid``,
    ``rready``.
    """

    def __init__(self, *, addr_width, data_width):
        self._addr_width = check_int("addr_width", addr_width, minimum=1, maximum=64)
        self._data_width = _check_data_width(data_width, LITE_DATA_WIDTHS)
        address = {"addr": Out(addr_width), "prot": Out(3), "valid": Out(1), "ready": In(1)}
        super().__init__({
            **_channels("aw", address),
            **_channels("w", {"data": Out(data_width), "strb": Out(data_width // 8),
                              "valid": Out(1), "ready": In(1)}),
            **_channels("b", {"resp": In(2), "valid": In(1), "ready": Out(1)}),
            **_channels("ar", address),
            **_channels("r", {"data": In(data_width), "resp": In(2), "valid": In(1),
                              "ready": Out(1)}),
        })

    @property
    def addr_width(self):
        return self._addr_width

    @property
    def data_width(self):
        return self._data_width

    def __eq__(self, other):
        return (type(self) is type(other) and self.addr_width == other.addr_width
                and self.data_width == other.data_width)

    def __hash__(self):
        return hash((type(self), self.addr_width, self.data_width))

    def __repr__(self):
        return (f"AXI4LiteSignature(addr_width={self.addr_width}, "
                f"data_width={self.data_width})")


def join(m, bus, *parts):
    """Wire the interfaces ``parts`` (say, a reader's read half and a writer's write half) to
    the same-named members of ``bus``, an AXI4 port of the enclosing component.

    ``bus`` and every part must be AXI4 interfaces of one direction (all managers, as
    ``Out(AXI4Signature(...))`` ports are, or all subordinates), with equal widths; no member
    may be in two parts.
    """
    sig = bus.signature
    if not isinstance(sig, AXI4Signature):
        raise TypeError(f"bus must be an AXI4 interface, not one of {sig!r}")
    taken = set()
    for part in parts:
        psig = part.signature
        if not isinstance(psig, AXI4Signature) or \
                isinstance(psig, wiring.FlippedSignature) != \
                isinstance(sig, wiring.FlippedSignature):
            raise TypeError(f"part must be an AXI4 interface of the same direction as {sig!r},"
                            f" not one of {psig!r}")
        if (psig.addr_width, psig.data_width, psig.id_width) != \
                (sig.addr_width, sig.data_width, sig.id_width):
            raise ValueError(f"part {psig!r} does not have the widths of bus {sig!r}")
        names = set(psig.members)
        if not names <= set(sig.members) or names & taken:
            raise ValueError(f"part {psig!r} has members the bus {sig!r} lacks or another "
                             f"part has")
        taken |= names
        for name, member in psig.members.items():
            # The enclosing component drives its port's Out members and the parts' In ones.
            outer, inner = getattr(bus, name), getattr(part, name)
            if member.flow == Out:
                m.d.comb += outer.eq(inner)
            else:
                m.d.comb += inner.eq(outer)


def verilog_ports(component):
    """The ``ports`` of ``amaranth.back.verilog.convert`` for ``component``, naming the
    members of its AXI4 and AXI4-Lite ports ``<port>_<signal>`` (``m_axi_awaddr``,
    ``s_axi_rdata``) and every other member as Amaranth does (``<port>__<member>``)."""
    ports = {}
    for path, member, value in component.signature.flatten(component):
        sig, name = component.signature, ""
        for part in path:
            if isinstance(part, int):                   # an element of an array member
                name += f"__{part}"
                continue
            axi = isinstance(sig, (AXI4Signature, AXI4LiteSignature))
            name += f"{'_' if axi else '__' if name else ''}{part}"
            if not axi and sig.members[part].is_signature:
                sig = sig.members[part].signature
        if name in ports:
            raise ValueError(f"two ports of {component!r} would be named {name!r}")
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Const):        # the ready of an always-ready stream
            continue
        ports[name] = (value, PortDirection.Input if member.flow == In else
                       PortDirection.Output)
    return ports
