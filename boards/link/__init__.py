"""Board-side gateware of the host link (``docs/host_link.md``).

- :mod:`.uart`: :class:`UARTRx`/:class:`UARTTx`, 8N1 with a baud divisor;
- :mod:`.framing`: :class:`FrameReceiver`, frames with a CRC-16 into a payload buffer;
- :mod:`.link`: :class:`HostLink`, the command engine driving a core;
- :mod:`.core_if`: :class:`CoreInterface`, what a core exposes, and its :class:`MemoryMap`;
- :mod:`.staged`: :class:`StagedMemory`, a double-banked image memory for cores.
"""

from .core_if import ACT_SHAPE, CoreInterface, LinkStatus, MemoryMap, RegionSpec, image_write_layout
from .framing import FrameReceiver
from .link import HostLink
from .staged import StagedMemory
from .uart import UARTRx, UARTTx, divisor_for

__all__ = [
                      "ACT_SHAPE",
                      "CoreInterface",
                      "FrameReceiver",
                      "HostLink",
                      "LinkStatus",
                      "MemoryMap",
                      "RegionSpec",
                      "StagedMemory",
                      "UARTRx",
                      "UARTTx",
                      "divisor_for",
                      "image_write_layout",
]
