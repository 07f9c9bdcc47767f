"""The host side of the link: framing, commands, retries, timeouts (``docs/host_link.md``).

:class:`Link` talks to a board through a *transport*: ``write(bytes)``,
``read(n, timeout) -> bytes`` (up to ``n``, fewer on timeout), ``now()`` and ``idle(seconds)``
(its clock: wall time, or simulated time), ``flush_input()``, ``byte_time`` (seconds per byte
on the line) and ``close()``, opened by :func:`boards.transports.open_transport`:
:class:`~boards.transports.SerialTransport` for a real board (pyserial), or a simulation
transport for ``sim:BOARD``. Every failure a user can meet (no answer, a board that refuses
an image, a model that does not fit) is a :class:`LinkError`, a
:class:`~compiler.errors.SPSError` carrying the board's :class:`~boards.protocol.Status`.

Retries are safe by construction: a request the board could not read (bad CRC, timeout) was not
executed and is sent again; data transfers carry their byte offset, so a repeated chunk is
recognized; COMMIT, RUN and LOAD_END, whose repetition is not harmless, are confirmed through
STATUS when their answer is lost.
"""

import struct
from dataclasses import dataclass

import numpy as np

from compiler import golden, images
from compiler.errors import SPSError
from sps_hw.config import word_bytes
from sps_hw.program import run_network

from .core import memory_map
from .fit import dram_fit, fit_board
from .model_image import model_tag, pack_model, pack_program
from .platforms import BAUD_RATES, BOARDS
from .protocol import (
    DRAM_REGION,
    INFO_FORMAT,
    INFO_REGION_FORMAT,
    OVERHEAD,
    REGIONS,
    RESPONSE,
    STATUS_FIELDS,
    STATUS_FORMAT,
    SYNC,
    VERSION,
    Cmd,
    Flag,
    Status,
    crc16,
    crc32,
    encode_frame,
    region_names,
)
from .transports import open_transport

__all__ = [
    "BoardInfo",
    "BoardStatus",
    "Link",
    "LinkError",
    "Response",
    "connect",
    "run_from_dram",
    "run_model",
]

DEFAULT_TIMEOUT = 0.5          # seconds to wait for an answer beyond its transmission time
DEFAULT_RETRIES = 3


class LinkError(SPSError):
    """The board could not be reached, or refused a request; ``status`` says why."""

    def __init__(self, message, status=None, arg=None):
        super().__init__(message)
        self.status = status
        self.arg = arg


class _Lost(Exception):
    """No valid answer arrived (timeout, damaged or foreign response)."""


@dataclass(frozen=True)
class RegionInfo:
    name: str
    width: int
    depth: int

    @property
    def word_bytes(self):
        return word_bytes(self.width)

    @property
    def capacity(self):
        return self.depth * self.word_bytes


@dataclass(frozen=True)
class BoardInfo:
    """What INFO reports: protocol version, geometry, buffers, clock and timeouts."""

    version: int
    board_id: int
    rows: int
    cols: int
    max_payload: int
    out_depth: int
    clk_hz: int
    frame_timeout: int           # cycles
    stall_timeout: int           # cycles
    regions: tuple

    @classmethod
    def decode(cls, payload):
        head = struct.calcsize(INFO_FORMAT)
        if len(payload) < head:
            raise LinkError(f"INFO answer of {len(payload)} bytes is shorter than {head}")
        (version, board_id, rows, cols, max_payload, n_regions, out_depth, clk_hz,
         frame_timeout, stall_timeout) = struct.unpack_from(INFO_FORMAT, payload)
        size = struct.calcsize(INFO_REGION_FORMAT)
        # The board sends room for five regions; a DRAM board fills one (``region_names``).
        if len(payload) != head + len(REGIONS) * size or n_regions > len(REGIONS):
            raise LinkError(f"INFO answer of {len(payload)} bytes does not hold "
                            f"{n_regions} regions")
        regions = tuple(
            RegionInfo(name, *struct.unpack_from(INFO_REGION_FORMAT, payload, head + i * size))
            for i, name in enumerate(region_names(n_regions)))
        return cls(version, board_id, rows, cols, max_payload, out_depth, clk_hz,
                   frame_timeout, stall_timeout, regions)

    def region(self, name):
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def frame_timeout_s(self):
        return self.frame_timeout / self.clk_hz

    @property
    def stall_timeout_s(self):
        return self.stall_timeout / self.clk_hz


@dataclass(frozen=True)
class BoardStatus:
    """What STATUS reports (see :data:`~boards.protocol.STATUS_FIELDS`)."""

    flags: Flag
    verified: int
    last_error: int
    model_tag: int
    runs: int
    run_cycles: int
    core_cycles: int
    in_count: int
    out_count: int
    frame_errors: int
    rx_errors: int

    @classmethod
    def decode(cls, payload):
        if len(payload) != struct.calcsize(STATUS_FORMAT):
            raise LinkError(f"STATUS answer of {len(payload)} bytes, expected "
                            f"{struct.calcsize(STATUS_FORMAT)}")
        values = dict(zip(STATUS_FIELDS, struct.unpack(STATUS_FORMAT, payload)))
        values["flags"] = Flag(values["flags"])
        return cls(**values)

    @property
    def model_valid(self):
        return Flag.MODEL_VALID in self.flags

    @property
    def busy(self):
        return Flag.BUSY in self.flags

    @property
    def done(self):
        return Flag.DONE in self.flags


@dataclass(frozen=True)
class Response:
    cmd: int
    status: Status
    body: bytes          # the payload after the status byte

    @property
    def arg(self):
        """The u32 after the status byte, if any."""
        return int.from_bytes(self.body[:4], "little") if len(self.body) >= 4 else None


def _not_read(rsp):
    """Whether the board says it could not read the request (so it executed nothing).

    ERR_LENGTH comes from the frame layer (LEN above the payload buffer, arg = its size, at
    least 64) or from a command (wrong payload length, arg = the expected one, at most 9); only
    the first means the frame was damaged on the way.
    """
    if rsp.status in (Status.ERR_CRC, Status.ERR_TIMEOUT):
        return True
    return rsp.status == Status.ERR_LENGTH and (rsp.arg or 0) >= 64


def _describe(status, arg):
    try:
        name = Status(status).name
    except ValueError:
        name = f"status 0x{status:02x}"
    return name if arg is None else f"{name} ({arg})"


class Link:
    """A session with one board.

    Parameters
    ----------
    transport : object
        See the module docstring.
    timeout : float
        Seconds to wait for an answer beyond its transmission time and the board's frame
        timeout.
    retries : int
        How often a request is sent again after a damaged exchange.
    """

    def __init__(self, transport, *, timeout=DEFAULT_TIMEOUT, retries=DEFAULT_RETRIES):
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative int, not {retries!r}")
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.board = None                       # BoardInfo after connect()
        self.stats = {"sent": 0, "retries": 0, "lost": 0, "frame_errors": 0}

    # --- frames ---------------------------------------------------------------------------

    def _deadline_for(self, n_bytes):
        t = self.timeout + n_bytes * self.transport.byte_time
        if self.board is not None:
            t += self.board.frame_timeout_s
        return t

    def _read_exact(self, n, deadline):
        data = b""
        while len(data) < n:
            remaining = deadline - self.transport.now()
            if remaining <= 0:
                raise _Lost(f"timed out after {len(data)} of {n} bytes")
            data += self.transport.read(n - len(data), remaining)
        return data

    def _read_frame(self, timeout, longest=0xFFFF):
        """One response frame: ``(cmd, payload)``; :class:`_Lost` if none arrives intact, or
        its LEN says more than ``longest`` bytes (a damaged LEN is not waited for)."""
        deadline = self.transport.now() + timeout
        while self._read_exact(1, deadline)[0] != SYNC:
            pass
        head = self._read_exact(3, deadline)
        cmd, length = head[0], int.from_bytes(head[1:], "little")
        if length > longest:
            raise _Lost(f"answer of {length} bytes, at most {longest} expected")
        deadline += (length + 2) * self.transport.byte_time
        rest = self._read_exact(length + 2, deadline)
        payload, check = rest[:length], int.from_bytes(rest[length:], "big")
        if crc16(head + payload) != check:
            raise _Lost("response CRC mismatch")
        return cmd, payload

    def send_raw(self, frame):
        """Send bytes as they are (tests use this for deliberately damaged frames)."""
        self.transport.write(bytes(frame))

    def exchange(self, cmd, payload=b"", *, expect_bytes=64):
        """Send one request and read its answer (at most ``expect_bytes`` of payload) once;
        :class:`_Lost` when none arrives."""
        self.stats["sent"] += 1
        self.transport.write(encode_frame(cmd, payload))
        rcmd, body = self._read_frame(self._deadline_for(len(payload) + OVERHEAD
                                                         + expect_bytes), expect_bytes)
        if not rcmd & RESPONSE:
            raise _Lost(f"a request (0x{rcmd:02x}) came back, not an answer: is the line "
                        f"looped back?")
        if not body:
            raise _Lost("empty response")
        try:
            status = Status(body[0])
        except ValueError:
            raise _Lost(f"unknown status 0x{body[0]:02x}") from None
        if rcmd != (cmd | RESPONSE) and not status.frame_error:
            raise _Lost(f"answer to command 0x{rcmd & 0x7F:02x}, expected 0x{cmd:02x}")
        return Response(rcmd, status, body[1:])

    def _settle(self):
        """After a damaged exchange: let the line go quiet, drop whatever arrived."""
        wait = self.board.frame_timeout_s if self.board is not None else 0.0
        self.transport.idle(wait + 20 * self.transport.byte_time)
        self.transport.flush_input()

    def request(self, cmd, payload=b"", *, expect_bytes=64, confirm=None, what=None):
        """Send a request until the board has read it; return its :class:`Response`.

        A frame error reported by the board (it executed nothing) or a lost answer leads to a
        retry; for a lost answer to a request that must not run twice, ``confirm()`` is called
        instead and its result (a :class:`Response` or ``None`` to retry) is returned.
        """
        if what is None:
            what = Cmd(cmd).name if cmd in Cmd._value2member_map_ else f"command 0x{cmd:02x}"
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retries"] += 1
            try:
                rsp = self.exchange(cmd, payload, expect_bytes=expect_bytes)
            except _Lost as e:
                self.stats["lost"] += 1
                last = f"no valid answer ({e})"
                self._settle()
                if confirm is not None:
                    try:
                        rsp = confirm()
                    except LinkError as e:
                        raise LinkError(f"{what}: {last}; then {e}", e.status, e.arg) from None
                    if rsp is not None:
                        return rsp
                continue
            if _not_read(rsp):
                self.stats["frame_errors"] += 1
                last = f"the board could not read the request ({_describe(rsp.status, rsp.arg)})"
                continue
            return rsp
        raise LinkError(f"{what}: {last} after {self.retries + 1} attempts", Status.ERR_TIMEOUT)

    def check(self, rsp, what, *, allow=()):
        """Raise :class:`LinkError` unless ``rsp`` is OK (or in ``allow``)."""
        if rsp.status == Status.OK or rsp.status in allow:
            return rsp
        raise LinkError(f"{what}: board answered {_describe(rsp.status, rsp.arg)}",
                        rsp.status, rsp.arg)

    # --- commands -------------------------------------------------------------------------

    def connect(self):
        """Quiet the line, read INFO and check the protocol version."""
        self.transport.flush_input()
        rsp = self.check(self.request(Cmd.INFO, expect_bytes=128), "INFO")
        info = BoardInfo.decode(rsp.body)
        if info.version != VERSION:
            raise LinkError(f"board speaks host-link protocol version {info.version}, this "
                            f"host version {VERSION}")
        self.board = info
        return info

    def info(self):
        return self.board or self.connect()

    def status(self):
        return BoardStatus.decode(self.check(self.request(Cmd.STATUS), "STATUS").body)

    def discard(self):
        self.check(self.request(Cmd.DISCARD), "DISCARD")

    def _chunk(self):
        return self.info().max_payload - 4

    def load_image(self, region, data):
        """Stage one region's image: LOAD_BEGIN, LOAD_DATA chunks, LOAD_END (verified)."""
        regions = self.info().regions
        name = regions[region].name if isinstance(region, int) else region
        code = next(i for i, r in enumerate(regions) if r.name == name)
        data = bytes(data)
        info = regions[code]
        if len(data) > info.capacity:
            raise LinkError(f"{name} image of {len(data)} bytes does not fit the board's "
                            f"{name} memory of {info.capacity} bytes "
                            f"({info.depth} words of {info.width} bits)", Status.ERR_TOO_LARGE,
                            info.capacity)
        if len(data) % info.word_bytes:
            raise LinkError(f"{name} image of {len(data)} bytes is not a whole number of "
                            f"{info.word_bytes}-byte words", Status.ERR_LENGTH)
        crc = crc32(data)
        self.check(self.request(Cmd.LOAD_BEGIN, struct.pack("<BII", code, len(data), crc)),
                   f"LOAD_BEGIN {name}")
        self.send_data(Cmd.LOAD_DATA, data, f"LOAD_DATA {name}")
        self.check(self.request(Cmd.LOAD_END, confirm=lambda: self._confirm_verified(code)),
                   f"LOAD_END {name}")
        return crc

    def _confirm_verified(self, code):
        if self.status().verified >> code & 1:
            return Response(Cmd.LOAD_END | RESPONSE, Status.OK, b"")
        return None

    def send_chunk(self, cmd, offset, piece, what):
        """One offset-tagged chunk of LOAD_DATA or INPUT; a repeat of an accepted one is OK
        (``ERR_SEQUENCE`` at the end of the chunk, or, for the input that ended the run,
        ``ERR_NOT_RUNNING`` with STATUS counting the chunk)."""
        end = offset + len(piece)
        rsp = self.request(cmd, struct.pack("<I", offset) + bytes(piece), what=what)
        repeated = rsp.status == Status.ERR_SEQUENCE and rsp.arg == end
        if not repeated and cmd == Cmd.INPUT and piece and rsp.status == Status.ERR_NOT_RUNNING:
            repeated = self.status().in_count == end
        if repeated:
            rsp = Response(rsp.cmd, Status.OK, struct.pack("<I", end))  # a copy got through
        return self.check(rsp, f"{what} at byte {offset}")

    def send_data(self, cmd, data, what):
        """Send ``data`` in chunks that fit the board's payload buffer."""
        chunk = self._chunk()
        for offset in range(0, len(data), chunk):
            self.send_chunk(cmd, offset, data[offset:offset + chunk], what)

    def commit(self, tag):
        """Make the staged images active under ``tag``."""
        def confirm():
            st = self.status()
            if st.model_valid and st.model_tag == tag and st.verified == 0:
                return Response(Cmd.COMMIT | RESPONSE, Status.OK, struct.pack("<I", tag))
            return None
        self.check(self.request(Cmd.COMMIT, struct.pack("<I", tag), confirm=confirm), "COMMIT")

    def upload(self, images, tag=None):
        """Upload and commit a model: ``{region name: bytes}`` (missing regions are empty).

        Nothing is changed on the board unless every image was staged and verified; on any
        error the previous model stays active. Returns the tag.
        """
        info = self.info()
        names = [r.name for r in info.regions]
        unknown = set(images) - set(names)
        if unknown:
            raise ValueError(f"unknown regions {sorted(unknown)}; expected {names}")
        too_big = [(r.name, len(images.get(r.name, b"")), r.capacity) for r in info.regions
                   if len(images.get(r.name, b"")) > r.capacity]
        if too_big:
            detail = ", ".join(f"{n} {size} bytes > {cap}" for n, size, cap in too_big)
            raise LinkError(f"model does not fit the board's image memories: {detail}",
                            Status.ERR_TOO_LARGE)
        tag = model_tag(images) if tag is None else tag
        self.finish_run()                   # COMMIT would be refused while a run is active
        self.discard()
        for name in names:
            self.load_image(name, images.get(name, b""))
        self.commit(tag)
        return tag

    def finish_run(self):
        """A run that a host abandoned (after an error, or a host that went away) keeps the
        core busy, and RUN and COMMIT refused, until it ends: feed it zeros and drop its
        output until it is done. :class:`LinkError` if it stops making progress.

        Returns the last :class:`BoardStatus` (not busy).
        """
        info = self.info()
        chunk = min(self._chunk(), max(1, info.out_depth // 2))
        patience = 20 * self.timeout + 2 * info.stall_timeout_s
        progress, deadline = None, None
        while True:
            st = self.status()
            if not st.busy:
                return st
            if (st.in_count, st.out_count) != progress:
                progress, deadline = (st.in_count, st.out_count), self.transport.now() + patience
            elif self.transport.now() > deadline:
                raise LinkError(f"the board's previous run takes no input and produces no output "
                                f"(after {st.in_count} and {st.out_count} bytes); reset the "
                                f"board", Status.ERR_BUSY)
            # Acknowledge all output so far, offer input; whatever the answers, STATUS says
            # next whether that helped.
            self.request(Cmd.OUTPUT, struct.pack("<IH", st.out_count, 0),
                         what="OUTPUT (finishing the previous run)")
            self.request(Cmd.INPUT, struct.pack("<I", st.in_count) + bytes(chunk),
                         what="INPUT (finishing the previous run)")

    def start(self, segment=0):
        """RUN: start the core on ``segment`` (after finishing a run left behind); returns
        the run number."""
        before = self.finish_run().runs

        def confirm():
            st = self.status()
            if st.runs == (before + 1) & 0xFFFFFFFF:
                return Response(Cmd.RUN | RESPONSE, Status.OK, struct.pack("<I", st.runs))
            return None
        return self.check(self.request(Cmd.RUN, bytes([segment]), confirm=confirm),
                          f"RUN segment {segment}").arg

    def _output_chunk(self, offset, want):
        """OUTPUT at ``offset``: ``(data, bytes produced so far, flags)``."""
        rsp = self.check(self.request(Cmd.OUTPUT, struct.pack("<IH", offset, want),
                                      expect_bytes=16 + want), f"OUTPUT at byte {offset}")
        flags, produced = struct.unpack_from("<BxxxI", rsp.body)
        return rsp.body[8:], produced, Flag(flags)

    def read_output(self, count, *, data=b"", timeout=None):
        """Read the current run's output until it holds ``count`` bytes (polling OUTPUT).

        ``data`` is what was read already. The host acknowledges bytes by asking for the next
        offset, so a lost answer is simply asked for again.
        """
        timeout = self.timeout * 20 if timeout is None else timeout
        data = bytearray(data)
        limit = min(0xFFFF, self.info().max_payload - 9)
        deadline = self.transport.now() + timeout
        while len(data) < count:
            piece, produced, flags = self._output_chunk(len(data), min(limit, count - len(data)))
            data += piece
            if len(data) >= count:
                break
            if Flag.DONE in flags and produced <= len(data):
                raise LinkError(f"the run finished after {produced} output bytes, expected "
                                f"{count}", Status.ERR_INCOMPLETE, produced)
            if self.transport.now() > deadline:
                raise LinkError(f"OUTPUT: {len(data)} of {count} bytes after {timeout:g} s",
                                Status.ERR_TIMEOUT, len(data))
            if not piece:
                self.transport.idle(64 * self.transport.byte_time)
        return bytes(data)

    def infer(self, x, out_count, *, segment=0, timeout=None):
        """Run one segment: send ``x`` (int8, C, H, W order), return ``out_count`` int8.

        Output is collected after every input chunk too, so a core that streams results while
        it still takes input never waits on a full output buffer.
        """
        x = np.ascontiguousarray(x, dtype=np.int8).tobytes()
        self.start(segment)
        out = b""
        # The board frees output bytes only when the next OUTPUT asks beyond them, so input
        # chunks of half the output buffer never wait on it.
        chunk = min(self._chunk(), max(1, self.info().out_depth // 2))
        for offset in range(0, len(x), chunk):
            self.send_chunk(Cmd.INPUT, offset, x[offset:offset + chunk], "INPUT")
            if offset + chunk < len(x) and len(out) < out_count:
                piece, _, _ = self._output_chunk(len(out), min(self.info().max_payload - 9,
                                                               out_count - len(out)))
                out += piece
        out = self.read_output(out_count, data=out, timeout=timeout)
        return np.frombuffer(out, np.int8).copy()


# --- sps run ----------------------------------------------------------------------------------

def connect(port, baud=None, *, core=None, timeout=DEFAULT_TIMEOUT):
    """``(transport, link, info)``: the board on ``port`` (see :func:`open_transport`, which
    takes ``core``), connected. Without ``baud``, each rate of :data:`BAUD_RATES` in turn
    until the board answers INFO (at a wrong rate it sees framing garbage and the host
    hears nothing that parses). :class:`LinkError` when it answers at none."""
    rates = [baud] if baud is not None else list(BAUD_RATES)
    failures = []
    for rate in rates:
        transport = open_transport(port, rate, core)
        link = Link(transport, timeout=timeout)
        try:
            return transport, link, link.connect()
        except LinkError as error:
            transport.close()
            if len(rates) == 1:
                raise
            failures.append(f"{rate:,} baud: {error}")
    raise LinkError(f"--port {port}: no board answered at any board's rate ("
                    f"{'; '.join(failures)}); give --baud")


def run_model(model_dir, port, x, *, baud=None, timeout=DEFAULT_TIMEOUT, progress=None):
    """``sps run``: make the board hold the model, infer ``x``, return the int8 output.

    The model's image files are checked against the manifest's sha256 before anything is
    sent; the packed images are uploaded only if the board does not already hold them (same
    tag), so repeated runs cost one inference each. Each hardware segment is one RUN on the
    board; the layers between segments run on the host (``compiler.golden``).
    """
    say = progress or (lambda msg: None)
    model = images.load(model_dir)                  # sha256 of every image file
    golden.check_input(model, x, what="--input")
    core = None                 # a simulated board is the one sps build makes for the model
    if port.startswith("sim:") and port[4:] in BOARDS:
        where, _, _ = fit_board(model, BOARDS[port[4:]], name=f"model {model_dir}")
        core = "dram" if where == "dram" else None
    transport, link, info = connect(port, baud, core=core, timeout=timeout)
    try:
        spec = next((b for b in BOARDS.values() if b.board_id == info.board_id), None)
        if spec is None:
            raise LinkError(f"--port {port}: unknown board id {info.board_id}")
        say(f"sps: {port}: {spec.name}, array {info.rows}x{info.cols}, "
            f"{info.clk_hz / 1e6:g} MHz")
        have = [(r.name, r.width, r.depth) for r in info.regions]
        if [r.name for r in info.regions] == [DRAM_REGION]:
            return run_from_dram(link, model, spec, x, say)
        want = [(r.name, r.width, r.depth) for r in memory_map(spec.config)]
        if have != want:
            raise LinkError(f"--port {port}: the board's core is not the SPS core of "
                            f"{spec.name} (its memories are {have}, the core's {want}); "
                            f"program it with a bitstream of sps build --board {spec.name}")
        program = pack_program(model, spec)
        packed = pack_model(model, spec, program)
        tag = model_tag(packed)
        st = link.status()
        if not (st.model_valid and st.model_tag == tag):
            say(f"sps: uploading {sum(len(v) for v in packed.values()):,} bytes of images")
            link.upload(packed, tag)

        def run_segment(index, tensor):
            seg = program.segments[index]
            say(f"sps: segment {index} ({', '.join(seg.layers)}) on the board")
            return link.infer(tensor, int(np.prod(seg.out_shape)), segment=index)
        out = model.manifest["output"]["name"]
        return run_network(model, program, x, run_segment)[out]
    finally:
        transport.close()


def run_from_dram(link, model, spec, x, say=lambda msg: None):
    """``sps run`` on a board whose core runs models from DRAM (``boards.dram.core``): the
    model's packed image (``sps_hw.dram``) uploaded unless the board holds it, then its steps
    in order, each engine segment one RUN with its input tensor in and its output out, the
    host layers between them through ``compiler.golden``."""
    _, image = dram_fit(model, spec)
    say(f"sps: DRAM image of {len(image.data):,} bytes: {len(image.jobs):,} jobs in "
        f"{len(image.segments)} segments, {len(image.host)} host layers")
    tensors = {"input": np.asarray(x, np.int8)}
    by_name = {layer["name"]: layer for layer in model.layers}
    # Refuse before uploading what the link cannot run: a segment reads one tensor from the
    # host and gives one back, and the host keeps only those.
    have, segments = {"input"}, iter(image.segments)
    for kind, *args in image.steps:
        if kind == "host":
            needs, gives = by_name[args[0]]["inputs"], args[0]
        else:
            seg = next(segments)
            needs, gives = [seg.input], seg.output
        missing = [t for t in needs if t not in have]
        if missing:
            what = f"host layer {args[0]}" if kind == "host" else \
                f"the engine segment of {', '.join(seg.layers)}"
            raise LinkError(f"{what} reads {', '.join(map(str, missing))}, which stays in "
                            f"the board's DRAM: the link carries one tensor into and out of "
                            f"each segment")
        have.add(gives)
    tag = model_tag({DRAM_REGION: image.data})
    st = link.status()
    if not (st.model_valid and st.model_tag == tag):
        say(f"sps: uploading the {len(image.data):,}-byte DRAM image")
        link.upload({DRAM_REGION: bytes(image.data)}, tag)
    segments = iter(enumerate(image.segments))
    for kind, *args in image.steps:
        if kind == "host":
            layer = by_name[args[0]]
            tensors[args[0]] = np.asarray(golden.run_layer(
                layer, model.weights.get(args[0]), [tensors[t] for t in layer["inputs"]]),
                np.int8)
            continue
        index, seg = next(segments)
        shape = image.tensors[seg.output]["shape"]
        say(f"sps: segment {index} ({len(seg.layers)} layers, {seg.count:,} jobs) on the board")
        tensors[seg.output] = link.infer(tensors[seg.input], int(np.prod(shape)),
                                         segment=index).reshape(shape)
    return tensors[image.output]
