"""The Arty A7's DDR3 pins (litex-boards ``litex_boards/platforms/digilent_arty.py``,
``("ddram", 0, ...)``): the standalone XDC of :mod:`.litedram_arty` and the ``ddram``
resource of the board's platform (:func:`ddram_resource`) both come from here.

No Migen here: the platform imports it without the ``dram`` extra.
"""

from amaranth.build import Attrs, Pins, Resource, Subsignal

__all__ = ["DDRAM_PINS", "DIFF", "INOUT", "IN_TERM", "ddram_resource"]

#: Name -> package pins, index 0 first.
DDRAM_PINS = {
    "a": "R2 M6 N4 T1 N6 R7 V6 U7 R8 V7 R6 U6 T6 T8".split(),
    "ba": "R1 P4 P2".split(), "ras_n": ["P3"], "cas_n": ["M4"], "we_n": ["P5"],
    "cs_n": ["U8"], "dm": ["L1", "U1"],
    "dq": "K5 L3 K3 L6 M3 M1 L4 M2 V4 T5 U4 V5 V1 T3 U3 R3".split(),
    "dqs_p": ["N2", "U2"], "dqs_n": ["N1", "V2"], "clk_p": ["U9"], "clk_n": ["V9"],
    "cke": ["N5"], "odt": ["R5"], "reset_n": ["K6"],
}
#: Pins with IN_TERM=UNTUNED_SPLIT_40 and differential ones (DIFF_SSTL135), as LiteX.
IN_TERM = ("dq", "dqs_p", "dqs_n")
DIFF = ("dqs_p", "dqs_n", "clk_p", "clk_n")
#: The bidirectional pins; the others are outputs.
INOUT = ("dq", "dqs_p", "dqs_n")


def ddram_resource():
    """``ddram`` 0: one subsignal per :data:`DDRAM_PINS` entry, of the same name and with
    LiteX's attributes (SSTL135 or DIFF_SSTL135, fast slew, IN_TERM), active-low pins as
    they are (``_n``: the controller drives their levels). Differential pairs are two
    subsignals (``dqs_p``/``dqs_n``, ``clk_p``/``clk_n``): the controller's ``IOBUFDS`` and
    ``OBUFDS`` drive both pins."""
    subsignals = []
    for name, pins in DDRAM_PINS.items():
        attrs = {"IOSTANDARD": "DIFF_SSTL135" if name in DIFF else "SSTL135", "SLEW": "FAST"}
        if name in IN_TERM:
            attrs["IN_TERM"] = "UNTUNED_SPLIT_40"
        subsignals.append(Subsignal(name, Pins(" ".join(pins), dir="io" if name in INOUT
                                               else "o"), Attrs(**attrs)))
    return Resource("ddram", 0, *subsignals)
