"""The host-link protocol, shared by the board gateware and the host (``docs/host_link.md``).

Every message is a *frame*::

    SYNC  CMD  LEN_LO LEN_HI  PAYLOAD[LEN]  CRC_HI CRC_LO

``SYNC`` is 0xA5. ``CRC`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no
reflection, no final XOR; ``binascii.crc_hqx(data, 0xFFFF)``) over ``CMD``, ``LEN`` and
``PAYLOAD``, sent most significant byte first, so the CRC over the whole frame after ``SYNC`` is
zero. All other multi-byte fields are little-endian. A response has ``CMD = request | 0x80`` and
a payload that starts with a :class:`Status` byte. Images are checked end to end with CRC-32
(ISO-HDLC, ``zlib.crc32``).

This module is plain Python (no Amaranth) so that the host side imports quickly.
"""

import binascii
import enum
import struct
import zlib

from sps_hw.config import ROM_NAMES

__all__ = [
    "DRAM_REGION",
    "HEADER_BYTES",
    "INFO_FORMAT",
    "INFO_REGION_FORMAT",
    "MIN_PAYLOAD_LENGTH",
    "OVERHEAD",
    "PAYLOAD_LENGTH",
    "REGIONS",
    "RESPONSE",
    "STATUS_FIELDS",
    "STATUS_FORMAT",
    "SYNC",
    "TRAILER_BYTES",
    "VERSION",
    "Cmd",
    "Flag",
    "Region",
    "Status",
    "crc16",
    "crc32",
    "encode_frame",
    "region_names",
]

VERSION = 1
SYNC = 0xA5
RESPONSE = 0x80
HEADER_BYTES = 4            # SYNC, CMD, LEN (2)
TRAILER_BYTES = 2           # CRC-16
OVERHEAD = HEADER_BYTES + TRAILER_BYTES


class Cmd(enum.IntEnum):
    """Request commands (the ``CMD`` byte of a host frame)."""

    INFO = 0x01           # -> board constants (INFO_FORMAT + regions)
    STATUS = 0x02         # -> flags, counters (STATUS_FORMAT)
    DISCARD = 0x03        # drop every staged (uncommitted) image
    LOAD_BEGIN = 0x10     # region u8, length u32, crc32 u32: start staging one image
    LOAD_DATA = 0x11      # offset u32, bytes: the next bytes of the image
    LOAD_END = 0x12       # check the staged image's length and CRC-32
    COMMIT = 0x13         # tag u32: make every staged image active, atomically
    RUN = 0x20            # segment u8: start the core
    INPUT = 0x21          # offset u32, bytes: activations for the running core
    OUTPUT = 0x22         # offset u32, max u16: read results produced since RUN
    #                       -> flags u8, verified u8, last_error u8, pad, out_count u32,
    #                          then the data


class Status(enum.IntEnum):
    """The first payload byte of every response; ``OK`` or why the request was refused."""

    OK = 0x00
    ERR_CRC = 0x01          # frame CRC mismatch; nothing executed
    ERR_TIMEOUT = 0x02      # frame incomplete (gap longer than the frame timeout); dropped
    ERR_LENGTH = 0x03       # LEN too large, or wrong for the command; arg = expected length
    ERR_UNKNOWN = 0x04      # unknown command; arg = the command byte
    ERR_REGION = 0x05       # unknown region; arg = number of regions
    ERR_TOO_LARGE = 0x06    # LOAD_BEGIN: image longer than the region, arg = its capacity;
    #                         LOAD_DATA: data past the declared length, arg = bytes received
    ERR_SEQUENCE = 0x07     # offset is not the expected one; arg = expected offset
    ERR_INCOMPLETE = 0x08   # LOAD_END before all bytes arrived; arg = bytes received
    ERR_IMAGE_CRC = 0x09    # CRC-32 of the staged image differs; arg = CRC-32 computed
    ERR_NOT_STAGED = 0x0A   # COMMIT without every region verified; arg = mask of verified ones
    ERR_NO_MODEL = 0x0B     # RUN without a committed model
    ERR_BUSY = 0x0C         # RUN or COMMIT while the core runs
    ERR_NOT_RUNNING = 0x0D  # INPUT without a RUN in progress
    ERR_STALL = 0x0E        # the core did not take a byte within the stall timeout;
    #                         arg = bytes taken so far
    ERR_STATE = 0x0F        # LOAD_DATA/LOAD_END without a LOAD_BEGIN

    @property
    def frame_error(self):
        """The board could not read the request; it executed nothing and may be retried."""
        return self in (Status.ERR_CRC, Status.ERR_TIMEOUT, Status.ERR_LENGTH)


#: Image memories of the core (``docs/hardware.md`` section 3), numbered as the accelerator
#: numbers them (``sps_hw.config.ROM_NAMES``): WEIGHTS, INDEX, LIBRARY, PARAMS, LAYERS.
Region = enum.IntEnum("Region", [(name.upper(), code) for code, name in enumerate(ROM_NAMES)])

REGIONS = ROM_NAMES
#: The one region of a core that runs models from external memory (``boards.dram.core``):
#: the packed DRAM image (``sps_hw.dram``), code 0.
DRAM_REGION = "dram"


def region_names(count):
    """The names of the regions of a board that reports ``count`` of them (INFO)."""
    return (DRAM_REGION,) if count == 1 else REGIONS[:count]


class Flag(enum.IntFlag):
    """Bits of the ``flags`` byte of a STATUS response."""

    MODEL_VALID = 0x01    # a committed model is active
    BUSY = 0x02           # the core is running
    DONE = 0x04           # the last RUN finished
    LOADING = 0x08        # a LOAD_BEGIN is open (LOAD_DATA accepted)
    STALLED = 0x10        # the last RUN's input or output stalled (ERR_STALL was sent)


#: Exact payload length of each fixed-length request.
PAYLOAD_LENGTH = {Cmd.INFO: 0, Cmd.STATUS: 0, Cmd.DISCARD: 0, Cmd.LOAD_BEGIN: 9,
                  Cmd.LOAD_END: 0, Cmd.COMMIT: 4, Cmd.RUN: 1, Cmd.OUTPUT: 6}
#: Minimum payload length of the variable-length requests (the offset).
MIN_PAYLOAD_LENGTH = {Cmd.LOAD_DATA: 4, Cmd.INPUT: 4}

#: INFO response after the status byte (32-bit words): version, board id, rows, cols; max
#: payload (u16), number of regions (u8), pad; output buffer bytes; clock Hz; frame timeout and
#: stall timeout (cycles); then per region INFO_REGION_FORMAT: width in bits, depth in words.
INFO_FORMAT = "<BBBBHBxIIII"
INFO_REGION_FORMAT = "<II"

#: STATUS response after the status byte.
STATUS_FIELDS = ("flags", "verified", "last_error", "model_tag", "runs", "run_cycles",
                 "core_cycles", "in_count", "out_count", "frame_errors", "rx_errors")
STATUS_FORMAT = "<BBBxIIIIIIHH"


def crc16(data):
    """CRC-16/CCITT-FALSE of ``data`` (the frame check)."""
    return binascii.crc_hqx(bytes(data), 0xFFFF)


def crc32(data, value=0):
    """CRC-32/ISO-HDLC of ``data`` (the image check), continuing from ``value``."""
    return zlib.crc32(bytes(data), value)


def encode_frame(cmd, payload=b""):
    """The bytes of one frame carrying ``payload`` under command byte ``cmd``."""
    payload = bytes(payload)
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"command must be a byte, not {cmd!r}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the 16-bit length field")
    body = struct.pack("<BH", cmd, len(payload)) + payload
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "big")
