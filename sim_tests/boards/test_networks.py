"""The network table of ``docs/boards.md`` (``python -m boards.networks``): the link's frame
arithmetic, and a row on a small network packed as ``sps run`` packs it."""

import pytest

from boards import networks
from boards.fit import dram_fit
from boards.platforms import BOARDS
from boards.protocol import OVERHEAD
from compiler.errors import SPSError
from sim_tests.support.layers import layer, random_model


def test_line_seconds():
    """508 data bytes per 512-byte frame; each frame carries its header, offset and CRC and
    is answered by an 11-byte response."""
    assert networks.line_seconds(508, 3_000_000, 512) == (508 + OVERHEAD + 4 + 11) * 10 / 3e6
    assert networks.line_seconds(509, 3_000_000, 512) == \
        (509 + 2 * (OVERHEAD + 4 + 11)) * 10 / 3e6
    assert networks.line_seconds(0, 4_000_000, 512) == (OVERHEAD + 4 + 11) * 10 / 4e6


def test_row_of_a_model():
    model = random_model([layer("conv3", ci=3, h=16, w=16, co=16, keep=9),
                          layer("conv3", co=16, keep=4, period=4, patterns=4, stride=2,
                                pool=True)], seed=3)
    spec = BOARDS["ulx3s-85f"]
    row = networks._board_row(spec, "m", model, lambda msg: None)
    _, image = dram_fit(model, spec)
    assert row["image_bytes"] == len(image.data) and row["jobs"] == len(image.jobs)
    assert row["host_layers"] == {"l1": "stride 2 with a fused pool"}
    assert row["clock_mhz"] == 60.0 and row["baud"] == 3_000_000
    assert row["upload_s"] == round(networks.line_seconds(len(image.data), 3_000_000, 512), 1)
    assert row["engine_cycles"] > 0 and row["host_s"] >= 0     # a timing: may round to 0
    assert row["inference_s"] == pytest.approx(row["engine_s"] + row["link_s"] + row["host_s"],
                                               abs=2e-3)


def test_unknown_network_is_refused():
    with pytest.raises(SPSError, match=r"^alexnet: not a built-in network; expected one of"):
        networks.main(["alexnet"])
