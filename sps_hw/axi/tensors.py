"""Tensor movers: sub-rectangles of int8 tensors in external memory to and from byte streams.

A tensor of ``C x H x W`` int8 values at byte address ``B`` holds channel ``c``, row ``y``,
column ``x`` at ``B + (c * H + y) * W + x``. A sub-rectangle of it is ``channels x rows x
cols`` values from its first byte ``base`` on, ``row_pitch`` (``W``) bytes between rows and
``channel_pitch`` (``H * W``) between channels; each of its rows is a *run* of ``cols``
consecutive bytes at any alignment. The movers turn each run into a command of whole words
for a :class:`~sps_hw.axi.reader.BurstReader` or :class:`~sps_hw.axi.writer.BurstWriter`
and realign its bytes. See ``docs/memory.md``.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..checks import check_int
from .bursts import check_dma, command_layout, dma_members
from .reader import BurstReader
from .signature import DATA_WIDTHS, _check_data_width
from .writer import BurstWriter

__all__ = ["TensorReader", "TensorWriter", "crop_layout", "rectangle_layout"]


def rectangle_layout(addr_width, size_width):
    """A sub-rectangle of a tensor in memory: its first byte ``base``, ``channels``, ``rows``
    and ``cols`` (any of them 0: nothing), ``row_pitch`` and ``channel_pitch`` in bytes."""
    return data.StructLayout({
        "base": addr_width, "channels": size_width, "rows": size_width, "cols": size_width,
        "row_pitch": addr_width, "channel_pitch": addr_width,
    })


def crop_layout(addr_width, size_width):
    """A tensor of ``channels x rows x cols`` of which rows ``keep_row0 <= y < keep_row1``
    and columns ``keep_col0 <= x < keep_col1`` go to memory, as the sub-rectangle at
    ``base`` with ``row_pitch`` and ``channel_pitch`` (:func:`rectangle_layout`)."""
    return data.StructLayout({
        **{name: field.shape for name, field in rectangle_layout(addr_width, size_width)},
        "keep_row0": size_width, "keep_row1": size_width,
        "keep_col0": size_width, "keep_col1": size_width,
    })


def _run_layout(data_width, size_width):
    """A run as the byte side sees it: ``offset``, the byte lane of its first byte, and
    ``length`` in bytes."""
    return data.StructLayout({"offset": (data_width // 8).bit_length() - 1,
                              "length": size_width})


def _beats_width(data_width, size_width):
    """Width of the beats of a run of up to ``2**size_width - 1`` bytes at any offset."""
    beat_bytes = data_width // 8
    return ((2 * beat_bytes + 2 ** size_width - 3) // beat_bytes).bit_length()


def _check(*, addr_width, data_width, id_width, size_width, max_burst, max_outstanding,
           counter_width):
    """Check a mover's parameters; the parameters of its DMA."""
    _check_data_width(data_width, DATA_WIDTHS)         # before the beats are derived from it
    check_int("size_width", size_width, minimum=1, maximum=32)
    beats_width = _beats_width(data_width, size_width)
    check_dma(addr_width=addr_width, data_width=data_width, beats_width=beats_width,
              max_burst=max_burst, max_outstanding=max_outstanding, counter_width=counter_width)
    return {"addr_width": addr_width, "data_width": data_width, "id_width": id_width,
            "beats_width": beats_width, "max_burst": max_burst,
            "max_outstanding": max_outstanding, "counter_width": 1}


class _Runs(wiring.Component):
    """The runs of a sub-rectangle (``rect``, taken on ``start``), channel by channel and row
    by row: for each, a command of the words it touches on ``cmd`` and its lane and length on
    ``run``. A run is computed when both have room; ``busy`` until the last is taken."""

    def __init__(self, *, addr_width, data_width, size_width, beats_width):
        self._data_width = data_width
        super().__init__({
            "rect": In(rectangle_layout(addr_width, size_width)),
            "start": In(1),
            "busy": Out(1),
            "cmd": Out(stream.Signature(command_layout(addr_width, beats_width))),
            "run": Out(stream.Signature(_run_layout(data_width, size_width))),
        })

    def elaborate(self, platform):
        m = Module()
        shift = (self._data_width // 8).bit_length() - 1
        rect = Signal.like(self.rect)           # the parameters, held while runs are issued
        channel_addr = Signal.like(self.rect.base)
        row_addr = Signal.like(self.rect.base)
        channel = Signal.like(self.rect.channels)
        row = Signal.like(self.rect.rows)
        active = Signal()
        cmd, run = self.cmd, self.run
        offset = row_addr[:shift]
        m.d.comb += self.busy.eq(active | cmd.valid | run.valid)

        with m.If(cmd.ready):
            m.d.sync += cmd.valid.eq(0)
        with m.If(run.ready):
            m.d.sync += run.valid.eq(0)
        with m.If(self.start):
            r = self.rect
            m.d.sync += [rect.eq(r), channel_addr.eq(r.base), row_addr.eq(r.base),
                         channel.eq(0), row.eq(0),
                         active.eq((r.channels != 0) & (r.rows != 0) & (r.cols != 0))]
        with m.Elif(active & (~cmd.valid | cmd.ready) & (~run.valid | run.ready)):
            m.d.sync += [
                cmd.valid.eq(1),
                cmd.payload.addr.eq(row_addr),
                cmd.payload.beats.eq((offset + rect.cols + (1 << shift) - 1) >> shift),
                run.valid.eq(1),
                run.payload.offset.eq(offset),
                run.payload.length.eq(rect.cols),
            ]
            with m.If(row == rect.rows - 1):
                m.d.sync += row.eq(0)
                with m.If(channel == rect.channels - 1):
                    m.d.sync += active.eq(0)
                with m.Else():
                    m.d.sync += [channel.eq(channel + 1),
                                 channel_addr.eq(channel_addr + rect.channel_pitch),
                                 row_addr.eq(channel_addr + rect.channel_pitch)]
            with m.Else():
                m.d.sync += [row.eq(row + 1), row_addr.eq(row_addr + rect.row_pitch)]
        return m


class _Mover(wiring.Component):
    """What the movers share: their parameters (checked), and the members of a DMA
    (:func:`~sps_hw.axi.bursts.dma_members`) with commands of ``command_layout`` and a byte
    stream into memory (``writes``) or out of it."""

    command_layout = None
    writes = False

    def __init__(self, *, addr_width=32, data_width=64, id_width=1, size_width=16,
                 max_burst=256, max_outstanding=4, counter_width=32):
        self._dma_params = _check(addr_width=addr_width, data_width=data_width,
                                  id_width=id_width, size_width=size_width,
                                  max_burst=max_burst, max_outstanding=max_outstanding,
                                  counter_width=counter_width)
        self.size_width = size_width
        super().__init__(dma_members(
            self.command_layout(addr_width, size_width), signed(8), write=self.writes,
            addr_width=addr_width, data_width=data_width, id_width=id_width,
            counter_width=counter_width))


class TensorReader(_Mover):
    """Streams a sub-rectangle of an int8 tensor in memory in C, H, W order, one byte per
    cycle when the memory keeps up.

    For each command, each run (row) is read as the whole words it touches, through a
    :class:`~sps_hw.axi.reader.BurstReader`, and its bytes are taken out of them in order,
    the bytes before and after the run dropped. Runs are issued up to ``max_outstanding``
    ahead of the run whose bytes are leaving, and the next command is taken once the last
    run of the previous one is issued, so consecutive runs and commands follow each other
    without a gap.

    Parameters
    ----------
    addr_width, data_width, id_width, max_burst, max_outstanding, counter_width
        As for :class:`~sps_hw.axi.reader.BurstReader`.
    size_width : int
        Width of ``channels``, ``rows`` and ``cols``, 1..32.

    Members
    -------
    cmd : ``In(stream.Signature(rectangle_layout(addr_width, size_width)))``
        The sub-rectangle to read.
    data : ``Out(stream.Signature(signed(8)))``
        Its bytes, channel by channel, row by row.
    m_axi : ``Out(AXI4Signature(..., write=False))``
        The read half of an AXI4 manager.
    busy : ``Out(1)``
        A command with bytes was taken and its last byte has not left on ``data``.
    error : ``Out(1)``
        A beat came with ``SLVERR`` or ``DECERR`` (its bytes are still delivered). Cleared
        when a command is taken while not ``busy``.
    stalls : ``Out(counter_width)``
        Cycles in which the reader was ``busy`` and ``data`` was ready but not valid.
    """

    command_layout = staticmethod(rectangle_layout)

    def elaborate(self, platform):
        m = Module()
        p = self._dma_params
        m.submodules.dma = dma = BurstReader(**p)
        m.submodules.runs = runs = _Runs(addr_width=p["addr_width"],
                                         data_width=p["data_width"],
                                         size_width=self.size_width,
                                         beats_width=p["beats_width"])
        run_layout = _run_layout(p["data_width"], self.size_width)
        m.submodules.queue = queue = SyncFIFO(width=run_layout.size,
                                              depth=p["max_outstanding"])
        wiring.connect(m, wiring.flipped(self.m_axi), dma.m_axi)
        wiring.connect(m, runs.cmd, dma.cmd)
        wiring.connect(m, runs.run, queue.w_stream)
        m.d.comb += [
            runs.rect.eq(self.cmd.payload),
            self.cmd.ready.eq(~runs.busy),
            runs.start.eq(self.cmd.valid & self.cmd.ready),
        ]

        # The byte side: the word the bytes are taken from and the run they belong to.
        beat_bytes = p["data_width"] // 8
        word = Signal(p["data_width"])
        have = Signal()                     # word holds the next word of the runs
        lane = Signal(range(beat_bytes))
        left = Signal(self.size_width)      # bytes of the run still to leave
        active = Signal()                   # a run is loaded
        head = run_layout(queue.r_data)
        out = self.data
        sent = Signal()
        run_end = Signal()
        m.d.comb += [
            out.valid.eq(active & have),
            out.payload.eq(word.word_select(lane, 8)),
            sent.eq(out.valid & out.ready),
            run_end.eq(sent & (left == 1)),
            # A word is used up by the last byte of its run or its last lane.
            dma.data.ready.eq(~have | (sent & ((left == 1) | (lane == beat_bytes - 1)))),
            queue.r_en.eq(~active | run_end),
            self.busy.eq(runs.busy | queue.r_rdy | active | dma.busy),
        ]
        with m.If(dma.data.valid & dma.data.ready):
            m.d.sync += [word.eq(dma.data.payload), have.eq(1)]
        with m.Elif(dma.data.ready):
            m.d.sync += have.eq(0)
        with m.If(~active | run_end):
            m.d.sync += [active.eq(queue.r_rdy), lane.eq(head.offset), left.eq(head.length)]
        with m.Elif(sent):
            m.d.sync += [lane.eq(lane + 1), left.eq(left - 1)]
        bus = self.m_axi
        with m.If(self.cmd.valid & self.cmd.ready & ~self.busy):
            m.d.sync += self.error.eq(0)
        with m.If(bus.rvalid & bus.rready & bus.rresp[1]):
            m.d.sync += self.error.eq(1)
        with m.If(self.busy & out.ready & ~out.valid):
            m.d.sync += self.stalls.eq(self.stalls + 1)
        return m


class TensorWriter(_Mover):
    """Writes the kept part of a ``channels x rows x cols`` int8 tensor arriving in C, H, W
    order to a sub-rectangle of a tensor in memory; the other bytes are taken and dropped.

    For each command, the kept bytes of each row (a run of ``keep_col1 - keep_col0`` bytes)
    are packed into the words they touch, with byte strobes for the run's ends, and written
    through a :class:`~sps_hw.axi.writer.BurstWriter` (``strobes=True``); no byte outside
    the runs is written. The runs' commands are issued ahead of their bytes (up to
    ``max_outstanding`` queued). The next command is taken once every byte of the previous
    one was taken. Keep bounds past ``rows`` or ``cols`` are clipped; an empty crop writes
    nothing.

    Parameters
    ----------
    addr_width, data_width, id_width, max_burst, max_outstanding, counter_width
        As for :class:`~sps_hw.axi.reader.BurstReader`.
    size_width : int
        Width of ``channels``, ``rows``, ``cols`` and the keep bounds, 1..32.

    Members
    -------
    cmd : ``In(stream.Signature(crop_layout(addr_width, size_width)))``
        The tensor, its crop and where the crop goes.
    data : ``In(stream.Signature(signed(8)))``
        The tensor's bytes, channel by channel, row by row.
    m_axi : ``Out(AXI4Signature(..., read=False))``
        The write half of an AXI4 manager.
    busy : ``Out(1)``
        A command with bytes was taken and its bytes are not all taken and written (the
        response to the last burst has not arrived).
    error : ``Out(1)``
        A response was ``SLVERR`` or ``DECERR``. Cleared when a command is taken while not
        ``busy``.
    stalls : ``Out(counter_width)``
        Cycles in which the writer was ``busy`` and ``data`` was valid but not taken.
    """

    command_layout = staticmethod(crop_layout)
    writes = True

    def elaborate(self, platform):
        m = Module()
        p = self._dma_params
        m.submodules.dma = dma = BurstWriter(**p, strobes=True)
        m.submodules.runs = runs = _Runs(addr_width=p["addr_width"],
                                         data_width=p["data_width"],
                                         size_width=self.size_width,
                                         beats_width=p["beats_width"])
        run_layout = _run_layout(p["data_width"], self.size_width)
        m.submodules.queue = queue = SyncFIFO(width=run_layout.size,
                                              depth=p["max_outstanding"])
        wiring.connect(m, wiring.flipped(self.m_axi), dma.m_axi)
        wiring.connect(m, runs.cmd, dma.cmd)
        wiring.connect(m, runs.run, queue.w_stream)

        # The command: the crop's rows and columns, clipped to the tensor, are the runs.
        c = self.cmd.payload
        shape = Signal.like(c)              # the tensor being taken, held until its end
        walking = Signal()
        row1 = Mux(c.keep_row1 < c.rows, c.keep_row1, c.rows)
        col1 = Mux(c.keep_col1 < c.cols, c.keep_col1, c.cols)
        m.d.comb += [
            self.cmd.ready.eq(~walking & ~runs.busy),
            runs.start.eq(self.cmd.valid & self.cmd.ready),
            runs.rect.base.eq(c.base),
            runs.rect.channels.eq(c.channels),
            runs.rect.rows.eq(Mux(row1 > c.keep_row0, row1 - c.keep_row0, 0)),
            runs.rect.cols.eq(Mux(col1 > c.keep_col0, col1 - c.keep_col0, 0)),
            runs.rect.row_pitch.eq(c.row_pitch),
            runs.rect.channel_pitch.eq(c.channel_pitch),
        ]

        # The walk over the tensor's bytes: which are kept.
        x = Signal(self.size_width)
        y = Signal(self.size_width)
        channel = Signal(self.size_width)
        kept = Signal()
        room = Signal()                     # the packer can take a kept byte
        pack = Signal()                     # it takes one
        m.d.comb += [
            kept.eq((y >= shape.keep_row0) & (y < shape.keep_row1) &
                    (x >= shape.keep_col0) & (x < shape.keep_col1)),
            self.data.ready.eq(walking & (~kept | room)),
            pack.eq(self.data.valid & self.data.ready & kept),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [shape.eq(c), x.eq(0), y.eq(0), channel.eq(0),
                         walking.eq((c.channels != 0) & (c.rows != 0) & (c.cols != 0))]
        with m.Elif(self.data.valid & self.data.ready):
            m.d.sync += x.eq(x + 1)
            with m.If(x == shape.cols - 1):
                m.d.sync += [x.eq(0), y.eq(y + 1)]
                with m.If(y == shape.rows - 1):
                    m.d.sync += [y.eq(0), channel.eq(channel + 1)]
                    with m.If(channel == shape.channels - 1):
                        m.d.sync += walking.eq(0)

        # The packer: kept bytes into the lanes of a word; a word leaves with its last lane
        # or the last byte of its run.
        beat_bytes = p["data_width"] // 8
        word = Signal(p["data_width"])
        strb = Signal(beat_bytes)
        lane = Signal(range(beat_bytes))
        left = Signal(self.size_width)
        active = Signal()
        head = run_layout(queue.r_data)
        out = dma.data
        full = Signal()                     # this byte ends the word
        run_end = Signal()
        filled = Signal.like(word)
        m.d.comb += [
            full.eq((lane == beat_bytes - 1) | (left == 1)),
            room.eq(active & (~full | ~out.valid | out.ready)),
            run_end.eq(pack & (left == 1)),
            filled.eq(word),
            filled.word_select(lane, 8).eq(self.data.payload),
            queue.r_en.eq(~active | run_end),
            self.busy.eq(walking | runs.busy | queue.r_rdy | active | out.valid | dma.busy),
        ]
        with m.If(out.ready):
            m.d.sync += out.valid.eq(0)
        with m.If(pack):
            m.d.sync += [lane.eq(lane + 1), left.eq(left - 1)]
            with m.If(full):
                m.d.sync += [out.valid.eq(1), out.payload.data.eq(filled),
                             out.payload.strb.eq(strb | (Const(1, beat_bytes) << lane)),
                             strb.eq(0)]
            with m.Else():
                m.d.sync += [word.eq(filled), strb.eq(strb | (Const(1, beat_bytes) << lane))]
        with m.If(~active | run_end):
            m.d.sync += [active.eq(queue.r_rdy), lane.eq(head.offset), left.eq(head.length)]
        bus = self.m_axi
        with m.If(self.cmd.valid & self.cmd.ready & ~self.busy):
            m.d.sync += self.error.eq(0)
        with m.If(bus.bvalid & bus.bready & bus.bresp[1]):
            m.d.sync += self.error.eq(1)
        with m.If(self.busy & self.data.valid & ~self.data.ready):
            m.d.sync += self.stalls.eq(self.stalls + 1)
        return m
