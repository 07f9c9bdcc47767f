"""A small board for host-link tests: the memory map and link parameters of a
:class:`boards.selftest.SelfTestCore` behind the link, random models for it, and
:class:`Board`, the link and the core in amaranth.sim behind the bit-level UART line model."""

import struct

import numpy as np

from boards.host import Link
from boards.link import MemoryMap
from boards.protocol import Status
from boards.selftest import SelfTestCore, selftest_reference
from boards.simulation import AmaranthTransport
from boards.top import LinkedCore

__all__ = ["CLK", "DIV", "LINK", "MM", "N_IN", "Board", "make_images", "words_of"]

CLK = 1_000_000
DIV = 4
MM = MemoryMap(weights=(16, 32), index=(4, 8), library=(9, 4), params=(20, 2), layers=(32, 2))
LINK = {"clk_hz": CLK, "divisor": DIV, "max_payload": 64, "out_depth": 16, "frame_timeout": 240,
        "stall_timeout": 300, "board_id": 7, "rows": 4, "cols": 2}
N_IN = 12                                  # input bytes of a self-test run


def make_images(seed, n=N_IN):
    """Random images for MM; the layers image tells the self-test core to take ``n`` bytes."""
    rng = np.random.default_rng(seed)

    def rand(region, words):
        return rng.integers(0, 256, words * MM[region].word_bytes, dtype=np.uint8).tobytes()
    return {"weights": rand("weights", 16), "index": rand("index", 8),
            "library": rand("library", 4), "params": rand("params", 2),
            "layers": struct.pack("<I", n) + rand("layers", 1)}


def words_of(image, region, memory_map=MM):
    """The memory words an uploaded image becomes (little-endian, masked to the width)."""
    spec = memory_map[region]
    wb = spec.word_bytes
    return [int.from_bytes(image[i:i + wb], "little") & ((1 << spec.width) - 1)
            for i in range(0, len(image), wb)]


class Board:
    """A simulated board: link + self-test core, its transport and a host session."""

    def __init__(self, *, init=None, baud_error=0.0, timeout=0.002, **link_args):
        self.core = SelfTestCore(MM, init=init)
        self.top = LinkedCore(self.core, **{**LINK, **link_args})
        self.transport = AmaranthTransport(self.top, rx=self.top.rx, tx=self.top.tx,
                                           clk_hz=CLK, divisor=DIV, baud_error=baud_error)
        self.host = Link(self.transport, timeout=timeout)

    def active(self, region):
        """Words of the active bank of ``region`` (read from the simulated memory)."""
        bank = self.core.images.banks[region]
        active, = self.transport.peek(bank.active)
        base = bank.depth if active else 0
        words = self.transport.peek(*(bank.memory.data[base + i] for i in range(bank.depth)))
        return [w & ((1 << bank.width) - 1) for w in words]     # the read port's bits

    def assert_model(self, images, tag, *, run=False):
        """The board holds exactly ``images`` under ``tag`` (and, with ``run``, runs them)."""
        st = self.host.status()
        assert st.model_valid and st.model_tag == tag
        for region, image in images.items():
            words = words_of(image, region)
            assert self.active(region)[:len(words)] == words, f"{region} image changed"
        if not run:
            return
        x = np.random.default_rng(tag).integers(-128, 128, N_IN).astype(np.int8)
        n = int.from_bytes(images["layers"][:2], "little")
        y = self.host.infer(x, n + 4, segment=5)
        want = selftest_reference(images["weights"], images["layers"], x, 5,
                                  depth=MM["weights"].depth, weight_bytes=2)
        np.testing.assert_array_equal(y, want)

    def raw(self, frame, *, expect=Status.OK):
        """Send raw bytes, read one answer, check its status; returns the Response."""
        self.host.send_raw(frame)
        _cmd, body = self.host._read_frame(0.01)
        assert body[0] == expect, f"got {Status(body[0]).name}, expected {expect.name}"
        return body
