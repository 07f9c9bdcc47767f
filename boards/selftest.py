"""A stand-in core for bringing up the host link before the accelerator is plugged in.

:class:`SelfTestCore` has the accelerator's port (``link: In(CoreInterface)``) and staged image
memories (:class:`sps_hw.memories.StagedImages`), and a run that depends on the committed
images, so an end-to-end test can tell whether a model survived a rejected upload:

- ``n`` = the low 16 bits of word 0 of the ``layers`` region;
- for each of ``n`` input bytes ``x[i]``: output ``x[i] + w[i mod depth] + segment`` (int8,
  wrapping), ``w[j]`` being the low byte of word ``j`` of the ``weights`` region;
- then the wrapping 32-bit sum of the ``x[i]`` (as signed values), 4 bytes little-endian.
"""

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from sps_hw.memories import StagedImages

from .link.core_if import CoreInterface, MemoryMap

__all__ = ["SelfTestCore", "selftest_reference"]


class SelfTestCore(wiring.Component):
    """Stand-in core: staged images and the trivial run described in the module docstring.

    Parameters
    ----------
    memory_map : MemoryMap
    init : dict
        Optional ``{region name: words}`` baked into the active banks.
    """

    def __init__(self, memory_map, init=None):
        if not isinstance(memory_map, MemoryMap):
            raise TypeError(f"memory_map must be a MemoryMap, not {memory_map!r}")
        self.memory_map = memory_map
        self.images = StagedImages({r.name: (unsigned(r.width), r.depth) for r in memory_map},
                                   init)
        super().__init__({"link": In(CoreInterface(memory_map))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.images = images = self.images
        link = self.link
        wiring.connect(m, wiring.flipped(link.write), images.write)
        m.d.comb += images.commit.eq(link.commit)

        wr, lr = images.read_weights, images.read_layers
        depth = self.memory_map["weights"].depth
        n = Signal(16)
        i = Signal(16)
        widx = Signal(range(depth))
        segment = Signal(8)
        total = Signal(32)
        y = Signal(8)
        w = Signal(8)
        k = Signal(2)
        cycles = Signal(32)
        busy = Signal()
        m.d.comb += [lr.addr.eq(0), wr.addr.eq(widx), link.busy.eq(busy),
                     link.cycles.eq(cycles)]
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(link.start):
                    m.d.sync += [busy.eq(1), cycles.eq(0), segment.eq(link.segment),
                                 i.eq(0), widx.eq(0), total.eq(0)]
                    m.next = "LENGTH"
            with m.State("LENGTH"):                    # the layers word is read here
                m.next = "LENGTH_WAIT"
            with m.State("LENGTH_WAIT"):               # ... and arrives READ_LATENCY later
                m.next = "COUNT"
            with m.State("COUNT"):
                m.d.sync += n.eq(lr.data[:16])
                m.next = "NEXT"
            with m.State("NEXT"):                      # the weights word is read here
                with m.If(i == n):
                    m.d.sync += k.eq(0)
                    m.next = "SUM"
                with m.Else():
                    m.next = "WEIGHT_WAIT"
            with m.State("WEIGHT_WAIT"):
                m.next = "WEIGHT"
            with m.State("WEIGHT"):
                m.d.sync += w.eq(wr.data[:8])           # READ_LATENCY after NEXT
                m.next = "INPUT"
            with m.State("INPUT"):
                m.d.comb += link.act_in.ready.eq(1)
                with m.If(link.act_in.valid):
                    x = link.act_in.payload
                    m.d.sync += [y.eq(x + w + segment), total.eq(total + x)]
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                m.d.comb += [link.act_out.valid.eq(1), link.act_out.payload.eq(y)]
                with m.If(link.act_out.ready):
                    m.d.sync += [i.eq(i + 1), widx.eq(Mux(widx == depth - 1, 0, widx + 1))]
                    m.next = "NEXT"
            with m.State("SUM"):
                m.d.comb += [link.act_out.valid.eq(1),
                             link.act_out.payload.eq(total.word_select(k, 8))]
                with m.If(link.act_out.ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == 3):
                        m.d.comb += link.done.eq(1)
                        m.d.sync += busy.eq(0)
                        m.next = "IDLE"
        return m


def selftest_reference(weights, layers, x, segment=0, *, depth, weight_bytes=1,
                       layer_bytes=8):
    """What :class:`SelfTestCore` outputs for input bytes ``x`` with these committed images.

    ``weights`` and ``layers`` are the image bytes (words of ``weight_bytes`` and
    ``layer_bytes`` bytes, little-endian); returns int8 ``[n + 4]``.
    """
    x = np.asarray(x, np.int8).astype(np.int64)
    n = int.from_bytes(bytes(layers[:2]), "little")
    w = np.frombuffer(bytes(weights), np.uint8)[::weight_bytes].astype(np.int64)
    idx = np.arange(n) % depth
    if n and idx.max() >= len(w):
        raise ValueError(f"the run reads weight word {idx.max()}, the image has {len(w)}")
    y = (x[:n] + w[idx] + segment) & 0xFF
    total = int(x[:n].sum()) & 0xFFFFFFFF
    out = np.concatenate([y, np.frombuffer(total.to_bytes(4, "little"), np.uint8)])
    return out.astype(np.uint8).view(np.int8)
