"""What every executor does alike: answering a command, once, or refusing it."""

from ..protocol import Status
from .ports import Word

__all__ = ["accept_offset", "answer", "refuse"]


def answer(m, port, status, word=Word.ARG, **fields):
    """In this cycle, take the current item of ``port`` (an executor's
    :class:`~.ports.ExecutorSignature`, flipped) and offer the result: ``status``, the response's
    ``word`` and the other result ``fields`` (``kind``, ``ndata``). The command ends here (the
    dispatcher offers no more of its items); the executor's FSM returns to ``IDLE``.
    """
    result = port.result.payload
    m.d.comb += [port.command.ready.eq(1), port.result.valid.eq(1), result.status.eq(status),
                 result.word.eq(word)]
    for name, value in fields.items():
        m.d.comb += getattr(result, name).eq(value)
    m.next = "IDLE"


def refuse(m, port, refusals):
    """Answer with the first of ``refusals`` (``(condition, status, word)``) that holds: an
    ``If``/``Elif`` chain the caller continues with ``m.Elif`` or ``m.Else``."""
    for i, (condition, status, word) in enumerate(refusals):
        with (m.Elif if i else m.If)(condition):
            answer(m, port, status, word)


def accept_offset(m, port, refusals, word, data_state):
    """The offset item of LOAD_DATA or INPUT: refused (see :func:`refuse`), or answered ``OK``
    with ``word`` when no data follows, or taken, the data next in ``data_state``."""
    refuse(m, port, refusals)
    with m.Elif(port.command.payload.last):
        answer(m, port, Status.OK, word)
    with m.Else():
        m.d.comb += port.command.ready.eq(1)
        m.next = data_state
