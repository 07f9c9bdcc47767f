"""The ledger: the response words that rarely change, kept in block RAM instead of logic."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In

from sps_hw.checks import check_int

from .ports import LEDGER_DEPTH, LedgerRead, Word, store_layout

__all__ = ["StatusLedger"]

#: The counters: (strobe, word, increment, saturating half or None), served in this order.
COUNTERS = (("run", Word.RUNS, 1, None),
            ("frame_error", Word.ERRORS, 1, 0),
            ("rx_error", Word.ERRORS, 1 << 16, 1))


class StatusLedger(wiring.Component):
    """One block RAM of 32-bit words (:class:`~.ports.Word` addresses below
    :data:`~.ports.LEDGER_DEPTH`): the INFO words and constant arguments, the model tag, the
    open load's announced CRC-32 and the counters of STATUS.

    The counters (runs, frame errors and UART errors, the latter two saturating 16-bit halves
    of one word) are updated by read-modify-write through one adder, one update at a time: a
    strobe marks its counter pending, and pending updates go before reads, so a word is read
    whole. A counter's strobes must be at least 8 cycles apart (the link's are a byte time or a
    request apart). Reads and writes take turns: counter updates first, then stores, then the
    readers in order. After a reset the counters are cleared; the tag, like the committed
    model, survives.

    Parameters
    ----------
    init : list of int
        The words' initial values (the tag's is the model baked in at build time).

    Members
    -------
    read : ``In(LedgerRead()).array(2)``
        Word reads: the sender's, the image loader's.
    store : ``In(stream.Signature(store_layout()))``
        Words written whole: a committed model's tag, a load's announced CRC-32.
    run, frame_error, rx_error : ``In(1)``
        Strobes: a run started, a damaged frame arrived, the UART lost a byte.
    """

    def __init__(self, init):
        init = list(init)
        if len(init) > LEDGER_DEPTH:
            raise ValueError(f"init must have at most {LEDGER_DEPTH} words, not {len(init)}")
        for i, word in enumerate(init):
            check_int(f"init[{i}]", word, minimum=0, maximum=(1 << 32) - 1)
        self.init = init
        super().__init__({
            "read": In(LedgerRead()).array(2),
            "store": In(stream.Signature(store_layout())),
            **{name: In(1) for name, *_ in COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        # Reads and writes never meet on one word (the FSM does one or the other): no
        # read-during-write logic.
        m.submodules.mem = mem = memory.Memory(shape=32, depth=LEDGER_DEPTH, init=self.init,
                                               attrs={"no_rw_check": 1})
        wr, rd = mem.write_port(), mem.read_port()
        for read in self.read:
            m.d.comb += read.data.eq(rd.data)

        strobes = [getattr(self, name) for name, *_ in COUNTERS]
        pending = Signal(len(COUNTERS))
        which = Signal(range(len(COUNTERS)))            # the counter being updated
        counter_word = Signal(range(LEDGER_DEPTH))
        increment = Signal(32)
        saturated = Signal()
        with m.Switch(which):
            for i, (_, word, inc, half) in enumerate(COUNTERS):
                with m.Case(i):
                    m.d.comb += [counter_word.eq(word), increment.eq(inc)]
                    if half is not None:
                        m.d.comb += saturated.eq(rd.data.word_select(half, 16) == 0xFFFF)

        clearing, storing = Signal(), Signal()
        store = self.store
        m.d.comb += wr.data.eq(Mux(clearing, 0, Mux(storing, store.payload.data,
                                                    rd.data + increment)))
        def serve(read):
            m.d.comb += [rd.addr.eq(read.addr.payload), read.addr.ready.eq(1)]

        with m.FSM():
            for state, word, nxt in (("CLEAR_RUNS", Word.RUNS, "CLEAR_ERRORS"),
                                     ("CLEAR_ERRORS", Word.ERRORS, "IDLE")):
                with m.State(state):
                    m.d.comb += [clearing.eq(1), wr.addr.eq(word), wr.en.eq(1)]
                    m.next = nxt
            with m.State("IDLE"):
                with m.If(pending != 0):
                    for i in reversed(range(len(COUNTERS))):    # the first pending one
                        with m.If(pending[i]):
                            m.d.sync += which.eq(i)
                            m.d.comb += rd.addr.eq(COUNTERS[i][1])
                    m.next = "UPDATE"
                with m.Elif(store.valid):
                    m.d.comb += [storing.eq(1), wr.addr.eq(store.payload.word), wr.en.eq(1),
                                 store.ready.eq(1)]
                for read in self.read[:-1]:
                    with m.Elif(read.addr.valid):
                        serve(read)
                with m.Else():
                    serve(self.read[-1])
            with m.State("UPDATE"):                     # rd.data is the counter's word
                m.d.comb += [wr.addr.eq(counter_word), wr.en.eq(~saturated)]
                m.d.sync += pending.bit_select(which, 1).eq(0)
                m.next = "IDLE"
        for i, strobe in enumerate(strobes):
            with m.If(strobe):
                m.d.sync += pending[i].eq(1)
        return m
