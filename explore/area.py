"""Area of an SPS core before synthesis: DSP blocks counted, logic estimated.

DSP blocks are counted from the array: one multiplier per PE (two PEs share an iCE40
``SB_MAC16``, which has two 8 x 8 products) and two per column for the requantizer's 32 x 16
product, as every board build has it (``docs/boards.md``: 3 ``SB_MAC16`` at 2 x 1, 144
``MULT18X18D`` at 16 x 8, 90 ``DSP48E1`` at 16 x 5).

Logic is an estimate: each board's measured build at its own array (:data:`MEASURED`, in the
board's units: iCE40 logic cells, ECP5 LUT4, the Xilinx LUT of the yosys estimate) scaled by
:func:`logic_units`, a model of how the core grows with the array, fitted to the iCEBreaker
builds (the block breakdown of ``report.json``'s ``modules`` at 2 x 1, and 2 x 2 and 4 x 2
builds): a fixed part (link, control) plus a cost per PE, per column (accumulator,
requantizer, pool and writer) and per row (window generator, feeder, bank crossbar).
``sps explore --synth`` replaces it with the placed design's count.
"""

import math

__all__ = ["MEASURED", "dsp_blocks", "estimate", "logic_units"]

#: board -> (rows, cols, logic used) of a measured build of its SPS core with the demo model.
MEASURED = {"icebreaker": (4, 2, 5224), "ulx3s-85f": (16, 8, 15172), "arty-a7-35": (16, 5, 7871)}
#: Logic cells of the fixed part, and per PE, per column and per row (iCE40 logic cells).
FIXED, PER_PE, PER_COL, PER_ROW = 3400, 36, 560, 450


def dsp_blocks(family, rows, cols):
    """DSP blocks of a ``rows x cols`` core: the array's multipliers and the requantizer's."""
    array = math.ceil(rows * cols / 2) if family == "ice40" else rows * cols
    return array + 2 * cols


def logic_units(rows, cols):
    """The logic model: relative size of a ``rows x cols`` core (iCE40 logic cells)."""
    return FIXED + PER_PE * rows * cols + PER_COL * cols + PER_ROW * rows


def estimate(spec):
    """``{"dsp", "lut"}`` of board ``spec``'s core at its array (``spec.rows x spec.cols``)."""
    rows, cols, used = MEASURED[spec.name]
    lut = used * logic_units(spec.rows, spec.cols) / logic_units(rows, cols)
    return {"dsp": dsp_blocks(spec.family, spec.rows, spec.cols), "lut": round(lut)}
