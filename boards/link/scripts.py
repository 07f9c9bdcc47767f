"""What the ledger's block RAM holds, at addresses fixed here: data words, response scripts and
programs (``docs/host_link.md`` section 8).

- :class:`Data`: the words of responses that are not registers (the INFO words, the model tag,
  the counters, the capacities) and what the checks compare with (the open load's remaining
  bytes and CRC-32, negated).
- :class:`Script`: a response's words, one op each (:func:`~.ports.op_layout`), after an op for
  its header (CMD, LEN and the status byte); the sender runs them one at a time and sends
  each result. A result names its response by the address of its script.
- :class:`Program`: the ops an executor or a counter update runs at once (a check, a byte
  counted, a word stored).

Region-dependent scripts and programs are aligned so that the region is ORed into the
address, not added.
"""

import enum

from ..protocol import REGIONS, RESPONSE, Status
from .ports import LEDGER_DEPTH, OUTPUT_HEADER, Source, op_layout

__all__ = ["INFO_WORDS", "Data", "Program", "Script", "image", "op"]

#: The number of INFO words (``docs/host_link.md`` section 3).
INFO_WORDS = 6 + 2 * len(REGIONS)
S = Source


def op(addr, *sources, cin=False, write=False, zero_a=False, sat=False, last=True):
    """One op (:func:`~.ports.op_layout`) as an integer."""
    return op_layout().const({
        "addr": addr, "sel": sum(1 << s for s in sources), "cin": cin, "write": write,
        "zero_a": zero_a, "sat": sat, "last": last}).as_value().value


class _Layout:
    """Addresses handed out in order, and the words placed at them."""

    def __init__(self):
        self.words = {}

    def place(self, names, name, words, *, align=1):
        """Place ``words`` at the next address that is a multiple of ``align``, as
        ``names[name]``."""
        start = -(-len(self.words) // align) * align
        for i in range(len(self.words), start):
            self.words[i] = 0
        names[name] = start
        for i, word in enumerate(words):
            self.words[start + i] = word


def _header(words, status):
    """The header word of a response with ``words`` words and ``status``: the command's top
    bit (the rest of the command byte is added), LEN without the data bytes, the status."""
    return RESPONSE | (1 + 4 * words) << 8 | status << 24


_DATA = [("ZERO", 1), ("INFO", INFO_WORDS), ("TAG", 1), ("RUNS", 1), ("RUN_CYCLES", 1),
         ("ERRORS", 1), ("WRITTEN", 1), ("RELEASED", 1), ("IN_COUNT", 1), ("FILL", 1),
         ("NEG_REMAINING", 1), ("NEG_CRC", 1), ("MAX_PAYLOAD", 1), ("N_REGIONS", 1),
         ("CAPACITY", len(REGIONS)), ("WORD_BYTES", len(REGIONS)), ("H_GENERIC", len(Status)),
         ("H_OUTPUT", 1), ("H_STATUS", 1), ("H_INFO", 1)]
_layout = _Layout()
_names = {}
for _name, _n in _DATA:
    _layout.place(_names, _name, [0] * _n)
Data = enum.IntEnum("Data", _names)
Data.__doc__ = """Ledger data words (``CAPACITY``, ``WORD_BYTES``, ``INFO``: the first of several;
``H_GENERIC`` + status: a generic response's header word)."""
_HEADERS = {**{Data.H_GENERIC + s: (1, s) for s in Status}, Data.H_OUTPUT: (2, Status.OK),
            Data.H_STATUS: (8, Status.OK), Data.H_INFO: (INFO_WORDS, Status.OK)}
assert 1 + 4 * _HEADERS[Data.H_OUTPUT][0] == OUTPUT_HEADER
#: The counters a reset clears (a RUN counts one more run and clears the others but ERRORS).
_CLEARED = (Data.RUNS, Data.RUN_CYCLES, Data.ERRORS, Data.WRITTEN, Data.RELEASED,
            Data.IN_COUNT)


def _word(addr, *sources):
    """A script op: the ledger word at ``addr`` (None: zero) plus ``sources``."""
    return op(addr or 0, *sources, zero_a=addr is None, last=False)


def _script(header, *words):
    """A response script: its header op, then its words (the last one marked)."""
    *first, final = words
    return [op(header, S.HEADER, last=False), *first, final | op(0)]


#: The words of generic responses (a status and one word).
_WORDS = {
    "ZERO": _word(None), "ARG": _word(None, S.ARG8), "MAX_PAYLOAD": _word(Data.MAX_PAYLOAD),
    "N_REGIONS": _word(Data.N_REGIONS), "FILL": _word(Data.FILL),
    "IMAGE_CRC": _word(None, S.IMAGE_CRC), "VERIFIED": _word(None, S.VERIFIED),
    "TAG": _word(Data.TAG), "RUNS": _word(Data.RUNS), "IN_COUNT": _word(Data.IN_COUNT),
    "RELEASED": _word(Data.RELEASED), "WRITTEN": _word(Data.WRITTEN, S.WRITTEN_LOW),
}
#: The generic responses: status and word.
_GENERIC = [
    (Status.OK, "ZERO"), (Status.ERR_CRC, "ZERO"), (Status.ERR_TIMEOUT, "ZERO"),
    (Status.ERR_LENGTH, "MAX_PAYLOAD"), (Status.ERR_UNKNOWN, "ARG"), (Status.ERR_LENGTH, "ARG"),
    (Status.ERR_REGION, "N_REGIONS"), (Status.ERR_STATE, "ZERO"), (Status.ERR_SEQUENCE, "FILL"),
    (Status.ERR_TOO_LARGE, "FILL"), (Status.ERR_STALL, "FILL"), (Status.OK, "FILL"),
    (Status.ERR_INCOMPLETE, "FILL"), (Status.ERR_IMAGE_CRC, "IMAGE_CRC"),
    (Status.OK, "IMAGE_CRC"), (Status.ERR_BUSY, "ZERO"), (Status.ERR_NOT_STAGED, "VERIFIED"),
    (Status.OK, "TAG"), (Status.ERR_NO_MODEL, "ZERO"), (Status.OK, "RUNS"),
    (Status.ERR_NOT_RUNNING, "ZERO"), (Status.ERR_SEQUENCE, "IN_COUNT"),
    (Status.ERR_STALL, "IN_COUNT"), (Status.OK, "IN_COUNT"), (Status.ERR_SEQUENCE, "RELEASED"),
    (Status.ERR_SEQUENCE, "WRITTEN"),
]
#: The generic responses with a word of the region (two ops a region from the first).
_REGIONAL = [(Status.OK, "CAPACITY"), (Status.ERR_TOO_LARGE, "CAPACITY"),
             (Status.ERR_LENGTH, "WORD_BYTES")]
_STATUS0 = _word(None, S.STATUS0)
_names = {}
for _status, _name in _GENERIC:
    _layout.place(_names, f"{_status.name}_{_name}",
                  _script(Data.H_GENERIC + _status, _WORDS[_name]))
for _status, _name in _REGIONAL:
    _layout.place(_names, f"{_status.name}_{_name}",
                  [w for r in range(len(REGIONS))
                   for w in _script(Data.H_GENERIC + _status, _word(Data[_name] + r))], align=16)
_layout.place(_names, "INFO", _script(Data.H_INFO, *(_word(Data.INFO + i)
                                                     for i in range(INFO_WORDS))))
_layout.place(_names, "STATUS", _script(
    Data.H_STATUS, _STATUS0, _word(Data.TAG), _word(Data.RUNS),
    _word(Data.RUN_CYCLES, S.RUN_LOW), _word(None, S.CORE), _word(Data.IN_COUNT),
    _word(Data.WRITTEN, S.WRITTEN_LOW), _word(Data.ERRORS)))
_layout.place(_names, "OUTPUT", [op(Data.H_OUTPUT, S.HEADER, S.NDATA, last=False),
                                 *_script(Data.H_OUTPUT, _STATUS0,
                                          _word(Data.WRITTEN, S.WRITTEN_LOW))[1:]])
_layout.place(_names, "CRC", [op(0, S.CRC16, zero_a=True)])
Script = enum.IntEnum("Script", _names)
Script.__doc__ = """Response scripts, named by status and word: a header op (command byte,
length, status) and the words (``OK_CAPACITY``, ``ERR_TOO_LARGE_CAPACITY``,
``ERR_LENGTH_WORD_BYTES``: two ops a region from there); ``CRC``: the CRC-16's op."""


def _clear(addr):
    return op(addr, zero_a=True, write=True, last=False)


def _program(*ops):
    """Ops run at once; the last one ends the program."""
    *first, final = ops
    return [*(o & ~op(0) for o in first), final | op(0)]


_PROGRAMS = {
    "RESET": [_clear(w) for w in _CLEARED],
    "RUN": [op(Data.RUNS, S.ONE, write=True)] + [_clear(w) for w in _CLEARED[1:]
                                                 if w != Data.ERRORS],
    "FRAME_ERROR": [op(Data.ERRORS, S.ONE, write=True, sat=True)],
    "RX_ERROR": [op(Data.ERRORS, S.C64K, write=True, sat=True)],
    "CYCLES": [op(Data.RUN_CYCLES, S.C256, write=True)],
    "WRITTEN": [op(Data.WRITTEN, S.RING, write=True)],
    "BEGIN_LENGTH": [op(Data.NEG_REMAINING, S.NARG, cin=True, zero_a=True, write=True),
                     _clear(Data.FILL)],
    "BEGIN_CRC": [op(Data.NEG_CRC, S.NARG, cin=True, zero_a=True, write=True)],
    "CHECK_FILL": [op(Data.FILL, S.NARG, cin=True)],
    "CHECK_COUNT": [op(Data.NEG_REMAINING, S.COUNT)],
    "DATA_BYTE": [op(Data.FILL, S.ONE, write=True), op(Data.NEG_REMAINING, S.ONE, write=True)],
    "CHECK_COMPLETE": [op(Data.NEG_REMAINING)],
    "CHECK_CRC": [op(Data.NEG_CRC, S.IMAGE_CRC)],
    "STORE_TAG": [op(Data.TAG, S.ARG, zero_a=True, write=True)],
    "CHECK_INPUT": [op(Data.IN_COUNT, S.NARG, cin=True)],
    "INPUT_BYTE": [op(Data.IN_COUNT, S.ONE, write=True)],
    "CHECK_RELEASED": [op(Data.RELEASED, S.NARG, cin=True)],
    "STORE_RELEASED": [op(Data.RELEASED, S.ARG, zero_a=True, write=True)],
}
_names = {}
for _name, _ops in _PROGRAMS.items():
    _layout.place(_names, _name, _program(*_ops))
_layout.place(_names, "CHECK_CAPACITY", [op(Data.CAPACITY + r, S.NARG, cin=True)
                                         for r in range(len(REGIONS))], align=8)
Program = enum.IntEnum("Program", _names)
Program.__doc__ = """Programs (``CHECK_CAPACITY``: one a region from there). ``RESET`` clears the
counters after a reset; ``RUN`` counts a run and clears its counters."""
assert len(_layout.words) <= LEDGER_DEPTH


def image(values):
    """The ledger's initial words: the layout with the data words ``values`` (:class:`Data`
    address: word; the constants of a link) and the header words filled in."""
    words = [_layout.words.get(i, 0) for i in range(LEDGER_DEPTH)]
    for addr, header in _HEADERS.items():
        words[addr] = _header(*header)
    for addr, value in values.items():
        words[addr] = value
    return words
