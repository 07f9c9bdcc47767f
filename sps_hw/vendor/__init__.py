"""Device primitives behind small generic interfaces: the only place that looks at the
platform a design is elaborated for.

- :class:`Multipliers`: ``n`` signed 8 x 8 products with registered operands and products
  (:data:`PRODUCT_LATENCY` cycles) — ECP5 MULT18X18D with input and output registers,
  iCE40 SB_MAC16 in 8x8 mode (two products per block), elsewhere registers around ``*``;
- :class:`WideMultiplier`: one signed ``a * b`` (a 32-bit accumulator times a requantizer
  multiplier) in :data:`WIDE_PRODUCT_LATENCY` cycles — two MULT18X18D and a registered adder
  on the ECP5, two chained SB_MAC16 on the iCE40;
- :func:`replica`: a register of a one-bit control signal that synthesis keeps apart from
  its equal copies (each copy drives a share of a large fanout; ECP5 TRELLIS_FF kept);
- :func:`global_net`: a signal of large fanout (a core's reset) on a global network (ECP5
  DCCA), elsewhere the signal itself;
- :func:`crossing`: a register where a signal crosses the die, only on the fast parts (an
  iCE40 at 24 MHz needs none, and a logic cell per bit is dear there; :func:`crosses` says
  whether it registers);
- :func:`spram_fits`: whether a single-port memory becomes iCE40 SB_SPRAM256KA
  (:func:`.ice40.spram`);
- the PLLs of the board clocks (:func:`.ecp5.ehxplll`, :func:`.ice40.sb_pll40_pad`).

Every implementation of one interface has the same latency, so the cycle model does not
depend on the device (:func:`crossing` is used only off the cycle model's paths).
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..checks import check_int
from ..registers import delayed
from . import ecp5, ice40

__all__ = ["PRIMITIVES", "PRODUCT_LATENCY", "WIDE_PRODUCT_LATENCY", "Multipliers",
           "WideMultiplier", "crosses", "crossing", "dsp_primitive", "global_net", "replica",
           "spram_fits"]

#: How multipliers are built: ``None`` in fabric registers around ``*``, or a DSP primitive.
PRIMITIVES = (None, "MULT18X18D", "SB_MAC16")
#: Cycles from the operands to their product in :class:`Multipliers`.
PRODUCT_LATENCY = 2
#: Cycles from the operands to their product in :class:`WideMultiplier`.
WIDE_PRODUCT_LATENCY = 3


def dsp_primitive(platform):
    """The DSP primitive of ``platform`` (see :data:`PRIMITIVES`), or None."""
    from amaranth.vendor import LatticePlatform, SiliconBluePlatform
    if isinstance(platform, LatticePlatform) and platform.family == "ecp5":
        return "MULT18X18D"
    if isinstance(platform, SiliconBluePlatform):
        return "SB_MAC16"
    return None


def crosses(platform):
    """Whether :func:`crossing` registers on ``platform`` (everywhere but the iCE40)."""
    return dsp_primitive(platform) != "SB_MAC16"


def crossing(m, platform, value, name, *, reset_less=False):
    """``value`` one cycle later from a register (see :func:`~sps_hw.registers.delayed`), or
    on the iCE40 the value itself: for paths whose timing only a fast part needs and no cycle
    count depends on."""
    if not crosses(platform):
        return value
    return delayed(m, value, 1, name, reset_less=reset_less)


def global_net(m, platform, value, name):
    """``value`` (one bit) through the ECP5's global network (:func:`.ecp5.dcca`): a net to
    most of the flip-flops of a core spanning the die; elsewhere ``value`` itself."""
    if dsp_primitive(platform) == "MULT18X18D":
        return ecp5.dcca(m, value, name)
    return value


def spram_fits(platform, width, depth):
    """Whether a single-port ``width x depth`` memory maps to iCE40 SB_SPRAM256KA."""
    return dsp_primitive(platform) == "SB_MAC16" and width <= 16 and depth <= 16384


def replica(m, platform, d, name):
    """``d`` (one bit) one cycle later, cleared by the reset, in a flip-flop of its own:
    Yosys merges equal registers, so copies meant to split a large fanout (one per block
    that uses the signal) are kept on the ECP5; elsewhere a plain register."""
    if dsp_primitive(platform) == "MULT18X18D":
        return ecp5.kept_ff(m, d, name)
    q = Signal(name=name)
    m.d.sync += q.eq(d)
    return q


def _primitive(choice, platform):
    if choice != "auto" and choice not in PRIMITIVES:
        raise ValueError(f"primitive must be 'auto' or one of {PRIMITIVES}, not {choice!r}")
    return dsp_primitive(platform) if choice == "auto" else choice


class Multipliers(wiring.Component):
    """``n`` signed 8 x 8 multipliers: ``p[i]`` is ``a[i] * b[i]`` of :data:`PRODUCT_LATENCY`
    cycles before (the operands and the product are registered, as in a DSP block).

    ``primitive`` (:data:`PRIMITIVES`, or ``"auto"``: the platform's DSP block) builds them.
    ``grid``, ``(rows, cols)`` with ``rows * cols == n``, says they are an array's (``i = r *
    cols + c``, sums moving down the columns): on a device whose DSP sites are known
    (:func:`.ecp5.grid_sites`) each is placed for it.
    """

    def __init__(self, n, *, primitive="auto", grid=None):
        check_int("n", n, minimum=1)
        _primitive(primitive, None)
        if grid is not None and (len(grid) != 2 or grid[0] * grid[1] != n):
            raise ValueError(f"grid must be (rows, cols) with rows * cols == {n}, not {grid!r}")
        self.n, self.primitive, self.grid = n, primitive, grid
        operands = data.ArrayLayout(signed(8), n)
        super().__init__({"a": In(operands), "b": In(operands),
                          "p": Out(data.ArrayLayout(signed(16), n))})

    def elaborate(self, platform):
        m = Module()
        kind = _primitive(self.primitive, platform)
        sites = None
        if kind == "MULT18X18D" and self.grid is not None and platform is not None:
            sites = ecp5.grid_sites(platform.device, *self.grid)
        for i in range(self.n):
            if kind == "MULT18X18D":
                site = sites and sites[i // self.grid[1]][i % self.grid[1]]
                p = ecp5.mult18x18d(m, self.a[i], self.b[i], f"mult_{i}", site=site)
                m.d.comb += self.p[i].eq(p)
            elif kind is None:
                a = delayed(m, self.a[i], 1, f"a{i}", reset_less=True)
                b = delayed(m, self.b[i], 1, f"b{i}", reset_less=True)
                product = Signal(signed(16), name=f"p{i}", reset_less=True)
                m.d.sync += product.eq(a * b)
                m.d.comb += self.p[i].eq(product)
        if kind == "SB_MAC16":
            # Two products per block; the last one alone when n is odd.
            for i in range(0, self.n, 2):
                pair = range(i, min(i + 2, self.n))
                products = ice40.sb_mac16_8x8(m, [(self.a[j], self.b[j]) for j in pair],
                                              f"mac_{i // 2}")
                for j, p in zip(pair, products):
                    m.d.comb += self.p[j].eq(p)
        return m


class WideMultiplier(wiring.Component):
    """``p = a * b`` (signed ``a_width`` x ``b_width`` bits) of :data:`WIDE_PRODUCT_LATENCY`
    cycles before. The DSP primitives take ``a_width <= 32``, ``b_width <= 16`` (iCE40) or
    ``<= 18`` (ECP5); wider operands are multiplied in fabric, pipelined the same way."""

    def __init__(self, a_width, b_width, *, primitive="auto"):
        check_int("a_width", a_width, minimum=1, maximum=32)
        check_int("b_width", b_width, minimum=1, maximum=32)
        _primitive(primitive, None)
        self.a_width, self.b_width, self.primitive = a_width, b_width, primitive
        super().__init__({"a": In(signed(a_width)), "b": In(signed(b_width)),
                          "p": Out(signed(a_width + b_width))})

    def elaborate(self, platform):
        m = Module()
        kind = _primitive(self.primitive, platform)
        if kind == "MULT18X18D" and self.b_width <= 18:
            p = ecp5.mult_32x18(m, self.a, self.b, "mult")
        elif kind == "SB_MAC16" and self.b_width <= 16:
            p = ice40.sb_mac16_32x16(m, self.a, self.b, "mac")
        else:
            a = delayed(m, self.a, 1, "a", reset_less=True)
            b = delayed(m, self.b, 1, "b", reset_less=True)
            product = Signal(signed(self.a_width + self.b_width), reset_less=True)
            m.d.sync += product.eq(a * b)
            p = delayed(m, product, WIDE_PRODUCT_LATENCY - 2, "p", reset_less=True)
        m.d.comb += self.p.eq(p)
        return m
