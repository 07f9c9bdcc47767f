"""A small board for host-link tests: the memory map and link parameters of a
:class:`boards.selftest.SelfTestCore` behind the link, and random models for it."""

import struct

import numpy as np

from boards.link import MemoryMap

__all__ = ["CLK", "DIV", "LINK", "MM", "N_IN", "make_images", "words_of"]

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
