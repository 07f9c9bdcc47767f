"""The core clock of a board: the oscillator through the FPGA's PLL.

:class:`PLL` holds the divider settings of one PLL (ECP5 ``EHXPLLL`` with its feedback from
CLKOP, iCE40 ``SB_PLL40_PAD`` in SIMPLE feedback); the values are those ``ecppll`` and
``icepll`` (from the YoWASP nextpnr packages) print for the same frequencies, and
:meth:`PLL.output_hz` recomputes the output from them. :class:`ClockGenerator` makes the
``sync`` domain of a board top: the PLL's output, held in reset until the PLL locks (and while
the board's reset button is pressed; on the iCE40 also for 15 us after configuration, while
its block RAMs read as zeros).
"""

from dataclasses import dataclass, field

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from sps_hw.vendor import ecp5, ice40

__all__ = ["PLL", "ClockGenerator"]


@dataclass(frozen=True)
class PLL:
    """Divider settings of a PLL from ``input_hz`` to a core clock.

    ``kind`` is ``"EHXPLLL"`` (``params``: CLKI_DIV, CLKFB_DIV, CLKOP_DIV, CLKOP_CPHASE) or
    ``"SB_PLL40_PAD"`` (DIVR, DIVF, DIVQ, FILTER_RANGE). ``secondary`` (EHXPLLL only): a
    clock domain per further output, ``(domain, port, div, cphase, fphase)`` with ``port``
    CLKOS, CLKOS2 or CLKOS3, as ``ecppll --clkout1 ...`` prints them.
    """

    kind: str
    input_hz: int
    params: dict = field(default_factory=dict)
    secondary: tuple = ()

    def __post_init__(self):
        if self.kind not in ("EHXPLLL", "SB_PLL40_PAD"):
            raise ValueError(f"kind must be 'EHXPLLL' or 'SB_PLL40_PAD', not {self.kind!r}")
        if self.secondary and self.kind != "EHXPLLL":
            raise ValueError("only an EHXPLLL has secondary outputs")

    def secondary_hz(self, domain):
        """The frequency of the secondary output driving ``domain``."""
        div = next(s[2] for s in self.secondary if s[0] == domain)
        return self.vco_hz() / div

    def output_hz(self):
        """The output frequency the dividers give."""
        p = self.params
        if self.kind == "EHXPLLL":
            return self.input_hz * p["CLKFB_DIV"] / p["CLKI_DIV"]
        return self.input_hz * (p["DIVF"] + 1) / ((p["DIVR"] + 1) * 2 ** p["DIVQ"])

    def vco_hz(self):
        """The VCO frequency (ECP5: 400-800 MHz; iCE40: 533-1066 MHz)."""
        p = self.params
        if self.kind == "EHXPLLL":
            return self.output_hz() * p["CLKOP_DIV"]
        return self.input_hz * (p["DIVF"] + 1) / (p["DIVR"] + 1)


class ClockGenerator(Elaboratable):
    """Drives the clock and reset of the ``sync`` domain (which the parent defines) at
    ``pll.output_hz()`` from the platform's default clock pin, and those of the PLL's
    ``secondary`` domains."""

    def __init__(self, pll):
        if not isinstance(pll, PLL):
            raise TypeError(f"pll must be a PLL, not {pll!r}")
        self.pll = pll
        self.locked = Signal()

    def elaborate(self, platform):
        m = Module()
        pll = self.pll
        clk = Signal()                 # the PLL's output: the sync clock
        m.d.comb += ClockSignal("sync").eq(clk)
        clk_pin = platform.request(platform.default_clk, dir="-")
        p = pll.params
        if pll.kind == "EHXPLLL":
            m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_pin)
            secondary = []
            for domain, port, div, cphase, fphase in pll.secondary:
                out = Signal(name=f"{domain}_clk")
                m.d.comb += ClockSignal(domain).eq(out)
                secondary.append((port, out, div, cphase, fphase))
                platform.add_clock_constraint(out, pll.secondary_hz(domain))
            ecp5.ehxplll(m, clki=clk_buf.i, clkop=clk, lock=self.locked,
                         input_hz=pll.input_hz, output_hz=pll.output_hz(),
                         clki_div=p["CLKI_DIV"], clkfb_div=p["CLKFB_DIV"],
                         clkop_div=p["CLKOP_DIV"], clkop_cphase=p["CLKOP_CPHASE"],
                         secondary=secondary)
            por_done = Signal(init=1)
        else:
            ice40.sb_pll40_pad(m, package_pin=clk_pin.io, clkout=clk, lock=self.locked,
                               divr=p["DIVR"], divf=p["DIVF"], divq=p["DIVQ"],
                               filter_range=p["FILTER_RANGE"])
            # iCE40 block RAMs read as zeros for ~3 us after configuration (see Amaranth's
            # SiliconBluePlatform.create_missing_domain): hold the design in reset for 15 us.
            m.domains.por = cd_por = ClockDomain("por", reset_less=True)
            m.d.comb += cd_por.clk.eq(clk)
            delay = int(15e-6 * pll.output_hz())
            timer = Signal(range(delay + 1))
            por_done = Signal()
            with m.If(timer == delay):
                m.d.por += por_done.eq(1)
            with m.Else():
                m.d.por += timer.eq(timer + 1)
        button = Signal()
        if platform.default_rst is not None:
            rst_pin = platform.request(platform.default_rst, dir="-")
            m.submodules.rst_buf = rst_buf = io.Buffer("i", rst_pin)
            m.d.comb += button.eq(rst_buf.i)
        for domain in ("sync", *(s[0] for s in pll.secondary)):
            m.submodules[f"reset_{domain}"] = ResetSynchronizer(
                ~self.locked | ~por_done | button, domain=domain)
        platform.add_clock_constraint(clk, pll.output_hz())
        return m
