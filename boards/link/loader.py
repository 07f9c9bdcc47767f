"""Image loading: staged uploads into the core's memories, checked by length and CRC-32."""

from functools import partial

from amaranth.hdl import Module, Signal
from amaranth.lib import crc, stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int
from sps_hw.logic import gt_const

from .core_if import MemoryMap
from .executor import accept_offset, answer, refuse
from .ledger import LedgerCall
from .ports import ExecutorSignature, LedgerPort, Op
from .scripts import Program, Script
from .serial import SerialCRC

__all__ = ["IMAGE_CRC", "ImageLoader"]

#: Image check: CRC-32/ISO-HDLC (zlib.crc32), the reference; the gateware computes it
#: bit-serially (:class:`~.serial.SerialCRC`).
IMAGE_CRC = crc.catalog.CRC32_ISO_HDLC(data_width=8)


class ImageLoader(wiring.Component):
    """Executes DISCARD, LOAD_BEGIN, LOAD_DATA, LOAD_END and COMMIT (``docs/host_link.md``
    section 4).

    Bytes go to the core's staging copy of the open load's region (``write``) and, one bit per
    cycle, into the CRC-32; LOAD_END marks the region verified when all announced bytes arrived,
    they form whole words and the CRC-32 is the announced one. COMMIT, with every region
    verified and no run active, strobes ``commit``, sets *model valid* and stores the tag.
    *Model valid* survives a reset (``reset_less``), like the core's committed images; the open
    load and the verified set do not.

    The numbers live in the ledger, which the loader calls (:mod:`~.scripts`): the capacities,
    the bytes received (``FILL``), the bytes still expected and the announced CRC-32 (both
    negated, so that a check is one add), the tag. Each data byte is counted there while its
    bits go into the CRC-32.

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
    ledger : ``Out(LedgerPort())``
    model_valid, loading, verified : ``Out(1)``, ``Out(1)``, ``Out(5)``
        STATUS's flags and verified regions.
    crc : ``Out(32)``
        The CRC-32 of the bytes of the open load.
    run_active : ``In(1)``
        A run is in progress (COMMIT is refused).
    """

    def __init__(self, memory_map, *, max_payload, model_valid=False):
        if not isinstance(memory_map, MemoryMap):
            raise TypeError(f"memory_map must be a MemoryMap, not {memory_map!r}")
        check_int("max_payload", max_payload, minimum=16, maximum=0xFFFF)
        self.memory_map, self.max_payload = memory_map, max_payload
        self.model_valid_at_start = bool(model_valid)
        n_regions = len(memory_map.regions)
        super().__init__({
            "command": In(ExecutorSignature(max_payload)),
            "write": Out(stream.Signature(memory_map.write_layout)),
            "commit": Out(1),
            "ledger": Out(LedgerPort()),
            "model_valid": Out(1),
            "loading": Out(1),
            "verified": Out(n_regions),
            "crc": Out(32),
            "run_active": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        mm = self.memory_map
        n_regions = len(mm.regions)
        items = self.command.command
        item = items.payload
        byte = item.arg[24:]
        ledger = self.ledger
        call = LedgerCall(m, ledger)

        model_valid = Signal(init=self.model_valid_at_start, reset_less=True)
        verified = Signal(n_regions)
        loading = Signal()
        region = Signal(3)                  # region of the open load
        region_arg = Signal(3)              # region named by LOAD_BEGIN
        region_bad, seq = Signal(), Signal()
        lane = Signal(mm.lane_width)
        waddr = Signal(mm.addr_width)
        nbit = Signal(4)                    # bit of the byte going into the CRC-32 (9: done)
        bit = Signal()                      # that bit, from a flip-flop
        commit = Signal()
        m.d.sync += [commit.eq(0), bit.eq(byte.bit_select(nbit[:3], 1))]
        m.d.comb += [self.commit.eq(commit), self.model_valid.eq(model_valid),
                     self.loading.eq(loading), self.verified.eq(verified)]

        m.submodules.crc = image_crc = SerialCRC(32, 0x04C11DB7, 0xFFFFFFFF, reflect=True)
        wr = self.write
        m.d.comb += [self.crc.eq(image_crc.value ^ 0xFFFFFFFF), image_crc.data.eq(bit),
                     wr.payload.region.eq(region), wr.payload.addr.eq(waddr),
                     wr.payload.lane.eq(lane), wr.payload.data.eq(byte),
                     self.command.waiting.eq(wr.valid & ~wr.ready)]

        last_lane = Signal(mm.lane_width)
        with m.Switch(region):
            for spec in mm:
                with m.Case(spec.code):
                    m.d.comb += last_lane.eq(spec.word_bytes - 1)

        # The region is ORed into the address of a region's program (one op a region) and
        # script (two ops a region: a header and a word; :mod:`~.scripts` aligns them).
        respond = partial(answer, m, self.command)

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += [region_arg.eq(byte[:3]),
                             region_bad.eq(gt_const(byte, n_regions - 1))]
                with m.If(items.valid):
                    with m.Switch(item.op):
                        with m.Case(Op.DISCARD):
                            m.d.sync += [verified.eq(0), loading.eq(0)]
                            respond(Script.OK_ZERO)
                        with m.Case(Op.LOAD_BEGIN):         # the region byte
                            m.d.comb += items.ready.eq(1)
                            m.next = "BEGIN_LENGTH"
                        with m.Case(Op.LOAD_DATA):
                            m.next = "DATA_OFFSET"
                        with m.Case(Op.LOAD_END):
                            m.next = "END_COMPLETE"
                        with m.Case(Op.COMMIT):
                            m.next = "COMMIT_CHECK"

            with m.State("BEGIN_LENGTH"):
                with m.If(items.valid & region_bad):
                    respond(Script.ERR_REGION_N_REGIONS)
                with m.Elif(items.valid):
                    with m.If(call(Program.CHECK_CAPACITY | region_arg)):
                        with m.If(~ledger.carry):           # capacity - length borrowed
                            respond(Script.ERR_TOO_LARGE_CAPACITY | region_arg << 1)
                        with m.Else():
                            m.next = "BEGIN_COUNT"
            with m.State("BEGIN_COUNT"):            # the bytes still expected, none received
                with m.If(call(Program.BEGIN_LENGTH)):
                    m.d.comb += items.ready.eq(1)
                    m.next = "BEGIN_CRC"
            with m.State("BEGIN_CRC"):              # the announced CRC-32
                with m.If(items.valid):
                    with m.If(call(Program.BEGIN_CRC)):
                        m.d.comb += image_crc.start.eq(1)
                        m.d.sync += [region.eq(region_arg), waddr.eq(0), lane.eq(0),
                                     loading.eq(1), verified.bit_select(region_arg, 1).eq(0)]
                        respond(Script.OK_CAPACITY | region_arg << 1)

            with m.State("DATA_OFFSET"):            # the offset: the bytes received so far?
                with m.If(~loading):
                    respond(Script.ERR_STATE_ZERO)
                with m.Else():
                    with m.If(call(Program.CHECK_FILL)):
                        m.d.sync += seq.eq(~ledger.zero)
                        m.next = "DATA_COUNT"
            with m.State("DATA_COUNT"):             # ... no more than still expected?
                with m.If(call(Program.CHECK_COUNT)):
                    much = ~ledger.result[31] & ~ledger.zero
                    accept_offset(m, self.command, [
                        (seq, Script.ERR_SEQUENCE_FILL),
                        (much, Script.ERR_TOO_LARGE_FILL)], Script.OK_FILL, "DATA")
            with m.State("DATA"):                   # a byte to the core ...
                m.d.comb += wr.valid.eq(items.valid)
                with m.If(wr.valid & wr.ready):
                    m.d.sync += nbit.eq(0)
                    with m.If(lane == last_lane):
                        m.d.sync += [lane.eq(0), waddr.eq(waddr + 1)]
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
                    m.next = "DATA_CRC"
                with m.Elif(self.command.stalled):
                    m.d.sync += loading.eq(0)
                    respond(Script.ERR_STALL_FILL)
            with m.State("DATA_CRC"):               # ... into the CRC-32 and counted
                m.d.comb += image_crc.valid.eq((nbit != 0) & (nbit != 9))
                with m.If(nbit != 9):
                    m.d.sync += nbit.eq(nbit + 1)
                with m.If(call(Program.DATA_BYTE, also=nbit == 9)):
                    with m.If(item.last):
                        respond(Script.OK_FILL)
                    with m.Else():
                        m.d.comb += items.ready.eq(1)
                        m.next = "DATA"

            with m.State("END_COMPLETE"):
                with m.If(~loading):
                    respond(Script.ERR_STATE_ZERO)
                with m.Else():
                    with m.If(call(Program.CHECK_COMPLETE)):
                        with m.If(~ledger.zero):
                            respond(Script.ERR_INCOMPLETE_FILL)
                        with m.Elif(lane != 0):
                            m.d.sync += loading.eq(0)
                            respond(Script.ERR_LENGTH_WORD_BYTES | region << 1)
                        with m.Else():
                            m.next = "END_CRC"
            with m.State("END_CRC"):
                with m.If(call(Program.CHECK_CRC)):
                    m.d.sync += loading.eq(0)
                    with m.If(~ledger.zero):
                        respond(Script.ERR_IMAGE_CRC_IMAGE_CRC)
                    with m.Else():
                        m.d.sync += verified.bit_select(region, 1).eq(1)
                        respond(Script.OK_IMAGE_CRC)

            with m.State("COMMIT_CHECK"):
                refuse(m, self.command, [
                    (self.run_active, Script.ERR_BUSY_ZERO),
                    (verified != (1 << n_regions) - 1, Script.ERR_NOT_STAGED_VERIFIED)])
                with m.Else():
                    m.d.sync += [commit.eq(1), model_valid.eq(1), verified.eq(0), loading.eq(0)]
                    m.next = "COMMIT_TAG"
            with m.State("COMMIT_TAG"):
                with m.If(call(Program.STORE_TAG)):
                    respond(Script.OK_TAG)
        return m
