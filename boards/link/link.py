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
:class:`~.ledger.StatusLedger` (rarely changing words in block RAM) and the
:class:`~.words.WordShifter` (one shift register for arguments and response words). They are
built to be small on an iCE40 (the UART leaves at least 40 cycles per byte): CRCs are
bit-serial (one CRC-16 register checks requests and makes responses), block RAMs have no
read-during-write logic, counters are only as wide as the memories and streams need, and every
value a response can carry reaches it through one multiplexer, the sender's.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int

from ..protocol import VERSION
from .core_if import CoreInterface, LinkStatus, MemoryMap
from .dispatch import CommandDispatcher
from .framing import FrameReceiver
from .ledger import StatusLedger
from .loader import ImageLoader
from .ports import LEDGER_DEPTH, Word
from .readback import OutputReadback, check_ring
from .response import INFO_WORDS, ResponseSender
from .run import RunControl
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
    count_bits : int
        Width of the input and output byte counters (a run moves less than ``2**count_bits``
        bytes each way).
    board_id, rows, cols : int
        Reported by INFO so the host can check what it talks to.
    model_valid : bool
        Whether the core's images hold a model at configuration (baked into block RAM).
    model_tag : int
        The tag of that model (see COMMIT).
    """

    def __init__(self, memory_map, *, clk_hz, divisor, max_payload=512, out_depth=1024,
                 frame_timeout=None, stall_timeout=None, count_bits=24, board_id=0, rows=0,
                 cols=0, model_valid=False, model_tag=0):
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
        check_ring(out_depth, count_bits)
        self.memory_map = memory_map
        self.clk_hz, self.divisor = clk_hz, divisor
        self.max_payload, self.out_depth = max_payload, out_depth
        self.frame_timeout, self.stall_timeout = frame_timeout, stall_timeout
        self.count_bits = count_bits
        self.board_id, self.rows, self.cols = board_id, rows, cols
        self.model_valid, self.model_tag = bool(model_valid), model_tag

        sizes = {"max_payload": max_payload}
        self.uart_rx = UARTRx(divisor)
        self.framer = FrameReceiver(timeout=frame_timeout, hold_timeout=stall_timeout, **sizes)
        self.dispatcher = CommandDispatcher(**sizes)
        self.loader = ImageLoader(memory_map, model_valid=model_valid, **sizes)
        self.runner = RunControl(count_bits=count_bits, **sizes)
        self.readback = OutputReadback(out_depth=out_depth, count_bits=count_bits, **sizes)
        self.sender = ResponseSender(count_bits=count_bits, n_regions=len(memory_map.regions),
                                     fill_bits=self.loader.fill_bits, **sizes)
        self.ledger = StatusLedger(self.ledger_words())
        self.words = WordShifter()
        self.uart_tx = UARTTx(divisor)
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
        """The ledger's initial words (:class:`~.ports.Word`): INFO, the tag, the constants."""
        mm = self.memory_map
        words = [0] * LEDGER_DEPTH
        words[Word.INFO:Word.INFO + INFO_WORDS] = self.info_words()
        words[Word.TAG] = self.model_tag
        words[Word.MAX_PAYLOAD] = self.max_payload
        words[Word.N_REGIONS] = len(mm.regions)
        for r in mm:
            words[Word.CAPACITY + r.code] = r.capacity
            words[Word.WORD_BYTES + r.code] = r.word_bytes
        return words

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
                (sender.crc, framer.tx_crc), (sender.ledger, ledger.read[0]),
                (readback.data, sender.data), (sender.o, uart_tx.i),
                (loader.ledger, ledger.read[1]), (loader.store, ledger.store),
                (loader.state, sender.load), (runner.state, sender.run),
                (readback.state, sender.output)):
            wiring.connect(m, source, sink)
        m.d.comb += [
            ledger.frame_error.eq(dispatcher.frame_error),
            ledger.rx_error.eq(uart_rx.error | uart_rx.overrun),
            ledger.run.eq(runner.started),
            ledger.cycles.eq(runner.carry),
            readback.restart.eq(runner.restart),
            runner.model_valid.eq(loader.state.model_valid),
            loader.run_active.eq(runner.state.active),
        ]

        # The core.
        wiring.connect(m, loader.write, wiring.flipped(core.write))
        wiring.connect(m, runner.act_in, wiring.flipped(core.act_in))
        wiring.connect(m, wiring.flipped(core.act_out), readback.act_out)
        m.d.comb += [core.commit.eq(loader.commit), core.start.eq(runner.start),
                     core.segment.eq(runner.segment), runner.core_busy.eq(core.busy),
                     runner.core_done.eq(core.done), sender.core_cycles.eq(core.cycles)]

        # LEDs.
        m.d.comb += [
            status.model_valid.eq(loader.state.model_valid), status.busy.eq(runner.state.busy),
            status.done.eq(runner.state.done), status.loading.eq(loader.state.loading),
            status.error.eq(sender.error),
            status.rx.eq(uart_rx.o.valid & uart_rx.o.ready),
            status.tx.eq(uart_tx.i.valid & uart_tx.i.ready),
        ]
        return m
