"""The ledger: the response words that rarely change, kept in block RAM instead of logic."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In

from sps_hw.checks import check_int

from .ports import LEDGER_DEPTH, LedgerRead, Word, store_layout

__all__ = ["CLEARED", "COUNTERS", "SPACING", "STROBES", "StatusLedger"]

#: The counter updates: (strobe, word, increment (None: clear), saturating half or None),
#: served in this order.
COUNTERS = (("run", Word.RUNS, 1, None),
            ("run", Word.RUN_CYCLES, None, None),       # a run's cycles count from 0
            ("cycles", Word.RUN_CYCLES, 256, None),     # the low byte is the run control's
            ("frame_error", Word.ERRORS, 1, 0),
            ("rx_error", Word.ERRORS, 1 << 16, 1))
STROBES = tuple(dict.fromkeys(name for name, *_ in COUNTERS))
#: The words cleared after a reset.
CLEARED = (Word.RUNS, Word.RUN_CYCLES, Word.ERRORS)
#: Cycles between two strobes of one kind: every update pending (three cycles each) is made.
SPACING = 3 * len(COUNTERS) + 1


class StatusLedger(wiring.Component):
    """One block RAM of 32-bit words (:class:`~.ports.Word` addresses below
    :data:`~.ports.LEDGER_DEPTH`): the INFO words and constant arguments, the model tag, the
    open load's announced CRC-32 and the counters of STATUS.

    The block RAM's read data goes straight into a register (``read.data``, the word two cycles
    after its address was taken), and nothing but that register follows it. The counters (runs,
    the run's cycles above the low byte, frame errors and UART errors, the latter two
    saturating 16-bit halves of one word) are updated by read-modify-write through one adder
    behind that register, one update at a time (three cycles): a strobe (registered, so that
    no decision of another stage waits on it) marks its updates pending, and reads wait while
    any is pending or a strobe is on its way, so a word is read whole and up to date. A strobe
    must come at least :data:`SPACING` (16) cycles after the last of its kind (the link's are a
    byte time, 256 cycles or a request apart). Stores go after the updates, then the readers
    in order. After a reset the counters are cleared; the tag, like the committed model,
    survives.

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
    run, cycles, frame_error, rx_error : ``In(1)``
        Strobes: a run started, it ran 256 more cycles, a damaged frame arrived, the UART lost
        a byte.
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
            **{name: In(1) for name in STROBES},
        })

    def elaborate(self, platform):
        m = Module()
        # Reads and writes never meet on one word (the FSM does one or the other): no
        # read-during-write logic.
        m.submodules.mem = mem = memory.Memory(shape=32, depth=LEDGER_DEPTH, init=self.init,
                                               attrs={"no_rw_check": 1})
        wr, rd = mem.write_port(), mem.read_port()
        data = Signal(32)                               # the read port's register
        m.d.sync += data.eq(rd.data)
        for read in self.read:
            m.d.comb += read.data.eq(data)

        strobes = Signal(len(COUNTERS))
        m.d.sync += strobes.eq(Cat(getattr(self, name) for name, *_ in COUNTERS))
        pending, made = Signal(len(COUNTERS)), Signal(len(COUNTERS))
        which = Signal(range(len(COUNTERS)))            # the update being made
        counter_word = Signal(range(LEDGER_DEPTH))
        increment = Signal(32)
        saturated, zero, clearing, storing = Signal(), Signal(), Signal(), Signal()
        with m.Switch(which):
            for i, (_, word, inc, half) in enumerate(COUNTERS):
                with m.Case(i):
                    m.d.comb += counter_word.eq(word)
                    if inc is None:
                        m.d.comb += zero.eq(1)
                    else:
                        m.d.comb += increment.eq(inc)
                    if half is not None:
                        m.d.comb += saturated.eq(data.word_select(half, 16) == 0xFFFF)

        store = self.store
        m.d.comb += wr.data.eq(Mux(clearing, 0, Mux(storing, store.payload.data,
                                                    data + increment)))

        def serve(read):
            m.d.comb += [rd.addr.eq(read.addr.payload), read.addr.ready.eq(1)]

        cleared = Signal(range(len(CLEARED)))
        with m.FSM():
            with m.State("CLEAR"):                      # after a reset
                m.d.comb += [clearing.eq(1), wr.en.eq(1)]
                m.d.sync += cleared.eq(cleared + 1)
                with m.Switch(cleared):
                    for i, word in enumerate(CLEARED):
                        with m.Case(i):
                            m.d.comb += wr.addr.eq(word)
                with m.If(cleared == len(CLEARED) - 1):
                    m.next = "IDLE"
            with m.State("IDLE"):
                with m.If(pending != 0):
                    for i in reversed(range(len(COUNTERS))):    # the first pending one
                        with m.If(pending[i]):
                            m.d.sync += which.eq(i)
                            m.d.comb += rd.addr.eq(COUNTERS[i][1])
                    m.next = "READ"
                with m.Elif(store.valid):
                    m.d.comb += [storing.eq(1), wr.addr.eq(store.payload.word), wr.en.eq(1),
                                 store.ready.eq(1)]
                with m.Elif((strobes != 0) | self.cycles):  # an update on its way (a carry
                    pass                                    # as the low byte wraps)
                for read in self.read[:-1]:
                    with m.Elif(read.addr.valid):
                        serve(read)
                with m.Else():
                    serve(self.read[-1])
            with m.State("READ"):                       # the counter's word into ``data``
                m.next = "UPDATE"
            with m.State("UPDATE"):                     # ``data`` is the counter's word
                m.d.comb += [wr.addr.eq(counter_word), wr.en.eq(~saturated), clearing.eq(zero),
                             made.eq(1 << which)]
                m.next = "IDLE"
        m.d.sync += pending.eq(pending & ~made | strobes)
        return m
