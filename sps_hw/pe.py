"""The processing element and the weight-stationary systolic array."""

from amaranth.hdl import (
    Array,
    Cat,
    ClockSignal,
    Const,
    Instance,
    Module,
    Mux,
    Signal,
    Value,
    signed,
    unsigned,
)
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int

__all__ = ["MULTIPLIERS", "Activation", "ProcessingElement", "RowLoad", "SystolicArray",
           "WeightLoad", "dsp_primitive", "psum_bits", "sb_mac16_32x16"]


#: An int8 activation and the weight bank (pass parity) it is to be multiplied with.
Activation = data.StructLayout({"value": signed(8), "bank": unsigned(1)})


class WeightLoad(wiring.Signature):
    """Write ``data`` into weight bank ``bank`` of one PE when ``en``."""

    def __init__(self):
        super().__init__({"en": Out(1), "bank": Out(1), "data": Out(signed(8))})


class RowLoad(wiring.Signature):
    """Write one array row's ``cols`` weights (column 0 first) into bank ``bank`` when ``en``."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        super().__init__({
            "en": Out(1),
            "row": Out(range(rows)),
            "bank": Out(1),
            "data": Out(data.ArrayLayout(signed(8), cols)),
        })

    def __eq__(self, other):
        return type(other) is type(self) and (other.rows, other.cols) == (self.rows, self.cols)

    def __repr__(self):
        return f"RowLoad({self.rows}, {self.cols})"


#: How a PE's multiplier is built. ``None``: a combinational ``*`` (what synthesis infers).
#: The others register the operands in the multiplier (a DSP's input registers) and stay
#: cycle-exact: the registers capture the *next* activation (``act_next``) and the next
#: weight (the weight register's input), so the product is that of the current ones.
#: ``"registered"`` builds this in plain Amaranth (simulation, any device); ``"MULT18X18D"``
#: instantiates ECP5 multipliers with input registers A and B; ``"SB_MAC16"`` puts the two
#: PEs of a row pair of columns into one iCE40 block in 8x8 mode (input registers A and B).
MULTIPLIERS = (None, "registered", "MULT18X18D", "SB_MAC16")

#: An 8 x 8 product: at most 2**14 in magnitude.
Operands = data.StructLayout({"a": signed(8), "b": signed(8)})


def dsp_primitive(platform):
    """The registered DSP multiplier of ``platform`` (see :data:`MULTIPLIERS`), or None."""
    from amaranth.vendor import LatticePlatform, SiliconBluePlatform
    if isinstance(platform, LatticePlatform) and platform.family == "ecp5":
        return "MULT18X18D"
    if isinstance(platform, SiliconBluePlatform):
        return "SB_MAC16"
    return None


def psum_bits(rows):
    """Width of the partial sums of a column of ``rows`` PEs: ``rows`` products of at most
    ``2**14`` in magnitude fit in ``15 + rows.bit_length()`` signed bits (at most 32)."""
    return min(32, 15 + rows.bit_length())


def _ports(prefix, value, width):
    """``{prefix<i>: bit i}`` of ``value`` sign-extended to ``width`` bits."""
    value = Value.cast(value)
    wide = value.as_signed() if len(value) < width else value
    bits = [wide[i] if i < len(wide) else wide[-1] for i in range(width)]
    return {f"{prefix}{i}": bit for i, bit in enumerate(bits)}


def mult18x18d(m, a, b, name):
    """``a * b`` (signed) in an ECP5 MULT18X18D whose input registers capture ``a`` and
    ``b``: the result is the product of the previous cycle's operands (36 bits)."""
    p = Signal(36, name=f"{name}_p")
    # Unused inputs (C, the shift chains, the other clocks) stay unconnected, as in Yosys'
    # own mapping: tying them to constants makes nextpnr route a constant net to every pin.
    ports = {"i_CLK0": ClockSignal("sync"), "i_CE0": 1, "i_RST0": 0,
             "i_SIGNEDA": 1, "i_SIGNEDB": 1, "i_SOURCEA": 0, "i_SOURCEB": 0}
    ports.update({f"i_{k}": v for k, v in _ports("A", a, 18).items()})
    ports.update({f"i_{k}": v for k, v in _ports("B", b, 18).items()})
    ports.update({f"o_P{i}": p[i] for i in range(36)})
    m.submodules[name] = Instance(
        "MULT18X18D", p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0",
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE", p_REG_OUTPUT_CLK="NONE",
        p_GSR="DISABLED", p_RESETMODE="SYNC", p_MULT_BYPASS="DISABLED",
        p_SOURCEB_MODE="B_SHIFT", p_CAS_MATCH_REG="FALSE", p_HIGHSPEED_CLK="NONE",
        p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
        p_CLK3_DIV="ENABLED", **ports)
    return p


def _sb_mac16(m, name, a, b, c=None, d=None, **params):
    """One iCE40 SB_MAC16 on the ``sync`` clock, its unused controls tied off; ``params`` are
    its mode parameters (without ``p_``). Returns its 32-bit output ``O``."""
    o = Signal(32, name=f"{name}_o")
    zero16 = Const(0, 16)
    m.submodules[name] = Instance(
        "SB_MAC16",
        **{f"p_{k}": v for k, v in params.items()},
        p_NEG_TRIGGER=0, p_C_REG=0, p_D_REG=0,
        p_TOP_8x8_MULT_REG=0, p_BOT_8x8_MULT_REG=0,
        p_PIPELINE_16x16_MULT_REG1=0, p_PIPELINE_16x16_MULT_REG2=0, p_B_SIGNED=1,
        i_CLK=ClockSignal("sync"), i_CE=1, i_A=a, i_B=b,
        i_C=zero16 if c is None else c, i_D=zero16 if d is None else d,
        i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0, i_IRSTTOP=0, i_IRSTBOT=0,
        i_ORSTTOP=0, i_ORSTBOT=0, i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0, i_ADDSUBBOT=0,
        i_OHOLDTOP=0, i_OHOLDBOT=0, i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
        o_O=o)
    return o


def sb_mac16_8x8(m, low, high, name):
    """Two signed 8 x 8 products in one iCE40 SB_MAC16 (8x8 mode, input registers A and B):
    ``(low.a * low.b, high.a * high.b)`` of the previous cycle's operands, 16 bits each."""
    a = Signal(16, name=f"{name}_a")
    b = Signal(16, name=f"{name}_b")
    m.d.comb += [a.eq(Cat(low.a, high.a)), b.eq(Cat(low.b, high.b))]
    o = _sb_mac16(m, name, a, b, A_REG=1, B_REG=1, MODE_8x8=1, A_SIGNED=1,
                  TOPOUTPUT_SELECT=2, TOPADDSUB_LOWERINPUT=0, TOPADDSUB_UPPERINPUT=0,
                  TOPADDSUB_CARRYSELECT=0, BOTOUTPUT_SELECT=2, BOTADDSUB_LOWERINPUT=0,
                  BOTADDSUB_UPPERINPUT=0, BOTADDSUB_CARRYSELECT=0)
    return o[:16].as_signed(), o[16:].as_signed()


def _sb_mac16_16x16(m, name, a, b, a_signed, c, d, carry, output):
    # Both halves' adders take {C, D} (the upper input) plus the 16 x 16 product (the lower).
    return _sb_mac16(m, name, a, b, c, d, A_REG=0, B_REG=0, MODE_8x8=0,
                     A_SIGNED=int(a_signed), TOPOUTPUT_SELECT=output[1],
                     TOPADDSUB_LOWERINPUT=2, TOPADDSUB_UPPERINPUT=1,
                     TOPADDSUB_CARRYSELECT=carry, BOTOUTPUT_SELECT=output[0],
                     BOTADDSUB_LOWERINPUT=2, BOTADDSUB_UPPERINPUT=1, BOTADDSUB_CARRYSELECT=0)


def sb_mac16_32x16(m, a, b, name):
    """The registered product ``a * b`` (``a`` signed 32 bits, ``b`` signed, at most 16 bits)
    in two iCE40 SB_MAC16 in 16 x 16 mode: the low one multiplies ``a[:16]`` (unsigned) by
    ``b`` (its upper product half unregistered, its lower half through the adder into the
    output register), the high one ``a[16:]`` by ``b`` and adds the low one's upper half,
    sign-extended, in its own 32-bit adder and output register. The result is the product of
    the previous cycle's operands, ``32 + 16`` bits (signed)."""
    a, b = Value.cast(a), Value.cast(b)
    a16 = [Signal(16, name=f"{name}_a{i}") for i in range(2)]
    b16 = Signal(16, name=f"{name}_b")
    m.d.comb += [a16[0].eq(a[:16]), a16[1].eq(a[16:32]), b16.eq(b.as_signed())]
    # Output selects (bottom, top): 1 = the adder's register, 3 = the 16 x 16 product's half.
    lo = _sb_mac16_16x16(m, f"{name}_lo", a16[0], b16, False, None, None, 0, (1, 3))
    high = lo[16:]
    hi = _sb_mac16_16x16(m, f"{name}_hi", a16[1], b16, True, high[-1].replicate(16), high,
                         2, (1, 1))
    return Cat(lo[:16], hi).as_signed()


class ProcessingElement(wiring.Component):
    """``psum_out <= psum_in + weight[act.bank] * act.value``; the activation moves on.

    Two weight registers (banks): the next pass's weight is written into one while the
    current pass multiplies with the other; each activation names its bank, so a bank switch
    travels through the array with the data. Products are exact (int16), sums wrap at
    ``psum_bits`` (32 standalone; the array uses :func:`psum_bits`, which never wraps).

    With a registered ``multiplier`` (see :data:`MULTIPLIERS`) the PE also takes
    ``act_next``, the activation ``act_in`` will carry in the next cycle, and gives
    ``operands``, the two factors of the next cycle's product; with ``"SB_MAC16"`` the array
    computes the product from them and returns it on ``product``.
    """

    def __init__(self, *, psum_bits=32, multiplier=None):
        check_int("psum_bits", psum_bits, minimum=16, maximum=32)
        if multiplier not in MULTIPLIERS:
            raise ValueError(f"multiplier must be one of {MULTIPLIERS}, not {multiplier!r}")
        self.multiplier = multiplier
        ports = {
            "act_in": In(Activation), "act_out": Out(Activation),
            "psum_in": In(signed(psum_bits)), "psum_out": Out(signed(psum_bits)),
            "load": In(WeightLoad()),
        }
        if multiplier is not None:
            ports.update(act_next=In(Activation), operands=Out(Operands))
        if multiplier == "SB_MAC16":
            ports.update(product=In(signed(16)))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        weight = Array(Signal(signed(8), name=f"weight{b}") for b in range(2))
        with m.If(self.load.en):
            m.d.sync += weight[self.load.bank].eq(self.load.data)
        product = Signal(signed(16))
        if self.multiplier is None:
            m.d.comb += product.eq(weight[self.act_in.bank] * self.act_in.value)
        else:
            # The operands of the next cycle: the next activation, and its bank's weight as
            # it will be after this cycle's load.
            load = self.load
            upcoming = [Mux(load.en & (load.bank == b), load.data, weight[b]) for b in range(2)]
            m.d.comb += [self.operands.a.eq(self.act_next.value),
                         self.operands.b.eq(Mux(self.act_next.bank, upcoming[1], upcoming[0]))]
            if self.multiplier == "registered":
                a, b = Signal(signed(8)), Signal(signed(8))
                m.d.sync += [a.eq(self.operands.a), b.eq(self.operands.b)]
                m.d.comb += product.eq(a * b)
            elif self.multiplier == "MULT18X18D":
                p = mult18x18d(m, self.operands.a, self.operands.b, "mult")
                m.d.comb += product.eq(p[:16])
            else:
                m.d.comb += product.eq(self.product)
        m.d.sync += [
            self.psum_out.eq(self.psum_in + product),
            self.act_out.eq(self.act_in),
        ]
        return m


class SystolicArray(wiring.Component):
    """``rows x cols`` weight-stationary array of :class:`ProcessingElement`.

    ``acts`` takes one activation per row, all of the same pixel (the array skews them:
    row ``r`` is delayed ``r`` cycles); activations move right, partial sums move down, and
    each column's sum is delayed so that ``sums`` shows the ``cols`` results of one pixel
    together, :meth:`latency` cycles after its activations were on ``acts``::

        sums[c] = sum over r of weight[r][c][acts[r].bank] * acts[r].value

    ``load`` writes a whole row of weights (one per column) into one bank. With a registered
    ``multiplier`` (:data:`MULTIPLIERS`) the array also takes ``acts_next``, the value
    ``acts`` will have in the next cycle (only row 0's is used: the other rows' inputs pass
    through the skew registers); the behaviour is the same.
    """

    def __init__(self, rows, cols, *, multiplier=None):
        for name, value in (("rows", rows), ("cols", cols)):
            check_int(name, value, minimum=1)
        if multiplier not in MULTIPLIERS:
            raise ValueError(f"multiplier must be one of {MULTIPLIERS}, not {multiplier!r}")
        self.rows, self.cols, self.multiplier = rows, cols, multiplier
        ports = {
            "acts": In(data.ArrayLayout(Activation, rows)),
            "sums": Out(data.ArrayLayout(signed(32), cols)),
            "load": In(RowLoad(rows, cols)),
        }
        if multiplier is not None:
            ports["acts_next"] = In(data.ArrayLayout(Activation, rows))
        super().__init__(ports)

    @staticmethod
    def latency(rows, cols):
        """Cycles from a pixel's activations on ``acts`` to its sums on ``sums``."""
        return rows + cols - 1

    def elaborate(self, platform):
        m = Module()
        rows, cols, mult = self.rows, self.cols, self.multiplier
        width = psum_bits(rows)
        # Row r's partial sums hold r + 1 products: psum_bits(r + 1) bits (sign-extended on).
        pes = [[ProcessingElement(psum_bits=psum_bits(r + 1), multiplier=mult)
                for _ in range(cols)] for r in range(rows)]
        for r in range(rows):
            for c in range(cols):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]
                m.d.comb += [
                    pes[r][c].load.en.eq(self.load.en & (self.load.row == r)),
                    pes[r][c].load.bank.eq(self.load.bank),
                    pes[r][c].load.data.eq(self.load.data[c]),
                ]
        # Skew: row r enters r cycles late. `ahead` is what a PE's input will be next cycle.
        for r in range(rows):
            act = self.acts[r]
            ahead = self.acts_next[r] if mult is not None and r == 0 else None
            for i in range(r):
                delayed = Signal(Activation, name=f"skew_{r}_{i}")
                m.d.sync += delayed.eq(act)
                act, ahead = delayed, act
            m.d.comb += pes[r][0].act_in.eq(act)
            if mult is not None:
                m.d.comb += pes[r][0].act_next.eq(ahead)
            for c in range(1, cols):
                m.d.comb += pes[r][c].act_in.eq(pes[r][c - 1].act_out)
                if mult is not None:
                    m.d.comb += pes[r][c].act_next.eq(pes[r][c - 1].act_in)
        if mult == "SB_MAC16":
            for r in range(rows):
                for c in range(0, cols, 2):
                    pair = pes[r][c:c + 2]
                    high = pair[1].operands if len(pair) > 1 else Signal(Operands)
                    lo, hi = sb_mac16_8x8(m, pair[0].operands, high, f"mac_{r}_{c}")
                    m.d.comb += pair[0].product.eq(lo)
                    if len(pair) > 1:
                        m.d.comb += pair[1].product.eq(hi)
        for c in range(cols):
            m.d.comb += pes[0][c].psum_in.eq(0)
            for r in range(1, rows):
                m.d.comb += pes[r][c].psum_in.eq(pes[r - 1][c].psum_out)
        # Deskew: column c leaves cols - 1 - c cycles late.
        for c in range(cols):
            s = pes[rows - 1][c].psum_out            # psum_bits(rows) == width
            for i in range(cols - 1 - c):
                delayed = Signal(signed(width), name=f"deskew_{c}_{i}")
                m.d.sync += delayed.eq(s)
                s = delayed
            m.d.comb += self.sums[c].eq(s)
        return m
