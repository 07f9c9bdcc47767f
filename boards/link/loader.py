"""Image loading: staged uploads into the core's memories, checked by length and CRC-32."""

from functools import partial

from amaranth.hdl import Module, Signal
from amaranth.lib import crc, stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int

from ..protocol import Status
from .core_if import MemoryMap
from .executor import accept_offset, answer, refuse
from .ports import ExecutorSignature, LedgerRead, LoadState, Op, Word, count_width, store_layout
from .serial import SerialCRC, gt_const

__all__ = ["IMAGE_CRC", "ImageLoader"]

#: Image check: CRC-32/ISO-HDLC (zlib.crc32), the reference; the gateware computes it
#: bit-serially (:class:`~.serial.SerialCRC`).
IMAGE_CRC = crc.catalog.CRC32_ISO_HDLC(data_width=8)


def per_region(m, memory_map, region, width, value):
    """A signal of ``width`` bits: ``value(spec)`` of the region whose code is ``region``."""
    out = Signal(width)
    with m.Switch(region):
        for spec in memory_map:
            with m.Case(spec.code):
                m.d.comb += out.eq(value(spec))
    return out


class ImageLoader(wiring.Component):
    """Executes DISCARD, LOAD_BEGIN, LOAD_DATA, LOAD_END and COMMIT (``docs/host_link.md``
    section 4).

    Bytes go to the core's staging copy of the open load's region (``write``) and, one bit per
    cycle, into the CRC-32; LOAD_END marks the region verified when all announced bytes arrived,
    they form whole words and the CRC-32 is the announced one. COMMIT, with every region
    verified and no run active, strobes ``commit``, sets *model valid* and hands the tag to the
    ledger. *Model valid* survives a reset (``reset_less``), like the core's committed images;
    the open load and the verified set do not.

    Parameters
    ----------
    memory_map : MemoryMap
        The core's image memories.
    max_payload : int
        Largest request payload (the command items' sizes).
    model_valid : bool
        Whether the core holds a model from configuration on.

    Members
    -------
    command : ``In(ExecutorSignature(max_payload))``
    write : ``Out(stream.Signature(memory_map.write_layout))``
    commit : ``Out(1)``
    store : ``Out(stream.Signature(store_layout()))``
        To the ledger: the announced CRC-32 (LOAD_BEGIN), the committed model's tag.
    ledger : ``Out(LedgerRead())``
        The announced CRC-32 back (LOAD_END).
    state : ``Out(LoadState(5, fill_bits))``
        Also the words of the loader's answers: bytes received, CRC-32, verified regions.
    run_active : ``In(1)``
        A run is in progress (COMMIT is refused).
    """

    def __init__(self, memory_map, *, max_payload, model_valid=False):
        if not isinstance(memory_map, MemoryMap):
            raise TypeError(f"memory_map must be a MemoryMap, not {memory_map!r}")
        check_int("max_payload", max_payload, minimum=16, maximum=0xFFFF)
        self.memory_map, self.max_payload = memory_map, max_payload
        self.model_valid = bool(model_valid)
        self.fill_bits = max(memory_map.max_capacity, 1).bit_length()
        super().__init__({
            "command": In(ExecutorSignature(max_payload)),
            "write": Out(stream.Signature(memory_map.write_layout)),
            "commit": Out(1),
            "store": Out(stream.Signature(store_layout())),
            "ledger": Out(LedgerRead()),
            "state": Out(LoadState(len(memory_map.regions), self.fill_bits)),
            "run_active": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        mm = self.memory_map
        n_regions = len(mm.regions)
        items = self.command.command
        item = items.payload
        arg = item.arg
        byte = arg[24:]
        iw = self.fill_bits                 # image byte counters
        lw = count_width(self.max_payload)

        model_valid = Signal(init=self.model_valid, reset_less=True)
        verified = Signal(n_regions)
        loading = Signal()
        region = Signal(3)                  # region of the open load
        region_arg = Signal(3)              # region named by LOAD_BEGIN
        region_bad, big, seq, much, incomplete, crc_bad = (
            Signal(name=n) for n in ("region_bad", "big", "seq", "much", "incomplete",
                                     "crc_bad"))
        fill = Signal(iw)                   # image bytes received
        remaining = Signal(iw)              # image bytes still expected
        lane = Signal(mm.lane_width)
        waddr = Signal(mm.addr_width)
        nbit = Signal(3)
        commit = Signal()
        m.d.sync += commit.eq(0)
        m.d.comb += [self.commit.eq(commit), self.state.model_valid.eq(model_valid),
                     self.state.loading.eq(loading), self.state.verified.eq(verified),
                     self.state.fill.eq(fill)]

        m.submodules.crc = image_crc = SerialCRC(32, 0x04C11DB7, 0xFFFFFFFF, reflect=True)
        crc_value = image_crc.value ^ 0xFFFFFFFF
        wr = self.write
        m.d.comb += [self.state.crc.eq(crc_value),
                     wr.payload.region.eq(region), wr.payload.addr.eq(waddr),
                     wr.payload.lane.eq(lane), wr.payload.data.eq(byte),
                     image_crc.data.eq(byte.bit_select(nbit, 1)),
                     self.store.payload.data.eq(arg),
                     self.ledger.addr.payload.eq(Word.EXPECTED_CRC),
                     self.command.waiting.eq(wr.valid & ~wr.ready)]

        capacity = per_region(m, mm, region_arg, iw, lambda r: r.capacity)     # LOAD_BEGIN's
        last_lane = per_region(m, mm, region, mm.lane_width, lambda r: r.word_bytes - 1)
        too_much = (((remaining[lw:] == 0) & (item.count > remaining[:lw])) if iw > lw
                    else item.count > remaining)    # LOAD_DATA: more than the image has left

        respond = partial(answer, m, self.command)

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += [seq.eq((arg[:iw] != fill) | (arg[iw:] != 0)), much.eq(too_much),
                             incomplete.eq(remaining != 0),
                             region_arg.eq(byte[:3]), region_bad.eq(gt_const(byte, n_regions - 1))]
                with m.If(items.valid):
                    with m.Switch(item.op):
                        with m.Case(Op.DISCARD):
                            m.d.sync += [verified.eq(0), loading.eq(0)]
                            respond(Status.OK)
                        with m.Case(Op.LOAD_BEGIN):         # the region byte
                            m.d.comb += items.ready.eq(1)
                            m.next = "BEGIN_LENGTH"
                        with m.Case(Op.LOAD_DATA):
                            m.next = "DATA_CHECK"
                        with m.Case(Op.LOAD_END):
                            m.next = "END_READ"
                        with m.Case(Op.COMMIT):
                            m.next = "COMMIT_CHECK"

            with m.State("BEGIN_LENGTH"):
                m.d.sync += big.eq((arg[iw:] != 0) | (arg[:iw] > capacity))
                with m.If(items.valid):
                    m.next = "BEGIN_CHECK"
            with m.State("BEGIN_CHECK"):
                refuse(m, self.command, [
                    (region_bad, Status.ERR_REGION, Word.N_REGIONS),
                    (big, Status.ERR_TOO_LARGE, Word.CAPACITY + region_arg)])
                with m.Else():
                    m.d.comb += items.ready.eq(1)
                    m.d.sync += remaining.eq(arg[:iw])
                    m.next = "BEGIN_CRC"
            with m.State("BEGIN_CRC"):              # to the ledger
                m.d.comb += [self.store.valid.eq(items.valid),
                             self.store.payload.word.eq(Word.EXPECTED_CRC)]
                with m.If(self.store.valid & self.store.ready):
                    m.d.comb += image_crc.start.eq(1)
                    m.d.sync += [region.eq(region_arg), fill.eq(0),
                                 waddr.eq(0), lane.eq(0), loading.eq(1),
                                 verified.bit_select(region_arg, 1).eq(0)]
                    respond(Status.OK, Word.CAPACITY + region_arg)

            with m.State("DATA_CHECK"):             # the offset
                accept_offset(m, self.command, [
                    (~loading, Status.ERR_STATE, Word.ARG),
                    (seq, Status.ERR_SEQUENCE, Word.FILL),
                    (much, Status.ERR_TOO_LARGE, Word.FILL)], Word.FILL, "DATA")
            with m.State("DATA"):                   # a byte to the core ...
                m.d.comb += wr.valid.eq(items.valid)
                with m.If(wr.valid & wr.ready):
                    m.d.sync += [fill.eq(fill + 1), remaining.eq(remaining - 1), nbit.eq(0)]
                    with m.If(lane == last_lane):
                        m.d.sync += [lane.eq(0), waddr.eq(waddr + 1)]
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
                    m.next = "DATA_CRC"
                with m.Elif(self.command.stalled):
                    m.d.sync += loading.eq(0)
                    respond(Status.ERR_STALL, Word.FILL)
            with m.State("DATA_CRC"):               # ... then into the CRC-32
                m.d.comb += image_crc.valid.eq(1)
                m.d.sync += nbit.eq(nbit + 1)
                with m.If(nbit == 7):
                    with m.If(item.last):
                        respond(Status.OK, Word.FILL)
                    with m.Else():
                        m.d.comb += items.ready.eq(1)
                        m.next = "DATA"

            with m.State("END_READ"):               # the announced CRC-32
                m.d.comb += self.ledger.addr.valid.eq(1)
                with m.If(self.ledger.addr.ready):
                    m.next = "END_WAIT"
            with m.State("END_WAIT"):
                m.next = "END_COMPARE"
            with m.State("END_COMPARE"):
                m.d.sync += crc_bad.eq(crc_value != self.ledger.data)
                m.next = "END_CHECK"
            with m.State("END_CHECK"):
                refuse(m, self.command, [
                    (~loading, Status.ERR_STATE, Word.ARG),
                    (incomplete, Status.ERR_INCOMPLETE, Word.FILL)])
                with m.Elif(lane != 0):
                    m.d.sync += loading.eq(0)
                    respond(Status.ERR_LENGTH, Word.WORD_BYTES + region)
                with m.Elif(crc_bad):
                    m.d.sync += loading.eq(0)
                    respond(Status.ERR_IMAGE_CRC, Word.IMAGE_CRC)
                with m.Else():
                    m.d.sync += [loading.eq(0), verified.bit_select(region, 1).eq(1)]
                    respond(Status.OK, Word.IMAGE_CRC)

            with m.State("COMMIT_CHECK"):
                refuse(m, self.command, [
                    (self.run_active, Status.ERR_BUSY, Word.ARG),
                    (verified != (1 << n_regions) - 1, Status.ERR_NOT_STAGED, Word.VERIFIED)])
                with m.Else():
                    m.d.sync += [commit.eq(1), model_valid.eq(1), verified.eq(0), loading.eq(0)]
                    m.next = "TAG"
            with m.State("TAG"):
                m.d.comb += [self.store.valid.eq(1), self.store.payload.word.eq(Word.TAG)]
                with m.If(self.store.ready):
                    respond(Status.OK, Word.TAG)
        return m
