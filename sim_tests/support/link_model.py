"""The host link with the self-test core, in Python: what the board answers to any byte stream.

:func:`parse_frames` is the frame receiver (``docs/host_link.md`` section 1): which frames a
stream of bytes holds, and which frame errors. :class:`LinkModel` is the rest, sections 2 to 5:
it executes a frame and returns the :class:`Answer` the board must send, keeping the state the
answers depend on (the open load, the staged and committed images, the run, the output ring,
the counters). The core is :class:`boards.selftest.SelfTestCore`: output ``i`` is input ``i``
plus the low byte of weights word ``i`` plus the segment, then the 32-bit sum of the inputs.
"""

import struct
import zlib
from dataclasses import dataclass, field

from boards.protocol import (
    MIN_PAYLOAD_LENGTH,
    PAYLOAD_LENGTH,
    RESPONSE,
    SYNC,
    VERSION,
    Cmd,
    Flag,
    Status,
    crc16,
    encode_frame,
)

__all__ = ["Answer", "LinkModel", "parse_frames"]

U32 = (1 << 32) - 1
#: Room for data in an OUTPUT response: the payload less status, flags word and count.
OUTPUT_ROOM = -9


@dataclass
class Answer:
    """A response frame: ``cmd``, ``status``, ``words`` (32-bit), ``data`` (OUTPUT's bytes);
    ``checks``: ``{index: check(value)}`` for the words a model cannot know exactly (they are
    timing-dependent); ``waits`` names the timeout the answer comes after, if any."""

    cmd: int
    status: Status
    words: list
    data: bytes = b""
    waits: str = ""
    checks: dict = field(default_factory=dict)

    def payload(self):
        return bytes([self.status]) + struct.pack(f"<{len(self.words)}I", *self.words) + self.data

    def frame(self):
        return encode_frame(self.cmd, self.payload())

    def matches(self, cmd, payload):
        """Whether a received frame (``cmd``, ``payload``) is this answer."""
        n = len(self.words)
        if cmd != self.cmd or len(payload) != 1 + 4 * n + len(self.data):
            return False
        words = struct.unpack_from(f"<{n}I", payload, 1)
        return payload[0] == self.status and payload[1 + 4 * n:] == self.data and all(
            self.checks[i](got) if i in self.checks else w == got
            for i, (w, got) in enumerate(zip(self.words, words)))


def parse_frames(data, max_payload):
    """The frames in ``data`` (the bytes the receiver got, in order, closely spaced, then
    quiet): ``("frame", cmd, payload)`` for each intact one, and at most one damaged one,
    ``("error", status, cmd)``, which ends the stream (the receiver drains the rest)."""
    out, i, n = [], 0, len(data)
    while True:
        while i < n and data[i] != SYNC:
            i += 1
        if i == n:
            return out
        head = data[i + 1:i + 4]
        cmd = head[0] if head else 0
        if len(head) < 3:
            return [*out, ("error", Status.ERR_TIMEOUT, cmd)]
        length = head[1] | head[2] << 8
        if length > max_payload:
            return [*out, ("error", Status.ERR_LENGTH, cmd)]
        body = data[i + 1:i + 6 + length]
        if len(body) < 5 + length:
            return [*out, ("error", Status.ERR_TIMEOUT, cmd)]
        if crc16(body) != 0:
            return [*out, ("error", Status.ERR_CRC, cmd)]
        out.append(("frame", cmd, bytes(body[3:3 + length])))
        i += 6 + length


class _Run:
    """A run of the self-test core: its inputs taken and outputs pushed into the ring."""

    def __init__(self, n, weights, segment):
        self.n, self.weights, self.segment = n, weights, segment
        self.x = []

    def outputs(self, count):
        """The first ``count`` output bytes."""
        y = [(x + self.weights[i % len(self.weights)] + self.segment) & 0xFF
             for i, x in enumerate(self.x)]
        if len(self.x) == self.n:
            y += list(struct.pack("<I", sum(b - 256 * (b > 127) for b in self.x) & U32))
        return bytes(y[:count])


class LinkModel:
    """What a link with the self-test core answers (see the module docstring).

    Parameters
    ----------
    memory_map : boards.link.MemoryMap
    link_args : dict
        The :class:`boards.link.HostLink` arguments.
    init : dict
        ``{region: image bytes}`` committed at configuration, or ``None``.
    """

    def __init__(self, memory_map, link_args, init=None):
        self.mm, self.args = memory_map, dict(link_args)
        self.max_payload, self.out_depth = self.args["max_payload"], self.args["out_depth"]
        self.banks = {r.name: [bytearray(r.capacity), bytearray(r.capacity)] for r in memory_map}
        for name, image in (init or {}).items():
            self.banks[name][0][:len(image)] = image
        self.active = 0
        self.model_valid = bool(self.args.get("model_valid"))
        self.tag = self.args.get("model_tag", 0)
        self.reset()

    def reset(self):
        """A board reset: the counters, the open load and the run are gone, the model stays."""
        self.loading, self.verified, self.last_error = False, 0, 0
        self.region = self.fill = self.length = self.crc = 0
        self.runs = self.frame_errors = 0
        # UART errors: bytes lost to overruns since the reset (two lost before the ledger
        # counted the first count once), and the count STATUS last reported.
        self.rx_lost = self.rx_seen = 0
        self.run, self.running, self.done, self.stalled = None, False, False, False
        self.produced = self.released = 0

    # --- words ------------------------------------------------------------------------------

    def info(self):
        a, mm = self.args, self.mm
        words = [VERSION | a["board_id"] << 8 | a["rows"] << 16 | a["cols"] << 24,
                 self.max_payload | len(mm.regions) << 16, self.out_depth, a["clk_hz"],
                 a["frame_timeout"], a["stall_timeout"]]
        for r in mm:
            words += [r.width, r.depth]
        return words

    def status0(self):
        flags = (Flag.MODEL_VALID * self.model_valid | Flag.BUSY * self.running
                 | Flag.DONE * self.done | Flag.LOADING * self.loading
                 | Flag.STALLED * self.stalled)
        return int(flags) | self.verified << 8 | self.last_error << 16

    def status(self):
        """STATUS's words (the cycle counts zero, the UART errors as last reported) and the
        checks of the words that depend on timing."""
        def errors(word):
            return (word & 0xFFFF == self.frame_errors
                    and self.rx_seen <= word >> 16 <= min(self.rx_lost, 0xFFFF))
        words = [self.status0(), self.tag, self.runs, 0, 0, len(self.run.x) if self.run else 0,
                 self.produced, self.frame_errors | self.rx_seen << 16]
        return words, {3: lambda w: True, 4: lambda w: True, 7: errors}

    def lost(self, count):
        """``count`` bytes sent were lost to receive overruns."""
        self.rx_lost += count

    def observe(self, answer, payload):
        """A received ``answer`` (it matched): keep the UART error count STATUS reported."""
        if answer.cmd == Cmd.STATUS | RESPONSE and answer.status == Status.OK:
            self.rx_seen = int.from_bytes(payload[-2:], "little")

    # --- frames -----------------------------------------------------------------------------

    def answer(self, item):
        """The answer to one of :func:`parse_frames`' items; updates the state."""
        if item[0] == "error":
            _, status, cmd = item
            self.frame_errors = min(self.frame_errors + 1, 0xFFFF)
            arg = self.max_payload if status == Status.ERR_LENGTH else 0
            rsp = Answer(cmd, status, [arg], waits="frame_timeout")
        else:
            rsp = self.execute(item[1], item[2])
        rsp.cmd = rsp.cmd & 0x7F | RESPONSE
        if rsp.status != Status.OK:
            self.last_error = rsp.status
        return rsp

    def execute(self, cmd, payload):
        """The answer to an intact frame (``Answer.cmd`` is still the request's)."""
        n = len(payload)
        if cmd in PAYLOAD_LENGTH and n != PAYLOAD_LENGTH[cmd]:
            return Answer(cmd, Status.ERR_LENGTH, [PAYLOAD_LENGTH[cmd]])
        if cmd in MIN_PAYLOAD_LENGTH and n < MIN_PAYLOAD_LENGTH[cmd]:
            return Answer(cmd, Status.ERR_LENGTH, [MIN_PAYLOAD_LENGTH[cmd]])
        if cmd == Cmd.STATUS:
            words, checks = self.status()
            return Answer(cmd, Status.OK, words, checks=checks)
        handler = {Cmd.INFO: lambda p: (Status.OK, self.info()),
                   Cmd.DISCARD: self._discard, Cmd.LOAD_BEGIN: self._begin,
                   Cmd.LOAD_DATA: self._data, Cmd.LOAD_END: self._end,
                   Cmd.COMMIT: self._commit, Cmd.RUN: self._start, Cmd.INPUT: self._input,
                   Cmd.OUTPUT: self._output}.get(cmd)
        if handler is None:
            return Answer(cmd, Status.ERR_UNKNOWN, [cmd])
        status, words, *rest = handler(payload)
        rsp = Answer(cmd, status, words, *rest)
        self._settle()
        return rsp

    # --- uploads ----------------------------------------------------------------------------

    def _discard(self, payload):
        self.verified, self.loading = 0, False
        return Status.OK, [0]

    def _begin(self, payload):
        region, length, crc = struct.unpack("<BII", payload)
        if region >= len(self.mm.regions):
            return Status.ERR_REGION, [len(self.mm.regions)]
        capacity = self.mm.regions[region].capacity
        if length > capacity:
            return Status.ERR_TOO_LARGE, [capacity]
        self.region, self.length, self.crc, self.fill = region, length, crc, 0
        self.loading = True
        self.verified &= ~(1 << region)
        self.image = bytearray()
        return Status.OK, [capacity]

    def _data(self, payload):
        offset, data = struct.unpack_from("<I", payload)[0], payload[4:]
        if not self.loading:
            return Status.ERR_STATE, [0]
        if offset != self.fill:
            return Status.ERR_SEQUENCE, [self.fill]
        if len(data) > self.length - self.fill:
            return Status.ERR_TOO_LARGE, [self.fill]
        staging = self.banks[self.mm.regions[self.region].name][1 - self.active]
        staging[self.fill:self.fill + len(data)] = data
        self.image += data
        self.fill += len(data)
        return Status.OK, [self.fill]

    def _end(self, payload):
        if not self.loading:
            return Status.ERR_STATE, [0]
        if self.fill != self.length:
            return Status.ERR_INCOMPLETE, [self.fill]
        self.loading = False
        word_bytes = self.mm.regions[self.region].word_bytes
        if self.fill % word_bytes:
            return Status.ERR_LENGTH, [word_bytes]
        crc = zlib.crc32(self.image)
        if crc != self.crc:
            return Status.ERR_IMAGE_CRC, [crc]
        self.verified |= 1 << self.region
        return Status.OK, [crc]

    def _commit(self, payload):
        if self.running:
            return Status.ERR_BUSY, [0]
        if self.verified != (1 << len(self.mm.regions)) - 1:
            return Status.ERR_NOT_STAGED, [self.verified]
        self.active ^= 1
        self.model_valid, self.verified, self.loading = True, 0, False
        self.tag, = struct.unpack("<I", payload)
        return Status.OK, [self.tag]

    def committed(self, region):
        """The committed bytes of ``region``."""
        return bytes(self.banks[region][self.active])

    # --- runs -------------------------------------------------------------------------------

    def _start(self, payload):
        if not self.model_valid:
            return Status.ERR_NO_MODEL, [0]
        if self.running:
            return Status.ERR_BUSY, [0]
        weights = self.committed("weights")[::self.mm["weights"].word_bytes]
        n = int.from_bytes(self.committed("layers")[:2], "little")
        self.run = _Run(n, weights, payload[0])
        self.runs = (self.runs + 1) & U32
        self.running, self.done, self.stalled = True, False, False
        self.produced = self.released = 0
        return Status.OK, [self.runs]

    def _input(self, payload):
        offset, data = struct.unpack_from("<I", payload)[0], payload[4:]
        run = self.run
        if not self.running:
            return Status.ERR_NOT_RUNNING, [0]
        if offset != len(run.x):
            return Status.ERR_SEQUENCE, [len(run.x)]
        for byte in data:
            # The core takes an input once it has pushed the output before it.
            if len(run.x) == run.n or self.produced < len(run.x):
                self.stalled = True
                return Status.ERR_STALL, [len(run.x)], b"", "stall_timeout"
            run.x.append(byte)
            self._settle()
        return Status.OK, [len(run.x)]

    def _output(self, payload):
        offset, most = struct.unpack("<IH", payload)
        if offset < self.released:
            return Status.ERR_SEQUENCE, [self.released]
        if offset > self.produced:
            return Status.ERR_SEQUENCE, [self.produced]
        count = min(most, self.produced - offset, self.max_payload + OUTPUT_ROOM)
        data = self.run.outputs(offset + count)[offset:] if self.run else b""
        self.released = offset
        self._settle()
        return Status.OK, [self.status0(), self.produced], data

    def _settle(self):
        """Let the core push what it can into the ring. The ring reports full from
        ``out_depth - 1`` bytes on, a cycle late: the sum's bytes, pushed in consecutive cycles,
        can fill it to ``out_depth``; an output byte after an input never does."""
        run = self.run
        if run is None or not self.running:
            return
        full = self.out_depth - 1
        if self.produced < len(run.x) and self.produced - self.released < full:
            self.produced += 1
        burst = False
        while len(run.x) == run.n and self.produced < run.n + 4:
            level = self.produced - self.released
            if level >= full + burst:
                break
            self.produced += 1
            burst = True
        if self.produced == run.n + 4:
            self.running, self.done = False, True
