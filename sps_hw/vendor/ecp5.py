"""Lattice ECP5 primitives: MULT18X18D multipliers, a kept flip-flop and the EHXPLLL PLL."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, ResetSignal, Signal, Value, signed

__all__ = ["dcca", "ehxplll", "grid_sites", "kept_ff", "mult18x18d", "mult_32x18"]


def _ports(prefix, value):
    """``{prefix<i>: bit i}`` of ``value`` (signed, at most 18 bits) in the top bits of an
    18-bit operand, whose low bits are tied to 0: no bit is routed to more than one pin (a
    sign extension would route the sign to every pin above it), and nextpnr ties constant
    DSP inputs in the block itself, without routing."""
    value = Value.cast(value)
    bits = Cat(Const(0, 18 - len(value)), value)
    return {f"{prefix}{i}": bits[i] for i in range(18)}


#: The MULT18X18D sites of an LFE5U-85F (nextpnr's BEL names ``X<x>/Y<y>/MULT18_<n>``): three
#: rows of 13 DSP slices, each slice's 4 multipliers at ``x``, ``x + 1``, ``x + 4``, ``x + 5``.
_SITES = {"LFE5U-85F": ((10, 34, 58), (4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114))}


def grid_sites(device, rows, cols):
    """A MULT18X18D site for each multiplier ``(r, c)`` of a ``rows x cols`` array whose
    activations move along its rows and partial sums down its columns, by ``[r][c]``; None
    for a device whose sites are not known here, or too few. The sites are taken in a snake
    (the DSP rows left to right, right to left, ...), an array row's multipliers one after
    another: an activation moves to the next site, a partial sum ``cols`` sites on, a row's
    weights are written in one place, and the columns end side by side. Without it, nextpnr
    packs the logic beside the I/O and spreads the multipliers over the die, and the 16 x 8
    array does not route."""
    if device not in _SITES:
        return None
    ys, xs = _SITES[device]
    snake = []
    for i, y in enumerate(ys):
        row = [f"X{x + dx}/Y{y}/MULT18_{dx}" for x in xs for dx in (0, 1, 4, 5)]
        snake += row[::-1] if i % 2 else row
    if rows * cols > len(snake):
        return None
    return [snake[r * cols:(r + 1) * cols] for r in range(rows)]


def mult18x18d(m, a, b, name, *, output_reg=True, site=None):
    """``a * b`` (signed, at most 18 bits each) in a MULT18X18D whose input registers capture
    ``a`` and ``b``; with ``output_reg`` the product is registered too. The result (signed,
    ``len(a) + len(b)`` bits) is the product of the operands of two cycles before (one
    without ``output_reg``). The operands enter the multiplier left-aligned (:func:`_ports`),
    so the product is in the top bits of its 36. ``site`` places it (a nextpnr BEL name)."""
    a, b = Value.cast(a), Value.cast(b)
    for operand, value in (("a", a), ("b", b)):
        if len(value) > 18:
            raise ValueError(f"{operand} must be at most 18 bits wide, not {len(value)}")
    p = Signal(36, name=f"{name}_p")
    # Unused inputs (C, the shift chains, the other clocks) stay unconnected, as in Yosys'
    # own mapping: tying them to constants makes nextpnr route a constant net to every pin.
    ports = {"i_CLK0": ClockSignal("sync"), "i_CE0": 1, "i_RST0": 0,
             "i_SIGNEDA": 1, "i_SIGNEDB": 1, "i_SOURCEA": 0, "i_SOURCEB": 0}
    ports.update({f"i_{k}": v for k, v in _ports("A", a).items()})
    ports.update({f"i_{k}": v for k, v in _ports("B", b).items()})
    ports.update({f"o_P{i}": p[i] for i in range(36)})
    if site is not None:
        ports["a_BEL"] = site
    m.submodules[name] = Instance(
        "MULT18X18D", p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0",
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
        p_REG_OUTPUT_CLK="CLK0" if output_reg else "NONE",
        p_GSR="DISABLED", p_RESETMODE="SYNC", p_MULT_BYPASS="DISABLED",
        p_SOURCEB_MODE="B_SHIFT", p_CAS_MATCH_REG="FALSE", p_HIGHSPEED_CLK="NONE",
        p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
        p_CLK3_DIV="ENABLED", **ports)
    return p[36 - len(a) - len(b):].as_signed()


def kept_ff(m, d, name):
    """A TRELLIS_FF registering ``d`` (one bit), cleared by the ``sync`` reset, that Yosys
    keeps (``keep``): its copies elsewhere are not merged into one flip-flop."""
    q = Signal(name=name)
    m.submodules[f"{name}_ff"] = Instance(
        "TRELLIS_FF", a_keep=1, p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK",
        p_LSRMUX="LSR", p_REGSET="RESET", p_SRMODE="LSR_OVER_CE",
        i_CLK=ClockSignal("sync"), i_LSR=ResetSignal("sync"), i_DI=d, o_Q=q)
    return q


def dcca(m, value, name):
    """``value`` (one bit) through a DCCA clock buffer onto a global network: nextpnr routes
    it to fabric inputs (a reset of thousands of flip-flops) in a few nanoseconds anywhere
    on the die, as a clock."""
    out = Signal(name=f"{name}_global")
    m.submodules[name] = Instance("DCCA", i_CLKI=value, i_CE=1, o_CLKO=out)
    return out


def mult_32x18(m, a, b, name):
    """``a * b`` (``a`` signed 32 bits, ``b`` signed, at most 18) in two registered
    MULT18X18D (``a``'s low 17 bits, unsigned, and its high 15 bits) and a registered adder:
    the product of the operands of three cycles before (``32 + len(b)`` bits, signed)."""
    a, b = Value.cast(a), Value.cast(b)
    low = mult18x18d(m, Cat(a[:17], Const(0, 1)), b, f"{name}_lo")
    high = mult18x18d(m, a[17:32].as_signed(), b, f"{name}_hi")
    product = Signal(signed(32 + len(b)), name=f"{name}_p", reset_less=True)
    m.d.sync += product.eq(low + (high << 17))
    return product


def ehxplll(m, *, clki, clkop, lock, input_hz, output_hz, clki_div, clkfb_div, clkop_div,
            clkop_cphase, secondary=()):
    """An EHXPLLL making ``clkop`` from ``clki`` with feedback from CLKOP (``ecppll``'s
    settings); ``lock`` is its lock output. ``secondary``: ``(port, clk, div, cphase,
    fphase)`` for each of CLKOS, CLKOS2, CLKOS3 in use (``ecppll --clkout1 ...``)."""
    extra = {}
    for port, clk, div, cphase, fphase in secondary:
        if port not in ("CLKOS", "CLKOS2", "CLKOS3"):
            raise ValueError(f"port must be CLKOS, CLKOS2 or CLKOS3, not {port!r}")
        extra.update({f"p_{port}_ENABLE": "ENABLED", f"p_{port}_DIV": div,
                      f"p_{port}_CPHASE": cphase, f"p_{port}_FPHASE": fphase,
                      f"o_{port}": clk, f"i_EN{port}": 0})
    m.submodules.pll = Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{input_hz / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{output_hz / 1e6:g}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
        a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
        p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=clkop_div,
        p_CLKOP_CPHASE=clkop_cphase, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
        p_CLKFB_DIV=clkfb_div,
        i_RST=0, i_STDBY=0, i_CLKI=clki, o_CLKOP=clkop, i_CLKFB=clkop,
        i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1,
        i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
        o_LOCK=lock, **extra)
