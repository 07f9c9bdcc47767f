"""``sps run`` without ``--baud`` finds the board's rate: the host tries each board's rate
(:data:`boards.platforms.BAUD_RATES`, fastest first) until INFO is answered. The board is the
self-test link in amaranth.sim behind the bit-level line model; a host at another rate than
the board's is a host with that baud error, so at a wrong rate the board sees real framing
garbage."""

import pytest

from boards import transports
from boards.host import LinkError, connect
from boards.platforms import BAUD_RATES
from sim_tests.support.selftest_board import LINK, Board

TIMEOUT = 0.002                 # simulated seconds beyond each answer's transfer


def _board_at(monkeypatch, board_baud):
    """``sim:probe``: a fresh board at ``board_baud``, opened at the host's ``baud``."""
    opened = []

    def factory(baud, core):
        opened.append(baud)
        return Board(baud_error=board_baud / baud - 1).transport
    monkeypatch.setitem(transports._SIM_TRANSPORTS, "probe", factory)
    return opened


def test_rates_of_the_boards():
    assert BAUD_RATES == (4_000_000, 3_000_000)


def test_finds_the_boards_rate(monkeypatch):
    """A 3 Mbaud board (the ULX3S's, the iCEBreaker's): 4 Mbaud is tried and fails first."""
    opened = _board_at(monkeypatch, 3_000_000)
    transport, _, info = connect("sim:probe", timeout=TIMEOUT)
    transport.close()
    assert opened == [4_000_000, 3_000_000] and info.board_id == LINK["board_id"]


def test_given_rate_is_the_only_one_tried(monkeypatch):
    opened = _board_at(monkeypatch, 3_000_000)
    with pytest.raises(LinkError, match=r"^INFO: no valid answer"):
        connect("sim:probe", 4_000_000, timeout=TIMEOUT)
    assert opened == [4_000_000]


def test_no_rate_answers(monkeypatch):
    """A board at 1 Mbaud (an older bitstream): every rate fails, one error naming each."""
    opened = _board_at(monkeypatch, 1_000_000)
    with pytest.raises(LinkError, match=r"^--port sim:probe: no board answered at any board's "
                                        r"rate \(4,000,000 baud: INFO: .*; 3,000,000 baud: "
                                        r"INFO: .*\); give --baud$"):
        connect("sim:probe", timeout=TIMEOUT)
    assert opened == list(BAUD_RATES)
