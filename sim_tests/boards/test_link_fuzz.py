# amaranth: UnusedElaboratable=no
"""The host link fuzzed in amaranth.sim: random byte streams, damaged and malformed frames and
commands out of order, interleaved with valid uploads and runs (``sim_tests/support/
fuzz_events.py``), through the link and the self-test core below the UART
(``sim_tests/support/byte_link.py``). Every answer is predicted by a model of
``docs/host_link.md`` (``sim_tests/support/link_model.py``) and must arrive, exact, within a
bound in cycles; at the end ``boards.host`` runs the committed model, exact to the byte.

A failure names the seed and the event; rerun one seed with ``SPS_FUZZ_SEED=<seed>`` (and
``SPS_FUZZ_EVENTS=<n>``). Counts and measured bounds: ``docs/reliability.md``.
"""

import os
from collections import Counter

import numpy as np
import pytest

from boards.model_image import model_tag

from ..support.fuzz_events import Fuzzer
from ..support.link_fuzz import FuzzBoard
from ..support.selftest_board import LINK, MM, make_images

#: The link's timeouts are short so that an event takes a few hundred cycles.
FUZZ_LINK = {**LINK, "frame_timeout": 64, "stall_timeout": 64, "model_valid": True}
SEEDS, EVENTS = range(4), 400                   # the default suite
SLOW_SEEDS, SLOW_EVENTS = range(100, 102), 2500  # -m slow


def fuzz(seed, events):
    """``events`` events from ``seed``, then an inference with the host code; returns the
    board's statistics."""
    images = make_images(seed)
    board = FuzzBoard(MM, {**FUZZ_LINK, "model_tag": model_tag(images)}, init=images)
    fuzzer = Fuzzer(board, np.random.default_rng(seed))
    kinds = Counter()
    where = "before the first event"
    try:
        for i in range(events):
            where = f"event {i}"
            kinds[fuzzer.step()] += 1
        where = "the final run"
        n = int.from_bytes(board.model.committed("layers")[:2], "little")
        x = np.random.default_rng(seed).integers(-128, 128, n).astype(np.int8)
        y, want = board.host_run(x, segment=seed % 256)
        np.testing.assert_array_equal(y, want)
    except AssertionError as e:
        raise AssertionError(f"seed {seed}, {where}: {e}") from None
    board.stats.update(kinds)
    return board


def seeds(default):
    chosen = os.environ.get("SPS_FUZZ_SEED")
    return [int(chosen)] if chosen else list(default)


def events(default):
    return int(os.environ.get("SPS_FUZZ_EVENTS", default))


def check(board, count):
    stats = board.stats
    assert sum(stats[k] for k in ("request", "damaged", "noise", "out_of_turn", "spaced",
                                  "script", "reset")) == count
    assert board.worst <= 1.0
    if count < EVENTS:
        return
    # Every kind of trouble happened, and valid work got done in between.
    for key in ("ERR_CRC", "ERR_LENGTH", "ERR_TIMEOUT", "ERR_UNKNOWN", "ERR_SEQUENCE",
                "dropped", "commits", "runs_checked"):
        assert stats[key] > 0, key


@pytest.mark.parametrize("seed", seeds(SEEDS))
def test_link_fuzz(seed):
    count = events(EVENTS)
    check(fuzz(seed, count), count)


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds(SLOW_SEEDS))
def test_link_fuzz_long(seed):
    count = events(SLOW_EVENTS)
    check(fuzz(seed, count), count)
