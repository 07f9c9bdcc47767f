"""The LiteDRAM core for the Arty A7's DDR3L (``boards/dram/litedram_arty.py``): ports and cache,
the XDC against litex-boards' pin table, the read-leveling decision (Migen simulation against a
port of LiteX's BIOS), Yosys reading the board variant with the Xilinx cells as blackboxes, and
the simulation variant (controller, init and leveling sequencers, DDR3 model behind an
imitated A7 read path) under Verilator, written and read back over AXI4 by cocotbext-axi."""

import json
import random
import re
from pathlib import Path

import pytest

pytest.importorskip("litedram", reason="the dram extra is not installed (pip install -e .[dram])")

from migen.sim import run_simulation

from boards.dram import litedram_arty
from sim_tests.boards.test_litedram import AXI_PORTS, ports
from sps_hw.sim import simulate, write_job
from sps_hw.verilog import yosys

COCOTB = Path(__file__).with_name("cocotb_litedram_arty.py")

#: The ``("ddram", 0, ...)`` resource of litex-boards' ``litex_boards/platforms/digilent_arty.py``
#: (litex-hub/litex-boards at 2f06d08a35e3, lines 106-134), copied: subsignal -> (pins,
#: IOStandard, IN_TERM or None); the whole resource has Misc("SLEW=FAST"), and the platform adds
#: "set_property INTERNAL_VREF 0.675 [get_iobanks 34]".
LITEX_BOARDS_DDRAM = {
    "a": ("R2 M6 N4 T1 N6 R7 V6 U7 R8 V7 R6 U6 T6 T8", "SSTL135", None),
    "ba": ("R1 P4 P2", "SSTL135", None),
    "ras_n": ("P3", "SSTL135", None),
    "cas_n": ("M4", "SSTL135", None),
    "we_n": ("P5", "SSTL135", None),
    "cs_n": ("U8", "SSTL135", None),
    "dm": ("L1 U1", "SSTL135", None),
    "dq": ("K5 L3 K3 L6 M3 M1 L4 M2 V4 T5 U4 V5 V1 T3 U3 R3", "SSTL135", "UNTUNED_SPLIT_40"),
    "dqs_p": ("N2 U2", "DIFF_SSTL135", "UNTUNED_SPLIT_40"),
    "dqs_n": ("N1 V2", "DIFF_SSTL135", "UNTUNED_SPLIT_40"),
    "clk_p": ("U9", "DIFF_SSTL135", None),
    "clk_n": ("V9", "DIFF_SSTL135", None),
    "cke": ("N5", "SSTL135", None),
    "odt": ("R5", "SSTL135", None),
    "reset_n": ("K6", "SSTL135", None),
}
INOUT = ("dq", "dqs_p", "dqs_n")

BOARD_PORTS = {
    "clk100": ("input", 1), "rst": ("input", 1), "pll_locked": ("output", 1),
    "axi_clk": ("input", 1), "axi_rst": ("input", 1),
    "init_done": ("output", 1), "init_error": ("output", 1),
    "level_bitslip": ("output", 6), "level_delay": ("output", 10),
    **{f"ddram_{name}": ("inout" if name in INOUT else "output", len(pins.split()))
       for name, (pins, _, _) in LITEX_BOARDS_DDRAM.items()},
    **AXI_PORTS,
}
SIM_PORTS = {
    "sys_clk": ("input", 1), "sys_rst": ("input", 1), "axi_clk": ("input", 1),
    "axi_rst": ("input", 1), "init_done": ("output", 1), "init_error": ("output", 1),
    "level_bitslip": ("output", 6), "level_delay": ("output", 10), **AXI_PORTS,
}
#: Xilinx primitives the board variant instantiates (LiteX's S7PLL, S7IDELAYCTRL, A7DDRPHY and
#: Xilinx lowerings), each a blackbox in Yosys.
PRIMITIVES = {"PLLE2_ADV": 1, "BUFG": 4, "IDELAYCTRL": 1, "OSERDESE2": 45, "ISERDESE2": 16,
              "IDELAYE2": 16, "IOBUF": 16, "IOBUFDS": 2, "OBUFDS": 1}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("litedram-arty-cache")


def test_generate_cached(cache):
    """Both variants have the documented ports (the AXI ones named as the ULX3S core's); a
    second call reuses the file; other parameters give another key; the XDC is beside it."""
    board = litedram_arty.generate(cache_dir=cache)
    assert board.name == "litedram_arty.v"
    text = board.read_text()
    assert ports(text, "litedram_arty") == BOARD_PORTS
    key = json.loads((board.parent / "key.json").read_text())
    assert key["versions"] == litedram_arty.versions() and key["params"]["clk_freq"] == 100e6
    assert (board.parent / "litedram_arty.xdc").read_text() == litedram_arty.constraints()
    stamp = board.stat().st_mtime_ns
    assert litedram_arty.generate(cache_dir=cache) == board
    assert board.stat().st_mtime_ns == stamp
    sim = litedram_arty.generate(sim=True, cache_dir=cache)
    assert sim.parent != board.parent
    assert ports(sim.read_text(), "litedram_arty_sim") == SIM_PORTS
    assert litedram_arty.generate(cache_dir=cache, data_width=128).parent != board.parent
    with pytest.raises(TypeError, match="unknown parameters"):
        litedram_arty.generate(cache_dir=cache, sim_rows=1024)      # a sim-only parameter
    # The CRG as LiteX's Arty target's: VCO 1600 MHz; sys 100, sys4x 400, sys4x_dqs 400 at 90
    # degrees, idelay 200 MHz.
    pll = re.search(r"PLLE2_ADV #\((.*?)\) ", text, re.S).group(1)
    params = dict(re.findall(r"\.(\w+)\(([^)]*)\)", pll))
    num = {k: float(v.split("'d")[-1]) for k, v in params.items() if k != "STARTUP_WAIT"}
    assert num["CLKIN1_PERIOD"] == 10.0 and num["CLKFBOUT_MULT"] == 16
    assert [(num[f"CLKOUT{n}_DIVIDE"], num[f"CLKOUT{n}_PHASE"]) for n in range(4)] == \
        [(16, 0), (4, 0), (4, 90), (8, 0)]


def test_init_sequence():
    """The init sequencer plays LiteDRAM's DDR3 sequence for the A7 PHY: RESET# high, CKE
    high, MR2 (CWL 5), MR3, MR1, MR0 (CL 7 = 6 + 1 on the A7 PHY, BL 8, DLL reset), ZQCL."""
    top = litedram_arty.LiteDRAMArty()
    steps = [(a, ba, sorted(flags), wait) for _, a, ba, flags, wait in top.init.steps]
    mrs = ["COMMAND_CAS", "COMMAND_CS", "COMMAND_RAS", "COMMAND_WE"]
    assert steps == [(0, 0, ["CONTROL_ODT", "CONTROL_RESET_N"], 50000),
                     (0, 0, ["CONTROL_CKE", "CONTROL_ODT", "CONTROL_RESET_N"], 20000),
                     (0x200, 2, mrs, 16), (0, 3, mrs, 16), (6, 1, mrs, 16), (0x930, 0, mrs, 200),
                     (0x400, 0, ["COMMAND_CS", "COMMAND_WE"], 200)]


def xdc_table(xdc):
    """``{port: {property: value}}`` from ``set_property`` lines of ``xdc``."""
    table = {}
    for line in xdc.splitlines():
        m = re.match(r"set_property (-dict \{(.*?)\}|(\w+) (\S+)) \[get_ports \{?([\w\[\]]+)\}?\]",
                     line)
        if m:
            props = (dict(zip(*[iter(m.group(2).split())] * 2)) if m.group(2)
                     else {m.group(3): m.group(4)})
            table.setdefault(m.group(5), {}).update(props)
    return table


def test_platform_resource():
    """The Arty platform's ``ddram`` resource (the Vivado project's pins) is litex-boards' table,
    the bidirectional pins ``io``, the others ``o``."""
    from boards.platforms import ArtyA735
    resource = ArtyA735().lookup("ddram", 0)
    got = {}
    for sub in resource.ios:
        (pins,) = sub.ios
        assert pins.dir == ("io" if sub.name in INOUT else "o") and not pins.invert
        attrs = dict(sub.attrs)
        got[sub.name] = (" ".join(pins.names), attrs.pop("IOSTANDARD"), attrs.pop("IN_TERM", None))
        assert attrs == {"SLEW": "FAST"}
    assert got == LITEX_BOARDS_DDRAM


def test_xdc_pins():
    """The XDC's DDR3 pins, IO standards, slew and terminations are litex-boards' (the table
    above), every ``ddram_*`` port bit has one, and bank 34 gets INTERNAL_VREF 0.675."""
    xdc = litedram_arty.constraints()
    table = xdc_table(xdc)
    expected = {}
    for name, (pins, std, term) in LITEX_BOARDS_DDRAM.items():
        pins = pins.split()
        for i, pin in enumerate(pins):
            port = f"ddram_{name}[{i}]" if len(pins) > 1 else f"ddram_{name}"
            expected[port] = {"PACKAGE_PIN": pin, "IOSTANDARD": std, "SLEW": "FAST",
                              **({"IN_TERM": term} if term else {})}
    got = {port: props for port, props in table.items() if port.startswith("ddram_")}
    assert got == expected
    assert "set_property INTERNAL_VREF 0.675 [get_iobanks 34]" in xdc.splitlines()
    assert table["clk100"] == {"PACKAGE_PIN": "E3", "IOSTANDARD": "LVCMOS33"}
    assert "create_clock -name clk100 -period 10.0 [get_ports clk100]" in xdc
    assert "set_clock_groups" not in xdc
    assert "set_clock_groups -asynchronous" in litedram_arty.constraints("[get_clocks axi]")
    top = litedram_arty.constraints("[get_clocks sync]", pins=False)
    assert not xdc_table(top) and "clk100" not in top
    assert "set_property INTERNAL_VREF 0.675 [get_iobanks 34]" in top.splitlines()
    assert "-group [get_clocks sync]" in top and "mr_ff == TRUE" in top
    tcl = litedram_arty.vivado_tcl("/x/litedram_arty.v", "/x/litedram_arty.xdc")
    assert "add_files -norecurse {/x/litedram_arty.v}" in tcl
    assert "add_files -fileset constrs_1 -norecurse {/x/litedram_arty.xdc}" in tcl


# --- The read-leveling decision -------------------------------------------------------------

def run_picker(maps):
    """Each ``maps[i]`` (``[bitslip][tap]`` bools) through one :class:`WindowPicker` in
    Migen's simulator; returns ``[(bitslip, mid, found), ...]``."""
    dut = litedram_arty.WindowPicker()
    out = []

    def bench():
        for working in maps:
            yield dut.clear.eq(1)
            yield
            yield dut.clear.eq(0)
            for bitslip, taps in enumerate(working):
                yield dut.bitslip.eq(bitslip)
                for tap, ok in enumerate(taps):
                    yield dut.sample.eq(1)
                    yield dut.delay.eq(tap)
                    yield dut.working.eq(int(ok))
                    yield
                yield dut.sample.eq(0)
                yield dut.end.eq(1)
                yield
                yield dut.end.eq(0)
            yield
            out.append(((yield dut.best_bitslip), (yield dut.mid), (yield dut.found)))

    run_simulation(dut, bench())
    return out


def random_map(rng):
    """8 bitslips x 32 taps: mostly an eye of random width and place on one or two bitslips
    (as a delay past a bit time moves data one bitslip), sometimes with holes, spotty edges,
    or nothing at all."""
    working = [[False] * 32 for _ in range(8)]
    kind = rng.random()
    if kind < 0.1:
        return working
    if kind < 0.2:
        return [[rng.random() < 0.3 for _ in range(32)] for _ in range(8)]
    bitslip, lo = rng.randrange(8), rng.randrange(32)
    hi = min(31, lo + rng.randrange(20))
    for t in range(lo, hi + 1):
        working[bitslip][t] = True
    if rng.random() < 0.5:                      # the eye continues on the next bitslip
        for t in range(0, rng.randrange(16)):
            working[(bitslip + 1) % 8][t] = True
    for _ in range(rng.randrange(4)):           # holes and spotty edges
        b, t = rng.choice([bitslip, (bitslip + 1) % 8]), rng.randrange(32)
        working[b][t] = not working[b][t]
    return working


def test_bios_pick():
    """The port of the BIOS's choice on hand-made cases, the simulation eye among them."""
    none = [[False] * 32 for _ in range(8)]
    assert litedram_arty.bios_pick(none) == (0, None)
    eye = [[False] * 32 for _ in range(8)]
    for t in (1, *range(4, 10), *range(11, 20)):    # the default sim_eye's lane 0
        eye[3][t] = True
    for t in range(20, 28):
        eye[4][t] = True
    assert litedram_arty.bios_pick(eye) == (3, 15)
    lone = [[False] * 32 for _ in range(8)]
    lone[5][7] = lone[5][9] = True                  # no two working taps in a row
    assert litedram_arty.bios_pick(lone) == (5, None)
    tie = [[False] * 32 for _ in range(8)]
    for t in (*range(2, 6), *range(10, 14)):        # two runs of 4: the first
        tie[6][t] = True
    assert litedram_arty.bios_pick(tie) == (6, 3)


def test_window_picker():
    """The hardware decision equals the BIOS's on the hand-made cases and 60 random maps."""
    rng = random.Random(5)
    maps = [random_map(rng) for _ in range(60)]
    eye = [[False] * 32 for _ in range(8)]
    for t in (1, *range(4, 10), *range(11, 20)):
        eye[3][t] = True
    maps.append(eye)
    got = run_picker(maps)
    for working, (bitslip, mid, found) in zip(maps, got):
        want_bitslip, want_tap = litedram_arty.bios_pick(working)
        assert bitslip == want_bitslip, working
        assert bool(found) == (want_tap is not None), working
        if want_tap is not None:
            assert mid == want_tap, working
    assert got[-1] == (3, 15, 1)
    assert sum(found for _, _, found in got) > 30


# --- Yosys ----------------------------------------------------------------------------------

def test_yosys_reads(cache):
    """Yosys reads the board variant with Yosys's own Xilinx cell library as blackboxes: the
    hierarchy resolves (every primitive known, with the ports used), ``check`` finds no
    problem, and the primitives are those LiteX's Arty target has."""
    verilog = litedram_arty.generate(cache_dir=cache)
    files = yosys("read_verilog -lib +/xilinx/cells_sim.v +/xilinx/cells_xtra.v\n"
                  "read_verilog litedram_arty.v\n"
                  "hierarchy -check -top litedram_arty\n"
                  "proc\n"
                  "tee -o check.txt check -assert\n"
                  "tee -q -o stat.json stat -json\n",
                  {"litedram_arty.v": verilog.read_text()})
    assert "Found and reported 0 problems" in files["check.txt"]
    cells = json.loads(files["stat.json"])["modules"]["\\litedram_arty"]["num_cells_by_type"]
    assert {k: cells.get(k) for k in PRIMITIVES} == PRIMITIVES
    assert cells["FDPE"] == 8 and cells["FDCE"] == 8        # reset synchronizers, PLL reset


@pytest.mark.slow
def test_synth_xilinx(cache):
    """The board variant through Yosys ``synth_xilinx`` (-family xc7): everything maps, and it
    is small next to the XC7A35T (20,800 LUTs, 41,600 flip-flops, 50 block RAMs)."""
    verilog = litedram_arty.generate(cache_dir=cache)
    files = yosys("read_verilog litedram_arty.v\n"
                  "synth_xilinx -family xc7 -flatten -top litedram_arty\n"
                  "tee -q -o stat.json stat -json\n",
                  {"litedram_arty.v": verilog.read_text()})
    cells = json.loads(files["stat.json"])["modules"]["\\litedram_arty"]["num_cells_by_type"]
    luts = sum(n for k, n in cells.items() if k.startswith("LUT"))
    ffs = sum(n for k, n in cells.items() if k in ("FDRE", "FDSE", "FDCE", "FDPE"))
    print(f"\nlitedram_arty synth_xilinx: {luts} LUTs, {ffs} FFs; "
          f"{json.dumps(cells, sort_keys=True)}")
    assert not any(name.startswith("$") for name in cells), cells
    assert 1000 < luts < 10_000 and 1000 < ffs < 15_000
    assert cells.get("RAMB36E1", 0) + cells.get("RAMB18E1", 0) < 10


# --- Verilator ------------------------------------------------------------------------------

@pytest.mark.slow                   # about 70 s, 55 of them the Verilator build
@pytest.mark.parametrize("simulator", ["verilator"], indirect=True)
def test_level_write_read_back(simulator, tmp_path, sim_build_root):
    """The simulation variant: init (200 us hold, 500 us, 200 us and the mode registers at
    100 MHz), then read leveling through the imitated A7 read path finds each lane's eye as
    the BIOS would (lane 0 bitslip 3 tap 15, lane 1 bitslip 7 tap 6), and then AXI traffic
    on a 7 ns ``axi_clk`` (random pauses, partial strobes, 1-256 beat bursts) reads back equal
    at the top and bottom of the model's 8 MiB."""
    verilog = litedram_arty.generate(sim=True, cache_dir=sim_build_root / "litedram-arty-cache")
    lanes = []
    for skew, mask, shift in litedram_arty.SIM["sim_eye"]:
        working = [[False] * 32 for _ in range(8)]
        for t in range(32):
            if mask >> t & 1:
                working[(skew + (t >= shift)) % 8][t] = True
        lanes.append(list(litedram_arty.bios_pick(working)))
    assert lanes == [[3, 15], [7, 6]]
    dram_bytes = 8 * litedram_arty.SIM["sim_rows"] * 1024 * 2
    job = write_job(tmp_path / "job", seed=2, ops=25, window=64 << 10, pause=0.2,
                    sys_period_ns=10, axi_period_ns=7, dram_bytes=dram_bytes)
    result = simulate([verilog], "litedram_arty_sim", COCOTB,
                      build_dir=sim_build_root / "litedram_arty_sim", simulator=simulator,
                      job=job, timeout_s=900, test_filter=r"\.level_write_read_back$",
                      lint_waivers=litedram_arty.VERILATOR_WAIVERS)
    assert [t.status for t in result.tests] == ["passed"]
    out = result.outputs["level_write_read_back"]
    assert out["lanes"] == lanes and out["init_error"] == 0
    assert out["bytes_checked"] > 10_000
    print(f"\nlitedram_arty sim: init + leveling {out['init_cycles']} cycles; 64 KiB written in "
          f"{out['write_cycles']} and read in {out['read_cycles']} sys cycles; build "
          f"{result.build_s:.1f} s, run {result.run_s:.1f} s")
