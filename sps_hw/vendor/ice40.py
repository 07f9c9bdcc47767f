"""Lattice iCE40 primitives: SB_MAC16 multipliers, SB_SPRAM256KA and the SB_PLL40_PAD PLL."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Signal, Value

__all__ = ["sb_mac16_8x8", "sb_mac16_32x16", "sb_pll40_pad", "spram"]


def _sb_mac16(m, name, a, b, c=None, d=None, **params):
    """One SB_MAC16 on the ``sync`` clock, its unused controls tied off; ``params`` are its
    mode parameters (without ``p_``; registers default to off). Returns its output ``O``."""
    o = Signal(32, name=f"{name}_o")
    zero16 = Const(0, 16)
    registers = {"C_REG": 0, "D_REG": 0, "A_REG": 0, "B_REG": 0, "TOP_8x8_MULT_REG": 0,
                 "BOT_8x8_MULT_REG": 0, "PIPELINE_16x16_MULT_REG1": 0,
                 "PIPELINE_16x16_MULT_REG2": 0}
    m.submodules[name] = Instance(
        "SB_MAC16",
        **{f"p_{k}": v for k, v in {**registers, **params}.items()},
        p_NEG_TRIGGER=0, p_B_SIGNED=1,
        i_CLK=ClockSignal("sync"), i_CE=1, i_A=a, i_B=b,
        i_C=zero16 if c is None else c, i_D=zero16 if d is None else d,
        i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0, i_IRSTTOP=0, i_IRSTBOT=0,
        i_ORSTTOP=0, i_ORSTBOT=0, i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0, i_ADDSUBBOT=0,
        i_OHOLDTOP=0, i_OHOLDBOT=0, i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
        o_O=o)
    return o


def sb_mac16_8x8(m, pairs, name):
    """Up to two signed 8 x 8 products ``a * b`` of ``pairs`` (``[(a, b), ...]``) in one
    SB_MAC16 in 8x8 mode with its input and product registers: the products of the operands
    of two cycles before, 16 bits each (bottom half first)."""
    a, b = Signal(16, name=f"{name}_a"), Signal(16, name=f"{name}_b")
    pairs = list(pairs) + [(Const(0, 8), Const(0, 8))] * (2 - len(pairs))
    m.d.comb += [a.eq(Cat(pairs[0][0], pairs[1][0])), b.eq(Cat(pairs[0][1], pairs[1][1]))]
    o = _sb_mac16(m, name, a, b, A_REG=1, B_REG=1, TOP_8x8_MULT_REG=1, BOT_8x8_MULT_REG=1,
                  MODE_8x8=1, A_SIGNED=1,
                  TOPOUTPUT_SELECT=2, TOPADDSUB_LOWERINPUT=0, TOPADDSUB_UPPERINPUT=0,
                  TOPADDSUB_CARRYSELECT=0, BOTOUTPUT_SELECT=2, BOTADDSUB_LOWERINPUT=0,
                  BOTADDSUB_UPPERINPUT=0, BOTADDSUB_CARRYSELECT=0)
    return o[:16].as_signed(), o[16:].as_signed()


def _sb_mac16_16x16(m, name, a, b, a_signed, c, d, carry, output):
    # Registered inputs and product; both halves' adders take {C, D} (the upper input) plus
    # the product (the lower) into the output registers.
    return _sb_mac16(m, name, a, b, c, d, A_REG=1, B_REG=1, PIPELINE_16x16_MULT_REG2=1,
                     MODE_8x8=0, A_SIGNED=int(a_signed), TOPOUTPUT_SELECT=output[1],
                     TOPADDSUB_LOWERINPUT=2, TOPADDSUB_UPPERINPUT=1,
                     TOPADDSUB_CARRYSELECT=carry, BOTOUTPUT_SELECT=output[0],
                     BOTADDSUB_LOWERINPUT=2, BOTADDSUB_UPPERINPUT=1, BOTADDSUB_CARRYSELECT=0)


def sb_mac16_32x16(m, a, b, name):
    """``a * b`` (``a`` signed 32 bits, ``b`` signed, at most 16) in two SB_MAC16 in 16 x 16
    mode, each with input and product registers: the low one multiplies ``a[:16]``
    (unsigned) by ``b`` and passes its product's upper half on unregistered, the high one
    multiplies ``a[16:]`` by ``b`` and adds that half, sign-extended, in its own 32-bit
    adder and output register. The product of the operands of three cycles before,
    ``32 + 16`` bits (signed)."""
    a, b = Value.cast(a), Value.cast(b)
    a16 = [Signal(16, name=f"{name}_a{i}") for i in range(2)]
    b16 = Signal(16, name=f"{name}_b")
    m.d.comb += [a16[0].eq(a[:16]), a16[1].eq(a[16:32]), b16.eq(b.as_signed())]
    # Output selects (bottom, top): 1 = the adder's register, 3 = the product's upper half.
    lo = _sb_mac16_16x16(m, f"{name}_lo", a16[0], b16, False, None, None, 0, (1, 3))
    high = lo[16:]
    hi = _sb_mac16_16x16(m, f"{name}_hi", a16[1], b16, True, high[-1].replicate(16), high,
                         2, (1, 1))
    return Cat(lo[:16], hi).as_signed()


def spram(m, name, *, addr, data_in, mask, wren, data_out):
    """One SB_SPRAM256KA (16 Ki words of 16 bits; ``mask``: 4 bits, one per nibble)."""
    m.submodules[name] = Instance(
        "SB_SPRAM256KA",
        i_ADDRESS=addr, i_DATAIN=data_in, i_MASKWREN=mask, i_WREN=wren, i_CHIPSELECT=1,
        i_CLOCK=ClockSignal("sync"), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=data_out)


def sb_pll40_pad(m, *, package_pin, clkout, lock, divr, divf, divq, filter_range):
    """An SB_PLL40_PAD in SIMPLE feedback (``icepll``'s settings) driving ``clkout`` from the
    global network; ``lock`` is its lock output."""
    m.submodules.pll = Instance(
        "SB_PLL40_PAD",
        p_FEEDBACK_PATH="SIMPLE", p_DIVR=divr, p_DIVF=divf, p_DIVQ=divq,
        p_FILTER_RANGE=filter_range,
        i_PACKAGEPIN=package_pin, i_RESETB=1, i_BYPASS=0,
        o_PLLOUTGLOBAL=clkout, o_LOCK=lock)
