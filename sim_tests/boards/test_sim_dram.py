"""``--port sim:ulx3s-85f`` with a model that runs from DRAM: the board's top level with the
DRAM core (``boards.dram.core``), the LiteDRAM controller and LiteDRAM's ``SDRAMPHYModel``
under Verilator, through the bit-level UART model.

``sps run`` of a model larger than the ULX3S's block RAM equals ``sps golden`` to the bit,
upload through the UART included. The fault cases of ``docs/host_link.md`` for a model in
DRAM (a damaged frame, a wrong image CRC, a truncated upload, a reset during an upload) end
with the board's defined answer and the previously committed model running exactly.
"""

import struct

import numpy as np
import pytest

from boards import protocol
from boards.host import Link, run_from_dram
from boards.model_image import model_tag
from boards.platforms import BOARDS
from boards.protocol import DRAM_REGION, Cmd, Status
from boards.sim_transport import BUILD_ENV, VerilatorTransport
from compiler import golden, images
from sps.cli import main as sps
from sps_hw.dram import pack

from ..support.layers import layer, random_model
from ..support.simulators import require_simulator

pytest.importorskip("litedram", reason="the dram extra is not installed (pip install -e .[dram])")

SPEC = BOARDS["ulx3s-85f"]
#: 16 x 16 inputs: every layer's buffers fit the ULX3S core, its weights do not.
BIG = [layer("conv3", ci=3, h=16, w=16, co=64, keep=9),
       layer("conv3", co=64, keep=4, period=4, patterns=4, pool=True),
       layer("conv3", co=128, keep=4, period=4, patterns=4, stride=2),
       layer("conv1", co=64),
       layer("conv1", co=10, relu=False)]
#: 755,264 bytes of DRAM image: more than the ULX3S's whole block RAM (208 DP16KD, 468 KiB).
HUGE = [layer("conv3", ci=32, h=8, w=8, co=128, keep=9),
        layer("conv3", co=256, keep=4, period=4, patterns=4),
        layer("conv3", co=256, keep=4, period=4, patterns=4),
        layer("conv3", co=256, keep=4, period=4, patterns=4, pool=True),
        layer("conv1", co=10, relu=False)]
#: Small networks for the fault cases (a DRAM core runs any model from its DRAM): a residual
#: add and a max-pool on the vector unit, a stride-2 layer.
SMALL = [layer("conv3", ci=4, h=8, w=8, co=8, keep=4, period=2, patterns=2),
         layer("conv3", co=8, keep=4, period=2, patterns=2, stride=2),
         layer("conv1", co=6, relu=False)]


@pytest.fixture
def build_root(sim_build_root, monkeypatch):
    require_simulator("verilator")
    monkeypatch.setenv(BUILD_ENV, str(sim_build_root / "boards"))
    return sim_build_root / "boards"


class DramModel:
    """A compiled model, its DRAM image as uploaded, and a check that the board runs it."""

    def __init__(self, path, seed):
        self.compiled = images.load(path)
        self.image = bytes(pack(self.compiled, SPEC.dram_config).data)
        self.x = np.random.default_rng(seed).integers(
            -128, 128, self.compiled.manifest["input"]["shape"], dtype=np.int8)

    @property
    def images(self):
        return {DRAM_REGION: self.image}

    @property
    def tag(self):
        return model_tag(self.images)

    def run(self, link):
        want = golden.run(self.compiled, self.x)[self.compiled.manifest["output"]["name"]]
        np.testing.assert_array_equal(run_from_dram(link, self.compiled, SPEC, self.x), want)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("dram-models")
    out = {}
    for name, layers, seed in (("big", BIG, 7), ("huge", HUGE, 11), ("a", SMALL, 1),
                               ("b", SMALL, 2)):
        out[name] = images.write(random_model(layers, seed=seed), root / name).path
    return out


@pytest.fixture
def loaded(build_root, models):
    """The simulated ULX3S DRAM board holding small model A: ``(transport, link, A, B)``."""
    model_a, model_b = DramModel(models["a"], 3), DramModel(models["b"], 4)
    transport = VerilatorTransport("ulx3s-85f", core="dram")
    link = Link(transport, timeout=0.005)
    info = link.connect()
    assert [(r.name, r.width, r.depth) for r in info.regions] == [("dram", 8, 2**24)]
    link.upload(model_a.images)
    yield transport, link, model_a, model_b
    transport.close()


def assert_holds(link, model):
    st = link.status()
    assert st.model_valid and st.model_tag == model.tag
    runs = st.runs
    model.run(link)
    assert link.status().runs == runs + 1          # no upload: one RUN per segment


def test_sps_run_equals_golden(build_root, models, tmp_path, capsys):
    """A model larger than the ULX3S's block RAM: `sps run --port sim:ulx3s-85f` uploads its
    DRAM image through the UART and gives `sps golden`'s output to the bit."""
    x = np.random.default_rng(5).integers(-128, 128, (3, 16, 16), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    args = ["--input", str(tmp_path / "x.npy"), "-o"]
    assert sps(["run", str(models["big"]), "--port", "sim:ulx3s-85f", *args,
                str(tmp_path / "y.npy")]) == 0
    err = capsys.readouterr().err
    assert "uploading the 89,088-byte DRAM image" in err and "segment 0 (5 layers" in err
    assert sps(["golden", str(models["big"]), *args, str(tmp_path / "g.npy")]) == 0
    y, g = np.load(tmp_path / "y.npy"), np.load(tmp_path / "g.npy")
    assert y.dtype == g.dtype == np.int8 and y.shape == g.shape == (10, 4, 4)
    np.testing.assert_array_equal(y, g)


@pytest.mark.slow
def test_larger_than_the_whole_block_ram(build_root, models):
    """A 755,264-byte DRAM image, more than all 479,232 bytes of the 85F's block RAM, uploaded
    through the simulated UART (about 34 M cycles) and run: equal to the golden model."""
    model = DramModel(models["huge"], 6)
    assert len(model.image) == 755_264 > 208 * 18432 // 8
    transport = VerilatorTransport("ulx3s-85f", core="dram")
    try:
        link = Link(transport, timeout=0.005)
        link.connect()
        link.upload(model.images, model.tag)
        assert_holds(link, model)
    finally:
        transport.close()


def test_faults_keep_the_model_in_dram(loaded):
    """Each fault leaves model A committed and running exactly; B then uploads and runs."""
    transport, link, model_a, model_b = loaded
    assert_holds(link, model_a)
    data = model_b.image
    crc = protocol.crc32(data)

    # A damaged LOAD_DATA frame is retried; a damaged COMMIT request is not executed.
    link.discard()
    transport.corrupt_next(40, 0x08)
    link.load_image(DRAM_REGION, data)
    assert link.stats["frame_errors"] == 1 and link.stats["retries"] == 1
    frame = bytearray(protocol.encode_frame(Cmd.COMMIT, struct.pack("<I", 77)))
    frame[5] ^= 0x40
    link.send_raw(frame)
    cmd, body = link._read_frame(0.1)
    assert (cmd, body[0]) == (Cmd.COMMIT | 0x80, Status.ERR_CRC)
    assert link.status().verified == 1
    assert_holds(link, model_a)

    # A wrong image CRC: refused at LOAD_END, COMMIT refused.
    link.discard()
    link.check(link.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 0, len(data), crc ^ 1)),
               "begin")
    link.send_data(Cmd.LOAD_DATA, data, "LOAD_DATA")
    rsp = link.request(Cmd.LOAD_END)
    assert (rsp.status, rsp.arg) == (Status.ERR_IMAGE_CRC, crc)
    rsp = link.request(Cmd.COMMIT, struct.pack("<I", 99))
    assert (rsp.status, rsp.arg) == (Status.ERR_NOT_STAGED, 0)
    assert_holds(link, model_a)

    # A truncated upload: ERR_INCOMPLETE, COMMIT refused.
    link.discard()
    link.check(link.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 0, len(data), crc)), "begin")
    half = len(data) // 2
    link.send_data(Cmd.LOAD_DATA, data[:half], "LOAD_DATA")
    rsp = link.request(Cmd.LOAD_END)
    assert (rsp.status, rsp.arg) == (Status.ERR_INCOMPLETE, half)
    rsp = link.request(Cmd.COMMIT, struct.pack("<I", 5))
    assert (rsp.status, rsp.arg) == (Status.ERR_NOT_STAGED, 0)
    assert_holds(link, model_a)

    # A reset half way: the staging state is gone, model A (valid, tag, its DRAM half) stays.
    link.discard()
    link.check(link.request(Cmd.LOAD_BEGIN, struct.pack("<BII", 0, len(data), crc)), "begin")
    link.send_data(Cmd.LOAD_DATA, data[:half], "LOAD_DATA")
    transport.reset_board(cycles=8)
    transport.idle(transport.byte_time)
    st = link.status()
    assert st.model_valid and st.model_tag == model_a.tag and st.verified == 0
    rsp = link.request(Cmd.LOAD_DATA, struct.pack("<I", half) + data[half:half + 256])
    assert rsp.status == Status.ERR_STATE
    assert_holds(link, model_a)

    # Then B uploads whole, replaces A, and runs exactly; A again.
    link.upload(model_b.images)
    assert_holds(link, model_b)
    link.upload(model_a.images)
    assert_holds(link, model_a)
