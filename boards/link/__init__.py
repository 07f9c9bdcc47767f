"""Board-side gateware of the host link (``docs/host_link.md``).

- :mod:`.link`: :class:`HostLink`, the link as a whole, composed of the stages below;
- :mod:`.uart`: :class:`UARTRx`/:class:`UARTTx`, 8N1 with a baud divisor;
- :mod:`.framing`: :class:`FrameReceiver`, frames with a CRC-16 into a payload buffer;
- :mod:`.dispatch`: :class:`CommandDispatcher`, requests to their executors;
- :mod:`.loader`, :mod:`.run`, :mod:`.readback`: the executors :class:`ImageLoader` (uploads),
  :class:`RunControl` (runs and input) and :class:`OutputReadback` (the output ring);
- :mod:`.response`: :class:`ResponseSender`, results to response frames;
- :mod:`.ledger`: :class:`StatusLedger`, a block RAM of response words, scripts and programs,
  and the adder that runs them;
- :mod:`.scripts`: what that block RAM holds, and where;
- :mod:`.words`: :class:`WordShifter`, the shift register of arguments and response words;
- :mod:`.ports`: the layouts and signatures that join the stages;
- :mod:`.serial`: :class:`~.serial.SerialCRC`, the bit-serial CRC register;
- :mod:`.core_if`: :class:`CoreInterface`, what a core exposes, and its :class:`MemoryMap`.

A core keeps its images in :class:`sps_hw.memories.StagedImages` (double-banked, committed at
once).
"""

from .core_if import ACT_SHAPE, CoreInterface, LinkStatus, MemoryMap, RegionSpec
from .dispatch import CommandDispatcher
from .framing import FrameReceiver
from .ledger import StatusLedger
from .link import HostLink
from .loader import ImageLoader
from .readback import OutputReadback
from .response import ResponseSender
from .run import RunControl
from .uart import UARTRx, UARTTx, divisor_for
from .words import WordShifter

__all__ = [
    "ACT_SHAPE",
    "CommandDispatcher",
    "CoreInterface",
    "FrameReceiver",
    "HostLink",
    "ImageLoader",
    "LinkStatus",
    "MemoryMap",
    "OutputReadback",
    "RegionSpec",
    "ResponseSender",
    "RunControl",
    "StatusLedger",
    "UARTRx",
    "UARTTx",
    "WordShifter",
    "divisor_for",
]
