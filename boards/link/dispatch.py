"""Command dispatch: from a checked frame to the items of one command for its executor."""

import operator
from functools import reduce

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int

from ..protocol import MIN_PAYLOAD_LENGTH, PAYLOAD_LENGTH, Cmd, Status
from .framing import frame_layout, payload_layout
from .ports import ArgumentShift, ExecutorSignature, Op, StallTimer, count_width, response_layout
from .scripts import Script

__all__ = ["EXECUTORS", "CommandDispatcher"]

#: The executor port and the op of every command that has an executor.
EXECUTORS = {
    Cmd.DISCARD: ("load", Op.DISCARD), Cmd.LOAD_BEGIN: ("load", Op.LOAD_BEGIN),
    Cmd.LOAD_DATA: ("load", Op.LOAD_DATA), Cmd.LOAD_END: ("load", Op.LOAD_END),
    Cmd.COMMIT: ("load", Op.COMMIT), Cmd.RUN: ("run", Op.RUN), Cmd.INPUT: ("run", Op.INPUT),
    Cmd.OUTPUT: ("output", Op.OUTPUT),
}
PORTS = ("load", "run", "output")


class CommandDispatcher(wiring.Component):
    """Answers damaged frames, unknown commands, wrong lengths, INFO and STATUS itself; shifts
    the payload of every other command into the word shifter and hands its arguments, then its
    data bytes, as items (:func:`~.ports.command_layout`) to the command's executor, and
    forwards the executor's result to the sender.

    The frame is held (and with it the payload and the CRC-16 register the sender uses) until
    the response has been sent. An executor's result ends its command (the payload bytes it
    did not take are dropped); the dispatcher keeps it for the sender.

    Parameters
    ----------
    max_payload : int
        Largest ``LEN``.

    Members
    -------
    frame : ``In(stream.Signature(frame_layout))``
        Checked frames from :class:`~.framing.FrameReceiver`; taken when answered.
    payload : ``In(stream.Signature(payload_layout))``
        The frame's payload bytes.
    arguments : ``Out(ArgumentShift())``
        The shift register the argument bytes go into (:class:`~.words.WordShifter`).
    hold : ``Out(StallTimer())``
        The receiver's idle counter, timing an executor that waits for the core.
    load, run, output : ``Out(ExecutorSignature(max_payload))``
        The executors: image loader, run control, output readback.
    response : ``Out(stream.Signature(response_layout()))``
        To the sender; taken when the response has been sent.
    arg : ``Out(8)``
        The argument of the dispatcher's own refusals: the command byte (unknown), the
        expected length (wrong length).
    frame_error : ``Out(1)``
        Strobe: a damaged frame arrived (STATUS counts them).
    """

    def __init__(self, *, max_payload):
        check_int("max_payload", max_payload, minimum=16, maximum=0xFFFF)
        self.max_payload = max_payload
        super().__init__({
            "frame": In(stream.Signature(frame_layout)),
            "payload": In(stream.Signature(payload_layout)),
            "arguments": Out(ArgumentShift()),
            "hold": Out(StallTimer()),
            **{name: Out(ExecutorSignature(max_payload)) for name in PORTS},
            "response": Out(stream.Signature(response_layout())),
            "arg": Out(8),
            "frame_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        frame = self.frame.payload
        lw = count_width(self.max_payload)
        length = frame.length[:lw]                  # a checked LEN is at most max_payload
        ports = [getattr(self, name) for name in PORTS]

        # Decoded when the frame arrives (registered: the decisions below stay shallow).
        lengths = {**PAYLOAD_LENGTH, **MIN_PAYLOAD_LENGTH}
        known, fixed, begin, streams = Signal(), Signal(), Signal(), Signal()
        exp_len = Signal(4)                 # expected (or minimum) payload length, <= 9
        op = Signal(Op)
        target = Signal(len(PORTS))         # one-hot executor; none for INFO and STATUS
        info = Signal()                     # INFO (else STATUS) for no executor
        index = Signal(4)                   # payload bytes taken, up to 15
        count = Signal(lw)                  # data bytes after LOAD_DATA's, INPUT's offset
        arg = self.arguments.value
        last = Signal()
        with m.If(self.frame.valid & ~self.frame.ready):
            m.d.sync += [known.eq(0), exp_len.eq(0), fixed.eq(0), begin.eq(0), streams.eq(0),
                         target.eq(0), count.eq(length - 4)]
            with m.Switch(frame.cmd):
                for cmd, n in lengths.items():
                    with m.Case(cmd):
                        m.d.sync += [known.eq(1), exp_len.eq(n),
                                     fixed.eq(cmd in PAYLOAD_LENGTH),
                                     begin.eq(cmd == Cmd.LOAD_BEGIN),
                                     streams.eq(cmd in MIN_PAYLOAD_LENGTH),
                                     info.eq(cmd == Cmd.INFO)]
                        if cmd in EXECUTORS:
                            port, code = EXECUTORS[cmd]
                            m.d.sync += [op.eq(code), target.eq(1 << PORTS.index(port))]
        short = length[4:] == 0
        bad_length = Mux(fixed, ~short | (length[:4] != exp_len), short & (length[:4] < exp_len))

        # The response, registered: the dispatcher's own, or an executor's result (results
        # are zero unless valid: ORed) acted on a cycle later (``answered``), so no decision
        # here waits on an executor's in the same cycle.
        rsp = Signal(self.response.payload.script.shape())
        answering, answered = Signal(), Signal()
        m.d.comb += answering.eq(Cat(p.result.valid for p in ports).any())
        m.d.sync += answered.eq(answering)
        with m.If(answering):
            m.d.sync += rsp.eq(reduce(operator.or_, (p.result.payload.script for p in ports)))
        m.d.comb += [self.response.payload.cmd.eq(frame.cmd),
                     self.response.payload.script.eq(rsp),
                     self.arg.eq(Mux(known, exp_len, frame.cmd)),
                     self.arguments.byte.eq(self.payload.payload.data),
                     self.hold.count.eq(Cat(p.waiting for p in ports).any()),
                     self.frame.ready.eq(self.response.valid & self.response.ready)]
        for port in ports:
            m.d.comb += [port.command.payload.op.eq(op), port.command.payload.arg.eq(arg),
                         port.command.payload.last.eq(last),
                         port.command.payload.count.eq(count),
                         port.stalled.eq(self.hold.expired)]

        def reply(script):
            m.d.sync += rsp.eq(script)
            m.next = "RESPOND"

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += index.eq(0)
                with m.If(self.frame.valid):
                    with m.If(frame.status != Status.OK):
                        m.d.comb += self.frame_error.eq(1)
                        reply(Mux(frame.status == Status.ERR_LENGTH,
                                  Script.ERR_LENGTH_MAX_PAYLOAD,
                                  Mux(frame.status == Status.ERR_CRC, Script.ERR_CRC_ZERO,
                                      Script.ERR_TIMEOUT_ZERO)))
                    with m.Else():
                        m.next = "DECODE"

            with m.State("DECODE"):
                m.d.sync += last.eq(exp_len == 0)
                with m.If(~known):
                    reply(Script.ERR_UNKNOWN_ARG)
                with m.Elif(bad_length):
                    reply(Script.ERR_LENGTH_ARG)
                with m.Elif(target == 0):
                    reply(Mux(info, Script.INFO, Script.STATUS))
                with m.Elif(exp_len == 0):
                    m.next = "ITEM"
                with m.Else():
                    m.next = "READ"

            with m.State("READ"):
                with m.If(answered):                # the command ended (with its last item)
                    m.next = "DRAIN"
                    with m.If(last):
                        m.next = "RESPOND"
                with m.Elif(self.payload.valid):    # the next payload byte into the shifter
                    m.d.comb += [self.payload.ready.eq(1), self.arguments.push.eq(1)]
                    m.d.sync += [index.eq(index + (index != 15)),
                                 last.eq(self.payload.payload.last)]
                    word_end = Mux(begin, index[:2] == 0, index[:2] == 3)
                    with m.If(self.payload.payload.last | word_end | (streams & index[2:].any())):
                        m.next = "ITEM"

            with m.State("ITEM"):                   # until taken (a result comes with it)
                for i, port in enumerate(ports):
                    m.d.comb += port.command.valid.eq(target[i])
                with m.If(Cat(p.command.valid & p.command.ready for p in ports).any()):
                    m.next = "READ"

            with m.State("DRAIN"):                  # the payload bytes nobody needs
                m.d.comb += self.payload.ready.eq(1)
                with m.If(self.payload.valid & self.payload.payload.last):
                    m.next = "RESPOND"

            with m.State("RESPOND"):                # until the sender has sent it
                m.d.comb += self.response.valid.eq(1)
                with m.If(self.response.ready):
                    m.next = "IDLE"
        return m

