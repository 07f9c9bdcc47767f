"""The layouts and signatures that join the host link's stages, declared once for both sides.

A request passes the stages in this order (``docs/host_link.md`` section 8)::

    UARTRx -> FrameReceiver -> CommandDispatcher -> executor -> ResponseSender -> UARTTx

The dispatcher hands a command to one *executor* (:class:`~.loader.ImageLoader`,
:class:`~.run.RunControl` or :class:`~.readback.OutputReadback`) as a stream of *items*
(:func:`command_layout`) and gets one *result* (:func:`result_layout`) back, which it forwards
to the sender. A result does not carry the words of the response; it names them by a
:class:`Word` address: below :data:`LEDGER_DEPTH` a word of the :class:`~.ledger.StatusLedger`
(block RAM: INFO constants, model tag, counters), above a register of a stage, which the
stage exports (:class:`LoadState`, :class:`RunState`, :class:`OutputState`) and the sender
reads when the word's first byte goes out. So every value reaches the response through one
multiplexer, the sender's.
"""

import enum as pyenum

from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..protocol import REGIONS

__all__ = [
    "LEDGER_DEPTH",
    "OUTPUT_HEADER",
    "WORD_BITS",
    "ArgumentShift",
    "CRCPort",
    "ExecutorSignature",
    "Kind",
    "LedgerRead",
    "LoadState",
    "Op",
    "OutputState",
    "RunState",
    "StallTimer",
    "Word",
    "WordShift",
    "command_layout",
    "count_width",
    "ndata_width",
    "response_layout",
    "result_layout",
    "store_layout",
]

#: Bytes of an OUTPUT response before its data: status, STATUS word 0, bytes produced.
OUTPUT_HEADER = 1 + 8


class Op(enum.Enum, shape=3):
    """A request as the dispatcher hands it to an executor (INFO and STATUS need none)."""

    DISCARD = 0
    LOAD_BEGIN = 1
    LOAD_DATA = 2
    LOAD_END = 3
    COMMIT = 4
    RUN = 5
    INPUT = 6
    OUTPUT = 7


class Kind(enum.Enum, shape=2):
    """Which words follow a response's status byte."""

    GENERIC = 0     # one word: the result's ``word``
    STATUS = 1      # the eight STATUS words
    OUTPUT = 2      # STATUS word 0, bytes produced, then ``ndata`` bytes of the output ring
    INFO = 3        # the INFO words


class Word(pyenum.IntEnum):
    """Addresses of the 32-bit words a response can carry.

    Below :data:`LEDGER_DEPTH`: words of the ledger (``INFO`` + i, ``CAPACITY`` + region,
    ``WORD_BYTES`` + region). From ``ARG`` on: registers, read by the sender when the word's
    first byte goes out. ``RUN_CYCLES`` is both: the ledger counts the run's cycles in steps of
    256, the run control the low byte, and the sender reads them together.
    """

    INFO = 0
    TAG = 16                # model tag
    RUNS = 17               # runs started since reset
    ERRORS = 18             # frame errors u16, UART errors u16
    MAX_PAYLOAD = 19
    N_REGIONS = 20
    CAPACITY = 21           # + region: bytes
    WORD_BYTES = CAPACITY + len(REGIONS)    # + region: bytes per word
    EXPECTED_CRC = WORD_BYTES + len(REGIONS)    # the open load's announced CRC-32
    RUN_CYCLES = EXPECTED_CRC + 1           # the run's cycles (low byte: RunState.cycles)
    ARG = 64                # the result's ``arg`` (the dispatcher's: a command byte, a length)
    STATUS0 = 65            # flags, verified regions, last error
    CORE_CYCLES = 66
    IN_COUNT = 67
    WRITTEN = 68            # output bytes produced
    RELEASED = 69           # output bytes acknowledged
    FILL = 70               # image bytes received
    IMAGE_CRC = 71          # their CRC-32
    VERIFIED = 72           # mask of verified regions
    HEADER = 73             # SYNC, CMD, LEN (the sender's own words)
    STATUS_BYTE = 74
    CRC = 75


WORD_BITS = 7
LEDGER_DEPTH = 64
assert Word.RUN_CYCLES < LEDGER_DEPTH <= Word.ARG


def count_width(max_payload):
    """Width of a payload length (at most ``max_payload``)."""
    return max_payload.bit_length()


def ndata_width(max_payload):
    """Width of the number of data bytes of an OUTPUT response."""
    return (max_payload - OUTPUT_HEADER).bit_length()


def command_layout(max_payload):
    """One item of a command: its argument word, or one data byte in ``arg[24:32]``.

    ``arg`` holds the payload bytes shifted in little-endian (the newest in bits 24..31):
    LOAD_BEGIN's items are the region (``arg[24:32]``), the length and the CRC-32; LOAD_DATA's
    and INPUT's the offset, then one item per data byte; COMMIT's the tag; RUN's the segment
    (``arg[24:32]``); OUTPUT's the offset, then ``max`` (``arg[16:32]``); DISCARD's and
    LOAD_END's a single item without argument. ``count`` is the number of data bytes after
    the offset (LOAD_DATA, INPUT); ``last`` marks the command's last item.
    """
    return data.StructLayout({"op": Op, "arg": 32, "last": 1,
                              "count": count_width(max_payload)})


def result_layout(max_payload):
    """What an executor answers: the response's status, kind and word, a literal ``arg`` (for
    ``word == Word.ARG``; the dispatcher's) and the number of data bytes (OUTPUT)."""
    return data.StructLayout({"status": 4, "kind": Kind, "word": WORD_BITS, "arg": 8,
                              "ndata": ndata_width(max_payload)})


def response_layout(max_payload):
    """A result with the request's command byte: what the sender turns into a frame."""
    return data.StructLayout({"cmd": 8, "result": result_layout(max_payload)})


class _Sized(wiring.Signature):
    """A signature whose members follow from a few integers; equal when they are."""

    def __init__(self, members, *sizes):
        self.sizes = sizes
        super().__init__(members)

    def __eq__(self, other):
        return type(other) is type(self) and other.sizes == self.sizes

    def __hash__(self):
        return hash((type(self), self.sizes))


class ExecutorSignature(_Sized):
    """The dispatcher's port to one executor, from the dispatcher's side.

    Members
    -------
    command : ``Out(stream.Signature(command_layout))``
        The items of one command, in order.
    result : ``In(stream.Signature(result_layout, always_ready=True))``
        One result per command, offered for one cycle, in the cycle the executor takes the
        item it answers on (the last, or the one it refuses the command at): that ends the
        command, the dispatcher offers no more of its items. The payload is zero while
        ``valid`` is low, so the dispatcher merges results with OR.
    waiting : ``In(1)``
        The executor waits for the core to take a byte.
    stalled : ``Out(1)``
        ``waiting`` has lasted the stall timeout: the executor gives up with ``ERR_STALL``.
    """

    def __init__(self, max_payload):
        super().__init__({
            "command": Out(stream.Signature(command_layout(max_payload))),
            "result": In(stream.Signature(result_layout(max_payload), always_ready=True)),
            "waiting": In(1),
            "stalled": Out(1),
        }, max_payload)


class StallTimer(wiring.Signature):
    """Counting how long the core keeps a byte waiting, from the counting side's user: ``count``
    high for consecutive cycles; ``expired`` once they reach the stall timeout."""

    def __init__(self):
        super().__init__({"count": Out(1), "expired": In(1)})


class CRCPort(_Sized):
    """A bit-serial CRC register, from its user's side (see :class:`~.serial.SerialCRC`)."""

    def __init__(self, width):
        super().__init__({"start": Out(1), "valid": Out(1), "data": Out(1), "value": In(width)},
                         width)


def store_layout():
    """A ledger word written whole (the model tag, the announced CRC-32)."""
    return data.StructLayout({"word": range(LEDGER_DEPTH), "data": 32})


class LedgerRead(wiring.Signature):
    """Reading a ledger word, from the reader's side: ``addr`` is taken when the ledger is free
    (counter updates go first); ``data`` holds the word two cycles after (a register behind the
    block RAM), for one cycle."""

    def __init__(self):
        super().__init__({"addr": Out(stream.Signature(range(LEDGER_DEPTH))), "data": In(32)})


class ArgumentShift(wiring.Signature):
    """Filling the :class:`~.words.WordShifter` with a request's argument bytes, from the
    dispatcher's side: ``push`` shifts ``byte`` in from the top; ``value`` is the register."""

    def __init__(self):
        super().__init__({"push": Out(1), "byte": Out(8), "value": In(32)})


class WordShift(wiring.Signature):
    """Sending words through the :class:`~.words.WordShifter`, from the sender's side: ``load``
    takes ``word``, ``shift`` drops the low byte (``value[:8]``, the one being sent)."""

    def __init__(self):
        super().__init__({"load": Out(1), "word": Out(32), "shift": Out(1), "value": In(32)})


class LoadState(_Sized):
    """The image loader's state, as responses and RUN see it (from the loader's side): the
    flags, the verified regions, the open load's bytes received and their CRC-32."""

    def __init__(self, n_regions, fill_bits):
        super().__init__({"model_valid": Out(1), "loading": Out(1), "verified": Out(n_regions),
                          "fill": Out(fill_bits), "crc": Out(32)}, n_regions, fill_bits)


class OutputState(_Sized):
    """The output ring's counters (from the readback's side): bytes produced since RUN and
    bytes the host has acknowledged."""

    def __init__(self, count_bits):
        super().__init__({"written": Out(count_bits), "released": Out(count_bits)}, count_bits)


class RunState(_Sized):
    """The run control's state, as responses and COMMIT see it (from the run control's side).

    ``busy`` is the STATUS flag (a run started and not done); ``active`` is ``busy`` or the core
    busy (COMMIT and RUN are refused); ``cycles`` is the low byte of the run's cycle count (the
    ledger counts the rest); ``in_count`` the input bytes taken.
    """

    def __init__(self, count_bits):
        super().__init__({"busy": Out(1), "active": Out(1), "done": Out(1), "stalled": Out(1),
                          "cycles": Out(8), "in_count": Out(count_bits)}, count_bits)
