"""The interface between the host link and an accelerator core, named in one place.

The link (:class:`~boards.link.HostLink`) drives a :class:`CoreInterface`; a core exposes the
flipped signature as its port ``link`` (``In(CoreInterface(memory_map))``) and the board top
joins them with ``wiring.connect(m, link.core, core.link)``.

The core's image memories are described by a :class:`MemoryMap`: for each
:class:`~boards.protocol.Region` (weights, index, library, params, layers) the word width in
bits and the depth in words; or, for a core that runs models from external memory
(``boards.dram.core``), the one region ``dram``: bytes of the DRAM half uploads go to. The
link writes uploaded words into the *staging* copy of a region; ``commit`` makes every staged
region active at once. Until then the core keeps running on the previously committed images
(see :class:`sps_hw.memories.StagedImages`).
"""

from dataclasses import dataclass

from amaranth.hdl import signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.config import word_bytes
from sps_hw.memories import image_write_layout

from ..protocol import DRAM_REGION, REGIONS

__all__ = [
    "ACT_SHAPE",
    "CYCLE_BITS",
    "SEGMENT_BITS",
    "CoreInterface",
    "LinkStatus",
    "MemoryMap",
    "RegionSpec",
]

#: Activations travel as int8, one per stream transfer, in C, H, W order.
ACT_SHAPE = signed(8)
CYCLE_BITS = 32
SEGMENT_BITS = 8


@dataclass(frozen=True)
class RegionSpec:
    """One image memory: ``depth`` words of ``width`` bits, numbered ``code`` in requests."""

    name: str
    width: int
    depth: int
    code: int = 0

    def __post_init__(self):
        if self.name not in (*REGIONS, DRAM_REGION):
            raise ValueError(f"region name must be one of {(*REGIONS, DRAM_REGION)}, "
                             f"not {self.name!r}")
        if not isinstance(self.width, int) or not 1 <= self.width <= 4096:
            raise ValueError(f"width of region {self.name} must be an int in 1..4096, "
                             f"not {self.width!r}")
        if not isinstance(self.depth, int) or not 1 <= self.depth <= 1 << 24:
            raise ValueError(f"depth of region {self.name} must be an int in 1..2**24, "
                             f"not {self.depth!r}")

    @property
    def word_bytes(self):
        """Bytes per word in an uploaded image (little-endian, zero-padded)."""
        return word_bytes(self.width)

    @property
    def capacity(self):
        """Largest image in bytes."""
        return self.depth * self.word_bytes


class MemoryMap:
    """Width and depth of each image memory of a core.

    Parameters
    ----------
    **regions : ``(width, depth)`` per region name: ``weights``, ``index``, ``library``,
        ``params``, ``layers`` (all five, codes 0-4), or ``dram`` alone (code 0).
    """

    def __init__(self, **regions):
        names = (DRAM_REGION,) if set(regions) == {DRAM_REGION} else REGIONS
        missing = [name for name in names if name not in regions]
        extra = [name for name in regions if name not in names]
        if missing or extra:
            raise ValueError(f"memory map needs exactly the regions {REGIONS} or "
                             f"{DRAM_REGION!r} alone; missing {missing}, unknown {extra}")
        specs = []
        for code, name in enumerate(names):
            value = regions[name]
            if not (isinstance(value, tuple) and len(value) == 2):
                raise TypeError(f"region {name} must be a (width, depth) tuple, not {value!r}")
            specs.append(RegionSpec(name, *value, code))
        self.regions = tuple(specs)

    def __getitem__(self, name):
        if isinstance(name, int):
            return self.regions[name]
        return next(r for r in self.regions if r.name == name)

    def __iter__(self):
        return iter(self.regions)

    def __eq__(self, other):
        return isinstance(other, MemoryMap) and self.regions == other.regions

    def __hash__(self):
        return hash(self.regions)

    def __repr__(self):
        inner = ", ".join(f"{r.name}=({r.width}, {r.depth})" for r in self.regions)
        return f"MemoryMap({inner})"

    @property
    def max_word_bytes(self):
        return max(r.word_bytes for r in self.regions)

    @property
    def addr_width(self):
        """Width of a word address (of the deepest region) in :attr:`write_layout`."""
        return self.write_layout["addr"].shape.width

    @property
    def lane_width(self):
        """Width of a byte lane (of the widest word) in :attr:`write_layout`."""
        return self.write_layout["lane"].shape.width

    @property
    def max_capacity(self):
        return max(r.capacity for r in self.regions)

    @property
    def write_layout(self):
        """Payload of the image write stream into these regions
        (:func:`sps_hw.memories.image_write_layout`)."""
        return image_write_layout({r.name: (r.width, r.depth) for r in self.regions})

    def as_dict(self):
        return {r.name: {"width": r.width, "depth": r.depth, "bytes": r.capacity}
                for r in self.regions}


class CoreInterface(wiring.Signature):
    """What the host link drives and what a core answers, from the link's side.

    Members
    -------
    write : ``Out(stream.Signature(memory_map.write_layout))``
        One byte (``lane``) of word ``addr`` of the *staging* copy of ``region``; block RAMs
        take it with a byte write enable. The core may hold ``ready`` low (the link waits up
        to its stall timeout).
    commit : ``Out(1)``
        One-cycle strobe, only while ``busy`` is low: every staged region becomes active at
        once. Regions that were not staged since the last commit are never committed (the link
        refuses COMMIT unless all five were staged and verified).
    start : ``Out(1)``
        One-cycle strobe, only while ``busy`` is low and a model is committed: run ``segment``.
    segment : ``Out(8)``
        The segment to run, valid with ``start``.
    act_in : ``Out(stream.Signature(signed(8)))``
        Input activations of the run (C, H, W order).
    act_out : ``In(stream.Signature(signed(8)))``
        Output activations of the run; the link buffers them for the host and may stall.
    busy : ``In(1)``
        High from the cycle after ``start`` until ``done``.
    done : ``In(1)``
        One-cycle strobe: the run finished and its last output was accepted.
    cycles : ``In(32)``
        The core's own cycle count of the current or last run.

    The core must keep its active images and its committed-bank state through the ``sync``
    domain reset (``reset_less``), because the link promises that a reset keeps the model.
    """

    def __init__(self, memory_map):
        if not isinstance(memory_map, MemoryMap):
            raise TypeError(f"memory_map must be a MemoryMap, not {memory_map!r}")
        self.memory_map = memory_map
        super().__init__({
            "write": Out(stream.Signature(memory_map.write_layout)),
            "commit": Out(1),
            "start": Out(1),
            "segment": Out(SEGMENT_BITS),
            "act_in": Out(stream.Signature(ACT_SHAPE)),
            "act_out": In(stream.Signature(ACT_SHAPE)),
            "busy": In(1),
            "done": In(1),
            "cycles": In(CYCLE_BITS),
        })

    def __eq__(self, other):
        return type(other) is type(self) and other.memory_map == self.memory_map

    def __hash__(self):
        return hash(self.memory_map)

    def __repr__(self):
        return f"CoreInterface({self.memory_map!r})"


class LinkStatus(wiring.Signature):
    """Status of the link for LEDs, from the link's side (levels and one-cycle strobes)."""

    def __init__(self):
        super().__init__({
            "model_valid": Out(1),   # a committed model is active
            "busy": Out(1),          # the core is running
            "done": Out(1),          # the last run finished
            "loading": Out(1),       # an image upload is open
            "error": Out(1),         # strobe: an error response was sent
            "rx": Out(1),            # strobe: a byte arrived
            "tx": Out(1),            # strobe: a byte was sent
        })

    def __eq__(self, other):
        return type(other) is type(self)

    def __hash__(self):
        return hash(type(self))
