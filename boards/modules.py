"""Resources per block of a board design: ``report.json``'s ``modules``.

Every cell of the netlist the bitstream is built from (``top.json``, flattened) is given to
a block, in this order:

1. by its name: Yosys names a cell after the net it drives, and a net inside a block carries
   the block's path (``linked.core.accelerator.array.pe_0_0.psum_out...``);
2. by its ``src`` attribute, the Amaranth statement that made it: the class (or function)
   around that line of this project's code (:data:`OWNERS`), for logic on the nets between
   blocks, which are named at the level above;
3. by where its output goes: logic that Yosys' techmapping left without either (ABC's LUTs)
   belongs to the block of the cells it drives.

So the blocks add up to the whole design, cell for cell.
"""

import ast
import functools
import json
from collections import Counter, defaultdict
from pathlib import Path

__all__ = ["BLOCKS", "OWNERS", "block_of", "module_resources"]

_CORE = "linked.core.accelerator."
#: The blocks reported, and the path prefixes (under the board top) of their modules.
BLOCKS = {
    "array": [_CORE + "array"],
    "indexing_unit": [_CORE + "indexing", _CORE + "walker"],
    "window_generators": [_CORE + "window_"],
    "feeder": [_CORE + "feeder"],
    "controller": [_CORE + "controller"],
    "accumulator": [_CORE + "accumulator", _CORE + "sequencer"],
    "requantizer": [_CORE + "requantizer"],
    "pool_and_writer": [_CORE + "pool", _CORE + "writer"],
    "tensor_io": [_CORE + "tensors"],
    "feature_buffers": [_CORE + "fmap"],
    "image_memories": [_CORE + "images", _CORE + "rom_"],
    "link": ["linked.link"],
    "pipeline": [_CORE],                # the accelerator's own delay lines and muxes
    "board": [""],                      # clocks, LEDs, the core's run control
}

#: The block of the code in each class or function (for cells named between blocks).
OWNERS = {
    "SystolicArray": "array", "ProcessingElement": "array", "Multipliers": "array",
    "IndexingUnit": "indexing_unit", "PassWalker": "indexing_unit",
    "WindowGenerator": "window_generators", "Feeder": "feeder",
    "LayerSequencer": "controller", "FeedSchedule": "controller",
    "WalkSchedule": "controller", "WeightSchedule": "controller", "Controller": "controller",
    "Accumulator": "accumulator", "OutputSequencer": "accumulator",
    "Requantizer": "requantizer", "WideMultiplier": "requantizer", "round_clamp": "requantizer",
    "MaxPool2": "pool_and_writer", "OutputWriter": "pool_and_writer",
    "TensorLoader": "tensor_io", "TensorDrainer": "tensor_io", "TensorIO": "tensor_io",
    "_Walk": "tensor_io",
    "FeatureBuffer": "feature_buffers",
    "ROM": "image_memories", "StagedMemory": "image_memories", "StagedImages": "image_memories",
    "Accelerator": "pipeline",
}

#: Cell types per resource class, by device family (the cells nextpnr places).
_CLASSES = {
    "ice40": {"lut": ("SB_LUT4",), "ff": ("SB_DFF",), "carry": ("SB_CARRY",),
              "dsp": ("SB_MAC16",), "bram": ("SB_RAM40_4K",), "spram": ("SB_SPRAM256KA",)},
    "ecp5": {"lut": ("LUT4",), "ff": ("TRELLIS_FF",), "carry": ("CCU2C",),
             "dsp": ("MULT18X18D", "ALU54B"), "bram": ("DP16KD", "PDPW16KD"),
             "lutram": ("TRELLIS_DPR16X4",)},
    "xc7": {"lut": ("LUT",), "ff": ("FD",), "carry": ("CARRY4",), "dsp": ("DSP48E1",),
            "bram": ("RAMB18E1", "RAMB36E1"), "lutram": ("RAM",)},
}


def block_of(path):
    """The block (a key of :data:`BLOCKS`) a hierarchical name belongs to."""
    for block, prefixes in BLOCKS.items():
        if any(path.startswith(p) for p in prefixes):
            return block
    return "board"


@functools.cache
def _scopes(path):
    """``[(first line, last line, name)]`` of the classes and functions in a source file."""
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError):
        return []
    return [(n.lineno, n.end_lineno, n.name) for n in ast.walk(tree)
            if isinstance(n, (ast.ClassDef, ast.FunctionDef))]


def _owner(src):
    """The block of the project code a ``src`` attribute points at, or None."""
    for item in src.split("|"):
        path, _, where = item.rpartition(":")
        if not path.endswith(".py") or not where.split(".")[0].isdigit():
            continue
        line = int(where.split(".")[0])
        if "/boards/link/" in path:
            return "link"
        # The innermost scope that has an owner.
        for first, last, name in sorted(_scopes(path), key=lambda s: s[0] - s[1]):
            if first <= line <= last and name in OWNERS:
                return OWNERS[name]
    return None


def _classify(cell_type, classes):
    for name, prefixes in classes.items():
        if any(cell_type.startswith(p) for p in prefixes):
            return name
    return None


def module_resources(netlist, family):
    """``{block: {resource class: count}}`` of the flattened netlist ``netlist`` (Yosys'
    ``write_json``) for ``family``."""
    module = json.loads(Path(netlist).read_text())["modules"]["top"]
    cells = {name: cell for name, cell in module["cells"].items()
             if not cell["type"].startswith("$")}
    owner, sinks = {}, defaultdict(list)
    for name, cell in cells.items():
        block = block_of(name)
        if block in ("pipeline", "board"):         # named between blocks, or outside them
            block = _owner(cell.get("attributes", {}).get("src", ""))
        owner[name] = block
        for port, bits in cell["connections"].items():
            if cell.get("port_directions", {}).get(port) == "input":
                for bit in bits:
                    sinks[bit].append(name)
    # Logic with neither a block's name nor a source line: the block it drives.
    outputs = {name: [b for p, bits in cell["connections"].items()
                      if cell.get("port_directions", {}).get(p) == "output" for b in bits]
               for name, cell in cells.items()}
    pending = [name for name, block in owner.items() if block is None]
    while pending:
        left = []
        for name in pending:
            votes = Counter(owner[s] for bit in outputs[name] for s in sinks[bit]
                            if owner.get(s) is not None)
            if votes:
                owner[name] = votes.most_common(1)[0][0]
            else:
                left.append(name)
        if len(left) == len(pending):
            for name in left:
                owner[name] = block_of(name)
            break
        pending = left
    classes = _CLASSES[family]
    blocks = {}
    for name, cell in cells.items():
        kind = _classify(cell["type"], classes)
        if kind is not None:
            counts = blocks.setdefault(owner[name], dict.fromkeys(classes, 0))
            counts[kind] += 1
    return {block: blocks[block] for block in BLOCKS if block in blocks}
