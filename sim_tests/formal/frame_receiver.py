"""The host link's frame receiver (:class:`boards.link.framing.FrameReceiver`): it never
delivers a frame whose CRC is wrong, and it returns to idle from any state.

A monitor follows the bytes the receiver takes: a frame starts at a SYNC taken while hunting,
and its bytes (command, length, payload, CRC) go into a byte-parallel CRC-16 of its own
(``amaranth.lib.crc``, not the receiver's bit-serial one). Asserted every cycle:

- ``good_crc``: a frame held with status OK has a zero CRC residue, ``length + 5`` bytes, and
  the command and length the monitor saw;
- ``payload_intact``: the payload it then streams out is the bytes it took, the last flagged
  (for an arbitrary byte ``j``, watched in the buffer through a read port of the harness);
- ``back_to_idle``: after ``QUIET`` cycles with no byte offered and the consumer ready, the
  receiver is hunting, from any state (the induction starts anywhere);
- what makes the first inductive: the receiver's CRC register equals the monitor's between
  bytes, its byte and payload counters match the monitor's, the bit counter stays in 0..8.

The byte stream follows the stream rules (a byte stays offered until taken); the response
sender uses the CRC register only while a frame is held; everything else is free.
"""

from amaranth.hdl import Assert, Assume, Elaboratable, Module, Signal
from amaranth.hdl._ast import AnyConst, AnySeq
from amaranth.lib import crc

from boards.link.framing import FrameReceiver
from boards.protocol import SYNC, Status

from .sby import internals

__all__ = ["QUIET", "FrameReceiverHarness", "NoCRCRestart"]

#: Quiet cycles within which the receiver is back to hunting.
QUIET = 8
#: Small parameters: the smallest payload buffer the receiver takes, short timeouts.
PARAMS = {"max_payload": 16, "timeout": 3, "hold_timeout": 2}
FRAME_STATES = ("CMD", "LEN0", "LEN1", "PAYLOAD", "CRC0", "CRC1")


class NoCRCRestart(FrameReceiver):
    """Broken on purpose: a SYNC does not restart the CRC, so a frame is checked together with
    whatever came before it."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += m.submodules.check.start.eq(self.tx_crc.start)
        return m


class FrameReceiverHarness(Elaboratable):
    def __init__(self, dut_class=FrameReceiver):
        self.dut = dut_class(**PARAMS)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        inside = internals(dut)
        fsm, sig = inside.fsm, inside.signals

        def state(*names):
            return sum(fsm.state == fsm.encoding[n] for n in names) != 0

        # The environment.
        byte, offered = dut.i.payload, dut.i.valid
        m.d.comb += [offered.eq(AnySeq(1)), byte.eq(AnySeq(8)),
                     dut.frame.ready.eq(AnySeq(1)), dut.payload.ready.eq(AnySeq(1)),
                     dut.hold.count.eq(AnySeq(1)), dut.tx_crc.start.eq(AnySeq(1)),
                     dut.tx_crc.valid.eq(AnySeq(1)), dut.tx_crc.data.eq(AnySeq(1))]
        started, waiting, byte_p = Signal(), Signal(), Signal(8)
        m.d.sync += [started.eq(1), waiting.eq(offered & ~dut.i.ready), byte_p.eq(byte)]
        with m.If(started & waiting):
            m.d.comb += Assume(offered & (byte == byte_p))
        with m.If(~dut.frame.valid):
            m.d.comb += Assume(~dut.tx_crc.start & ~dut.tx_crc.valid)

        # The monitor: the frame's bytes since the SYNC, through a CRC of its own.
        m.submodules.ref = ref = crc.catalog.CRC16_IBM_3740(data_width=8).create()
        take = offered & dut.i.ready
        n, cmd, length = Signal(6), Signal(8), Signal(16)
        m.d.comb += [ref.start.eq(take & state("HUNT") & (byte == SYNC)),
                     ref.valid.eq(take & state(*FRAME_STATES)), ref.data.eq(byte)]
        with m.If(ref.start):
            m.d.sync += n.eq(0)
        with m.If(ref.valid):
            m.d.sync += n.eq(n + 1)
            with m.Switch(n):
                with m.Case(0):
                    m.d.sync += cmd.eq(byte)
                with m.Case(1):
                    m.d.sync += length[:8].eq(byte)
                with m.Case(2):
                    m.d.sync += length[8:].eq(byte)

        f = dut.frame.payload
        ok = state("HOLD") & (f.status == Status.OK)
        with m.If(ok):                                  # good_crc
            m.d.comb += Assert(ref.match_detected & (n == length + 5) & (f.cmd == cmd)
                               & (f.length == length))

        # payload_intact: byte j of the payload, as taken and as streamed out of the buffer.
        j, byte_j = AnyConst(range(PARAMS["max_payload"])), Signal(8)
        with m.If(ref.valid & state("PAYLOAD") & (n == j + 3)):
            m.d.sync += byte_j.eq(byte)
        out = dut.payload
        with m.If(ok & out.valid & (sig["count"] == j)):
            m.d.comb += Assert((out.payload.data == byte_j)
                               & (out.payload.last == (j + 1 == length)))

        quiet = Signal(range(QUIET + 1))                # back_to_idle
        with m.If(offered | ~dut.frame.ready):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != QUIET):
            m.d.sync += quiet.eq(quiet + 1)
        with m.If(quiet == QUIET):
            m.d.comb += Assert(state("HUNT"))

        # The invariants that make the two inductive.
        nbit, count = sig["nbit"], sig["count"]
        m.d.comb += [Assert(fsm.state < len(fsm.encoding)), Assert(quiet <= QUIET),
                     Assert(dut.frame.valid == state("HOLD")), Assert(nbit <= 8)]
        with m.If(state("DRAIN")):                      # it reports a bad CRC or LEN
            m.d.comb += Assert((f.status == Status.ERR_CRC) | (f.status == Status.ERR_LENGTH))
        with m.If(~state(*FRAME_STATES)):
            m.d.comb += Assert(nbit == 0)
        with m.Elif(nbit != 0):
            m.d.comb += Assert(offered)
        with m.If((state(*FRAME_STATES) & (nbit == 0)) | state("CHECK")):
            m.d.comb += Assert(dut.tx_crc.value == ref.crc)
        for name, bytes_in in (("CMD", 0), ("LEN0", 1), ("LEN1", 2)):
            with m.If(state(name)):
                m.d.comb += Assert(n == bytes_in)
        with m.If(state("LEN0", "LEN1", "PAYLOAD", "CRC0", "CRC1", "CHECK")):
            m.d.comb += Assert(f.cmd == cmd)
        with m.If(state("CMD", "LEN0", "LEN1")):        # cleared by the SYNC
            m.d.comb += Assert(f.length[8:] == 0)
        with m.If(state("LEN1")):
            m.d.comb += Assert(f.length[:8] == length[:8])
        with m.If(state("PAYLOAD", "CRC0", "CRC1", "CHECK") | ok):
            m.d.comb += Assert((f.length == length) & (length <= PARAMS["max_payload"]))
        with m.If(state("PAYLOAD")):
            m.d.comb += Assert((n == count + 3) & (count < length))
        for name, extra in (("CRC0", 3), ("CRC1", 4), ("CHECK", 5)):
            with m.If(state(name)):
                m.d.comb += Assert(n == length + extra)
        with m.If(ok):                                  # the payload streamed so far
            m.d.comb += Assert((count <= length) & (sig["replayed"] == (count == length)))
        buffer = inside.submodules["mem"].read_port(domain="comb")
        m.d.comb += buffer.addr.eq(j)
        with m.If((state("PAYLOAD") & (count > j))
                  | ((state("CRC0", "CRC1", "CHECK") | ok) & (j < length))):
            m.d.comb += Assert(buffer.data == byte_j)
        return m
