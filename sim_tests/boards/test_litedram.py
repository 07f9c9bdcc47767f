"""The LiteDRAM core for the ULX3S's SDRAM (``boards/dram/litedram_gen.py``): its simulation
variant (controller + SDRAMPHYModel) under Verilator, written and read back over AXI4 by
cocotbext-axi's ``AxiMaster`` (``cocotb_litedram.py``); the board variant's Verilog through
Yosys ``synth_ecp5`` (slow)."""

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("litedram", reason="the dram extra is not installed (pip install -e .[dram])")

from boards.dram import litedram_gen
from sps_hw.sim import simulate, write_job
from sps_hw.verilog import yosys

COCOTB = Path(__file__).with_name("cocotb_litedram.py")

#: Ports of the board variant (name -> (direction, width)), as the board top will join them.
AXI_PORTS = {
    **{f"s_axi_aw{n}": ("input", w) for n, w in (("id", 4), ("addr", 32), ("len", 8),
                                                   ("size", 3), ("burst", 2), ("valid", 1))},
    "s_axi_awready": ("output", 1),
    "s_axi_wdata": ("input", 64), "s_axi_wstrb": ("input", 8), "s_axi_wlast": ("input", 1),
    "s_axi_wvalid": ("input", 1), "s_axi_wready": ("output", 1),
    "s_axi_bid": ("output", 4), "s_axi_bresp": ("output", 2), "s_axi_bvalid": ("output", 1),
    "s_axi_bready": ("input", 1),
    **{f"s_axi_ar{n}": ("input", w) for n, w in (("id", 4), ("addr", 32), ("len", 8),
                                                   ("size", 3), ("burst", 2), ("valid", 1))},
    "s_axi_arready": ("output", 1),
    "s_axi_rid": ("output", 4), "s_axi_rdata": ("output", 64), "s_axi_rresp": ("output", 2),
    "s_axi_rlast": ("output", 1), "s_axi_rvalid": ("output", 1), "s_axi_rready": ("input", 1),
}
BOARD_PORTS = {
    "sys_clk": ("input", 1), "sys_rst": ("input", 1), "init_done": ("output", 1),
    "sdram_a": ("output", 13), "sdram_ba": ("output", 2), "sdram_cs_n": ("output", 1),
    "sdram_cke": ("output", 1), "sdram_ras_n": ("output", 1), "sdram_cas_n": ("output", 1),
    "sdram_we_n": ("output", 1), "sdram_dm": ("output", 2), "sdram_dq_o": ("output", 16),
    "sdram_dq_oe": ("output", 1), "sdram_dq_i": ("input", 16), **AXI_PORTS,
}

def ports(verilog, module):
    """``{name: (direction, width)}`` of ``module``'s port list in Migen's Verilog."""
    header = re.search(rf"module {module}\((.*?)\);", verilog, re.S).group(1)
    found = {}
    for line in header.splitlines():
        m = re.match(r"\s*(input|output|inout)\s+(?:reg\s+)?(?:\[(\d+):0\]\s+)?(\w+)", line)
        if m:
            found[m.group(3)] = (m.group(1), int(m.group(2) or 0) + 1)
    return found


@pytest.fixture
def cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "litedram-cache"


def test_generate_cached(cache):
    """Both variants have the documented ports; a second call reuses the file, other
    parameters give another key."""
    board = litedram_gen.generate(cache_dir=cache)
    assert board.name == "litedram_ulx3s.v"
    assert ports(board.read_text(), "litedram_ulx3s") == BOARD_PORTS
    key = json.loads((board.parent / "key.json").read_text())
    assert key["versions"] == litedram_gen.versions() and key["params"]["data_width"] == 64
    stamp = board.stat().st_mtime_ns
    assert litedram_gen.generate(cache_dir=cache) == board
    assert board.stat().st_mtime_ns == stamp
    sim = litedram_gen.generate(sim=True, cache_dir=cache)
    assert sim.parent != board.parent
    assert ports(sim.read_text(), "litedram_ulx3s_sim") == {
        "sys_clk": ("input", 1), "sys_rst": ("input", 1), "init_done": ("output", 1),
        **AXI_PORTS}
    other = litedram_gen.generate(cache_dir=cache, clk_freq=75e6)
    assert other.parent != board.parent
    with pytest.raises(TypeError, match="unknown parameters"):
        litedram_gen.generate(cache_dir=cache, width=64)


def test_init_sequence():
    """The sequencer plays LiteDRAM's SDR sequence: CKE, precharge all, mode register (CL 2,
    burst length 1) with and without bit 8, two auto-refreshes, with the waits it documents."""
    top = litedram_gen.LiteDRAMULX3S(clk_freq=50e6)
    steps = [(a, ba, sorted(flags), wait) for _, a, ba, flags, wait in top.init.steps]
    pre = ["COMMAND_CS", "COMMAND_RAS", "COMMAND_WE"]
    mrs = ["COMMAND_CAS", "COMMAND_CS", "COMMAND_RAS", "COMMAND_WE"]
    ref = ["COMMAND_CAS", "COMMAND_CS", "COMMAND_RAS"]
    assert steps == [(0, 0, ["CONTROL_CKE", "CONTROL_ODT", "CONTROL_RESET_N"], 20000),
                     (0x400, 0, pre, 16), (0x120, 0, mrs, 200), (0x400, 0, pre, 16),
                     (0, 0, ref, 16), (0, 0, ref, 16), (0x20, 0, mrs, 200)]
    slow = litedram_gen.LiteDRAMULX3S(clk_freq=120e6)    # 200 us at 120 MHz > 20000 cycles
    assert slow.init.steps[0][4] == 24000
    assert slow.init.steps[2][1] == 0x130                # CL 3 above 100 MHz


def run(simulator, tmp_path, sim_build_root, axi_clock, seed, **conf):
    verilog = litedram_gen.generate(sim=True, axi_clock=axi_clock,
                                    cache_dir=sim_build_root / "litedram-cache")
    job = write_job(tmp_path / "job", seed=seed, axi_clock=axi_clock, **conf)
    build = sim_build_root / f"litedram_sim{'_axiclk' if axi_clock else ''}"
    result = simulate([verilog], "litedram_ulx3s_sim", COCOTB, build_dir=build,
                      simulator=simulator, job=job, timeout_s=600,
                      test_filter=r"\.write_read_back$",
                      lint_waivers=litedram_gen.VERILATOR_WAIVERS)
    assert [t.status for t in result.tests] == ["passed"]
    return result


@pytest.mark.parametrize("simulator", ["verilator"], indirect=True)
@pytest.mark.parametrize(("axi_clock", "periods"), [(False, (10, 10)), (True, (10, 7))],
                         ids=["one_clock", "axi_clock"])
def test_write_read_back(simulator, tmp_path, sim_build_root, axi_clock, periods):
    """Random writes with partial strobes, bursts of 1 to 256 beats and narrow bursts, read
    back at once, at the end, and concurrently with other writes, with random pauses on every
    channel of the master; the AXI port holds requests until ``init_done``. With
    ``axi_clock`` the port runs on its own clock (an asynchronous FIFO per AXI channel)."""
    result = run(simulator, tmp_path, sim_build_root, axi_clock, seed=1, ops=40,
                 window=64 << 10, pause=0.2, sys_period_ns=periods[0],
                 axi_period_ns=periods[1])
    out = result.outputs["write_read_back"]
    # 20,000 cycles of CKE wait and six more steps (16-200 cycles each) before init_done.
    assert 20_000 < out["init_cycles"] < 21_000
    assert out["narrow"] > 0 and out["bytes_checked"] > 20_000
    print(f"\nlitedram sim ({'axi clock' if axi_clock else 'one clock'}): init "
          f"{out['init_cycles']} cycles; 64 KiB written in {out['write_cycles']} and read in "
          f"{out['read_cycles']} sys cycles; build {result.build_s:.1f} s, run "
          f"{result.run_s:.1f} s")


@pytest.mark.slow
def test_synth_ecp5(tmp_path):
    """The board variant's Verilog through Yosys ``synth_ecp5``: it elaborates with no
    problem found by ``check`` and fits the ULX3S-85F many times over."""
    verilog = litedram_gen.generate(cache_dir=tmp_path / "cache")
    files = yosys("read_verilog litedram_ulx3s.v\n"
                  "hierarchy -check -top litedram_ulx3s\n"
                  "tee -o check.txt check -assert\n"
                  "synth_ecp5 -top litedram_ulx3s\n"
                  "tee -q -o stat.json stat -json\n",
                  {"litedram_ulx3s.v": verilog.read_text()})
    assert "Found and reported 0 problems" in files["check.txt"]
    stat = json.loads(files["stat.json"])["modules"]["\\litedram_ulx3s"]
    cells = stat["num_cells_by_type"]
    print(f"\nlitedram_ulx3s synth_ecp5: {json.dumps(cells, sort_keys=True)}")
    assert 500 < cells["LUT4"] < 5000 and 300 < cells["TRELLIS_FF"] < 5000
    assert not any(name.startswith("$") for name in cells), cells      # all mapped
    assert "DP16KD" not in cells or cells["DP16KD"] < 8


@pytest.mark.parametrize("simulator", ["verilator"], indirect=True)
def test_pins(simulator, tmp_path, sim_build_root):
    """The board variant itself (GENSDRPHY and its registered pins, raw ``dq``) at 50 MHz on a
    behavioural SDR SDRAM in the testbench (``cocotb_litedram.SdrSdram``): the init sequence
    arrives on the pins in order after the power-up wait, the chip's protocol and timings
    hold, refreshes come every tREFI, and AXI traffic reads back equal (so the read latency
    LiteDRAM assumes matches the pins)."""
    clk_freq = 50e6
    verilog = litedram_gen.generate(clk_freq=clk_freq,
                                    cache_dir=sim_build_root / "litedram-cache")
    timing = litedram_gen.LiteDRAMULX3S(clk_freq=clk_freq).core.controller.settings.timing
    job = write_job(tmp_path / "job", seed=3, axi_clock=False, sys_period_ns=20,
                    ops=25, window=64 << 10, pause=0.2,
                    timing={k: getattr(timing, k) for k in ("tRP", "tRCD", "tRFC", "tREFI")},
                    power_up=int(litedram_gen.POWER_UP_S * clk_freq))
    result = simulate([verilog], "litedram_ulx3s", COCOTB, build_dir=sim_build_root /
                      "litedram_pins", simulator=simulator, job=job, timeout_s=600,
                      test_filter=r"\.pins$", lint_waivers=litedram_gen.VERILATOR_WAIVERS)
    assert [t.status for t in result.tests] == ["passed"]
    out = result.outputs["pins"]
    init = [(cmd, a) for cmd, a, _ in out["init"]]
    assert init[:6] == [("PRE", 0x400), ("MRS", 0x120), ("PRE", 0x400), ("REF", 0), ("REF", 0),
                        ("MRS", 0x20)]
    assert out["init"][0][2] >= 20_000 and init[6][0] == "ACT"   # CKE wait, then traffic
    assert out["mode"] == 0x20
    assert out["max_refresh_gap"] <= timing.tREFI + 64
    assert out["reads"] > 1000 and out["writes"] > 1000
    print(f"\nlitedram pins: init {out['init_cycles']} cycles, {out['refreshes']} refreshes "
          f"(max gap {out['max_refresh_gap']}), {out['writes']} writes, {out['reads']} reads; "
          f"build {result.build_s:.1f} s, run {result.run_s:.1f} s")
