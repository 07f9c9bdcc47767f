"""Board-side gateware of the host link (``docs/host_link.md``).

- :mod:`.uart`: :class:`UARTRx`/:class:`UARTTx`, 8N1 with a baud divisor;
- :mod:`.framing`: :class:`FrameReceiver`, frames with a CRC-16 into a payload buffer;
- :mod:`.link`: :class:`HostLink`, the command engine driving a core;
- :mod:`.core_if`: :class:`CoreInterface`, what a core exposes, and its :class:`MemoryMap`.

A core keeps its images in :class:`sps_hw.memories.StagedImages` (double-banked, committed at
once).
"""

from .core_if import ACT_SHAPE, CoreInterface, LinkStatus, MemoryMap, RegionSpec
from .framing import FrameReceiver
from .link import HostLink
from .uart import UARTRx, UARTTx, divisor_for

__all__ = [
                      "ACT_SHAPE",
                      "CoreInterface",
                      "FrameReceiver",
                      "HostLink",
                      "LinkStatus",
                      "MemoryMap",
                      "RegionSpec",
                      "UARTRx",
                      "UARTTx",
                      "divisor_for",
]
