"""What every executor does alike: answering a command, once, or refusing it."""

__all__ = ["accept_offset", "answer", "refuse"]


def answer(m, port, script):
    """In this cycle, take the current item of ``port`` (an executor's
    :class:`~.ports.ExecutorSignature`, flipped) and offer the result: the response's
    ``script`` (:class:`~.scripts.Script`: its status and words). The command ends here (the
    dispatcher offers no more of its items); the executor's FSM returns to ``IDLE``.
    """
    m.d.comb += [port.command.ready.eq(1), port.result.valid.eq(1),
                 port.result.payload.script.eq(script)]
    m.next = "IDLE"


def refuse(m, port, refusals):
    """Answer with the first of ``refusals`` (``(condition, script)``) that holds: an
    ``If``/``Elif`` chain the caller continues with ``m.Elif`` or ``m.Else``."""
    for i, (condition, script) in enumerate(refusals):
        with (m.Elif if i else m.If)(condition):
            answer(m, port, script)


def accept_offset(m, port, refusals, script, data_state):
    """The offset item of LOAD_DATA or INPUT: refused (see :func:`refuse`), or answered with
    ``script`` when no data follows, or taken, the data next in ``data_state``."""
    refuse(m, port, refusals)
    with m.Elif(port.command.payload.last):
        answer(m, port, script)
    with m.Else():
        m.d.comb += port.command.ready.eq(1)
        m.next = data_state
