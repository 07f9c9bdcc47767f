"""A burst read DMA: commands in, the words they name out, through an AXI4 read half."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring

from .bursts import BurstSplitter, check_dma, command_layout, dma_members
from .signature import BURST_INCR

__all__ = ["AXI_CACHE", "AXI_PROT", "BurstReader"]

#: ``AxCACHE`` of every burst: normal non-cacheable bufferable (modifiable), the value Xilinx
#: recommends for a DMA on a Zynq HP port.
AXI_CACHE = 0b0011
#: ``AxPROT`` of every burst: unprivileged, secure, data.
AXI_PROT = 0b000


class BurstReader(wiring.Component):
    """Reads ``cmd.beats`` words from ``cmd.addr`` for each command, in order, onto ``data``.

    Commands are split into INCR bursts (:class:`~sps_hw.axi.bursts.BurstSplitter`: at most
    ``max_burst`` beats, none crossing 4 KiB); up to ``max_outstanding`` bursts are in flight
    at once, all with ID 0, so the subordinate answers them in order. R beats go straight to
    ``data`` (``rready`` is ``data.ready``): nothing is buffered and nothing is lost.

    Parameters
    ----------
    addr_width : int
        Byte address width, 12..64.
    data_width : int
        Bus and word width: 32, 64, 128 or 256.
    id_width : int
        Width of ``arid``/``rid``.
    beats_width : int
        Width of a command's ``beats``.
    max_burst : int
        Beats of the longest burst, 1..256.
    max_outstanding : int
        Bursts whose address was accepted and whose last beat has not arrived, 1..64.
    counter_width : int
        Width of ``stalls`` (it wraps).

    Members
    -------
    cmd : ``In(stream.Signature(command_layout(addr_width, beats_width)))``
        ``addr`` (aligned to ``data_width // 8`` bytes; low bits ignored) and ``beats``.
    data : ``Out(stream.Signature(data_width))``
        The words read, in command order.
    m_axi : ``Out(AXI4Signature(..., write=False))``
        The read half of an AXI4 manager.
    busy : ``Out(1)``
        A command with beats was taken and its last word has not left on ``data``.
    error : ``Out(1)``
        A beat came with ``SLVERR`` or ``DECERR`` (its word is still delivered). Cleared when
        a command is taken while not ``busy``.
    stalls : ``Out(counter_width)``
        Cycles in which the reader was ``busy`` and ``data`` was ready but not valid.
    """

    def __init__(self, *, addr_width=32, data_width=64, id_width=1, beats_width=16,
                 max_burst=256, max_outstanding=4, counter_width=32):
        self._splitter_params = {"addr_width": addr_width, "data_width": data_width,
                                 "beats_width": beats_width, "max_burst": max_burst}
        check_dma(**self._splitter_params, max_outstanding=max_outstanding,
                  counter_width=counter_width)
        self.max_burst, self.max_outstanding = max_burst, max_outstanding
        super().__init__(dma_members(
            command_layout(addr_width, beats_width), data_width, write=False,
            addr_width=addr_width, data_width=data_width, id_width=id_width,
            counter_width=counter_width))

    def elaborate(self, platform):
        m = Module()
        m.submodules.splitter = splitter = BurstSplitter(**self._splitter_params)
        wiring.connect(m, wiring.flipped(self.cmd), splitter.cmd)
        bus, burst = self.m_axi, splitter.burst
        inflight = Signal(range(self.max_outstanding + 1))
        room = Signal()
        m.d.comb += [
            room.eq(inflight != self.max_outstanding),
            # room only grows while a burst waits, so arvalid stays high until it is taken.
            bus.arvalid.eq(burst.valid & room),
            burst.ready.eq(bus.arready & room),
            bus.araddr.eq(burst.payload.addr),
            bus.arlen.eq(burst.payload.len),
            bus.arsize.eq((bus.signature.data_width // 8).bit_length() - 1),
            bus.arburst.eq(BURST_INCR),
            bus.arcache.eq(AXI_CACHE),
            bus.arprot.eq(AXI_PROT),
            self.data.valid.eq(bus.rvalid),
            self.data.payload.eq(bus.rdata),
            bus.rready.eq(self.data.ready),
            self.busy.eq(splitter.busy | (inflight != 0)),
        ]
        issued = bus.arvalid & bus.arready
        ended = bus.rvalid & bus.rready & bus.rlast
        with m.If(issued & ~ended):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(ended & ~issued):
            m.d.sync += inflight.eq(inflight - 1)
        with m.If(self.cmd.valid & self.cmd.ready & ~self.busy):
            m.d.sync += self.error.eq(0)
        with m.If(bus.rvalid & bus.rready & bus.rresp[1]):
            m.d.sync += self.error.eq(1)
        with m.If(self.busy & self.data.ready & ~self.data.valid):
            m.d.sync += self.stalls.eq(self.stalls + 1)
        return m
