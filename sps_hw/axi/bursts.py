"""Transfer commands and their split into AXI4 INCR bursts (shared by the reader and the
writer)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..checks import check_int
from .signature import DATA_WIDTHS, AXI4Signature, _check_data_width

__all__ = ["PAGE_BYTES", "BurstSplitter", "burst_layout", "check_dma", "check_splitter",
           "command_layout", "dma_members"]

#: No INCR burst crosses a boundary of this many bytes (the AXI rule).
PAGE_BYTES = 4096


def command_layout(addr_width, beats_width):
    """A transfer command: ``beats`` words of the bus width from byte address ``addr``
    (aligned to the word size: its low bits are ignored; 0 beats is a command that moves
    nothing)."""
    return data.StructLayout({"addr": addr_width, "beats": beats_width})


def burst_layout(addr_width):
    """One burst: its byte address and ``len``, the beats less one (``AxLEN``)."""
    return data.StructLayout({"addr": addr_width, "len": 8})


def check_splitter(*, addr_width, data_width, beats_width, max_burst):
    """Check the parameters of a :class:`BurstSplitter` (``TypeError``/``ValueError``)."""
    check_int("addr_width", addr_width, minimum=12, maximum=64)
    _check_data_width(data_width, DATA_WIDTHS)
    check_int("beats_width", beats_width, minimum=1, maximum=64)
    check_int("max_burst", max_burst, minimum=1, maximum=256)


def check_dma(*, addr_width, data_width, beats_width, max_burst, max_outstanding,
              counter_width):
    """Check the parameters of a DMA (:class:`~sps_hw.axi.reader.BurstReader`,
    :class:`~sps_hw.axi.writer.BurstWriter` and the movers built on them)."""
    check_splitter(addr_width=addr_width, data_width=data_width, beats_width=beats_width,
                   max_burst=max_burst)
    check_int("max_outstanding", max_outstanding, minimum=1, maximum=64)
    check_int("counter_width", counter_width, minimum=1, maximum=64)


def dma_members(cmd, data, *, write, addr_width, data_width, id_width, counter_width):
    """The members every DMA has: commands of layout ``cmd``, a ``data`` stream of that
    shape (into a writer, out of a reader), the AXI4 half it drives, ``busy``, ``error`` and
    ``stalls``."""
    return {
        "cmd": In(stream.Signature(cmd)),
        "data": (In if write else Out)(stream.Signature(data)),
        "m_axi": Out(AXI4Signature(addr_width=addr_width, data_width=data_width,
                                   id_width=id_width, read=not write, write=write)),
        "busy": Out(1),
        "error": Out(1),
        "stalls": Out(counter_width),
    }


class BurstSplitter(wiring.Component):
    """Splits commands into INCR bursts of at most ``max_burst`` beats, none crossing a
    4 KiB boundary, each as long as those rules allow.

    A command is taken once the previous one is wholly split; a burst is computed from
    registers and held in the ``burst`` register until taken, so a burst can leave every
    cycle and a command of one burst every second cycle. ``busy`` is high from the cycle after
    a command with beats is taken until its last burst is taken.

    Parameters
    ----------
    addr_width : int
        Byte address width, 12..64.
    data_width : int
        Bus width (one of :data:`~sps_hw.axi.signature.DATA_WIDTHS`): a beat is
        ``data_width // 8`` bytes.
    beats_width : int
        Width of a command's ``beats``.
    max_burst : int
        Beats of the longest burst, 1..256.
    """

    def __init__(self, *, addr_width, data_width, beats_width, max_burst=256):
        check_splitter(addr_width=addr_width, data_width=data_width, beats_width=beats_width,
                       max_burst=max_burst)
        self.addr_width, self.data_width = addr_width, data_width
        self.beats_width, self.max_burst = beats_width, max_burst
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_width, beats_width))),
            "burst": Out(stream.Signature(burst_layout(addr_width))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        shift = (self.data_width // 8).bit_length() - 1     # log2 of the bytes in a beat
        page_beats = PAGE_BYTES >> shift
        word = Signal(self.addr_width - shift)              # the address in beats
        remaining = Signal(self.beats_width)
        to_page = Signal(range(page_beats + 1))             # beats to the next 4 KiB boundary
        limit = Signal(range(page_beats + 1))
        n = Signal(range(page_beats + 1))                   # the next burst's beats
        m.d.comb += [
            to_page.eq(page_beats - word[:12 - shift]),
            limit.eq(Mux(to_page < self.max_burst, to_page, self.max_burst)),
            n.eq(Mux(remaining < limit, remaining, limit)),
            self.cmd.ready.eq(remaining == 0),
            self.busy.eq((remaining != 0) | self.burst.valid),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [word.eq(self.cmd.payload.addr[shift:]),
                         remaining.eq(self.cmd.payload.beats)]
        with m.If((remaining != 0) & (~self.burst.valid | self.burst.ready)):
            m.d.sync += [
                self.burst.valid.eq(1),
                self.burst.payload.addr.eq(Cat(Const(0, shift), word)),
                self.burst.payload.len.eq(n - 1),
                word.eq(word + n),
                remaining.eq(remaining - n),
            ]
        with m.Elif(self.burst.ready):
            m.d.sync += self.burst.valid.eq(0)
        return m
