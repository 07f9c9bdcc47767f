"""Run control: starting the core and streaming its input."""

from functools import partial

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int

from ..protocol import Status
from .core_if import ACT_SHAPE, SEGMENT_BITS
from .executor import accept_offset, answer, refuse
from .ports import ExecutorSignature, Op, RunState, Word

__all__ = ["RunControl"]


class RunControl(wiring.Component):
    """Executes RUN and INPUT (``docs/host_link.md`` section 5) and times the run.

    RUN, with a model committed and no run active, strobes ``start`` with the segment (one
    cycle after the decision, from a flip-flop), clears the run's counters, and strobes
    ``restart`` (the output ring) and ``started`` (the ledger's run count). INPUT's bytes go to
    the core's ``act_in`` in order, each offset checked against the bytes taken so far. The
    run's cycles, from ``start`` to ``done``, are counted in ``state.cycles`` (the low byte) and
    by the ledger, which ``carry`` tells of every 256.

    Parameters
    ----------
    count_bits : int
        Width of the input byte counter.
    max_payload : int
        Largest request payload (the command items' sizes).

    Members
    -------
    command : ``In(ExecutorSignature(max_payload))``
    start, segment : ``Out(1)``, ``Out(8)``
    act_in : ``Out(stream.Signature(signed(8)))``
    core_busy, core_done : ``In(1)``
    model_valid : ``In(1)``
        A model is committed (RUN is refused without).
    state : ``Out(RunState(count_bits))``
    restart, started, carry : ``Out(1)``
    """

    def __init__(self, *, count_bits, max_payload):
        check_int("count_bits", count_bits, minimum=8, maximum=32)
        check_int("max_payload", max_payload, minimum=16, maximum=0xFFFF)
        self.count_bits, self.max_payload = count_bits, max_payload
        super().__init__({
            "command": In(ExecutorSignature(max_payload)),
            "start": Out(1),
            "segment": Out(SEGMENT_BITS),
            "act_in": Out(stream.Signature(ACT_SHAPE)),
            "core_busy": In(1),
            "core_done": In(1),
            "model_valid": In(1),
            "state": Out(RunState(count_bits)),
            "restart": Out(1),
            "started": Out(1),
            "carry": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cw = self.count_bits
        items = self.command.command
        item = items.payload
        arg = item.arg
        state = self.state

        running, done, stalled = Signal(), Signal(), Signal()
        cycles = Signal(8)
        in_count = Signal(cw)
        seq = Signal()
        start = Signal()                    # RUN reaches the core from a flip-flop
        m.d.sync += start.eq(0)
        m.d.comb += [self.start.eq(start), self.segment.eq(arg[24:]),
                     self.act_in.payload.eq(arg[24:]),
                     self.command.waiting.eq(self.act_in.valid & ~self.act_in.ready),
                     state.busy.eq(running), state.active.eq(running | self.core_busy),
                     state.done.eq(done), state.stalled.eq(stalled), state.cycles.eq(cycles),
                     state.in_count.eq(in_count)]
        with m.If(start):
            m.d.sync += [running.eq(1), cycles.eq(0)]
        with m.Elif(running):
            m.d.sync += cycles.eq(cycles + 1)
            m.d.comb += self.carry.eq(cycles == 0xFF)
        with m.If(self.core_done):
            m.d.sync += [running.eq(0), done.eq(1)]

        respond = partial(answer, m, self.command)

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += seq.eq((arg[:cw] != in_count) | (arg[cw:] != 0))
                with m.If(items.valid):
                    with m.If(item.op == Op.RUN):
                        m.next = "RUN_CHECK"
                    with m.Else():
                        m.next = "INPUT_CHECK"

            with m.State("RUN_CHECK"):
                refuse(m, self.command, [(~self.model_valid, Status.ERR_NO_MODEL, Word.ARG),
                                         (state.active, Status.ERR_BUSY, Word.ARG)])
                with m.Else():
                    m.d.comb += [self.restart.eq(1), self.started.eq(1)]
                    m.d.sync += [start.eq(1), done.eq(0), stalled.eq(0), in_count.eq(0)]
                    m.next = "RUN_START"
            with m.State("RUN_START"):              # the segment is valid with start
                respond(Status.OK, Word.RUNS)

            with m.State("INPUT_CHECK"):            # the offset
                accept_offset(m, self.command, [
                    (~running, Status.ERR_NOT_RUNNING, Word.ARG),
                    (seq, Status.ERR_SEQUENCE, Word.IN_COUNT)], Word.IN_COUNT, "INPUT")
            with m.State("INPUT"):
                m.d.comb += [self.act_in.valid.eq(items.valid),
                             items.ready.eq(self.act_in.ready)]
                with m.If(self.act_in.valid & self.act_in.ready):
                    m.d.sync += in_count.eq(in_count + 1)
                    with m.If(item.last):
                        respond(Status.OK, Word.IN_COUNT)
                with m.Elif(self.command.stalled):
                    m.d.sync += stalled.eq(1)
                    respond(Status.ERR_STALL, Word.IN_COUNT)
        return m
