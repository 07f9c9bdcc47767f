"""Frame receiver: finds frames in the byte stream, buffers the payload, checks the CRC.

See :mod:`boards.protocol` for the frame format. A frame is handed on only when it is complete
and its CRC matches, so a corrupted request never has any effect. Errors are handed on as a
frame with a non-zero ``status``; before reporting a bad CRC or an oversized ``LEN`` the
receiver discards bytes until the line has been idle for ``timeout`` cycles, so that the rest of
a damaged frame is not mistaken for a new one and the host's next request arrives only after
the error response.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import crc, data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..protocol import SYNC, Status

__all__ = ["FrameReceiver", "frame_layout"]

frame_layout = data.StructLayout({"cmd": 8, "length": 16, "status": 8})

#: Frame check: CRC-16/CCITT-FALSE (the catalog calls it IBM-3740), one byte per cycle.
FRAME_CRC = crc.catalog.CRC16_IBM_3740(data_width=8)


class FrameReceiver(wiring.Component):
    """Turns the received byte stream ``i`` into checked frames on ``frame``.

    ``frame`` stays valid until the consumer sets ``ready`` (after it has answered); meanwhile
    the payload is readable through ``payload`` (a synchronous read port, byte addresses) and no
    bytes are taken from ``i``.

    Parameters
    ----------
    max_payload : int
        Largest ``LEN`` accepted (the payload buffer's size).
    timeout : int
        Cycles without a byte after which a partial frame is dropped (``ERR_TIMEOUT``) or a
        damaged one is reported.
    """

    def __init__(self, *, max_payload, timeout):
        if not isinstance(max_payload, int) or not 16 <= max_payload <= 0xFFFF:
            raise ValueError(f"max_payload must be an int in 16..65535, not {max_payload!r}")
        if not isinstance(timeout, int) or timeout < 1:
            raise ValueError(f"timeout must be a positive int (cycles), not {timeout!r}")
        self.max_payload = max_payload
        self.timeout = timeout
        self.addr_width = (max_payload - 1).bit_length()
        super().__init__({
            "i": In(stream.Signature(8)),
            "frame": Out(stream.Signature(frame_layout)),
            "payload": Out(memory.ReadPort.Signature(addr_width=self.addr_width, shape=8)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=8, depth=self.max_payload, init=[])
        wr, rd = mem.write_port(), mem.read_port()
        m.d.comb += [rd.addr.eq(self.payload.addr), rd.en.eq(self.payload.en),
                     self.payload.data.eq(rd.data)]
        m.submodules.crc = check = FRAME_CRC.create()

        idle = Signal(range(self.timeout + 1))
        timed_out = Signal()
        count = Signal(16)
        byte = self.i.payload
        take = Signal()                          # a byte is consumed this cycle
        m.d.comb += [take.eq(self.i.valid & self.i.ready), timed_out.eq(idle == self.timeout),
                     check.data.eq(byte), wr.addr.eq(count), wr.data.eq(byte)]
        with m.If(take):
            m.d.sync += idle.eq(0)
        with m.Elif(~timed_out):
            m.d.sync += idle.eq(idle + 1)

        f = self.frame.payload

        def report(status):
            m.d.sync += [f.status.eq(status), self.frame.valid.eq(1)]
            m.next = "HOLD"

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(take & (byte == SYNC)):
                    m.d.comb += check.start.eq(1)
                    m.d.sync += [f.cmd.eq(0), f.length.eq(0)]
                    m.next = "CMD"

            for state, nxt in (("CMD", "LEN0"), ("LEN0", "LEN1"), ("LEN1", None),
                               ("PAYLOAD", None), ("CRC0", "CRC1"), ("CRC1", "CHECK")):
                with m.State(state):
                    m.d.comb += self.i.ready.eq(1)
                    with m.If(take):
                        m.d.comb += check.valid.eq(1)
                        if state == "CMD":
                            m.d.sync += f.cmd.eq(byte)
                        elif state == "LEN0":
                            m.d.sync += f.length[:8].eq(byte)
                        elif state == "LEN1":
                            length = (byte << 8) | f.length[:8]
                            m.d.sync += [f.length[8:].eq(byte), count.eq(0)]
                            with m.If(length > self.max_payload):
                                m.d.sync += f.status.eq(Status.ERR_LENGTH)
                                m.next = "DRAIN"
                            with m.Elif(length == 0):
                                m.next = "CRC0"
                            with m.Else():
                                m.next = "PAYLOAD"
                        elif state == "PAYLOAD":
                            m.d.comb += wr.en.eq(1)
                            m.d.sync += count.eq(count + 1)
                            with m.If(count == f.length - 1):
                                m.next = "CRC0"
                        if nxt is not None:
                            m.next = nxt
                    with m.Elif(timed_out):
                        report(Status.ERR_TIMEOUT)

            with m.State("CHECK"):                     # the CRC register settles here
                with m.If(check.match_detected):
                    report(Status.OK)
                with m.Else():
                    m.d.sync += f.status.eq(Status.ERR_CRC)
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(timed_out & ~self.i.valid):
                    m.d.sync += self.frame.valid.eq(1)
                    m.next = "HOLD"

            with m.State("HOLD"):
                with m.If(self.frame.ready):
                    m.d.sync += self.frame.valid.eq(0)
                    m.next = "HUNT"
        return m
