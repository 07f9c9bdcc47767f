"""The Arty A7's DDR3L controller (:mod:`.litedram_arty`) as an Amaranth component.

:class:`ArtyDDR3Controller` instantiates ``litedram_arty`` with its AXI port on the ``sync``
clock (the board's 100 MHz oscillator, which also feeds the controller's own PLL as
``clk100``; the board's reset resets that PLL, so the whole controller, and replays init and
read leveling). The ``ddram`` resource (:func:`.arty_pins.ddram_resource`) gives the DDR3 pins
as top-level ports straight into the instance: its SERDES, ``IOBUF``/``IOBUFDS`` and
``OBUFDS`` are inside. The top's XDC places the pins; the controller adds
``litedram_arty_timing.xdc`` (``litedram_arty.constraints(pins=False)``: the bank's
reference voltage, LiteX's false paths, and the ``sync`` clock asynchronous to the PLL's).
Without a platform (simulation) it is ``litedram_arty_sim`` (the DRAM model behind the read
leveling's imitated PHY) on the ``sync`` clock.
"""

from amaranth.hdl import ClockSignal, ResetSignal
from amaranth.lib.wiring import Out

from .arty_pins import DDRAM_PINS, INOUT
from .controller import LiteDRAMController

__all__ = ["SYNC_CLOCK", "TIMING_XDC", "ArtyDDR3Controller"]

#: The Vivado clock of the ``sync`` domain: Amaranth's ``create_clock`` on the ``clk100`` pin.
SYNC_CLOCK = "clk100_0__io"
#: The controller's timing constraints, beside the top's XDC in the Vivado project.
TIMING_XDC = "litedram_arty_timing.xdc"


class ArtyDDR3Controller(LiteDRAMController):
    """The Arty A7-35T's 256 MiB DDR3L behind an AXI4 subordinate port; ``clk_hz`` is the
    controller's clock, made by its PLL from the board's 100 MHz.

    Members
    -------
    init_error : ``Out(1)``
        With ``init_done``: read leveling found no window for a byte lane, or the check at
        the chosen settings failed (``sync`` domain).
    """

    init_error: Out(1)

    module = "litedram_arty"
    clk_range = (50_000_000, 100_000_000)
    summary = ("A7DDRPHY, MT41K128M16 (256 MiB DDR3L, 16 bits), init and read leveling in "
               "hardware, 64-bit AXI4 port across an asynchronous FIFO per channel")

    @classmethod
    def for_board(cls, spec):
        if spec.pll is not None or spec.clk_hz != 100_000_000:
            raise ValueError(f"spec must be a DRAM build's on the board's 100 MHz clock, not "
                             f"{spec.clk_hz / 1e6:g} MHz"
                             f"{'' if spec.pll is None else ' from a PLL'}")
        return cls(100_000_000)

    def sources(self, sim=True):
        """The controller's Verilog file (generated once and cached) at ``clk_hz``."""
        from . import litedram_arty  # deferred: Migen and LiteDRAM are the dram extra
        return litedram_arty.generate(sim=sim, clk_freq=float(self.clk_hz))

    def _clocks(self, sim):
        axi = {"i_axi_clk": ClockSignal("sync"), "i_axi_rst": ResetSignal("sync")}
        if sim:
            return {"i_sys_clk": ClockSignal("sync"), "i_sys_rst": ResetSignal("sync"), **axi}
        return {"i_clk100": ClockSignal("sync"), "i_rst": ResetSignal("sync"), **axi}

    def _outputs(self):
        return {**super()._outputs(), "o_init_error": self.init_error}

    def _pins(self, m, platform):
        from . import litedram_arty
        pins = platform.request("ddram", 0, dir="-")
        platform.add_file(TIMING_XDC, litedram_arty.constraints(
            axi_clock=f"[get_clocks {SYNC_CLOCK}]", pins=False))
        return {f"{'io' if name in INOUT else 'o'}_ddram_{name}": getattr(pins, name).io
                for name in DDRAM_PINS}
