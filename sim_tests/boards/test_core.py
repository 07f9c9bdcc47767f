# amaranth: UnusedElaboratable=no
"""The SPS core behind the host link (``boards.core``), in amaranth.sim through the UART line
model: uploads into the accelerator's staged memories, segment runs with host layers in
between, against ``compiler.golden`` to the bit."""

import numpy as np
import pytest

from boards.core import SPSCore, memory_map
from boards.host import Link
from boards.model_image import image_bytes, model_tag
from boards.simulation import AmaranthTransport
from boards.top import LinkedCore
from compiler import golden
from sps_hw import program as prog
from sps_hw.config import ROM_NAMES, Config

from ..support.layers import layer, random_model

CLK = 1_000_000
DIV = 4
LINK = {"clk_hz": CLK, "divisor": DIV, "max_payload": 128, "out_depth": 64,
        "frame_timeout": 400, "stall_timeout": 20_000, "board_id": 1}

#: Two hardware segments with a host max-pool between them.
SPECS = [layer("conv3", ci=2, h=6, w=6, co=3, keep=4, patterns=2, period=2),
         layer("maxpool"),
         layer("conv3", co=4, keep=9, pool=True),
         layer("fc", co=3, relu=False)]
CFG = Config(rows=3, cols=2, max_hw=64, max_width=8, fmap_depth=64, weight_depth=128,
             index_depth=8, library_depth=8, param_depth=8, layer_depth=4, max_patterns=4)


class CoreBoard:
    def __init__(self, cfg, images=None, tag=0):
        self.core = SPSCore(cfg, images)
        self.top = LinkedCore(self.core, rows=cfg.rows, cols=cfg.cols,
                              model_valid=images is not None, model_tag=tag, **LINK)
        self.transport = AmaranthTransport(self.top, rx=self.top.rx, tx=self.top.tx,
                                           clk_hz=CLK, divisor=DIV)
        self.host = Link(self.transport, timeout=0.01)


def packed(model, cfg):
    program = prog.build(model, cfg)
    images = {r.name: image_bytes(program.images[r.name], r.width) for r in memory_map(cfg)}
    return program, images


def test_memory_map_follows_the_roms():
    mm = memory_map(CFG)
    assert {r.name for r in mm} == set(ROM_NAMES)
    assert mm["weights"].width == 8 * CFG.cols and mm["weights"].depth == CFG.weight_depth
    assert mm["library"].width == 32             # tap lists (sps_hw.indexing.tap_list)


def test_upload_and_run_segments():
    """Upload over the link, then run the network: segments on the board, the max-pool on
    the host; then segment 1 alone (the core starts where RUN says)."""
    model = random_model(SPECS, seed=3)
    program, images = packed(model, CFG)
    assert len(program.segments) == 2 and list(program.host) == ["l1"]
    board = CoreBoard(CFG)
    board.host.connect()
    tag = model_tag(images)
    board.host.upload(images, tag)
    st = board.host.status()
    assert st.model_valid and st.model_tag == tag

    x = np.random.default_rng(0).integers(-128, 128, (2, 6, 6)).astype(np.int8)
    want = golden.infer(model, x)

    def run_segment(index, tensor):
        return board.host.infer(tensor, int(np.prod(program.segments[index].out_shape)),
                                segment=index)
    acts = prog.run_network(model, program, x, run_segment)
    np.testing.assert_array_equal(acts[model.manifest["output"]["name"]], want)
    # Segment 1 again, on its own: the same tensor as in the whole run.
    seg = program.segments[1]
    y = run_segment(1, acts[seg.source])
    np.testing.assert_array_equal(y.reshape(seg.out_shape), acts[seg.output])
    st = board.host.status()
    assert st.done and not st.busy and st.runs == 3


def test_baked_model_runs_without_upload():
    model = random_model(SPECS[:1], seed=5)
    program, images = packed(model, CFG)
    board = CoreBoard(CFG, program.images, tag=model_tag(images))
    x = np.random.default_rng(1).integers(-128, 128, (2, 6, 6)).astype(np.int8)
    y = board.host.infer(x, int(np.prod(program.segments[0].out_shape)))
    np.testing.assert_array_equal(y.reshape(program.segments[0].out_shape),
                                  golden.infer(model, x))


def test_core_validates_its_config():
    with pytest.raises(TypeError, match=r"cfg must be a sps_hw\.config\.Config"):
        SPSCore({"rows": 4})
