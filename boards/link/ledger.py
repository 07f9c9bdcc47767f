"""The ledger: one block RAM of response words, scripts and programs, and the one adder that
executes them (``docs/host_link.md`` section 8)."""

import operator
from functools import reduce

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int
from sps_hw.memories import NO_RW_CHECK, read_port

from .ports import LEDGER_DEPTH, LedgerPort, Source, op_layout
from .scripts import Data, Program

__all__ = ["COUNTERS", "LedgerCall", "StatusLedger"]

#: The counter updates, first served first: (member, program, acknowledged). An acknowledged
#: one is a level its owner holds (the carry of a low count) and drops with ``<member>_ack``,
#: in the cycle its ledger word is written; the others are strobes the ledger keeps pending.
COUNTERS = (("frame_error", Program.FRAME_ERROR, False), ("rx_error", Program.RX_ERROR, False),
            ("cycles", Program.CYCLES, True), ("written", Program.WRITTEN, True))


class StatusLedger(wiring.Component):
    """One block RAM of 32-bit words laid out by :mod:`~.scripts`, and the op sequencer
    behind it.

    An op (:func:`~.ports.op_layout`) takes six cycles: the RAM reads it (two cycles: the
    block RAM's data goes straight into a register); it is decoded while the RAM reads its
    word ``A`` (:attr:`~.scripts.Data.ZERO` for ``zero_a``) and the sources it selects are
    ORed into the register ``B`` (two cycles); ``A + B + cin`` goes into ``result``; the
    result is written back (``write``). Every step begins and ends at a register, so the adder
    is the longest path. A program runs from its address until an op with ``last`` (a
    ``single`` request: that op alone), ``6 * ops`` cycles. Counter updates go first
    (:data:`COUNTERS`), then the callers' programs (``call``: the sender's script ops, the
    executors' checks); after a reset the ledger first runs :attr:`Program.RESET`, which
    clears the counters (the model tag, like the committed model, survives).

    Parameters
    ----------
    init : list of int
        The words (:func:`~.scripts.image`).
    ring_bit : int
        The bit of :attr:`~.ports.Source.RING` (the output ring's size times two).

    Members
    -------
    call : ``In(LedgerPort())``
    sources : ``In(32).array(len(Source))``
        The :class:`~.ports.Source` words (the constants among them are the ledger's own).
    frame_error, rx_error : ``In(1)``
        Strobes: a damaged frame arrived, the UART lost a byte.
    cycles, written : ``In(1)``
        Carries of the run's cycle count (256) and of the output byte count (``ring_bit``).
    cycles_ack, written_ack : ``Out(1)``
        The carry has been added to its ledger word.
    """

    def __init__(self, init, *, ring_bit):
        init = list(init)
        if len(init) > LEDGER_DEPTH:
            raise ValueError(f"init must have at most {LEDGER_DEPTH} words, not {len(init)}")
        for i, word in enumerate(init):
            check_int(f"init[{i}]", word, minimum=0, maximum=(1 << 32) - 1)
        check_int("ring_bit", ring_bit, minimum=1, maximum=31)
        self.init, self.ring_bit = init, ring_bit
        super().__init__({
            "call": In(LedgerPort()),
            "sources": In(32).array(len(Source)),
            **{name: In(1) for name, *_ in COUNTERS},
            **{f"{name}_ack": Out(1) for name, _, ack in COUNTERS if ack},
        })

    def elaborate(self, platform):
        m = Module()
        # The RAM is read and written in different cycles of an op, and a word written is
        # read by a later op only: no read-during-write logic.
        m.submodules.mem = mem = memory.Memory(shape=32, depth=LEDGER_DEPTH, init=self.init,
                                               attrs=NO_RW_CHECK)
        wr, rd = mem.write_port(), read_port(m, mem, "ledger")
        call = self.call

        constants = {Source.ONE: 1, Source.C256: 1 << 8, Source.C64K: 1 << 16,
                     Source.RING: 1 << self.ring_bit}
        sources = [constants.get(s, self.sources[s]) for s in Source]

        data = Signal(32)               # the RAM's read register: the op, then its word A
        op = Signal(op_layout())
        ir = Signal(op_layout())        # the op being executed
        b = Signal(32)
        total = Signal(33)
        result, carry = Signal(32), Signal()
        zero_lo, zero_hi = Signal(), Signal()
        pc = Signal(range(LEDGER_DEPTH), init=Program.RESET)
        single = Signal()
        owner = Signal(len(COUNTERS) + 1)       # one-hot: the counter or the caller running
        pending = Signal(len(COUNTERS))
        grant = Signal(len(COUNTERS))           # the first pending one
        m.d.comb += [op.eq(data), total.eq(data + b + ir.cin),
                     grant.eq(pending & (~pending + 1)),
                     call.result.eq(result), call.carry.eq(carry),
                     call.zero.eq(zero_lo & zero_hi), call.last.eq(ir.last),
                     call.busy.eq(owner[-1]), wr.addr.eq(ir.addr), wr.data.eq(result)]
        m.d.sync += data.eq(rd.data)
        idle = Signal()
        for i, (name, _, ack) in enumerate(COUNTERS):
            if ack:                             # the owner holds the request
                m.d.comb += pending[i].eq(getattr(self, name))
            else:                               # a strobe, kept until served
                kept = Signal(name=f"{name}_pending")
                m.d.sync += kept.eq(kept & ~(idle & grant[i]) | getattr(self, name))
                m.d.comb += pending[i].eq(kept)

        with m.FSM(init="FETCH"):               # after a reset: Program.RESET
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                with m.If(pending.any()):
                    for i, (_, program, _) in enumerate(COUNTERS):
                        with m.If(grant[i]):
                            m.d.sync += pc.eq(program)
                    m.d.sync += [owner.eq(grant), single.eq(0)]
                    m.next = "FETCH"
                with m.Else():
                    m.d.comb += call.program.ready.eq(1)
                    with m.If(call.program.valid):
                        m.d.sync += [pc.eq(call.program.payload.addr),
                                     single.eq(call.program.payload.single),
                                     owner.eq(1 << len(COUNTERS))]
                        m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += rd.addr.eq(pc)
                m.next = "READ_OP"
            with m.State("READ_OP"):
                m.next = "DECODE"
            with m.State("DECODE"):             # data is the op: read A, gather B
                m.d.comb += rd.addr.eq(Mux(op.zero_a, Data.ZERO, op.addr))
                m.d.sync += [ir.eq(op), b.eq(reduce(operator.or_, (
                    Mux(op.sel[s], value, 0) for s, value in enumerate(sources))))]
                m.next = "READ_A"
            with m.State("READ_A"):
                m.next = "ADD"
            with m.State("ADD"):
                m.d.sync += [Cat(result, carry).eq(total), zero_lo.eq(total[:16] == 0),
                             zero_hi.eq(total[16:32] == 0)]
                m.next = "WRITE"
            with m.State("WRITE"):
                # A saturating op adds 1 to one half of the error word: no write if it wrapped.
                wraps = ir.sat & (ir.sel[Source.ONE] & zero_lo | ir.sel[Source.C64K] & zero_hi)
                m.d.comb += wr.en.eq(ir.write & ~wraps)
                for i, (name, _, ack) in enumerate(COUNTERS):
                    if ack:
                        m.d.comb += getattr(self, f"{name}_ack").eq(owner[i])
                with m.If(ir.last | single):
                    m.d.sync += owner.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"
        return m


class LedgerCall:
    """Calling the ledger from inside an FSM state of a stage (its :class:`~.ports.LedgerPort`
    ``port``): ``finished = call(program)`` requests the program once and is true in the
    cycle the program has run (its result and flags are valid) and ``also`` holds; the state
    then moves on. One flip-flop (``called``) for all the calls of a stage."""

    def __init__(self, m, port):
        self.m, self.port = m, port
        self.called = Signal()

    def __call__(self, program, *, single=False, also=True):
        m, port = self.m, self.port
        m.d.comb += [port.program.valid.eq(~self.called),
                     port.program.payload.addr.eq(program),
                     port.program.payload.single.eq(single)]
        with m.If(port.program.valid & port.program.ready):
            m.d.sync += self.called.eq(1)
        finished = self.called & ~port.busy & also
        with m.If(finished):
            m.d.sync += self.called.eq(0)
        return finished
