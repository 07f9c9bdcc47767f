"""Double-banked image memories: the core reads the committed bank, uploads fill the other.

This is how a core keeps its model intact during an upload (``CoreInterface`` asks for it):
each region is stored twice, ``commit`` swaps the banks of every region in one cycle, and the
bank bit is ``reset_less`` so that a reset keeps the committed model. Images baked in at build
time (``init``) start in the active bank. :class:`StagedMemory` itself lives in
:mod:`sps_hw.memories` (the accelerator's writable ROMs are the same memory).
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.memories import StagedMemory

from .core_if import MemoryMap, image_write_layout

__all__ = ["StagedImages", "StagedMemory"]


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
