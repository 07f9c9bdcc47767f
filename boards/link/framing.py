"""Frame receiver: finds frames in the byte stream, buffers the payload, checks the CRC.

See :mod:`boards.protocol` for the frame format. A frame is handed on only when it is complete
and its CRC matches, so a corrupted request never has any effect. Errors are handed on as a
frame with a non-zero ``status``; before reporting a bad CRC or an oversized ``LEN`` the
receiver discards bytes until the line has been idle for ``timeout`` cycles, so that the rest of
a damaged frame is not mistaken for a new one and the host's next request arrives only after
the error response.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import crc, data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int
from sps_hw.logic import gt_const
from sps_hw.memories import NO_RW_CHECK, read_port

from ..protocol import SYNC, Status
from .ports import CRCPort, StallTimer
from .serial import SerialCRC

__all__ = ["FRAME_CRC", "FrameReceiver", "frame_layout", "payload_layout"]

frame_layout = data.StructLayout({"cmd": 8, "length": 16, "status": 4})
#: A payload byte of a held frame; ``last`` marks the frame's last.
payload_layout = data.StructLayout({"data": 8, "last": 1})

#: Frame check: CRC-16/CCITT-FALSE (the catalog calls it IBM-3740), the reference; the
#: gateware computes it bit-serially (:class:`~boards.link.serial.SerialCRC`).
FRAME_CRC = crc.catalog.CRC16_IBM_3740(data_width=8)


class FrameReceiver(wiring.Component):
    """Turns the received byte stream ``i`` into checked frames on ``frame``.

    ``frame`` stays valid until the consumer sets ``ready`` (after it has answered); meanwhile
    ``payload`` streams the frame's payload bytes from the buffer, once (a byte every third
    cycle at most; the consumer takes them all, or lets the rest go with the frame), and no
    bytes are taken from ``i``. Each byte of a frame goes into the CRC-16 one bit per cycle
    (from a flip-flop), so a byte is taken 9 cycles after it is offered (the UART delivers one
    every >= 40 cycles).

    While ``frame`` is valid the CRC-16 register is free, and the response's sender uses it
    through ``tx_crc`` (a :class:`~.ports.CRCPort`; most significant bit of each byte first).

    Parameters
    ----------
    max_payload : int
        Largest ``LEN`` accepted (the payload buffer's size).
    timeout : int
        Cycles without a byte after which a partial frame is dropped (``ERR_TIMEOUT``) or a
        damaged one is reported.
    hold_timeout : int
        While a frame is held, the idle counter is the consumer's stall timer (``hold``, a
        :class:`~.ports.StallTimer`): it counts the consecutive cycles with ``hold.count`` high,
        and ``hold.expired`` rises when they reach ``hold_timeout`` (one counter instead of two).
    """

    def __init__(self, *, max_payload, timeout, hold_timeout=1):
        check_int("max_payload", max_payload, minimum=16, maximum=0xFFFF)
        check_int("timeout", timeout, minimum=1)
        check_int("hold_timeout", hold_timeout, minimum=1)
        self.max_payload = max_payload
        self.timeout, self.hold_timeout = timeout, hold_timeout
        super().__init__({
            "i": In(stream.Signature(8)),
            "frame": Out(stream.Signature(frame_layout)),
            "payload": Out(stream.Signature(payload_layout)),
            "tx_crc": In(CRCPort(16)),
            "hold": In(StallTimer()),
        })

    def elaborate(self, platform):
        m = Module()
        # The payload is read back only while a frame is held (no writes): no read-during-
        # write logic needed (yosys would add a bypass of ~30 flip-flops).
        m.submodules.mem = mem = memory.Memory(shape=8, depth=self.max_payload, init=[],
                                               attrs=NO_RW_CHECK)
        wr, rd = mem.write_port(), read_port(m, mem, "payload")
        m.submodules.check = check = SerialCRC(16, 0x1021, 0xFFFF, reflect=False)
        rx_start, rx_valid, rx_data = Signal(), Signal(), Signal()
        hold, tx = self.frame.valid, self.tx_crc
        m.d.comb += [tx.value.eq(check.value),
                     check.start.eq(rx_start | tx.start),
                     check.valid.eq(rx_valid | tx.valid),
                     check.data.eq(rx_data | (hold & tx.data))]

        idle = Signal(range(max(self.timeout, self.hold_timeout) + 1))
        timed_out = Signal()                        # idle has reached the timeout
        lw = self.max_payload.bit_length()          # bits of a valid LEN
        count = Signal(lw)
        count_next = Signal(lw)
        nbit = Signal(4)                            # bit of the offered byte going to the CRC
        bit = Signal()                              # that bit, from a flip-flop
        byte = self.i.payload
        take = Signal()                             # a byte is consumed this cycle
        m.d.comb += [take.eq(self.i.valid & self.i.ready),
                     count_next.eq(count + 1), wr.addr.eq(count), wr.data.eq(byte)]
        m.d.sync += bit.eq(byte.bit_select(~nbit[:3], 1))
        # timed_out and expired are flip-flops, set as idle reaches its limit: no decision
        # follows a wide comparison in the same cycle.
        m.d.sync += self.hold.expired.eq(0)
        with m.If(hold):                            # the consumer's stall timer
            with m.If(self.hold.count & ~self.frame.ready):
                m.d.sync += [idle.eq(idle + 1),
                             self.hold.expired.eq(idle == self.hold_timeout - 1)]
            with m.Else():
                m.d.sync += idle.eq(0)
        with m.Elif(take):
            m.d.sync += [idle.eq(0), timed_out.eq(0)]
        with m.Elif(~timed_out):
            m.d.sync += [idle.eq(idle + 1), timed_out.eq(idle == self.timeout - 1)]

        # While a frame is held ``count`` walks the payload again: a byte is offered once the
        # read port and the register behind it have caught up with it (``fresh``; the block
        # RAM's data goes straight into ``out.payload``), until the last (``replayed``).
        f = self.frame.payload
        fresh = Signal(2)
        replayed = Signal()
        out = self.payload
        m.d.sync += [fresh.eq(Cat(1, fresh[0])), out.payload.data.eq(rd.data),
                     out.payload.last.eq(count_next == f.length[:lw])]
        m.d.comb += [rd.addr.eq(count), out.valid.eq(hold & fresh[1] & ~replayed)]
        with m.If(out.valid & out.ready):
            m.d.sync += [count.eq(count_next), fresh.eq(0), replayed.eq(out.payload.last)]

        def report(status, length=0):
            """Hold the frame, with ``length`` payload bytes to offer."""
            m.d.sync += [f.status.eq(status), self.frame.valid.eq(1), count.eq(0), fresh.eq(0),
                         replayed.eq(length == 0)]
            m.next = "HOLD"

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(take & (byte == SYNC)):
                    m.d.comb += rx_start.eq(1)
                    m.d.sync += [f.cmd.eq(0), f.length.eq(0)]
                    m.next = "CMD"

            for state, nxt in (("CMD", "LEN0"), ("LEN0", "LEN1"), ("LEN1", None),
                               ("PAYLOAD", None), ("CRC0", "CRC1"), ("CRC1", "CHECK")):
                with m.State(state):
                    with m.If(self.i.valid):         # the byte's bits into the CRC, MSB first
                        # nbit 0 puts the first bit into ``bit``; 1..8 shift them in.
                        m.d.comb += [rx_valid.eq(nbit != 0), rx_data.eq(bit),
                                     self.i.ready.eq(nbit == 8)]
                        m.d.sync += nbit.eq(nbit + 1)
                    with m.If(take):
                        m.d.sync += nbit.eq(0)
                        if state == "CMD":
                            m.d.sync += f.cmd.eq(byte)
                        elif state == "LEN0":
                            m.d.sync += f.length[:8].eq(byte)
                        elif state == "LEN1":
                            length = Cat(f.length[:8], byte)
                            if lw > 8:
                                m.d.sync += f.length[8:lw].eq(byte)
                            m.d.sync += count.eq(0)
                            with m.If(gt_const(length, self.max_payload)):
                                m.d.sync += f.status.eq(Status.ERR_LENGTH)
                                m.next = "DRAIN"
                            with m.Elif(length == 0):
                                m.next = "CRC0"
                            with m.Else():
                                m.next = "PAYLOAD"
                        elif state == "PAYLOAD":
                            m.d.comb += wr.en.eq(1)
                            m.d.sync += count.eq(count_next)
                            with m.If(count_next == f.length[:lw]):
                                m.next = "CRC0"
                        if nxt is not None:
                            m.next = nxt
                    with m.Elif(~self.i.valid & timed_out):
                        report(Status.ERR_TIMEOUT)

            with m.State("CHECK"):                     # the CRC register settles here
                with m.If(check.value == 0):
                    report(Status.OK, f.length[:lw])
                with m.Else():
                    m.d.sync += f.status.eq(Status.ERR_CRC)
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(timed_out & ~self.i.valid):
                    report(f.status)

            with m.State("HOLD"):
                with m.If(self.frame.ready):
                    m.d.sync += self.frame.valid.eq(0)
                    m.next = "HUNT"
        return m
