"""The host side of the link (``boards.host``) over a line that loses and damages requests and
answers at random: every operation either returns the right result, after retries, or raises
one :class:`~boards.host.LinkError` naming the request that failed, within a bounded
(simulated) time; never another exception, never a hang.

The board is :class:`~sim_tests.support.faulty_line.ModelBoard` (the link and its self-test core
in Python, :class:`~sim_tests.support.link_model.LinkModel`), so thousands of exchanges take
seconds; ``test_link_fuzz.py`` runs the host over the gateware.
"""

import re
from collections import Counter

import numpy as np
import pytest

from boards import transports
from boards.host import Link, LinkError
from boards.model_image import model_tag
from boards.protocol import REGIONS, Cmd
from boards.selftest import selftest_reference
from boards.transports import SerialTransport
from compiler.errors import SPSError
from sps.cli import main as sps

from ..support.faulty_line import FlakyLine, ModelBoard
from ..support.link_model import LinkModel
from ..support.selftest_board import LINK, MM, make_images

TIMEOUT = 0.002             # seconds the host waits beyond an answer's transfer time
#: The longest exchange: the answer's deadline (TIMEOUT, the request and the longest answer
#: of 128 bytes on the line, twice, the frame timeout), then, if it was lost, the wait for a
#: quiet line (the frame timeout and 20 bytes).
EXCHANGE = TIMEOUT + 2 * LINK["frame_timeout"] / LINK["clk_hz"] + 10e-6 * (64 + 6 + 2 * 128 + 20)
OPS = ("connect", "status", "upload", "infer")
#: What a LinkError says first: the request that failed, or what the run did.
NAMED = re.compile(r"(INFO|STATUS|DISCARD|LOAD_BEGIN|LOAD_DATA|LOAD_END|COMMIT|RUN|INPUT|"
                   r"OUTPUT)\b|the run |the board's previous run ")


def new_session(seed, **faults):
    rng = np.random.default_rng(seed)
    images = make_images(seed)
    model = LinkModel(MM, {**LINK, "model_valid": True, "model_tag": model_tag(images)}, images)
    line = FlakyLine(ModelBoard(model), rng, **faults)
    return rng, model, line, Link(line, timeout=TIMEOUT)


def operate(host, model, rng, op):
    """Run ``op``; returns whether its result was checked (raises LinkError as it comes)."""
    if op == "connect":
        info = host.connect()
        assert [(r.width, r.depth) for r in info.regions] == [(r.width, r.depth) for r in MM]
    elif op == "status":
        st = host.status()
        assert (st.model_valid, st.model_tag) == (model.model_valid, model.tag)
    elif op == "upload":
        images = make_images(int(rng.integers(1 << 30)), n=int(rng.integers(0, 30)))
        tag = host.upload(images)
        assert model.tag == tag and all(model.committed(r)[:len(images[r])] == images[r]
                                        for r in REGIONS)
    else:
        layers, weights = model.committed("layers"), model.committed("weights")
        x = rng.integers(-128, 128, int.from_bytes(layers[:2], "little")).astype(np.int8)
        segment = int(rng.integers(256))
        y = host.infer(x, len(x) + 4, segment=segment)
        want = selftest_reference(weights, layers, x, segment, depth=MM["weights"].depth,
                                  weight_bytes=MM["weights"].word_bytes)
        np.testing.assert_array_equal(y, want)


def fuzz_host(seed, operations, **faults):
    """``operations`` random operations on a flaky line; returns the outcomes."""
    rng, model, line, host = new_session(seed, **faults)
    outcomes = Counter()
    for _ in range(operations):
        op = OPS[rng.integers(len(OPS))]
        t0, sent = line.now(), host.stats["sent"]
        try:
            operate(host, model, rng, op)
            outcomes[op] += 1
        except LinkError as e:
            message = str(e)
            assert "\n" not in message and NAMED.match(message), (op, message)
            outcomes[f"{op} failed"] += 1
        # No wait beyond the exchanges' deadlines (and OUTPUT's polls while the run works).
        assert line.now() - t0 <= (host.stats["sent"] - sent) * EXCHANGE, op
    outcomes.update(line.faults)
    return outcomes


@pytest.mark.parametrize("seed", range(4))
def test_host_recovers_or_names_the_failure(seed):
    """Faults on about one exchange in three: most operations succeed through retries, some
    fail with a clear error; the next operation starts afresh."""
    outcomes = fuzz_host(seed, 150, lose=0.08, flip=0.08, p=0.06)
    assert sum(outcomes[op] for op in OPS) > 60
    assert sum(outcomes[f"{op} failed"] for op in OPS) >= 0


def test_dead_line_is_one_clear_error():
    """Nothing comes back: INFO fails after retries + 1 attempts, in bounded time."""
    _rng, _model, line, host = new_session(0, lose=1.0, flip=0.0, p=0.0)
    with pytest.raises(LinkError, match=r"^INFO: no valid answer .* after 4 attempts$"):
        host.connect()
    assert line.now() < 4 * (TIMEOUT + 0.01)



# --- regressions: each fault once, where it hurt ----------------------------------------------

def clean_session():
    """A session on a line without random faults (only planned ones)."""
    return new_session(7, lose=0.0, flip=0.0, p=0.0)


def test_abandoned_run_is_finished():
    """A run left half fed (a failed inference, a host that went away) kept the core busy:
    every later RUN and COMMIT was refused. The next session finishes it first."""
    rng, model, line, host = clean_session()
    host.start(0)
    host.send_chunk(Cmd.INPUT, 0, b"\x01" * 5, "INPUT")
    assert model.running
    fresh = Link(line, timeout=TIMEOUT)
    operate(fresh, model, rng, "infer")
    operate(fresh, model, rng, "upload")


def test_repeated_last_input_after_the_run_ended():
    """The answer to the input chunk that ends the run is lost: the repeat is refused with
    ERR_NOT_RUNNING (the run is over), which STATUS shows was a success."""
    rng, model, line, host = clean_session()
    host.connect()
    # infer: STATUS, RUN, INPUT bytes 0-7, OUTPUT, INPUT bytes 8-11 (the last: answer lost)
    line.plan("answer lost", request=line.writes + 4)
    operate(host, model, rng, "infer")
    assert host.stats["lost"] == 1 and model.done


def test_damaged_length_is_not_waited_for():
    """A bit flipped in an answer's LEN (here + 4096) is not waited for (41 ms of line
    time): the answer is dropped at once and the request repeated."""
    _rng, _model, line, host = clean_session()
    host.connect()
    line.plan("answer flipped", at=3, mask=0x10)
    t0 = line.now()
    host.status()
    assert host.stats["lost"] == 1 and line.now() - t0 < 2 * EXCHANGE


def test_failed_confirmation_names_the_request():
    """COMMIT's answer is lost and so is every STATUS that would confirm it: the error names
    COMMIT, then why the confirmation failed."""
    _rng, _model, line, host = clean_session()
    host.discard()
    for region in REGIONS:
        host.load_image(region, make_images(3)[region])
    line.plan("answer lost")
    line.lose = 1.0
    with pytest.raises(LinkError, match=r"^COMMIT: no valid answer \(.*\); then STATUS: no "
                                        r"valid answer .* after 4 attempts$"):
        host.commit(5)

@pytest.fixture(scope="module")
def demo8(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo8") / "model"
    assert sps(["compile", "demo8", "-o", str(out)]) == 0
    x = tmp_path_factory.mktemp("x") / "x.npy"
    np.save(x, np.zeros((1, 8, 8), np.int8))
    return out, x


@pytest.mark.parametrize("lose,flip,p,match", [
    (1.0, 0.0, 0.0, r"--port sim:flaky: no board answered at any board's rate \(4,000,000 "
                    r"baud: INFO: no valid answer \(timed out .*\) after 4 attempts; 3,000,000 "
                    r"baud: .*\); give --baud$"),
    (0.1, 0.1, 0.1, r"--port sim:flaky: the board's core is not the SPS core of icebreaker"),
])
def test_sps_run_gives_one_error_line(demo8, tmp_path, monkeypatch, capsys, lose, flip, p,
                                      match):
    """``sps run`` over a dead or flaky line to a board (here one without the SPS core): one
    ``sps: error:`` line naming what failed, exit status 2, no traceback."""
    model_dir, x = demo8
    rng = np.random.default_rng(0)
    board = LinkModel(MM, {**LINK, "board_id": 1})
    monkeypatch.setitem(transports._SIM_TRANSPORTS, "flaky", lambda baud, core: FlakyLine(
        ModelBoard(board), rng, lose=lose, flip=flip, p=p))
    code = sps(["run", str(model_dir), "--port", "sim:flaky", "--input", str(x),
                "-o", str(tmp_path / "y.npy"), "--timeout", "0.01"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("sps: error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert re.match(r"sps: error: " + match, errors[0]), errors[0]
    assert not (tmp_path / "y.npy").exists()


def test_serial_port_that_fails_is_an_error(monkeypatch):
    """A serial port that fails on the way (a USB adapter unplugged) is an error naming it;
    a line that echoes the requests is named too."""
    serial = pytest.importorskip("serial")
    looped = SerialTransport("loop://", 1_000_000)
    with pytest.raises(LinkError, match=r"is the line looped back\?"):
        Link(looped, timeout=0.01, retries=1).connect()

    def unplugged(n):
        raise serial.SerialException("device reports readiness to read but returned no data")
    monkeypatch.setattr(looped.serial, "read", unplugged)
    with pytest.raises(SPSError, match=r"^--port loop://: reading failed \(device reports"):
        Link(looped, timeout=0.01).connect()
    looped.close()
