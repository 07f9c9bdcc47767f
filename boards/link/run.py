"""Run control: starting the core and streaming its input."""

from functools import partial

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int

from .core_if import ACT_SHAPE, SEGMENT_BITS
from .executor import accept_offset, answer, refuse
from .ledger import LedgerCall
from .ports import ExecutorSignature, LedgerPort, Op
from .scripts import Program, Script

__all__ = ["RunControl"]


class RunControl(wiring.Component):
    """Executes RUN and INPUT (``docs/host_link.md`` section 5) and times the run.

    RUN, with a model committed and no run active, strobes ``start`` with the segment (one
    cycle after the decision, from a flip-flop) and has the ledger count the run and clear its
    counters (:attr:`~.scripts.Program.RUN`). INPUT's bytes go to the core's ``act_in`` in
    order, each offset checked against the bytes taken so far, each byte counted, by the
    ledger. The run's cycles, from ``start`` to ``done``, are counted in ``cycles`` below 256,
    and by the ledger above: bit 8 of ``cycles`` is a carry the ledger has not added yet
    (``cycles_ack`` clears it in the cycle it does), so the ledger's word plus ``cycles`` is
    the count at any time.

    Parameters
    ----------
    max_payload : int
        Largest request payload (the command items' sizes).

    Members
    -------
    command : ``In(ExecutorSignature(max_payload))``
    ledger : ``Out(LedgerPort())``
    start, segment : ``Out(1)``, ``Out(8)``
    act_in : ``Out(stream.Signature(signed(8)))``
    core_busy, core_done : ``In(1)``
    model_valid : ``In(1)``
        A model is committed (RUN is refused without).
    busy, active, done, stalled : ``Out(1)``
        STATUS's flags (``busy``: a run started and not done); ``active``: ``busy`` or the
        core busy (COMMIT and RUN are refused).
    cycles : ``Out(9)``
    cycles_ack : ``In(1)``
    """

    def __init__(self, *, max_payload):
        check_int("max_payload", max_payload, minimum=16, maximum=0xFFFF)
        self.max_payload = max_payload
        super().__init__({
            "command": In(ExecutorSignature(max_payload)),
            "ledger": Out(LedgerPort()),
            "start": Out(1),
            "segment": Out(SEGMENT_BITS),
            "act_in": Out(stream.Signature(ACT_SHAPE)),
            "core_busy": In(1),
            "core_done": In(1),
            "model_valid": In(1),
            "busy": Out(1),
            "active": Out(1),
            "done": Out(1),
            "stalled": Out(1),
            "cycles": Out(9),
            "cycles_ack": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        items = self.command.command
        item = items.payload
        arg = item.arg
        ledger = self.ledger
        call = LedgerCall(m, ledger)

        running, done, stalled = Signal(), Signal(), Signal()
        cycles = Signal(9)
        start = Signal()                    # RUN reaches the core from a flip-flop
        m.d.sync += start.eq(0)
        m.d.comb += [self.start.eq(start), self.segment.eq(arg[24:]),
                     self.act_in.payload.eq(arg[24:]),
                     self.command.waiting.eq(self.act_in.valid & ~self.act_in.ready),
                     self.busy.eq(running), self.active.eq(running | self.core_busy),
                     self.done.eq(done), self.stalled.eq(stalled), self.cycles.eq(cycles)]
        with m.If(start):
            m.d.sync += [running.eq(1), cycles.eq(0)]
        with m.Elif(running):
            m.d.sync += cycles.eq(cycles + 1)
        with m.If(self.cycles_ack):
            m.d.sync += cycles[8].eq(0)
        with m.If(self.core_done):
            m.d.sync += [running.eq(0), done.eq(1)]

        respond = partial(answer, m, self.command)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(items.valid):
                    with m.If(item.op == Op.RUN):
                        m.next = "RUN_CHECK"
                    with m.Else():
                        m.next = "INPUT_CHECK"

            with m.State("RUN_CHECK"):
                refuse(m, self.command, [(~self.model_valid, Script.ERR_NO_MODEL_ZERO),
                                         (self.active, Script.ERR_BUSY_ZERO)])
                with m.Else():
                    m.d.sync += [start.eq(1), done.eq(0), stalled.eq(0)]
                    m.next = "RUN_COUNT"
            with m.State("RUN_COUNT"):              # the segment is valid with start
                with m.If(call(Program.RUN)):
                    respond(Script.OK_RUNS)

            with m.State("INPUT_CHECK"):            # the offset: the bytes taken so far?
                with m.If(~running):
                    respond(Script.ERR_NOT_RUNNING_ZERO)
                with m.Else():
                    with m.If(call(Program.CHECK_INPUT)):
                        accept_offset(m, self.command, [
                            (~ledger.zero, Script.ERR_SEQUENCE_IN_COUNT)],
                            Script.OK_IN_COUNT, "INPUT")
            with m.State("INPUT"):
                m.d.comb += self.act_in.valid.eq(items.valid)
                with m.If(self.act_in.valid & self.act_in.ready):
                    m.next = "INPUT_COUNT"
                with m.Elif(self.command.stalled):
                    m.d.sync += stalled.eq(1)
                    respond(Script.ERR_STALL_IN_COUNT)
            with m.State("INPUT_COUNT"):
                with m.If(call(Program.INPUT_BYTE)):
                    with m.If(item.last):
                        respond(Script.OK_IN_COUNT)
                    with m.Else():
                        m.d.comb += items.ready.eq(1)
                        m.next = "INPUT"
        return m
