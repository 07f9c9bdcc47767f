"""Response sending: a result becomes a frame on the UART."""

import operator
from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int

from ..protocol import REGIONS, RESPONSE, SYNC, Status
from .ports import (
    LEDGER_DEPTH,
    OUTPUT_HEADER,
    WORD_BITS,
    CRCPort,
    Kind,
    LedgerRead,
    LoadState,
    OutputState,
    RunState,
    Word,
    WordShift,
    response_layout,
)

__all__ = ["INFO_WORDS", "WORDS", "ResponseSender"]

#: The number of INFO words (``docs/host_link.md`` section 3).
INFO_WORDS = 6 + 2 * len(REGIONS)
#: The words each kind of response sends after its status byte.
WORDS = {
    Kind.STATUS: (Word.STATUS0, Word.TAG, Word.RUNS, Word.RUN_CYCLES, Word.CORE_CYCLES,
                  Word.IN_COUNT, Word.WRITTEN, Word.ERRORS),
    Kind.OUTPUT: (Word.STATUS0, Word.WRITTEN),
    Kind.INFO: tuple(Word.INFO + i for i in range(INFO_WORDS)),
}
assert 1 + 4 * len(WORDS[Kind.OUTPUT]) == OUTPUT_HEADER


class Phase(enum.Enum, shape=3):
    HEADER = 0          # SYNC, CMD, LEN (one word)
    STATUS = 1          # the status byte
    WORDS = 2
    DATA = 3            # OUTPUT's bytes
    CRC = 4             # CRC-16, most significant byte first


class ResponseSender(wiring.Component):
    """Sends each response (:func:`~.ports.response_layout`) as a frame: header, status byte,
    the words its kind names, OUTPUT's data bytes and the CRC-16.

    Each word is read whole, into one shift register, before its first byte goes out: from the
    ledger (:class:`~.ledger.StatusLedger`) or from the registers of the other stages, so a
    counter is never torn. Each byte goes into the CRC-16 one bit per cycle before the UART
    takes it. ``response`` is taken when the last byte has gone out.

    Parameters
    ----------
    max_payload : int
        Largest payload (the response layout's ``ndata``).
    count_bits : int
        Width of the stream byte counters.
    n_regions : int
        Number of image regions (STATUS's verified mask).

    Members
    -------
    response : ``In(stream.Signature(response_layout(max_payload)))``
    o : ``Out(stream.Signature(8))``
        To the UART.
    words : ``Out(WordShift())``
        The shift register each word goes through (:class:`~.words.WordShifter`).
    crc : ``Out(CRCPort(16))``
        The frame receiver's CRC-16 register (free while a frame is held).
    ledger : ``Out(LedgerRead())``
    data : ``In(stream.Signature(8))``
        OUTPUT's data bytes.
    load, run, output, core_cycles : ``In``
        The words of responses: the loader's, the run's and the output ring's state, and the
        core's cycle count.
    error : ``Out(1)``
        Strobe: an error response starts (for an LED).
    """

    def __init__(self, *, max_payload, count_bits, n_regions, fill_bits):
        check_int("max_payload", max_payload, minimum=OUTPUT_HEADER + 1, maximum=0xFFFF)
        check_int("count_bits", count_bits, minimum=8, maximum=32)
        check_int("n_regions", n_regions, minimum=1, maximum=8)
        check_int("fill_bits", fill_bits, minimum=1, maximum=32)
        self.max_payload, self.count_bits, self.n_regions = max_payload, count_bits, n_regions
        self.fill_bits = fill_bits
        super().__init__({
            "response": In(stream.Signature(response_layout(max_payload))),
            "o": Out(stream.Signature(8)),
            "words": Out(WordShift()),
            "crc": Out(CRCPort(16)),
            "ledger": Out(LedgerRead()),
            "data": In(stream.Signature(8)),
            "load": In(LoadState(n_regions, fill_bits)),
            "run": In(RunState(count_bits)),
            "output": In(OutputState(count_bits)),
            "core_cycles": In(32),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rsp = self.response.payload
        res = rsp.result
        load, run, output = self.load, self.run, self.output

        phase = Signal(Phase)
        bsub = Signal(2)                    # byte of the word
        index = Signal(range(INFO_WORDS))   # word of the response
        left = Signal.like(res.ndata)       # data bytes still to send
        nbit = Signal(3)                    # bit of the byte going into the CRC
        shift = self.words.value            # the word being sent, low byte first
        last_error = Signal(4)
        tx_byte = Signal(8)
        m.d.comb += tx_byte.eq(shift[:8])
        with m.If(phase == Phase.DATA):
            m.d.comb += tx_byte.eq(self.data.payload)

        # Which word comes next, and how many there are.
        word_at = Signal(WORD_BITS)
        last_word = Signal()
        length = Signal(16)
        with m.Switch(phase):
            with m.Case(Phase.HEADER):
                m.d.comb += word_at.eq(Word.HEADER)
            with m.Case(Phase.STATUS):
                m.d.comb += word_at.eq(Word.STATUS_BYTE)
            with m.Case(Phase.CRC):
                m.d.comb += word_at.eq(Word.CRC)
        base = Signal(range(1 + 4 * INFO_WORDS + 1))    # LEN without OUTPUT's data
        m.d.comb += length.eq(base + res.ndata)         # ndata is 0 but for OUTPUT
        with m.Switch(res.kind):
            with m.Case(Kind.GENERIC):
                m.d.comb += [last_word.eq(1), base.eq(5)]
                with m.If(phase == Phase.WORDS):
                    m.d.comb += word_at.eq(res.word)
            for kind, words in WORDS.items():
                with m.Case(kind):
                    m.d.comb += [last_word.eq(index == len(words) - 1),
                                 base.eq(1 + 4 * len(words))]
                    with m.If(phase == Phase.WORDS):
                        with m.Switch(index):
                            for i, word in enumerate(words):
                                with m.Case(i):
                                    m.d.comb += word_at.eq(word)

        # Every word a response can carry that is not in the ledger.
        crc = self.crc.value
        flags = Cat(load.model_valid, run.busy, run.done, load.loading, run.stalled)
        registers = {
            Word.HEADER: Cat(Const(SYNC, 8), rsp.cmd | RESPONSE, length),
            Word.STATUS_BYTE: res.status,
            Word.CRC: Cat(crc[8:], crc[:8]),
            Word.ARG: res.arg,
            Word.STATUS0: Cat(flags, Const(0, 3), load.verified, Const(0, 8 - self.n_regions),
                              last_error),
            Word.RUN_CYCLES: run.cycles,          # with the ledger's word: ORed
            Word.CORE_CYCLES: self.core_cycles,
            Word.IN_COUNT: run.in_count,
            Word.WRITTEN: output.written,
            Word.RELEASED: output.released,
            Word.FILL: load.fill,
            Word.IMAGE_CRC: load.crc,
            Word.VERIFIED: load.verified,
        }
        # The source of the next word, one-hot (registered): the multiplexer is an AND-OR
        # without address decoders.
        sources = [*registers.values(), self.ledger.data]
        chosen = Signal(len(sources))
        word = reduce(operator.or_, (Mux(chosen[i], value, 0) for i, value in enumerate(sources)))
        m.d.comb += [self.ledger.addr.payload.eq(word_at), self.words.word.eq(word)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += [phase.eq(Phase.HEADER), index.eq(0), left.eq(res.ndata)]
                with m.If(self.response.valid):
                    with m.If(res.status != Status.OK):
                        m.d.comb += self.error.eq(1)
                        m.d.sync += last_error.eq(res.status)
                    m.next = "SELECT"
            with m.State("SELECT"):
                m.d.sync += [bsub.eq(0),
                             chosen.eq(Cat(*(word_at == at for at in registers),
                                           word_at < LEDGER_DEPTH))]
                m.next = "FETCH"
            with m.State("FETCH"):              # a ledger word arrives two cycles later
                with m.If(chosen[-1]):
                    m.d.comb += self.ledger.addr.valid.eq(1)
                    with m.If(self.ledger.addr.ready):
                        m.next = "WAIT"
                with m.Else():
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.words.load.eq(1)
                m.d.sync += nbit.eq(0)
                m.next = "CRC"
            with m.State("CRC"):                # CMD..data into the CRC-16, MSB first
                with m.If((phase == Phase.HEADER) & (bsub == 0)):
                    m.d.comb += self.crc.start.eq(1)        # SYNC is not part of it
                    m.next = "SEND"
                with m.Elif(phase == Phase.CRC):
                    m.next = "SEND"
                with m.Elif((phase != Phase.DATA) | self.data.valid):
                    m.d.comb += [self.crc.valid.eq(1),
                                 self.crc.data.eq(tx_byte.bit_select(~nbit, 1))]
                    m.d.sync += nbit.eq(nbit + 1)
                    with m.If(nbit == 7):
                        m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(tx_byte)]
                with m.If(self.o.ready):
                    m.d.comb += self.words.shift.eq(1)
                    m.d.sync += [bsub.eq(bsub + 1), nbit.eq(0)]
                    m.next = "CRC"
                    with m.Switch(phase):
                        with m.Case(Phase.HEADER):
                            with m.If(bsub == 3):
                                m.d.sync += phase.eq(Phase.STATUS)
                                m.next = "SELECT"
                        with m.Case(Phase.STATUS):
                            m.d.sync += phase.eq(Phase.WORDS)
                            m.next = "SELECT"
                        with m.Case(Phase.WORDS):
                            with m.If(bsub == 3):
                                m.d.sync += index.eq(index + 1)
                                m.next = "SELECT"
                                with m.If(last_word & (left != 0)):
                                    m.d.sync += phase.eq(Phase.DATA)
                                    m.next = "CRC"
                                with m.Elif(last_word):
                                    m.d.sync += phase.eq(Phase.CRC)
                        with m.Case(Phase.DATA):
                            m.d.comb += self.data.ready.eq(1)
                            m.d.sync += left.eq(left - 1)
                            with m.If(left == 1):
                                m.d.sync += phase.eq(Phase.CRC)
                                m.next = "SELECT"
                        with m.Case(Phase.CRC):
                            with m.If(bsub == 1):
                                m.d.comb += self.response.ready.eq(1)
                                m.next = "IDLE"
        return m
