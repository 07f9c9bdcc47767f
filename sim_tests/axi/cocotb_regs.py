"""cocotb test of ``designs.register_file()`` through cocotbext-axi's ``AxiLiteMaster``, run
by ``test_registers.py``; the job gives ``seed``, ``batches`` and ``pause`` (probability of a
pause on each AXI4-Lite channel of the manager)."""

import random

import cocotb
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

from sps_hw.sim.axi_memory import pauses
from sps_hw.sim.job import read_job
from sps_hw.sim.streams import TB

# designs.REGISTERS, by byte offset: (name, access, width, reset value)
REGISTERS = {0x0: ("control", "rw", 32, 0x100), 0x4: ("start", "pulse", 1, 0),
             0x8: ("status", "w1c", 2, 0), 0xC: ("irq_enable", "rw", 2, 0),
             0x10: ("base", "rw", 32, 0), 0x14: ("cycles", "ro", 32, 0)}
UNMAPPED = (0x18, 0x1C, 0x100, 0xFFC)


@cocotb.test()
async def round_trips(dut):
    """Batches of concurrent random writes (whole words and single bytes) then reads of
    every register and of unmapped addresses, against a model; start pulses and the
    interrupt watched every cycle."""
    job = read_job()
    rng = random.Random(job["seed"])
    tb = TB(dut)
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), dut.clk, dut.rst)
    for channel in (axil.write_if.aw_channel, axil.write_if.w_channel,
                    axil.write_if.b_channel, axil.read_if.ar_channel, axil.read_if.r_channel):
        channel.set_pause_generator(pauses(random.Random(rng.random()), job["pause"]))
    dut.status.value = 0
    dut.cycles.value = 0
    await tb.reset()
    watched = {"start": [], "irq": []}

    async def watch():
        while True:
            await RisingEdge(dut.clk)
            for name in watched:
                if int(getattr(dut, name).value):
                    watched[name].append(tb.cycle)

    cocotb.start_soon(watch())
    model = {off: init for off, (_, access, _, init) in REGISTERS.items()}

    async def read_all(expect_irq):
        """Read everything at once; compare with the model."""
        cycles = rng.getrandbits(32)
        dut.cycles.value = cycles
        model[0x14] = cycles
        addrs = [*REGISTERS, *UNMAPPED]
        events = [axil.init_read(a, 4) for a in addrs]
        for addr, event in zip(addrs, events):
            await event.wait()
            resp = event.data
            value = int.from_bytes(resp.data, "little")
            if addr in REGISTERS:
                want = 0 if REGISTERS[addr][1] == "pulse" else model[addr]
                assert (value, resp.resp) == (want, AxiResp.OKAY), \
                    f"{REGISTERS[addr][0]}: read {value:#x} {resp.resp!r}, expected {want:#x}"
            else:
                assert (value, resp.resp) == (0, AxiResp.SLVERR), \
                    f"unmapped {addr:#x}: read {value:#x} {resp.resp!r}"
        assert int(dut.irq.value) == expect_irq
        assert int(dut.control.value) == model[0x0] and int(dut.base.value) == model[0x10]

    await read_all(0)
    starts = 0
    for _ in range(job["batches"]):
        events = []
        for _ in range(rng.randrange(1, 6)):
            addr = rng.choice([*REGISTERS, *UNMAPPED])
            if rng.random() < 0.5:          # one byte of the word
                lane = rng.randrange(4)
                byte = rng.randrange(256)
                data, mask = bytes([byte]), 0xFF << (8 * lane)
                value = byte << (8 * lane)
                events.append((addr, axil.init_write(addr + lane, data)))
            else:
                value, mask = rng.getrandbits(32), 0xFFFF_FFFF
                events.append((addr, axil.init_write(addr, value.to_bytes(4, "little"))))
            if addr in REGISTERS:
                _, access, width, _ = REGISTERS[addr]
                keep = (1 << width) - 1
                if access == "rw":
                    model[addr] = (model[addr] & ~mask | value & mask) & keep
                elif access == "pulse":
                    starts += bool(value & mask & keep)
        for addr, event in events:
            await event.wait()
            want = AxiResp.OKAY if addr in REGISTERS else AxiResp.SLVERR
            assert event.data.resp == want, f"write to {addr:#x}: {event.data.resp!r}"
        await read_all(0)
    assert len(watched["start"]) == starts, \
        f"start was high in {len(watched['start'])} cycles, {starts} writes of 1"
    assert not watched["irq"], "irq before any status bit was set"

    # The core sets status bit 0 (done) for a cycle: the interrupt follows the enable.
    await axil.write(0xC, (0).to_bytes(4, "little"))
    model[0xC] = 0
    dut.status.value = 0b01
    await RisingEdge(dut.clk)
    dut.status.value = 0
    model[0x8] = 0b01
    await read_all(0)
    await axil.write(0xC, (0b01).to_bytes(4, "little"))
    model[0xC] = 0b01
    await read_all(1)
    await axil.write(0x8, (0b10).to_bytes(4, "little"))     # the other bit: nothing cleared
    await read_all(1)
    await axil.write(0x8, (0b01).to_bytes(4, "little"))
    model[0x8] = 0
    await read_all(0)
    first, last = watched["irq"][0], watched["irq"][-1]
    assert watched["irq"] == list(range(first, last + 1)), "irq was not one interval"
    job.put(writes=job["batches"], starts=starts, irq_cycles=last - first + 1)
