"""The layouts and signatures that join the host link's stages, declared once for both sides.

A request passes the stages in this order (``docs/host_link.md`` section 8)::

    UARTRx -> FrameReceiver -> CommandDispatcher -> executor -> ResponseSender -> UARTTx

The dispatcher hands a command to one *executor* (:class:`~.loader.ImageLoader`,
:class:`~.run.RunControl` or :class:`~.readback.OutputReadback`) as a stream of *items*
(:func:`command_layout`) and gets one *result* (:func:`result_layout`) back, which it forwards
to the sender. A result names its response by the ledger address of a *script*
(:mod:`~.scripts`): the ops that put each word of the response into the word shifter. The
:class:`~.ledger.StatusLedger` keeps the response words that are not registers, the scripts
and the programs the executors run (compare an argument with a counter, count a byte, store a
word) in one block RAM, and executes one op at a time through one adder: ``A`` a ledger word
(or zero), ``B`` the registers an op selects (:class:`Source`).
"""

import enum as pyenum

from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "LEDGER_BITS",
    "LEDGER_DEPTH",
    "OUTPUT_HEADER",
    "ArgumentShift",
    "CRCPort",
    "ExecutorSignature",
    "LedgerPort",
    "Op",
    "Source",
    "StallTimer",
    "WordShift",
    "command_layout",
    "count_width",
    "ndata_width",
    "op_layout",
    "request_layout",
    "response_layout",
    "result_layout",
]

#: Bytes of an OUTPUT response before its data: status, STATUS word 0, bytes produced.
OUTPUT_HEADER = 1 + 8

#: Address bits and words of the ledger (one iCE40 block RAM pair, one ECP5 DP16KD).
LEDGER_BITS = 8
LEDGER_DEPTH = 1 << LEDGER_BITS


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


class Source(pyenum.IntEnum):
    """The registers an op can add to its ledger word (operand ``B``; one bit each of the op's
    ``sel``, ORed). Each is a 32-bit word as :class:`~.link.HostLink` places it."""

    ARG = 0             # the word shifter: a request's argument
    NARG = 1            # its complement (with ``cin``: minus the argument)
    ONE = 2
    C256 = 3            # the run's cycles above the low byte
    C64K = 4            # a UART error (the upper half of the error word)
    RING = 5            # the output ring's size times two: bytes produced above the low count
    HEADER = 6          # the response's command byte (bits 0..6)
    NDATA = 7           # OUTPUT's data bytes (bits 8..)
    ARG8 = 8            # the dispatcher's literal argument (a command byte, a length)
    CRC16 = 9           # the response's CRC-16, most significant byte first
    STATUS0 = 10        # STATUS word 0: flags, verified regions, last error
    CORE = 11           # the core's cycle count
    IMAGE_CRC = 12      # the open load's CRC-32
    RUN_LOW = 13        # the run's cycles below 512 (bit 8: a carry the ledger has not counted)
    WRITTEN_LOW = 14    # output bytes below twice the ring (the top bit likewise)
    VERIFIED = 15       # the mask of verified regions
    COUNT = 16          # a LOAD_DATA's data bytes


def op_layout():
    """One ledger op: ``A`` is the word at ``addr`` (zero with ``zero_a``), ``B`` the OR of
    the :class:`Source` words ``sel`` names; ``A + B + cin`` is written back to ``addr``
    (``write``; not where ``sat`` and a 16-bit half of the error word would wrap) and kept as
    the result. ``last`` ends a program (a script: its last word)."""
    return data.StructLayout({"addr": LEDGER_BITS, "sel": len(Source), "cin": 1, "write": 1,
                              "zero_a": 1, "sat": 1, "last": 1})


def request_layout():
    """A program for the ledger: the address of its first op; ``single``: that op alone."""
    return data.StructLayout({"addr": LEDGER_BITS, "single": 1})


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


def result_layout():
    """What an executor answers: the response's ``script`` (a ledger address,
    :class:`~.scripts.Script`: its status and words)."""
    return data.StructLayout({"script": LEDGER_BITS})


def response_layout():
    """A script with the request's command byte: what the sender turns into a frame."""
    return data.StructLayout({"cmd": 8, "script": LEDGER_BITS})


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
            "result": In(stream.Signature(result_layout(), always_ready=True)),
            "waiting": In(1),
            "stalled": Out(1),
        }, max_payload)


class LedgerPort(wiring.Signature):
    """Running programs on the :class:`~.ledger.StatusLedger`, from the caller's side.

    ``program`` is taken when the ledger is free (counter updates go first); ``busy`` is high
    from the cycle after until its last op is done, and then ``result`` (``A + B + cin`` of
    that op), ``carry`` (its carry out), ``zero`` (the result is zero) and ``last`` (the op's
    ``last`` bit) hold until the next program starts. The stages that call the ledger never
    run at once, so they share this one port.
    """

    def __init__(self):
        super().__init__({"program": Out(stream.Signature(request_layout())), "busy": In(1),
                          "result": In(32), "carry": In(1), "zero": In(1), "last": In(1)})


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
