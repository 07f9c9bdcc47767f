# amaranth: UnusedElaboratable=no
"""Noise on the line itself, through the link's UART in amaranth.sim (``test_link_fuzz.py``
works below it): random levels from glitches shorter than a bit to breaks many bytes long.
After each burst the host's next request is answered (after retries at most) within its
deadlines, and the noise executed nothing; at the end the committed model runs exact.

A failure names the seed; rerun with ``SPS_FUZZ_SEED=<seed>``. Counts: docs/reliability.md.
"""

import numpy as np
import pytest

from boards.model_image import model_tag
from boards.protocol import Cmd, Status

from ..support.selftest_board import CLK, DIV, LINK, Board, make_images, words_of
from .test_link_fuzz import seeds

BURSTS, SLOW_BURSTS = 24, 400
BIT = DIV / CLK
#: Segment lengths in bits: glitches, bits, bytes, breaks.
LENGTHS = ((0.1, 0.6), (1, 9), (10, 40), (40, 200))


def noise(rng):
    """A burst: 1 to 12 segments of random level and length, then the idle level."""
    segments = []
    for _ in range(int(rng.integers(1, 13))):
        low, high = LENGTHS[rng.integers(len(LENGTHS))]
        segments.append((int(rng.integers(2)), float(rng.uniform(low, high)) * BIT))
    return [*segments, (1, BIT)]


def run_noise(seed, bursts):
    rng = np.random.default_rng(seed)
    images = make_images(seed)
    tag = model_tag(images)
    board = Board(init={r: words_of(img, r) for r, img in images.items()}, model_valid=True,
                  model_tag=tag)
    host, line = board.host, board.transport
    host.connect()
    # An exchange: its deadline (the timeout, the bytes both ways, the frame timeout), then
    # the wait for a quiet line.
    exchange = host.timeout + 2 * LINK["frame_timeout"] / CLK + 100 * line.byte_time
    errors = 0
    for burst in range(bursts):
        line.drive_line(noise(rng))
        t0, sent = line.now(), host.stats["sent"]
        rsp = host.request(Cmd.LOAD_END)                # no load is open: nothing to end
        assert rsp.status == Status.ERR_STATE, f"seed {seed}, burst {burst}: {rsp}"
        assert line.now() - t0 <= (host.stats["sent"] - sent) * exchange + 250 * line.byte_time
        if burst % 8 == 7:
            st = host.status()
            assert (st.model_tag, st.verified, st.runs, st.busy) == (tag, 0, 0, False), st
            assert st.frame_errors + st.rx_errors >= errors
            errors = st.frame_errors + st.rx_errors
    board.assert_model(images, tag, run=True)
    return host.stats, errors


@pytest.mark.parametrize("seed", seeds([0]))
def test_line_noise(seed):
    stats, errors = run_noise(seed, BURSTS)
    assert stats["retries"] > 0 and errors > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", seeds([100]))
def test_line_noise_long(seed):
    run_noise(seed, SLOW_BURSTS)
