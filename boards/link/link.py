"""The board side of the host link: :class:`HostLink`, the composition of its stages.

:class:`HostLink` executes the requests of ``docs/host_link.md`` against a core through a
:class:`~boards.link.core_if.CoreInterface`. Image uploads are staged: bytes go to the core's
staging copy, each region is checked (length and CRC-32) by ``LOAD_END``, and only ``COMMIT``
with all five regions verified makes them active. Whatever goes wrong before that (a damaged
or truncated frame, an oversized or corrupted image, a reset), the committed model stays.

The stages (``docs/host_link.md`` section 8): :class:`~.uart.UARTRx`,
:class:`~.framing.FrameReceiver`, :class:`~.dispatch.CommandDispatcher`, the executors
:class:`~.loader.ImageLoader`, :class:`~.run.RunControl` and :class:`~.readback.OutputReadback`,
:class:`~.response.ResponseSender`, :class:`~.uart.UARTTx`; beside them the
:class:`~.ledger.StatusLedger` (one block RAM of response words, scripts and programs, and the
one adder that runs them) and the :class:`~.words.WordShifter` (one shift register for
arguments and response words). They are built to be small on an iCE40 (the UART leaves at
least 40 cycles per byte): CRCs are bit-serial (one CRC-16 register checks requests and makes
responses), the counters and the checks against them are the ledger's, every value a response
can carry reaches it through one multiplexer (the ledger's operand ``B``), and what a response
consists of is a script in block RAM. For 100 MHz, every block RAM's read data goes straight
into a register and no path runs through more than one adder or a few LUTs.
"""

import operator
from functools import reduce

from amaranth.hdl import Cat, Const, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int

from ..protocol import VERSION
from .core_if import CoreInterface, LinkStatus, MemoryMap
from .dispatch import CommandDispatcher
from .framing import FrameReceiver
from .ledger import StatusLedger
from .loader import ImageLoader
from .ports import Source
from .readback import OutputReadback, check_ring
from .response import ResponseSender
from .run import RunControl
from .scripts import Data, image
from .uart import UARTRx, UARTTx, _check_divisor
from .words import WordShifter

__all__ = ["HostLink"]

U32 = (1 << 32) - 1


class HostLink(wiring.Component):
    """UART host link driving a core: the stages of the module docstring, joined.

    Parameters
    ----------
    memory_map : MemoryMap
        The core's image memories.
    clk_hz : int
        Clock frequency (reported to the host; with ``divisor`` it fixes the baud rate).
    divisor : int
        Clock cycles per UART bit (see :func:`~boards.link.uart.divisor_for`).
    max_payload : int
        Largest request payload (bytes); also bounds the data in an OUTPUT response.
    out_depth : int
        Bytes of output buffered for the host (a power of two); the core stalls beyond.
    frame_timeout : int
        Cycles of silence after which a partial frame is dropped (default 50 ms).
    stall_timeout : int
        Cycles the link waits for the core to take an image byte or an input byte (1 s).
    board_id, rows, cols : int
        Reported by INFO so the host can check what it talks to.
    model_valid : bool
        Whether the core's images hold a model at configuration (baked into block RAM).
    model_tag : int
        The tag of that model (see COMMIT).
    uart : tuple
        The receiver and transmitter, components with the signatures of :class:`~.uart.UARTRx`
        and :class:`~.uart.UARTTx`: those at ``divisor`` unless given (a simulation may put
        whole bytes in and take them out, ``sim_tests/support/byte_link.py``).
    """

    def __init__(self, memory_map, *, clk_hz, divisor, max_payload=512, out_depth=1024,
                 frame_timeout=None, stall_timeout=None, board_id=0, rows=0, cols=0,
                 model_valid=False, model_tag=0, uart=None):
        if not isinstance(memory_map, MemoryMap):
            raise TypeError(f"memory_map must be a MemoryMap, not {memory_map!r}")
        check_int("clk_hz", clk_hz, minimum=0, maximum=U32)
        _check_divisor(divisor)
        # >= 64: a frame-level ERR_LENGTH (arg max_payload) is told apart from a command's
        # (arg at most 9).
        check_int("max_payload", max_payload, minimum=64, maximum=0xFFFF)
        if frame_timeout is None:
            frame_timeout = max(clk_hz // 20, 40 * divisor)        # 50 ms
        if stall_timeout is None:
            stall_timeout = max(clk_hz, 1000)                      # 1 s
        check_int("frame_timeout", frame_timeout, minimum=1, maximum=U32)
        check_int("stall_timeout", stall_timeout, minimum=1, maximum=U32)
        if frame_timeout < 12 * divisor:
            raise ValueError(f"frame_timeout ({frame_timeout} cycles) must exceed one byte time "
                             f"on the line ({10 * divisor} cycles) with margin: at least "
                             f"{12 * divisor}")
        for name, value in (("board_id", board_id), ("rows", rows), ("cols", cols)):
            check_int(name, value, minimum=0, maximum=255)
        check_int("model_tag", model_tag, minimum=0, maximum=U32)
        check_ring(out_depth)
        self.memory_map = memory_map
        self.clk_hz, self.divisor = clk_hz, divisor
        self.max_payload, self.out_depth = max_payload, out_depth
        self.frame_timeout, self.stall_timeout = frame_timeout, stall_timeout
        self.board_id, self.rows, self.cols = board_id, rows, cols
        self.model_valid, self.model_tag = bool(model_valid), model_tag

        sizes = {"max_payload": max_payload}
        self.uart_rx, self.uart_tx = uart or (UARTRx(divisor), UARTTx(divisor))
        self.framer = FrameReceiver(timeout=frame_timeout, hold_timeout=stall_timeout, **sizes)
        self.dispatcher = CommandDispatcher(**sizes)
        self.loader = ImageLoader(memory_map, model_valid=model_valid, **sizes)
        self.runner = RunControl(**sizes)
        self.readback = OutputReadback(out_depth=out_depth, **sizes)
        self.sender = ResponseSender(**sizes)
        self.ledger = StatusLedger(self.ledger_words(), ring_bit=self.readback.ring_bit)
        self.words = WordShifter()
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "status": Out(LinkStatus()),
            "core": Out(CoreInterface(memory_map)),
        })

    @property
    def baud(self):
        return self.clk_hz / self.divisor

    def info_words(self):
        """The 32-bit words of the INFO response after its status byte."""
        mm = self.memory_map
        words = [VERSION | self.board_id << 8 | self.rows << 16 | self.cols << 24,
                 self.max_payload | len(mm.regions) << 16,
                 self.out_depth, self.clk_hz, self.frame_timeout, self.stall_timeout]
        for region in mm:
            words += [region.width, region.depth]
        return words

    def ledger_words(self):
        """The ledger's initial words (:func:`~.scripts.image`): the INFO words, the tag, the
        constants."""
        mm = self.memory_map
        values = {Data.INFO + i: w for i, w in enumerate(self.info_words())}
        values.update({Data.TAG: self.model_tag, Data.MAX_PAYLOAD: self.max_payload,
                       Data.N_REGIONS: len(mm.regions)})
        for r in mm:
            values.update({Data.CAPACITY + r.code: r.capacity,
                           Data.WORD_BYTES + r.code: r.word_bytes})
        return image(values)

    def elaborate(self, platform):
        m = Module()
        core, status = self.core, self.status
        for name in ("uart_rx", "framer", "dispatcher", "loader", "runner", "readback",
                     "sender", "ledger", "words", "uart_tx"):
            m.submodules[name] = getattr(self, name)
        uart_rx, framer, dispatcher = self.uart_rx, self.framer, self.dispatcher
        loader, runner, readback = self.loader, self.runner, self.readback
        sender, ledger, words, uart_tx = self.sender, self.ledger, self.words, self.uart_tx

        # Requests: bytes, frames, commands to their executors; answers back out.
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        for source, sink in (
                (uart_rx.o, framer.i), (framer.frame, dispatcher.frame),
                (framer.payload, dispatcher.payload), (framer.hold, dispatcher.hold),
                (dispatcher.arguments, words.arguments), (dispatcher.load, loader.command),
                (dispatcher.run, runner.command), (dispatcher.output, readback.command),
                (dispatcher.response, sender.response), (sender.words, words.words),
                (sender.crc, framer.tx_crc), (readback.data, sender.data),
                (sender.o, uart_tx.i)):
            wiring.connect(m, source, sink)

        # The ledger: one caller at a time (the executors take turns, the sender comes after
        # them; each drives its request only in the states that call), so their requests
        # are ORed.
        callers = [sender.ledger, loader.ledger, runner.ledger, readback.ledger]
        call = ledger.call
        m.d.comb += [call.program.valid.eq(Cat(c.program.valid for c in callers).any()),
                     call.program.payload.eq(reduce(operator.or_, (
                         c.program.payload.as_value() for c in callers)))]
        for c in callers:
            m.d.comb += [c.program.ready.eq(call.program.ready), c.busy.eq(call.busy),
                         c.result.eq(call.result), c.carry.eq(call.carry),
                         c.zero.eq(call.zero), c.last.eq(call.last)]
        rsp = dispatcher.response.payload
        crc = framer.tx_crc.value
        status0 = Cat(loader.model_valid, runner.busy, runner.done, loader.loading,
                      runner.stalled, Const(0, 3), loader.verified,
                      Const(0, 8 - len(loader.verified)), sender.last_error)
        sources = {
            Source.ARG: words.words.value, Source.NARG: ~words.words.value,
            Source.HEADER: rsp.cmd[:7], Source.NDATA: Cat(Const(0, 8), readback.ndata),
            Source.ARG8: dispatcher.arg,
            Source.CRC16: Cat(crc[8:], crc[:8]), Source.STATUS0: status0,
            Source.CORE: core.cycles, Source.IMAGE_CRC: loader.crc,
            Source.RUN_LOW: runner.cycles, Source.WRITTEN_LOW: readback.written,
            Source.VERIFIED: loader.verified, Source.COUNT: dispatcher.load.command.payload.count,
        }
        k1 = readback.ring_bit
        m.d.comb += [ledger.sources[s].eq(value) for s, value in sources.items()]
        m.d.comb += [
            ledger.frame_error.eq(dispatcher.frame_error),
            ledger.rx_error.eq(uart_rx.error | uart_rx.overrun),
            ledger.cycles.eq(runner.cycles[8]), runner.cycles_ack.eq(ledger.cycles_ack),
            ledger.written.eq(readback.written[k1]), readback.written_ack.eq(ledger.written_ack),
            readback.restart.eq(runner.start), sender.more.eq(readback.more),
            runner.model_valid.eq(loader.model_valid),
            loader.run_active.eq(runner.active),
        ]

        # The core.
        wiring.connect(m, loader.write, wiring.flipped(core.write))
        wiring.connect(m, runner.act_in, wiring.flipped(core.act_in))
        wiring.connect(m, wiring.flipped(core.act_out), readback.act_out)
        m.d.comb += [core.commit.eq(loader.commit), core.start.eq(runner.start),
                     core.segment.eq(runner.segment), runner.core_busy.eq(core.busy),
                     runner.core_done.eq(core.done)]

        # LEDs.
        m.d.comb += [
            status.model_valid.eq(loader.model_valid), status.busy.eq(runner.busy),
            status.done.eq(runner.done), status.loading.eq(loader.loading),
            status.error.eq(sender.error),
            status.rx.eq(uart_rx.o.valid & uart_rx.o.ready),
            status.tx.eq(uart_tx.i.valid & uart_tx.i.ready),
        ]
        return m
