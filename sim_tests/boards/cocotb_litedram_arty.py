"""cocotb test of the Arty LiteDRAM core's simulation variant (``litedram_arty_sim``: controller,
init and read-leveling sequencers, AXI4 port on ``axi_clk``, LiteDRAM's DDR3 ``SDRAMPHYModel``
behind ``ReadEye``, the A7 PHY's read path with a skewed, partly closed eye), run by
``test_litedram_arty.py``.

The job gives ``seed``, the clock periods, ``ops`` (random writes), ``window`` (bytes of the
address windows the random traffic uses, at the start and at the top of ``dram_bytes``) and
``pause`` (probability of a paused cycle on each of the master's channels).
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb_litedram import Mirror, master_for, random_span

from sps_hw.sim.job import read_job
from sps_hw.sim.streams import TB


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def level_write_read_back(dut):
    """Reset, init and read leveling (AXI held until ``init_done``), the settings leveling
    chose, then random writes (1 byte to 5 KiB, any alignment, 1 to 256 beats) each read back
    at once and all again at the end, and the rate of 64 KiB in aligned 256-beat bursts."""
    job = read_job()
    rng = random.Random(job["seed"])
    tb = TB(dut, period_ns=job["sys_period_ns"], clk="sys_clk", rst="sys_rst")
    Clock(dut.axi_clk, job["axi_period_ns"], unit="ns").start(start_high=False)
    dut.axi_rst.value = 1
    for name in ("awvalid", "wvalid", "arvalid", "bready", "rready"):
        getattr(dut, f"s_axi_{name}").value = 0
    await tb.reset(4)
    await ClockCycles(dut.axi_clk, 4)
    dut.axi_rst.value = 0
    dut.s_axi_awvalid.value = dut.s_axi_arvalid.value = dut.s_axi_wvalid.value = 1
    early = 0
    while not dut.init_done.value:
        await RisingEdge(dut.sys_clk)
        if not dut.init_done.value and (int(dut.s_axi_awready.value) |
                                        int(dut.s_axi_arready.value) |
                                        int(dut.s_axi_wready.value)):
            early = early or tb.cycle
        if tb.cycle == 1000:
            dut.s_axi_awvalid.value = dut.s_axi_arvalid.value = dut.s_axi_wvalid.value = 0
        assert tb.cycle < 1_000_000, "init_done not raised"
    assert not early, f"AXI ready at cycle {early}, before init_done (cycle {tb.cycle})"
    init_cycles = tb.cycle
    await ClockCycles(dut.sys_clk, 4)
    bitslip, delay = int(dut.level_bitslip.value), int(dut.level_delay.value)
    lanes = [(bitslip >> 3 * m & 7, delay >> 5 * m & 31) for m in range(2)]
    error = int(dut.init_error.value)
    dut._log.info(f"init_done at sys cycle {init_cycles}: (bitslip, tap) per lane {lanes}, "
                  f"init_error {error}")

    axi = master_for(dut, dut.axi_clk, dut.axi_rst, rng, job["pause"])
    window, top = job["window"], job["dram_bytes"]
    bases = [0, top - window]
    mirror, spans = Mirror(), []
    for _ in range(job["ops"]):
        addr, length = random_span(rng, bases, window)
        data = rng.randbytes(length)
        await axi.write(addr, data)
        mirror.write(addr, data)
        spans.append((addr, length))
        mirror.check(addr, (await axi.read(addr, length)).data, f"read after write at {addr:#x}")
    for addr, length in spans:
        mirror.check(addr, (await axi.read(addr, length)).data, f"read back at {addr:#x}")

    for channel in (axi.write_if.aw_channel, axi.write_if.w_channel, axi.write_if.b_channel,
                    axi.read_if.ar_channel, axi.read_if.r_channel):
        channel.clear_pause_generator()
        channel.pause = False
    block = rng.randbytes(64 << 10)
    base = 1 << 20
    t0 = tb.cycle
    await axi.write(base, block)
    write_cycles = tb.cycle - t0
    t0 = tb.cycle
    got = (await axi.read(base, len(block))).data
    read_cycles = tb.cycle - t0
    assert got == block, "the 64 KiB block read back differs"
    job.put(level_write_read_back={
        "init_cycles": init_cycles, "lanes": lanes, "init_error": error,
        "bytes_checked": len(mirror.data), "write_cycles": write_cycles,
        "read_cycles": read_cycles, "sys_cycles": tb.cycle})
