"""``--port sim:BOARD``: the host code of ``boards.host`` against a board's top level under
Verilator, through the bit-level UART model of ``boards.sim_uart``.

``sps run --port sim:icebreaker`` on the demo model equals ``sps golden`` to the bit. Every
fault case of ``docs/host_link.md`` goes through the real UART path to the SPS core and ends
with the board's defined answer and a run that proves the previously committed model intact
(its outputs equal ``compiler.golden``'s).
"""

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from boards import protocol
from boards.host import Link, LinkError
from boards.model_image import model_tag
from boards.platforms import BOARDS, SELFTEST_MAP
from boards.protocol import Cmd, Status, encode_frame
from boards.selftest import selftest_reference
from boards.sim_transport import BUILD_ENV, VerilatorTransport
from boards.transports import open_transport
from compiler.errors import SPSError
from sps.cli import main as sps

from ..support.simulators import require_simulator

SPEC = BOARDS["icebreaker"]




@pytest.fixture
def build_root(sim_build_root, monkeypatch):
    """Simulated boards are built under the run's shared build directory."""
    require_simulator("verilator")
    monkeypatch.setenv(BUILD_ENV, str(sim_build_root / "boards"))
    return sim_build_root / "boards"


# --- models: images to upload and a check that the board runs them --------------------------

@dataclass
class Model:
    images: dict                       # region name -> bytes, as uploaded
    run: Callable                      # run(link): one inference, compared to compiler.golden

    @property
    def tag(self):
        return model_tag(self.images)


def sps_model(path):
    """A compiled model packed for the iCEBreaker's SPS core; a run equals compiler.golden."""
    from boards.model_image import pack_model, pack_program
    from compiler import golden, images
    from sps_hw.program import run_network

    compiled = images.load(path)
    program = pack_program(compiled, SPEC)
    x = np.random.default_rng(7).integers(-128, 128, compiled.manifest["input"]["shape"],
                                          dtype=np.int8)
    want = golden.run(compiled, x)

    def run(link):
        def segment(index, tensor):
            return link.infer(tensor, int(np.prod(program.segments[index].out_shape)),
                              segment=index)
        got = run_network(compiled, program, x, segment)
        for name, y in got.items():
            np.testing.assert_array_equal(y, want[name], err_msg=name)
    return Model(pack_model(compiled, SPEC, program), run)


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory):
    """The demo network compiled with two seeds: ``(dir A, dir B)``."""
    root = tmp_path_factory.mktemp("demo")
    for seed in (0, 1):
        assert sps(["compile", "demo", "-o", str(root / f"m{seed}"), "--seed", str(seed)]) == 0
    return root / "m0", root / "m1"


@pytest.fixture
def loaded(build_root, demo_models):
    """A simulated iCEBreaker with the SPS core holding demo model A:
    ``(transport, link, model A, model B)``."""
    pytest.importorskip("boards.core")
    model_a, model_b = (sps_model(path) for path in demo_models)
    transport = VerilatorTransport("icebreaker")
    link = Link(transport, timeout=0.005)
    link.connect()
    link.upload(model_a.images)
    yield transport, link, model_a, model_b
    transport.close()


def assert_holds(link, model):
    """The board holds ``model``: STATUS says so and a run gives the reference."""
    st = link.status()
    assert st.model_valid and st.model_tag == model.tag
    model.run(link)


def answer(link, frame, timeout=0.1):
    """Send raw bytes, read one answer: ``(cmd, status, arg)``."""
    link.send_raw(frame)
    cmd, body = link._read_frame(timeout)
    arg = int.from_bytes(body[1:5], "little") if len(body) >= 5 else None
    return cmd, Status(body[0]), arg


# --- the transport and sps run ---------------------------------------------------------------

def test_selftest_board(build_root):
    """The self-test core's board: INFO is the iCEBreaker's, time is simulated cycles at its
    clock exactly, and an uploaded model runs as the self-test reference says."""
    with VerilatorTransport("icebreaker", core="selftest") as board:
        link = Link(board)
        info = link.connect()
        assert (info.version, info.board_id, info.rows, info.cols) == \
            (protocol.VERSION, SPEC.board_id, SPEC.rows, SPEC.cols)
        assert (info.clk_hz, info.max_payload, info.out_depth) == \
            (SPEC.clk_hz, SPEC.max_payload, SPEC.out_depth)
        assert info.frame_timeout == SPEC.clk_hz // 20 and info.stall_timeout == SPEC.clk_hz
        assert [(r.name, r.width, r.depth) for r in info.regions] == \
            [(r.name, r.width, r.depth) for r in SELFTEST_MAP]
        assert board.byte_time == 10 * board.divisor / SPEC.clk_hz
        cycles = board.cycles
        board.idle(1e-3)
        assert board.cycles - cycles == SPEC.clk_hz // 1000
        assert board.read(1, 1e-4) == b""                 # nothing unasked
        assert board.cycles - cycles == SPEC.clk_hz // 1000 + SPEC.clk_hz // 10_000
        cycles = board.cycles
        board.gap(2e-3)                                   # the request waits on the line
        assert link.status().runs == 0
        assert 2 * SPEC.clk_hz // 1000 < board.cycles - cycles < 3 * SPEC.clk_hz // 1000

        rng = np.random.default_rng(1)
        n = 300
        images = {r.name: rng.integers(0, 256, r.capacity, dtype=np.uint8).tobytes()
                  for r in SELFTEST_MAP}
        images["layers"] = struct.pack("<Q", n) + images["layers"][8:]
        link.upload(images)
        x = rng.integers(-128, 128, n, dtype=np.int8)
        want = selftest_reference(images["weights"], images["layers"], x, 9,
                                  depth=SELFTEST_MAP["weights"].depth, weight_bytes=2)
        np.testing.assert_array_equal(link.infer(x, n + 4, segment=9), want)
        st = link.status()
        assert (st.runs, st.in_count, st.out_count, st.frame_errors) == (1, n, n + 4, 0)
    assert board.close()["line_errors"] == 0


def test_unknown_sim_board():
    with pytest.raises(SPSError, match=r"no simulated board 'nosuch'.*icebreaker"):
        open_transport("sim:nosuch", 1_000_000)
    with pytest.raises(ValueError, match="core must be"):
        VerilatorTransport("icebreaker", core="nosuch")


def test_failed_simulation_is_an_error(build_root, tmp_path):
    """A simulation that cannot start is one SPSError naming the board and the log."""
    with pytest.raises(SPSError, match=r"sim:icebreaker: the simulation ended before it "
                       r"connected: verilator build of 'board' failed.*build\.log"):
        VerilatorTransport("icebreaker", core="selftest", build_dir=tmp_path,
                           build_args=["--no-such-option"])


def test_sps_run_equals_golden(build_root, demo_models, tmp_path, capsys):
    """`sps run m --port sim:icebreaker` gives `sps golden`'s output to the bit."""
    pytest.importorskip("boards.core")
    model = str(demo_models[0])
    x = np.random.default_rng(3).integers(-128, 128, (1, 16, 16), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    args = ["--input", str(tmp_path / "x.npy"), "-o"]
    assert sps(["run", model, "--port", "sim:icebreaker", *args, str(tmp_path / "y.npy")]) == 0
    assert "uploading" in capsys.readouterr().err
    assert sps(["golden", model, *args, str(tmp_path / "g.npy")]) == 0
    y, g = np.load(tmp_path / "y.npy"), np.load(tmp_path / "g.npy")
    assert y.dtype == g.dtype == np.int8 and y.shape == g.shape == (10, 1, 1)
    np.testing.assert_array_equal(y, g)


def test_upload_and_runs(loaded):
    """A model uploads through the UART model and runs twice; the counters add up."""
    transport, link, model_a, _ = loaded
    assert_holds(link, model_a)
    assert_holds(link, model_a)
    st = link.status()
    assert st.runs == 2 and st.done and not st.busy and st.in_count > 0 and st.out_count > 0
    assert st.frame_errors == st.rx_errors == 0 and link.stats["retries"] == 0
    stats = transport.close()
    assert stats["line_errors"] == 0
    assert stats["sent"] > sum(map(len, model_a.images.values()))


# --- faults: the defined answer, and the committed model intact -----------------------------

def test_corrupted_frame(loaded):
    """A damaged request is answered ERR_CRC and not executed; a bit flipped on the line in a
    LOAD_DATA frame makes the host send it again and the upload completes exactly; a damaged
    answer to COMMIT is confirmed through STATUS instead of repeating the COMMIT."""
    transport, link, model_a, model_b = loaded
    frame = bytearray(encode_frame(Cmd.COMMIT, struct.pack("<I", 77)))
    frame[5] ^= 0x40                                  # a payload byte
    assert answer(link, frame) == (Cmd.COMMIT | 0x80, Status.ERR_CRC, 0)
    assert_holds(link, model_a)

    link.discard()
    transport.corrupt_next(40, 0x08)                  # inside the first LOAD_DATA frame
    for region in protocol.REGIONS:
        link.load_image(region, model_b.images[region])
    assert link.stats["frame_errors"] == 1 and link.stats["retries"] == 1
    transport.corrupt_answer(4, 0x01)                 # the COMMIT answer's status byte
    link.commit(model_b.tag)
    assert link.stats["lost"] == 1
    st = link.status()
    assert st.frame_errors == 2 and st.rx_errors == 0
    assert_holds(link, model_b)


def test_wrong_crc(loaded):
    """A frame with a wrong CRC-16 is answered ERR_CRC and not executed; an image whose
    CRC-32 is not the announced one is refused at LOAD_END and cannot be committed."""
    _transport, link, model_a, model_b = loaded
    for region in protocol.REGIONS:
        link.load_image(region, model_b.images[region])
    frame = bytearray(encode_frame(Cmd.COMMIT, struct.pack("<I", 99)))
    frame[-1] ^= 0xFF
    assert answer(link, frame) == (Cmd.COMMIT | 0x80, Status.ERR_CRC, 0)
    st = link.status()
    assert st.verified == 0b11111 and st.last_error == Status.ERR_CRC
    assert_holds(link, model_a)

    link.discard()
    data = model_b.images["weights"]
    wrong = protocol.crc32(data) ^ 1
    link.check(link.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 0, len(data), wrong)), "begin")
    link.send_data(Cmd.LOAD_DATA, data, "LOAD_DATA")
    rsp = link.request(Cmd.LOAD_END)
    assert (rsp.status, rsp.arg) == (Status.ERR_IMAGE_CRC, protocol.crc32(data))
    rsp = link.request(Cmd.COMMIT, struct.pack("<I", 99))
    assert (rsp.status, rsp.arg) == (Status.ERR_NOT_STAGED, 0)
    assert_holds(link, model_a)


def test_truncated_upload(loaded):
    """A frame cut short: ERR_TIMEOUT one frame timeout after its last byte. An upload that
    stops half way: ERR_INCOMPLETE at LOAD_END, ERR_NOT_STAGED at COMMIT."""
    transport, link, model_a, model_b = loaded
    frame = encode_frame(Cmd.LOAD_DATA, struct.pack("<I", 0) + bytes(100))
    transport.write(frame[:30])
    transport.idle(30 * transport.byte_time)          # the last byte is on the line
    sent = transport.now()
    cmd, body = link._read_frame(0.1)
    assert (cmd, body[0]) == (Cmd.LOAD_DATA | 0x80, Status.ERR_TIMEOUT)
    waited = transport.now() - sent                   # the timeout, then 11 answer bytes
    timeout = link.board.frame_timeout_s
    assert timeout + 10 * transport.byte_time < waited < timeout + 12 * transport.byte_time
    assert_holds(link, model_a)

    link.discard()
    for region in protocol.REGIONS[:3]:
        link.load_image(region, model_b.images[region])
    data = model_b.images["params"]
    link.check(link.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 3, len(data),
                                                        protocol.crc32(data))), "begin")
    half = len(data) // 2
    link.send_chunk(Cmd.LOAD_DATA, 0, data[:half], "LOAD_DATA")
    rsp = link.request(Cmd.LOAD_END)
    assert (rsp.status, rsp.arg) == (Status.ERR_INCOMPLETE, half)
    rsp = link.request(Cmd.COMMIT, struct.pack("<I", 5))
    assert (rsp.status, rsp.arg) == (Status.ERR_NOT_STAGED, 0b00111)
    assert link.status().frame_errors == 1
    assert_holds(link, model_a)


def test_oversized_model(loaded):
    """Images larger than the board's memories: refused by the host before anything is
    sent, and by the board at LOAD_BEGIN (capacity) and LOAD_DATA (nothing written)."""
    transport, link, model_a, model_b = loaded
    capacity = link.board.region("weights").capacity
    big = {**model_b.images, "weights": bytes(capacity + 2)}
    written = transport._written
    with pytest.raises(LinkError, match="does not fit") as e:
        link.upload(big)
    assert e.value.status == Status.ERR_TOO_LARGE and transport._written == written

    rsp = link.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 0, capacity + 2, 0))
    assert (rsp.status, rsp.arg) == (Status.ERR_TOO_LARGE, capacity)
    link.check(link.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 0, 32, 0)), "begin")
    rsp = link.request(Cmd.LOAD_DATA, struct.pack("<I", 0) + model_b.images["weights"][:64])
    assert (rsp.status, rsp.arg) == (Status.ERR_TOO_LARGE, 0)
    assert_holds(link, model_a)


def test_reset_during_upload(loaded):
    """The board is reset half way through an upload: the staging state is gone, the
    committed model and its tag survive, and the next upload starts from scratch."""
    transport, link, model_a, model_b = loaded
    link.discard()
    link.load_image("weights", model_b.images["weights"])
    data = model_b.images["index"]
    link.check(link.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 1, len(data),
                                                        protocol.crc32(data))), "begin")
    half = len(data) // 2
    link.send_chunk(Cmd.LOAD_DATA, 0, data[:half], "LOAD_DATA")
    transport.reset_board(cycles=8)
    transport.idle(transport.byte_time)
    st = link.status()
    assert st.model_valid and st.model_tag == model_a.tag
    assert st.verified == 0 and protocol.Flag.LOADING not in st.flags and st.runs == 0
    rsp = link.request(Cmd.LOAD_DATA, struct.pack("<I", half) + data[half:])
    assert rsp.status == Status.ERR_STATE
    assert_holds(link, model_a)
    link.upload(model_b.images)
    assert_holds(link, model_b)
