"""Double-banked image memories: the core reads the committed bank, uploads fill the other.

This is how a core keeps its model intact during an upload (``CoreInterface`` asks for it):
each region is stored twice, ``commit`` swaps the banks of every region in one cycle, and the
bank bit is ``reset_less`` so that a reset keeps the committed model. Images baked in at build
time (``init``) start in the active bank.
"""

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .core_if import MemoryMap, image_write_layout

__all__ = ["StagedImages", "StagedMemory"]


class StagedMemory(wiring.Component):
    """One image region: ``depth`` words of ``width`` bits, twice.

    Ports: ``write`` (one byte lane of a word, always ready) goes to the staging bank,
    ``read`` (synchronous) reads the active bank, ``commit`` swaps them, ``active`` tells which
    bank is active. Words are stored in whole bytes (a 9-bit word takes 16 bits).

    Parameters
    ----------
    width, depth : int
        Word width in bits and words per bank.
    init : sequence of int
        Initial contents of the active bank (at most ``depth`` words).
    """

    def __init__(self, *, width, depth, init=()):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, not {width!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive int, not {depth!r}")
        init = [int(v) for v in init]
        if len(init) > depth:
            raise ValueError(f"init has {len(init)} words, the memory holds {depth}")
        if any(not 0 <= v < 1 << width for v in init):
            raise ValueError(f"init words must fit in {width} unsigned bits")
        self.width, self.depth, self.init = width, depth, init
        self.addr_width = max(depth - 1, 1).bit_length()
        self.word_bytes = (width + 7) // 8
        self.lane_width = max(self.word_bytes - 1, 1).bit_length()
        #: The memory (both banks: bank 1 at ``depth``); exposed for inspection in simulation.
        self.memory = memory.Memory(shape=8 * self.word_bytes, depth=2 * depth, init=init)
        super().__init__({
            "commit": In(1),
            "active": Out(1),
            "write": In(stream.Signature(data.StructLayout({
                "addr": unsigned(self.addr_width), "lane": unsigned(self.lane_width),
                "data": unsigned(8)}))),
            "read": Out(memory.ReadPort.Signature(addr_width=self.addr_width, shape=width)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = self.memory
        wp, rp = mem.write_port(granularity=8), mem.read_port()
        active = Signal(reset_less=True)
        with m.If(self.commit):
            m.d.sync += active.eq(~active)
        w = self.write.payload
        m.d.comb += [
            self.active.eq(active),
            self.write.ready.eq(1),
            wp.en.eq(Mux(self.write.valid, Const(1, self.word_bytes) << w.lane, 0)),
            wp.addr.eq(Mux(active, w.addr, w.addr + self.depth)),
            wp.data.eq(w.data.replicate(self.word_bytes)),
            rp.en.eq(self.read.en),
            rp.addr.eq(Mux(active, self.read.addr + self.depth, self.read.addr)),
            self.read.data.eq(rp.data[:self.width]),
        ]
        return m


class StagedImages(wiring.Component):
    """All regions of a :class:`MemoryMap` as :class:`StagedMemory`, fed by the link's writes.

    ``write`` and ``commit`` connect to the link side of a ``CoreInterface``; the core reads
    region ``name`` through ``read_<name>`` (synchronous, active bank).

    Parameters
    ----------
    memory_map : MemoryMap
    init : dict
        Optional ``{region name: words}`` for the active banks.
    """

    def __init__(self, memory_map, init=None):
        if not isinstance(memory_map, MemoryMap):
            raise TypeError(f"memory_map must be a MemoryMap, not {memory_map!r}")
        init = dict(init or {})
        unknown = set(init) - {r.name for r in memory_map}
        if unknown:
            raise ValueError(f"init names unknown regions {sorted(unknown)}")
        self.memory_map = memory_map
        self.banks = {r.name: StagedMemory(width=r.width, depth=r.depth,
                                           init=init.get(r.name, ()))
                      for r in memory_map}
        ports = {"write": In(stream.Signature(image_write_layout(memory_map))),
                 "commit": In(1)}
        for name, bank in self.banks.items():
            ports[f"read_{name}"] = Out(bank.read.signature)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        w = self.write.payload
        m.d.comb += self.write.ready.eq(1)
        for region in self.memory_map:
            bank = self.banks[region.name]
            m.submodules[region.name] = bank
            m.d.comb += [
                bank.write.valid.eq(self.write.valid & (w.region == region.code)),
                bank.write.payload.addr.eq(w.addr),
                bank.write.payload.lane.eq(w.lane),
                bank.write.payload.data.eq(w.data),
                bank.commit.eq(self.commit),
            ]
            wiring.connect(m, wiring.flipped(getattr(self, f"read_{region.name}")), bank.read)
        return m
