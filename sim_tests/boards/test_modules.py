"""Resources per block: every cell of a netlist counted once, by name, source line or
fanout."""

import json
from pathlib import Path

import sps_hw.output
from boards.modules import BLOCKS, block_of, module_resources

OUTPUT_PY = Path(sps_hw.output.__file__)


def _line_in(cls_name):
    """A line inside the class ``cls_name`` of ``sps_hw/output.py``."""
    lines = OUTPUT_PY.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(f"class {cls_name}(")) + 2


def _cell(kind, inputs=(), outputs=(), src=""):
    return {"type": kind, "attributes": {"src": src} if src else {},
            "port_directions": {**{f"I{i}": "input" for i in range(len(inputs))},
                                **{f"O{i}": "output" for i in range(len(outputs))}},
            "connections": {**{f"I{i}": [b] for i, b in enumerate(inputs)},
                            **{f"O{i}": [b] for i, b in enumerate(outputs)}}}


def test_block_of_paths():
    assert block_of("linked.core.accelerator.array.pe_3_1.psum_out_SB_DFF_Q") == "array"
    assert block_of("linked.core.accelerator.window_12.ptr") == "window_generators"
    assert block_of("linked.link.framer.crc") == "link"
    assert block_of("linked.core.accelerator.valid_d3") == "pipeline"
    assert block_of("blinker.count") == "board"
    assert "array" in BLOCKS and "link" in BLOCKS


def test_cells_by_name_source_and_fanout(tmp_path):
    src = f"{OUTPUT_PY}:{_line_in('Requantizer')}|/share/ice40/cells_map.v:1.1-2.2"
    cells = {
        # Named inside a block.
        "linked.core.accelerator.array.pe_0_0.psum_out_SB_DFF_Q": _cell("SB_DFF", [1], [2]),
        "linked.core.accelerator.array.multipliers.mac_0": _cell("SB_MAC16", [2], [3]),
        # Named between blocks, made by the requantizer's code.
        "linked.core.accelerator.acc_SB_DFF_Q": _cell("SB_DFF", [3], [4], src),
        # A LUT with neither: it drives the requantizer's register, two LUTs deep.
        "$abc$1$lut": _cell("SB_LUT4", [5], [6]),
        "$abc$2$lut": _cell("SB_LUT4", [6], [3]),
        "blinker.count_SB_DFF_Q": _cell("SB_DFF", [7], [8]),
        "scope": _cell("$scopeinfo"),
    }
    path = tmp_path / "top.json"
    path.write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    got = module_resources(path, "ice40")
    assert got["array"]["ff"] == 1 and got["array"]["dsp"] == 1
    assert got["requantizer"] == {"lut": 2, "ff": 1, "carry": 0, "dsp": 0, "bram": 0,
                                  "spram": 0}
    assert got["board"]["ff"] == 1
    total = sum(sum(v.values()) for v in got.values())
    assert total == 6                   # every placed cell once, the scope info not at all
