"""The tile engine behind the host link: what ``sps build`` puts on a board for a model that
runs from DRAM (``docs/boards.md``, "DRAM builds").

:class:`DramCore` has the port of a link core (``link: In(CoreInterface(memory_map))``, see
``docs/host_link.md`` section 7) with the one region ``dram``, and one AXI4 manager port to
the DRAM controller. The DRAM is two *halves*: the committed model's image
(:mod:`sps_hw.dram`) in one, uploads staged into the other.

- An image byte (``link.write``, offset ``addr``) is written to the staging half, one
  single-byte write each (the link delivers a byte every UART frame); ``commit`` swaps the
  halves (a register that, like the committed images of a block-RAM core, survives a reset).
- ``start`` runs segment ``segment`` of the active image: the core reads the segment's
  record from the image's directory (:data:`sps_hw.dram.SEGMENT_FORMAT`), writes the
  ``act_in`` bytes to the segment's input tensor, runs its jobs on the
  :class:`~sps_hw.engine.TileEngine` through the engine's own AXI4-Lite registers (``table``,
  ``count``, ``irq_enable``, ``start``; ``done`` is cleared after its interrupt), then
  streams the output tensor to ``act_out``; ``done`` is the last output byte's transfer.
- The AXI port belongs to the engine while it runs, to the core's own tensor reader and
  writer otherwise; the engine's addresses are offset to the active half. Image bytes are
  taken while the engine is not running and no input is being written (the link waits).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from boards.link.core_if import CoreInterface, MemoryMap
from sps_hw.axi.signature import AXI4Signature, join
from sps_hw.axi.slice import skid_buffer
from sps_hw.axi.tensors import TensorReader, TensorWriter
from sps_hw.checks import check_int
from sps_hw.config import Config
from sps_hw.dram import SEGMENT_BYTES, SEGMENT_FORMAT
from sps_hw.engine import REGISTERS, SIZE_WIDTH, TileEngine

__all__ = ["DramCore", "dram_memory_map"]

#: The engine's register offsets (32-bit registers, in :data:`~sps_hw.engine.REGISTERS` order).
_OFFSET = {reg.name: 4 * i for i, reg in enumerate(REGISTERS)}
assert SEGMENT_FORMAT == "<IIIIII8x" and SEGMENT_BYTES == 32


def dram_memory_map(half_bytes):
    """The link's :class:`~boards.link.MemoryMap` of a DRAM core: bytes of one half."""
    return MemoryMap(dram=(8, half_bytes))


class DramCore(wiring.Component):
    """The tile engine of core ``cfg`` behind a host link, with ``2 * half_bytes`` of DRAM.

    Parameters
    ----------
    cfg : sps_hw.config.Config
    half_bytes : int
        Bytes of each half (a power of two, 4 KiB to 16 MiB): the largest model image.

    Members
    -------
    link : ``In(CoreInterface(dram_memory_map(half_bytes)))``
    m_axi : ``Out(AXI4Signature(addr_width=32, data_width=64))``
        To the DRAM controller; byte addresses from 0.
    """

    def __init__(self, cfg, *, half_bytes=1 << 24):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
        check_int("half_bytes", half_bytes, minimum=1 << 12, maximum=1 << 24)
        if half_bytes & (half_bytes - 1):
            raise ValueError(f"half_bytes must be a power of two, not {half_bytes}")
        self.cfg, self.half_bytes = cfg, half_bytes
        self.memory_map = dram_memory_map(half_bytes)
        self.engine = TileEngine(cfg)
        mover = {"addr_width": 32, "data_width": 64, "size_width": SIZE_WIDTH}
        self.reader, self.writer = TensorReader(**mover), TensorWriter(**mover)
        super().__init__({"link": In(CoreInterface(self.memory_map)),
                          "m_axi": Out(AXI4Signature(addr_width=32, data_width=64))})

    def elaborate(self, platform):
        m = Module()
        engine, reader, writer, link = self.engine, self.reader, self.writer, self.link
        m.submodules.engine, m.submodules.reader, m.submodules.writer = engine, reader, writer

        half_bits = self.half_bytes.bit_length() - 1
        active = Signal(reset_less=True)            # the half the committed model is in
        with m.If(link.commit):
            m.d.sync += active.eq(~active)
        base = Cat(Const(0, half_bits), active)
        staging = Cat(Const(0, half_bits), ~active)

        # The AXI port: the engine's while it runs, else the core's reader and writer.
        mover = AXI4Signature(addr_width=32, data_width=64).create()
        join(m, mover, reader.m_axi, writer.m_axi)
        engine_owns = Signal()                      # a register: no decode before the mux
        self._share(m, engine_owns, engine.m_axi, mover, base)

        # The segment record, read byte by byte into a shift register.
        record = Signal(8 * SEGMENT_BYTES)
        table, count, in_addr, in_bytes, out_addr, out_bytes = (
            record[32 * i:32 * (i + 1)] for i in range(6))
        segment = Signal(8)
        left = Signal(32)                           # record, input or output bytes to go
        busy, cycles = Signal(), Signal(32)
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += [link.busy.eq(busy), link.cycles.eq(cycles)]

        def rect(view, addr, nbytes, crop=False):
            """Assignments of ``view``: ``nbytes`` bytes at ``addr`` as one row (all kept)."""
            fields = {"base": addr, "channels": 1, "rows": 1, "cols": nbytes,
                      "row_pitch": nbytes, "channel_pitch": nbytes}
            if crop:
                fields.update(keep_row1=1, keep_col1=nbytes)
            return [view[name].eq(value) for name, value in fields.items()]

        # Image bytes: a one-byte command, then the byte, whenever the writer is the core's;
        # taken from the link through a skid buffer (no path from the writer into the link),
        # with the staging half's address (a byte still in it at a commit keeps its half).
        image = stream.Signature(data.StructLayout({"addr": 32, "data": 8})).create()
        staged_addr = Signal(32)
        m.d.comb += staged_addr.eq(staging | link.write.payload.addr)
        skid_buffer(m, i_valid=link.write.valid, i_ready=link.write.ready,
                    i_data=Cat(staged_addr, link.write.payload.data),
                    o_valid=image.valid, o_ready=image.ready, o_data=image.payload.as_value())
        image_ok, sent = Signal(), Signal()
        with m.If(image_ok & image.valid & ~sent):
            m.d.comb += [writer.cmd.valid.eq(1),
                         *rect(writer.cmd.payload, image.payload.addr, 1, crop=True)]
            with m.If(writer.cmd.ready):
                m.d.sync += sent.eq(1)
        with m.If(sent):
            m.d.comb += [writer.data.valid.eq(image.valid),
                         writer.data.payload.eq(image.payload.data),
                         image.ready.eq(writer.data.ready)]
            with m.If(image.valid & writer.data.ready):
                m.d.sync += sent.eq(0)

        # The engine's registers, written as a CPU would: (offset, value) in turn.
        lite = engine.s_axi
        writes = [("table", base | table), ("count", count), ("irq_enable", 1), ("start", 1),
                  ("done", 1)]
        step = Signal(range(len(writes)))
        aw_done, w_done = Signal(), Signal()
        with m.Switch(step):
            for i, (name, value) in enumerate(writes):
                with m.Case(i):
                    m.d.comb += [lite.awaddr.eq(_OFFSET[name]), lite.wdata.eq(value)]
        m.d.comb += lite.wstrb.eq(0b1111)

        def register_write(last, then):
            """Write register ``step``; after the response to write ``last``, go to ``then``."""
            m.d.comb += [lite.awvalid.eq(~aw_done), lite.wvalid.eq(~w_done),
                         lite.bready.eq(aw_done & w_done)]
            with m.If(lite.awvalid & lite.awready):
                m.d.sync += aw_done.eq(1)
            with m.If(lite.wvalid & lite.wready):
                m.d.sync += w_done.eq(1)
            with m.If(lite.bready & lite.bvalid):
                m.d.sync += [aw_done.eq(0), w_done.eq(0), step.eq(step + 1)]
                with m.If(step == last):
                    m.next = then

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += image_ok.eq(1)
                with m.If(link.start):
                    m.d.sync += [segment.eq(link.segment), busy.eq(1), cycles.eq(0),
                                 left.eq(SEGMENT_BYTES)]
                    m.next = "RECORD"
            with m.State("RECORD"):
                m.d.comb += [image_ok.eq(1), reader.cmd.valid.eq(1),
                             *rect(reader.cmd.payload, base | (segment * SEGMENT_BYTES),
                                   SEGMENT_BYTES)]
                with m.If(reader.cmd.ready):
                    m.next = "RECORDING"
            with m.State("RECORDING"):
                m.d.comb += [image_ok.eq(1), reader.data.ready.eq(1)]
                with m.If(reader.data.valid):
                    m.d.sync += [record.eq(Cat(record[8:], reader.data.payload)),
                                 left.eq(left - 1)]
                    with m.If(left == 1):
                        m.next = "INPUT"
            with m.State("INPUT"):
                with m.If(~sent):                   # an image byte's write is not half done
                    m.d.comb += [writer.cmd.valid.eq(1),
                                 *rect(writer.cmd.payload, base | in_addr, in_bytes, crop=True)]
                    with m.If(writer.cmd.ready):
                        m.d.sync += left.eq(in_bytes)
                        m.next = "INPUTTING"
            with m.State("INPUTTING"):
                m.d.comb += [writer.data.valid.eq(link.act_in.valid & (left != 0)),
                             writer.data.payload.eq(link.act_in.payload),
                             link.act_in.ready.eq(writer.data.ready & (left != 0))]
                with m.If(link.act_in.valid & link.act_in.ready):
                    m.d.sync += left.eq(left - 1)
                with m.If((left == 0) & ~writer.busy):
                    m.d.sync += [step.eq(0), engine_owns.eq(1)]
                    m.next = "ENGINE"
            with m.State("ENGINE"):
                register_write(last=writes.index(("start", 1)), then="RUNNING")
            with m.State("RUNNING"):
                with m.If(engine.irq):
                    m.d.sync += engine_owns.eq(0)
                    m.next = "CLEAR"
            with m.State("CLEAR"):
                register_write(last=len(writes) - 1, then="OUTPUT")
            with m.State("OUTPUT"):
                m.d.comb += [image_ok.eq(1), reader.cmd.valid.eq(1),
                             *rect(reader.cmd.payload, base | out_addr, out_bytes)]
                with m.If(reader.cmd.ready):
                    m.d.sync += left.eq(out_bytes)
                    m.next = "OUTPUTTING"
            with m.State("OUTPUTTING"):
                m.d.comb += [image_ok.eq(1),
                             link.act_out.valid.eq(reader.data.valid),
                             link.act_out.payload.eq(reader.data.payload),
                             reader.data.ready.eq(link.act_out.ready)]
                with m.If(link.act_out.valid & link.act_out.ready):
                    m.d.sync += left.eq(left - 1)
                with m.If((left == 0) | ((left == 1) & link.act_out.valid
                                         & link.act_out.ready)):
                    m.d.comb += link.done.eq(1)
                    m.d.sync += busy.eq(0)
                    m.next = "IDLE"
        return m

    def _share(self, m, engine_owns, engine, mover, base):
        """``m_axi`` driven by ``engine`` (its addresses offset by ``base``) while
        ``engine_owns``, else by ``mover``; the subordinate's handshakes go to the owner."""
        for name, member in self.m_axi.signature.members.items():
            port, a, b = (getattr(x, name) for x in (self.m_axi, engine, mover))
            if member.flow == Out:
                value = a | base if name in ("awaddr", "araddr") else a
                m.d.comb += port.eq(Mux(engine_owns, value, b))
            elif name.endswith(("valid", "ready")):
                m.d.comb += [a.eq(port & engine_owns), b.eq(port & ~engine_owns)]
            else:
                m.d.comb += [a.eq(port), b.eq(port)]
