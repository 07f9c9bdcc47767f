"""The SPS accelerator as a host-link core: what ``sps build`` puts on a board.

:class:`SPSCore` wraps a writable :class:`sps_hw.top.Accelerator` in the port a link core
has (``link: In(CoreInterface(memory_map))``, see ``docs/host_link.md`` section 7):

- image uploads go to the accelerator's staged memories (the link's regions are its ROMs,
  :func:`memory_map` gives their word widths and depths), ``commit`` swaps them in;
- ``start`` resets the accelerator's datapath (never its images) and starts it at
  ``segment``, ``act_in``/``act_out`` are its activation streams, ``done`` is the transfer of
  the segment's last output byte, ``cycles`` counts the run's cycles.
"""

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from sps_hw.config import Config
from sps_hw.top import Accelerator, rom_widths
from sps_hw.vendor import crossing, global_net

from .link.core_if import CoreInterface, MemoryMap

__all__ = ["SPSCore", "memory_map"]


def memory_map(cfg):
    """The link's :class:`~boards.link.MemoryMap` of the accelerator ``cfg``: one region per
    ROM, its word width and depth."""
    return MemoryMap(**rom_widths(cfg))


class SPSCore(wiring.Component):
    """The SPS accelerator of size ``cfg`` behind a host link.

    Parameters
    ----------
    cfg : sps_hw.config.Config
    images : dict
        Optional ``{ROM name: words}`` baked into the active banks (``sps build --model``).
    """

    def __init__(self, cfg, images=None):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
        self.cfg = cfg
        self.memory_map = memory_map(cfg)
        self.accelerator = Accelerator(cfg, images, writable=True)
        super().__init__({"link": In(CoreInterface(self.memory_map))})

    def elaborate(self, platform):
        m = Module()
        link = self.link
        # The run starts a cycle after the link's start, from a register that also resets
        # the accelerator: every register of it (the images' bank bits are reset_less and
        # keep the committed model) is in the `core` domain, whose reset is that register
        # (or the board's reset) on a global network, not a LUT's output across the die.
        start = Signal()
        reset = Signal(init=1)
        m.d.sync += [start.eq(link.start), reset.eq(link.start)]
        m.domains.core = core = ClockDomain("core", local=True)
        m.d.comb += [core.clk.eq(ClockSignal("sync")),
                     core.rst.eq(global_net(m, platform, reset, "core_reset"))]
        m.submodules.accelerator = acc = DomainRenamer("core")(self.accelerator)

        segment = Signal(8)
        busy = Signal()
        cycles = Signal(32)
        with m.If(link.start):                     # the segment is valid with it
            m.d.sync += segment.eq(link.segment)
        with m.If(start):
            m.d.sync += [busy.eq(1), cycles.eq(0)]
        with m.Elif(busy):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += [acc.segment.eq(segment), link.busy.eq(busy), link.cycles.eq(cycles)]

        # Images: the link's regions are the accelerator's ROMs, numbered alike. The write
        # stream (always ready) and the commit cross into the core through a register each
        # (on the fast parts), in order: the link's decisions reach the memories' enables
        # across the die.
        write = crossing(m, platform, link.write.payload, "write", reset_less=True)
        write_valid = crossing(m, platform, link.write.valid, "write_valid")
        commit = crossing(m, platform, link.commit, "commit")
        m.d.comb += [link.write.ready.eq(1), acc.image_write.valid.eq(write_valid),
                     acc.image_write.payload.eq(write), acc.image_commit.eq(commit)]

        # Activations; the run ends when the last output byte is taken.
        m.d.comb += [
            acc.act_in.valid.eq(link.act_in.valid & busy),
            acc.act_in.payload.eq(link.act_in.payload),
            link.act_in.ready.eq(acc.act_in.ready & busy),
            link.act_out.valid.eq(acc.act_out.valid & busy),
            link.act_out.payload.eq(acc.act_out.payload.data),
            acc.act_out.ready.eq(link.act_out.ready & busy),
        ]
        last = acc.act_out.valid & acc.act_out.ready & acc.act_out.payload.last
        with m.If(busy & last):
            m.d.comb += link.done.eq(1)
            m.d.sync += busy.eq(0)
        return m
