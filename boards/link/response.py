"""Response sending: a result becomes a frame on the UART."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int

from ..protocol import SYNC
from .ledger import LedgerCall
from .ports import OUTPUT_HEADER, CRCPort, LedgerPort, WordShift, response_layout
from .scripts import Script

__all__ = ["ResponseSender"]


class Phase(enum.Enum, shape=3):
    SYNC = 0
    HEADER = 1          # CMD, LEN, the status byte (one word)
    WORDS = 2
    DATA = 3            # OUTPUT's bytes
    CRC = 4             # CRC-16, most significant byte first


class ResponseSender(wiring.Component):
    """Sends each response (:func:`~.ports.response_layout`) as a frame: SYNC, the words of its
    script (the first: CMD, LEN and the status byte), OUTPUT's data bytes and the CRC-16.

    Each word is one op of the response's script (:mod:`~.scripts`) that the ledger runs into
    the word shifter, whole, before its first byte goes out, so a counter is never torn; the
    CRC's op is the ledger's too (the response's command byte, data length and CRC are its
    sources). Each byte goes into the CRC-16 one bit per cycle (from a flip-flop) before the
    UART takes it. ``response`` is taken when the last byte has gone out.

    Parameters
    ----------
    max_payload : int
        Largest payload.

    Members
    -------
    response : ``In(stream.Signature(response_layout()))``
    o : ``Out(stream.Signature(8))``
        To the UART.
    words : ``Out(WordShift())``
        The shift register each word goes through (:class:`~.words.WordShifter`).
    crc : ``Out(CRCPort(16))``
        The frame receiver's CRC-16 register (free while a frame is held).
    ledger : ``Out(LedgerPort())``
    data : ``In(stream.Signature(8))``
        OUTPUT's data bytes.
    more : ``In(1)``
        OUTPUT's data bytes remain (they follow the words).
    error : ``Out(1)``
        Strobe: an error response's status byte goes out (for an LED).
    last_error : ``Out(4)``
        The status of the last error response (STATUS word 0).
    """

    def __init__(self, *, max_payload):
        check_int("max_payload", max_payload, minimum=OUTPUT_HEADER + 1, maximum=0xFFFF)
        self.max_payload = max_payload
        super().__init__({
            "response": In(stream.Signature(response_layout())),
            "o": Out(stream.Signature(8)),
            "words": Out(WordShift()),
            "crc": Out(CRCPort(16)),
            "ledger": Out(LedgerPort()),
            "data": In(stream.Signature(8)),
            "more": In(1),
            "error": Out(1),
            "last_error": Out(4),
        })

    def elaborate(self, platform):
        m = Module()
        rsp = self.response.payload
        call = LedgerCall(m, self.ledger)

        phase = Signal(Phase)
        pc = Signal.like(rsp.script)        # the script's next op
        last = Signal()                     # the word is the script's last
        bsub = Signal(2)                    # byte of the word
        nbit = Signal(4)                    # bit of the byte going into the CRC (8: done)
        bit = Signal()                      # that bit, from a flip-flop
        tx_byte = Signal(8)
        m.d.comb += tx_byte.eq(Mux(phase == Phase.DATA, self.data.payload,
                                   Mux(phase == Phase.SYNC, SYNC, self.words.value[:8])))
        m.d.sync += bit.eq(tx_byte.bit_select(~nbit[:3], 1))
        m.d.comb += self.words.word.eq(self.ledger.result)

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += [phase.eq(Phase.SYNC), pc.eq(rsp.script)]
                with m.If(self.response.valid):
                    m.d.comb += self.crc.start.eq(1)        # SYNC is not part of it
                    m.next = "SEND"
            with m.State("WORD"):               # the ledger puts the next word in the shifter
                with m.If(call(Mux(phase == Phase.CRC, Script.CRC, pc), single=True)):
                    m.d.comb += self.words.load.eq(1)
                    m.d.sync += [bsub.eq(0), nbit.eq(0), last.eq(self.ledger.last)]
                    m.next = "CRC"
            with m.State("CRC"):                # CMD..data into the CRC-16, MSB first
                with m.If(phase == Phase.CRC):
                    m.next = "SEND"
                with m.Elif((phase == Phase.DATA) & ~self.more):
                    m.d.sync += phase.eq(Phase.CRC)
                    m.next = "WORD"
                with m.Elif((phase != Phase.DATA) | self.data.valid):
                    # nbit 0 puts the first bit into ``bit``; 1..8 shift them in.
                    m.d.comb += [self.crc.valid.eq(nbit != 0), self.crc.data.eq(bit)]
                    m.d.sync += nbit.eq(nbit + 1)
                    with m.If(nbit == 8):
                        m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(tx_byte)]
                with m.If(self.o.ready):
                    m.d.comb += self.words.shift.eq(1)
                    m.d.sync += [bsub.eq(bsub + 1), nbit.eq(0)]
                    m.next = "CRC"
                    with m.Switch(phase):
                        with m.Case(Phase.SYNC):
                            m.d.sync += phase.eq(Phase.HEADER)
                            m.next = "WORD"
                        with m.Case(Phase.HEADER):
                            with m.If(bsub == 3):       # the status byte
                                with m.If(tx_byte[:4] != 0):
                                    m.d.comb += self.error.eq(1)
                                    m.d.sync += self.last_error.eq(tx_byte[:4])
                                m.d.sync += [phase.eq(Phase.WORDS), pc.eq(pc + 1)]
                                m.next = "WORD"
                        with m.Case(Phase.WORDS):
                            with m.If(bsub == 3):
                                m.d.sync += pc.eq(pc + 1)
                                m.next = "WORD"
                                with m.If(last & self.more):
                                    m.d.sync += phase.eq(Phase.DATA)
                                    m.next = "CRC"
                                with m.Elif(last):
                                    m.d.sync += phase.eq(Phase.CRC)
                        with m.Case(Phase.DATA):
                            m.d.comb += self.data.ready.eq(1)
                        with m.Case(Phase.CRC):
                            with m.If(bsub == 1):
                                m.d.comb += self.response.ready.eq(1)
                                m.next = "IDLE"
        return m
