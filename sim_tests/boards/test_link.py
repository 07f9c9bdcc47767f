# amaranth: UnusedElaboratable=no
"""The host link in amaranth.sim, driven by the host code of ``boards.host`` through a
bit-level UART model: uploads, runs and every fault case of ``docs/host_link.md``.

The core behind the link is :class:`boards.selftest.SelfTestCore`: staged image memories and a
run whose output depends on the committed weights and layers images, so "the previous model is
intact" is checked twice: word by word in the active memory banks, and by what a run returns.
"""

import binascii
import struct
import zlib

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from boards import protocol
from boards.host import Link, LinkError
from boards.link import HostLink, MemoryMap, UARTRx, UARTTx, divisor_for
from boards.link.framing import FRAME_CRC
from boards.link.loader import IMAGE_CRC
from boards.link.serial import SerialCRC
from boards.model_image import model_tag
from boards.protocol import Cmd, Status, encode_frame
from boards.selftest import selftest_reference
from boards.simulation import AmaranthTransport
from sps_hw.logic import gt_const

from ..support.selftest_board import CLK, LINK, MM, N_IN, Board, make_images, words_of


@pytest.fixture
def board():
    b = Board()
    b.host.connect()
    return b


@pytest.fixture
def loaded():
    """A board holding model A, baked in at build time (returns board, images, tag)."""
    images = make_images(1)
    tag = model_tag(images)
    b = Board(init={r: words_of(img, r) for r, img in images.items()}, model_valid=True,
              model_tag=tag)
    b.host.connect()
    return b, images, tag


# --- the pieces ------------------------------------------------------------------------------

@given(st.binary(max_size=80))
def test_crc_host_matches_gateware(data):
    """The host's CRC-16 and CRC-32 are the gateware's (amaranth.lib.crc) to the bit."""
    assert protocol.crc16(data) == FRAME_CRC.compute(data)
    assert protocol.crc32(data) == IMAGE_CRC.compute(data)
    frame = encode_frame(0x11, data)
    assert FRAME_CRC.compute(frame[1:]) == 0          # residue: CRC over CMD..CRC is zero


def _serial_crc(crc, data, *, lsb_first):
    """Run ``data`` through the SerialCRC ``crc`` in simulation, one bit per cycle."""
    sim = Simulator(crc)
    sim.add_clock(1e-6)
    out = {}

    async def bench(ctx):
        ctx.set(crc.start, 1)
        await ctx.tick()
        ctx.set(crc.start, 0)
        ctx.set(crc.valid, 1)
        for byte in data:
            for i in range(8):
                ctx.set(crc.data, byte >> (i if lsb_first else 7 - i) & 1)
                await ctx.tick()
        ctx.set(crc.valid, 0)
        out["value"] = ctx.get(crc.value)
    sim.add_testbench(bench)
    sim.run()
    return out["value"]


@settings(max_examples=15, deadline=None)
@given(st.binary(max_size=24))
def test_serial_crc_matches_zlib_and_crc16(data):
    """The bit-serial CRCs of the gateware are CRC-32/ISO-HDLC and CRC-16/CCITT-FALSE."""
    crc32 = SerialCRC(32, 0x04C11DB7, 0xFFFFFFFF, reflect=True)
    assert _serial_crc(crc32, data, lsb_first=True) ^ 0xFFFFFFFF == zlib.crc32(data)
    crc16 = SerialCRC(16, 0x1021, 0xFFFF, reflect=False)
    assert _serial_crc(crc16, data, lsb_first=False) == binascii.crc_hqx(data, 0xFFFF)
    frame = encode_frame(0x11, data)
    assert _serial_crc(SerialCRC(16, 0x1021, 0xFFFF, reflect=False), frame[1:],
                       lsb_first=False) == 0              # the residue the framer checks


@pytest.mark.parametrize("const", [0, 1, 4, 0x5A, 0xFE, 0xFF, 0x100])
def test_gt_const(const):
    value = Signal(8)
    m = Module()
    out = Signal()
    m.d.comb += out.eq(gt_const(value, const))
    sim = Simulator(m)
    seen = []

    async def bench(ctx):
        for v in range(256):
            ctx.set(value, v)
            seen.append(ctx.get(out))
    sim.add_testbench(bench)
    sim.run()
    assert seen == [int(v > const) for v in range(256)]


class _Echo(Elaboratable):
    def __init__(self, divisor):
        self.rx_, self.tx_ = UARTRx(divisor), UARTTx(divisor)
        self.rx, self.tx = self.rx_.rx, self.tx_.tx

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx, m.submodules.tx = self.rx_, self.tx_
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=64)
        wiring.connect(m, self.rx_.o, fifo.w_stream)
        wiring.connect(m, fifo.r_stream, self.tx_.i)
        return m


@pytest.mark.parametrize("divisor,baud_error", [(4, 0.0), (5, 0.03), (16, -0.04), (13, 0.04)])
def test_uart_echo(divisor, baud_error):
    """Bytes through UARTRx -> FIFO -> UARTTx come back unchanged, with a host baud error."""
    echo = _Echo(divisor)
    t = AmaranthTransport(echo, rx=echo.rx, tx=echo.tx, clk_hz=CLK, divisor=divisor,
                          baud_error=baud_error)
    data = bytes(np.random.default_rng(divisor).integers(0, 256, 40, dtype=np.uint8))
    t.write(data)
    assert t.read(len(data), 60 * t.byte_time) == data
    assert t.line_errors == 0


def test_uart_break_is_one_error():
    """A break (line low for many bytes) is one framing error and no data."""
    echo = _Echo(4)
    t = AmaranthTransport(echo, rx=echo.rx, tx=echo.tx, clk_hz=CLK, divisor=4)
    errors = []
    t.sim.add_process(_count_strobes(echo.rx_.error, errors))
    t.send_break(30 * t.byte_time)
    t.write(b"ok")
    assert t.read(2, 50 * t.byte_time) == b"ok"
    assert len(errors) == 1


def _count_strobes(signal, out):
    async def process(ctx):
        async for _, _, value in ctx.tick().sample(signal):
            if value:
                out.append(1)
    return process


def test_divisor_for():
    assert divisor_for(12_000_000, 1_000_000) == 12
    assert divisor_for(25_000_000, 1_000_000) == 25
    assert divisor_for(12_000_000, 921_600) == 13          # 0.2 % off: fine
    with pytest.raises(ValueError, match=r"4\.0% off"):
        divisor_for(12_000_000, 2_500_000)
    with pytest.raises(ValueError, match="at least 4"):
        divisor_for(12_000_000, 6_000_000)


@pytest.mark.parametrize("kwargs,match", [
    ({"max_payload": 32}, "max_payload"),
    ({"out_depth": 100}, "out_depth"),
    ({"frame_timeout": 20}, "frame_timeout"),
    ({"divisor": 3}, "divisor"),
    ({"rows": 300}, "rows"),
])
def test_link_parameters_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HostLink(MM, **{**LINK, **kwargs})


def test_memory_map_is_checked():
    with pytest.raises(ValueError, match="missing"):
        MemoryMap(weights=(8, 4))
    with pytest.raises(ValueError, match="depth"):
        MemoryMap(weights=(8, 0), index=(4, 8), library=(9, 4), params=(20, 2), layers=(32, 2))


# --- the protocol ----------------------------------------------------------------------------

def test_info(board):
    info = board.host.board
    assert (info.version, info.board_id, info.rows, info.cols) == (protocol.VERSION, 7, 4, 2)
    assert (info.max_payload, info.out_depth, info.clk_hz) == (64, 16, CLK)
    assert (info.frame_timeout, info.stall_timeout) == (240, 300)
    assert [(r.name, r.width, r.depth) for r in info.regions] == \
        [(r.name, r.width, r.depth) for r in MM]


def test_upload_and_run(board):
    """A model uploads, commits and runs; the counters add up."""
    images = make_images(1)
    tag = board.host.upload(images)
    assert tag == model_tag(images)
    board.assert_model(images, tag, run=True)
    st = board.host.status()
    assert (st.runs, st.in_count, st.out_count) == (1, N_IN, N_IN + 4)
    assert st.done and not st.busy and st.frame_errors == 0 and st.rx_errors == 0
    assert st.run_cycles >= st.core_cycles > 0
    assert board.host.stats["retries"] == 0


def test_baked_model_runs_without_upload():
    """Images baked in at build time are a committed model from the start."""
    images = make_images(3)
    init = {r: words_of(img, r) for r, img in images.items()}
    b = Board(init=init, model_valid=True, model_tag=0x1234)
    b.host.connect()
    b.assert_model(images, 0x1234, run=True)


def test_run_needs_a_model(board):
    rsp = board.host.request(Cmd.RUN, b"\0")
    assert rsp.status == Status.ERR_NO_MODEL
    rsp = board.host.request(Cmd.INPUT, struct.pack("<I", 0) + b"x")
    assert rsp.status == Status.ERR_NOT_RUNNING


def test_busy_and_sequence_errors(loaded):
    board, _images, _tag = loaded
    host = board.host
    host.start(0)
    assert host.request(Cmd.RUN, b"\0").status == Status.ERR_BUSY
    assert host.request(Cmd.COMMIT, b"\0" * 4).status == Status.ERR_BUSY
    rsp = host.request(Cmd.INPUT, struct.pack("<I", 3) + b"x")
    assert (rsp.status, rsp.arg) == (Status.ERR_SEQUENCE, 0)
    x = np.arange(N_IN, dtype=np.int8)
    host.send_data(Cmd.INPUT, x.tobytes(), "INPUT")
    out = host.read_output(N_IN + 4)
    rsp = host.request(Cmd.OUTPUT, struct.pack("<IH", N_IN + 4, 4))  # acknowledges all
    assert rsp.status == Status.OK and rsp.body[8:] == b""
    assert struct.unpack("<BxxxI", rsp.body) == (protocol.Flag.MODEL_VALID | protocol.Flag.DONE,
                                                 N_IN + 4)      # flags, (verified, error), count
    rsp = host.request(Cmd.OUTPUT, struct.pack("<IH", 2, 4))    # before what was acknowledged
    assert (rsp.status, rsp.arg) == (Status.ERR_SEQUENCE, N_IN + 4)
    rsp = host.request(Cmd.OUTPUT, struct.pack("<IH", 99, 4))   # beyond what was produced
    assert (rsp.status, rsp.arg) == (Status.ERR_SEQUENCE, N_IN + 4)
    assert len(out) == N_IN + 4


def test_output_larger_than_the_buffer():
    """A run producing more than out_depth bytes stalls the core until the host reads."""
    images = make_images(4, n=28)
    images["weights"] *= 2
    b = Board(max_payload=128, init={r: words_of(img, r) for r, img in images.items()},
              model_valid=True, model_tag=5)
    b.host.connect()
    x = np.random.default_rng(0).integers(-128, 128, 28).astype(np.int8)
    y = b.host.infer(x, 32)
    want = selftest_reference(images["weights"], images["layers"], x, 0, depth=32,
                              weight_bytes=2)
    np.testing.assert_array_equal(y, want)
    assert b.host.status().out_count == 32


# --- faults: each has its defined answer and leaves the committed model intact ---------------

@pytest.mark.parametrize("where", [0, 2, 3, 6, -1])
def test_corrupted_frame_is_retried(loaded, where):
    """A bit flipped anywhere in a LOAD_DATA frame: the board refuses it (or never sees it),
    the host sends it again, and the upload completes exactly."""
    board, images_a, tag_a = loaded
    images_b = make_images(2)
    host = board.host
    host.discard()
    code = protocol.Region.WEIGHTS
    data = images_b["weights"]
    host.check(host.request(Cmd.LOAD_BEGIN, struct.pack("<BII", code, len(data),
                                                         protocol.crc32(data))), "begin")
    chunk = data[:host._chunk()]
    frame_len = len(encode_frame(Cmd.LOAD_DATA, b"\0" * 4 + chunk))
    board.transport.corrupt_next(where % frame_len, 0x10)
    assert len(chunk) == len(data)
    host.send_chunk(Cmd.LOAD_DATA, 0, chunk, "LOAD_DATA")
    host.check(host.request(Cmd.LOAD_END), "end")
    assert host.stats["retries"] >= 1
    st = host.status()
    assert st.verified == 1 << code
    assert st.frame_errors + host.stats["lost"] >= 1
    board.assert_model(images_a, tag_a)                    # nothing committed yet
    bank = board.core.images.banks["weights"]
    active, = board.transport.peek(bank.active)
    staged = [w & 0xFFFF for w in board.transport.peek(
        *(bank.memory.data[(0 if active else bank.depth) + i] for i in range(bank.depth)))]
    assert staged[:len(data) // 2] == words_of(data, "weights")   # the retry landed exactly


def test_wrong_crc_is_not_executed(loaded):
    """A COMMIT with a wrong CRC is answered ERR_CRC and commits nothing."""
    board, images_a, tag_a = loaded
    host = board.host
    images_b = make_images(2)
    for region in protocol.REGIONS:
        host.load_image(region, images_b[region])
    frame = bytearray(encode_frame(Cmd.COMMIT, struct.pack("<I", 99)))
    frame[-1] ^= 0xFF
    board.raw(frame, expect=Status.ERR_CRC)
    st = host.status()
    assert st.verified == 0b11111 and st.model_tag == tag_a and st.frame_errors == 1
    assert st.last_error == Status.ERR_CRC
    board.assert_model(images_a, tag_a, run=True)
    rsp = host.request(Cmd.COMMIT, struct.pack("<I", 99))
    assert (rsp.status, rsp.arg) == (Status.OK, 99)
    board.assert_model(images_b, 99, run=True)


def test_truncated_frame_times_out(loaded):
    """Half a frame, then silence: ERR_TIMEOUT after the frame timeout, nothing executed."""
    board, images, tag = loaded
    frame = encode_frame(Cmd.COMMIT, struct.pack("<I", 5))
    t0 = board.transport.now()
    board.raw(frame[:5], expect=Status.ERR_TIMEOUT)
    assert board.transport.now() - t0 >= LINK["frame_timeout"] / CLK
    assert board.host.status().frame_errors == 1
    board.assert_model(images, tag)


def test_truncated_upload(loaded):
    """An upload that stops half way is refused at LOAD_END and COMMIT; the model stays."""
    board, images_a, tag_a = loaded
    host = board.host
    data = make_images(2)["weights"]
    host.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 0, len(data), protocol.crc32(data)))
    host.send_chunk(Cmd.LOAD_DATA, 0, data[:10], "LOAD_DATA")
    rsp = host.request(Cmd.LOAD_END)
    assert (rsp.status, rsp.arg) == (Status.ERR_INCOMPLETE, 10)
    rsp = host.request(Cmd.COMMIT, struct.pack("<I", 1))
    assert (rsp.status, rsp.arg) == (Status.ERR_NOT_STAGED, 0)
    board.transport.idle(50 * LINK["frame_timeout"] / CLK)          # the host went away
    board.assert_model(images_a, tag_a)


def test_host_restarts_mid_frame(loaded):
    """The host dies half way through a frame; a new session recovers the line and uploads."""
    board, _images_a, _tag_a = loaded
    frame = encode_frame(Cmd.LOAD_DATA, b"\0" * 40)
    board.transport.write(frame[:20])                       # ... and the host process is gone
    fresh = Link(board.transport, timeout=0.002)
    fresh.connect()                                         # its INFO lands in the old frame
    assert fresh.stats["frame_errors"] + fresh.stats["lost"] >= 1
    images_b = make_images(2)
    tag_b = fresh.upload(images_b)
    board.host = fresh
    board.assert_model(images_b, tag_b)


def test_host_times_out_on_a_silent_board(board):
    """No answer at all: the host retries, then gives up with a LinkError naming the request."""
    board.transport.muted = True
    with pytest.raises(LinkError, match="STATUS: no valid answer") as e:
        board.host.status()
    assert e.value.status == Status.ERR_TIMEOUT
    assert board.host.stats["lost"] == board.host.retries + 1


def test_oversized_image(loaded):
    """Too large: refused by the host before sending, and by the board if sent anyway."""
    board, images, tag = loaded
    host = board.host
    capacity = MM["weights"].capacity
    written = board.transport.written
    with pytest.raises(LinkError, match=f"weights {capacity + 2} bytes > {capacity}"):
        host.upload({**images, "weights": b"\0" * (capacity + 2)})
    assert board.transport.written == written                   # nothing went out
    rsp = host.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 0, capacity + 2, 0))
    assert (rsp.status, rsp.arg) == (Status.ERR_TOO_LARGE, capacity)
    rsp = host.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 9, 4, 0))
    assert (rsp.status, rsp.arg) == (Status.ERR_REGION, 5)
    host.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 0, 4, 0))
    rsp = host.request(Cmd.LOAD_DATA, struct.pack("<I", 0) + b"\0" * 6)
    assert (rsp.status, rsp.arg) == (Status.ERR_TOO_LARGE, 0)        # 0 of 4 bytes so far
    board.assert_model(images, tag)


def test_image_crc_mismatch(loaded):
    """An image whose CRC-32 differs from the announced one is not verified."""
    board, images_a, tag_a = loaded
    host = board.host
    data = make_images(2)["params"]
    good = protocol.crc32(data)
    host.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 3, len(data), good ^ 1))
    host.send_data(Cmd.LOAD_DATA, data, "LOAD_DATA")
    rsp = host.request(Cmd.LOAD_END)
    assert (rsp.status, rsp.arg) == (Status.ERR_IMAGE_CRC, good)
    assert host.status().verified == 0
    board.assert_model(images_a, tag_a)


def test_partial_word_image(board):
    """An image that is not a whole number of words fails LOAD_END with the word size."""
    host = board.host
    host.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 0, 3, protocol.crc32(b"abc")))
    host.send_chunk(Cmd.LOAD_DATA, 0, b"abc", "LOAD_DATA")
    rsp = host.request(Cmd.LOAD_END)
    assert (rsp.status, rsp.arg) == (Status.ERR_LENGTH, 2)


def test_unknown_command_and_bad_lengths(loaded):
    board, images, tag = loaded
    host = board.host
    rsp = host.request(0x55, b"abc")
    assert (rsp.status, rsp.arg) == (Status.ERR_UNKNOWN, 0x55)
    rsp = host.request(Cmd.RUN, b"\0\0")
    assert (rsp.status, rsp.arg) == (Status.ERR_LENGTH, 1)
    rsp = host.request(Cmd.LOAD_DATA, b"\0")
    assert (rsp.status, rsp.arg) == (Status.ERR_LENGTH, 4)
    rsp = host.request(Cmd.LOAD_END)
    assert rsp.status == Status.ERR_STATE
    body = board.raw(encode_frame(Cmd.INPUT, b"\0" * 65), expect=Status.ERR_LENGTH)
    assert int.from_bytes(body[1:5], "little") == 64
    board.transport.write(b"\x00\x13\x37junk")                   # noise between frames
    board.assert_model(images, tag)
    assert host.status().last_error == Status.ERR_LENGTH


@pytest.mark.parametrize("when", ["data", "staged"])
def test_reset_during_upload(loaded, when):
    """A board reset in the middle of an upload drops the staged images, keeps the model."""
    board, images_a, tag_a = loaded
    host = board.host
    images_b = make_images(2)
    data = images_b["weights"]
    if when == "staged":
        for region in protocol.REGIONS:
            host.load_image(region, images_b[region])
    else:
        host.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 0, len(data), protocol.crc32(data)))
        if when == "data":
            host.send_chunk(Cmd.LOAD_DATA, 0, data[:20], "LOAD_DATA")
    board.transport.reset_board()
    rsp = host.request(Cmd.LOAD_DATA, struct.pack("<I", 20) + data[20:30])
    assert rsp.status == Status.ERR_STATE
    rsp = host.request(Cmd.COMMIT, struct.pack("<I", 1))
    assert (rsp.status, rsp.arg) == (Status.ERR_NOT_STAGED, 0)
    st = host.status()
    assert st.verified == 0 and not st.flags & protocol.Flag.LOADING
    board.assert_model(images_a, tag_a, run=when == "data")
    tag_b = host.upload(images_b)
    board.assert_model(images_b, tag_b)


@pytest.mark.parametrize("command", [Cmd.COMMIT, Cmd.RUN, Cmd.LOAD_END])
def test_lost_answer_is_confirmed_not_repeated(loaded, command):
    """The answer to COMMIT/RUN/LOAD_END is damaged on its way back: the host confirms
    through STATUS instead of executing the request twice."""
    board, _images_a, _tag_a = loaded
    host = board.host
    images_b = make_images(2)
    if command == Cmd.LOAD_END:
        data = images_b["index"]
        host.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 1, len(data), protocol.crc32(data)))
        host.send_data(Cmd.LOAD_DATA, data, "LOAD_DATA")
        board.transport.corrupt_answer(5)
        host.check(host.request(Cmd.LOAD_END,
                                confirm=lambda: host._confirm_verified(1)), "LOAD_END")
        assert host.status().verified == 0b10
        assert host.stats["lost"] == 1
        return
    if command == Cmd.COMMIT:
        host.discard()
        for region in protocol.REGIONS:
            host.load_image(region, images_b[region])
        board.transport.corrupt_answer(5)
        host.commit(77)
        board.assert_model(images_b, 77)
    else:
        runs = host.status().runs
        status_answer = protocol.OVERHEAD + 1 + protocol.struct.calcsize(protocol.STATUS_FORMAT)
        board.transport.corrupt_answer(status_answer + 6)      # start() asks STATUS first
        host.start(0)
        assert host.status().runs == runs + 1
    assert host.stats["lost"] == 1


def test_input_stall(loaded):
    """Input the core never takes: ERR_STALL after the stall timeout, with the count taken."""
    board, images, tag = loaded
    host = board.host
    host.start(0)
    rsp = host.request(Cmd.INPUT, struct.pack("<I", 0) + bytes(N_IN + 3))
    assert (rsp.status, rsp.arg) == (Status.ERR_STALL, N_IN)
    st = host.status()
    assert st.flags & protocol.Flag.STALLED and st.in_count == N_IN
    board.assert_model(images, tag)

