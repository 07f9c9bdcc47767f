"""A burst write DMA: commands and a stream of words in, through an AXI4 write half."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO

from .bursts import BurstSplitter, check_dma, command_layout, dma_members
from .reader import AXI_CACHE, AXI_PROT
from .signature import BURST_INCR

__all__ = ["BurstWriter", "strobed_layout"]


def strobed_layout(data_width):
    """A word to write and its byte strobes: ``data`` and ``strb`` (bit ``i`` set writes
    byte ``i``, bits ``8 * i`` to ``8 * i + 7`` of ``data``)."""
    return data.StructLayout({"data": data_width, "strb": data_width // 8})


class BurstWriter(wiring.Component):
    """Writes the next ``cmd.beats`` words of ``data`` from ``cmd.addr`` on, for each command
    in order; every byte of every beat is written (``wstrb`` all ones), or with ``strobes``
    the bytes each word's strobes select.

    Commands are split into INCR bursts (:class:`~sps_hw.axi.bursts.BurstSplitter`: at most
    ``max_burst`` beats, none crossing 4 KiB); up to ``max_outstanding`` bursts are in flight
    (address presented, response not yet received), all with ID 0. A burst's length is
    queued for the W channel as soon as its address is presented, so W never waits for
    ``awready`` (a subordinate may wait for ``wvalid`` before it accepts an address); ``data``
    goes straight to W (``data.ready`` is ``wready`` while a burst is queued), ``wlast`` on
    each burst's last beat. ``bready`` is always high.

    Parameters
    ----------
    addr_width, data_width, id_width, beats_width, max_burst, max_outstanding, counter_width
        As for :class:`~sps_hw.axi.reader.BurstReader`.
    strobes : bool
        Whether each word comes with its byte strobes (:func:`strobed_layout`).

    Members
    -------
    cmd : ``In(stream.Signature(command_layout(addr_width, beats_width)))``
        ``addr`` (aligned to ``data_width // 8`` bytes; low bits ignored) and ``beats``.
    data : ``In(stream.Signature(data_width))``
        The words to write, in command order; with ``strobes``, their payload is
        ``strobed_layout(data_width)``.
    m_axi : ``Out(AXI4Signature(..., read=False))``
        The write half of an AXI4 manager.
    busy : ``Out(1)``
        A command with beats was taken and the response to its last burst has not arrived.
    error : ``Out(1)``
        A response was ``SLVERR`` or ``DECERR``. Cleared when a command is taken while not
        ``busy``.
    stalls : ``Out(counter_width)``
        Cycles in which the writer was ``busy`` and ``data`` was valid but not taken.
    """

    def __init__(self, *, addr_width=32, data_width=64, id_width=1, beats_width=16,
                 max_burst=256, max_outstanding=4, counter_width=32, strobes=False):
        if not isinstance(strobes, bool):
            raise TypeError(f"strobes must be a bool, not {strobes!r}")
        self.strobes = strobes
        self._splitter_params = {"addr_width": addr_width, "data_width": data_width,
                                 "beats_width": beats_width, "max_burst": max_burst}
        check_dma(**self._splitter_params, max_outstanding=max_outstanding,
                  counter_width=counter_width)
        self.max_burst, self.max_outstanding = max_burst, max_outstanding
        super().__init__(dma_members(
            command_layout(addr_width, beats_width),
            strobed_layout(data_width) if strobes else data_width, write=True,
            addr_width=addr_width, data_width=data_width, id_width=id_width,
            counter_width=counter_width))

    def elaborate(self, platform):
        m = Module()
        m.submodules.splitter = splitter = BurstSplitter(**self._splitter_params)
        # Bursts whose address was presented and whose W beats have not all gone: never more
        # than the bursts in flight.
        m.submodules.lengths = lengths = SyncFIFO(width=8, depth=self.max_outstanding)
        wiring.connect(m, wiring.flipped(self.cmd), splitter.cmd)
        bus, burst = self.m_axi, splitter.burst

        inflight = Signal(range(self.max_outstanding + 1))
        queued = Signal()           # the waiting burst's length is in `lengths`
        push = Signal()
        m.d.comb += [
            push.eq(burst.valid & ~queued & (inflight != self.max_outstanding)),
            lengths.w_en.eq(push),
            lengths.w_data.eq(burst.payload.len),
            # Once presented, a burst stays valid until taken whatever `inflight` does.
            bus.awvalid.eq(burst.valid & (queued | push)),
            burst.ready.eq(bus.awready & bus.awvalid),
            bus.awaddr.eq(burst.payload.addr),
            bus.awlen.eq(burst.payload.len),
            bus.awsize.eq((bus.signature.data_width // 8).bit_length() - 1),
            bus.awburst.eq(BURST_INCR),
            bus.awcache.eq(AXI_CACHE),
            bus.awprot.eq(AXI_PROT),
        ]
        with m.If(burst.valid & burst.ready):
            m.d.sync += queued.eq(0)
        with m.Elif(push):
            m.d.sync += queued.eq(1)

        beat = Signal(8)
        m.d.comb += [
            bus.wvalid.eq(self.data.valid & lengths.r_rdy),
            self.data.ready.eq(bus.wready & lengths.r_rdy),
            bus.wdata.eq(self.data.payload.data if self.strobes else self.data.payload),
            bus.wstrb.eq(self.data.payload.strb if self.strobes else
                         (1 << len(bus.wstrb)) - 1),
            bus.wlast.eq(beat == lengths.r_data),
            lengths.r_en.eq(bus.wvalid & bus.wready & bus.wlast),
        ]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(bus.wlast):
                m.d.sync += beat.eq(0)

        responded = bus.bvalid
        m.d.comb += [bus.bready.eq(1),
                     self.busy.eq(splitter.busy | (inflight != 0))]
        with m.If(push & ~responded):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(responded & ~push):
            m.d.sync += inflight.eq(inflight - 1)
        with m.If(self.cmd.valid & self.cmd.ready & ~self.busy):
            m.d.sync += self.error.eq(0)
        with m.If(bus.bvalid & bus.bresp[1]):
            m.d.sync += self.error.eq(1)
        with m.If(self.busy & self.data.valid & ~self.data.ready):
            m.d.sync += self.stalls.eq(self.stalls + 1)
        return m
