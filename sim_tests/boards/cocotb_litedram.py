"""cocotb tests of the LiteDRAM core's simulation variant (``litedram_ulx3s_sim``: controller,
AXI4 port, init sequencer and LiteDRAM's SDRAMPHYModel), run by ``test_litedram.py``.

The job gives ``seed``, ``axi_clock`` (the AXI port on its own clock ``axi_clk``), the clock
periods, ``ops`` (random writes), ``window`` (bytes of the address window the random traffic
uses, placed at the start and at the top of the 32 MiB) and ``pause`` (probability of a paused
cycle on each of the master's channels).
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiMaster

from sps_hw.sim.axi_memory import pauses
from sps_hw.sim.job import read_job
from sps_hw.sim.streams import TB

DRAM_BYTES = 32 << 20
#: Where the concurrent writes go (past the random traffic's first window).
CONCURRENT = 1 << 20


class Mirror:
    """What the DRAM should hold: the bytes written so far (the model's power-on content is
    not checked)."""

    def __init__(self):
        self.data = {}

    def write(self, addr, data):
        for i, b in enumerate(data):
            self.data[addr + i] = b

    def check(self, addr, data, what):
        bad = [(addr + i, b, self.data[addr + i]) for i, b in enumerate(data)
               if addr + i in self.data and self.data[addr + i] != b]
        assert not bad, (f"{what}: {len(bad)} bytes differ, first at {bad[0][0]:#x}: read "
                         f"{bad[0][1]:#04x}, wrote {bad[0][2]:#04x}")


async def start(dut, job):
    """Clocks, reset, and the cycles until ``init_done`` (AXI ready low until then)."""
    tb = TB(dut, period_ns=job["sys_period_ns"], clk="sys_clk", rst="sys_rst")
    clock, reset = dut.sys_clk, dut.sys_rst
    if job["axi_clock"]:
        Clock(dut.axi_clk, job["axi_period_ns"], unit="ns").start(start_high=False)
        dut.axi_rst.value = 1
        clock, reset = dut.axi_clk, dut.axi_rst
    for name in ("awvalid", "wvalid", "arvalid", "bready", "rready"):
        getattr(dut, f"s_axi_{name}").value = 0
    await tb.reset(4)
    if job["axi_clock"]:
        await ClockCycles(dut.axi_clk, 4)
        dut.axi_rst.value = 0
    # The port holds requests until init_done, even with valid high (dropped well before
    # init_done, which comes after 20,000 cycles of CKE wait, so that nothing is taken).
    dut.s_axi_awvalid.value = dut.s_axi_arvalid.value = dut.s_axi_wvalid.value = 1
    early = 0
    while not dut.init_done.value:
        await RisingEdge(dut.sys_clk)
        early |= int(dut.s_axi_awready.value) | int(dut.s_axi_arready.value) | \
            int(dut.s_axi_wready.value)
        if tb.cycle == 19_000:
            dut.s_axi_awvalid.value = dut.s_axi_arvalid.value = dut.s_axi_wvalid.value = 0
            assert not early, "the AXI port was ready before init_done"
        assert tb.cycle < 200_000, "init_done not raised"
    init_cycles = tb.cycle
    await ClockCycles(dut.sys_clk, 4)
    assert dut.init_done.value, "init_done fell"
    return tb, clock, reset, init_cycles


def master_for(dut, clock, reset, rng, pause):
    axi = AxiMaster(AxiBus.from_prefix(dut, "s_axi"), clock, reset)
    if pause:
        for channel in (axi.write_if.aw_channel, axi.write_if.w_channel, axi.write_if.b_channel,
                        axi.read_if.ar_channel, axi.read_if.r_channel):
            channel.set_pause_generator(pauses(random.Random(rng.random()), pause))
    return axi


def random_span(rng, bases, window):
    """A random (address, length): short and unaligned, a few beats, or long (several
    bursts of 256 beats), in one of the windows."""
    kind = rng.random()
    length = (rng.randint(1, 15) if kind < 0.35 else rng.randint(16, 600) if kind < 0.8
              else rng.randint(1000, 5000))
    base = rng.choice(bases)
    return base + rng.randrange(window - length), length


@cocotb.test(timeout_time=50, timeout_unit="ms")     # simulated: a hang fails, not stalls
async def write_read_back(dut):
    """Random writes (1 byte to 5 KiB, any alignment: partial strobes at both ends, bursts of 1
    to 256 beats, narrow 1/2/4-byte bursts), each read back at once and again at the end;
    then concurrent writes and reads on disjoint spans with several IDs; then the sustained
    rate of aligned 256-beat bursts."""
    job = read_job()
    rng = random.Random(job["seed"])
    tb, clock, reset, init_cycles = await start(dut, job)
    axi = master_for(dut, clock, reset, rng, job["pause"])
    window = job["window"]
    bases = [0, DRAM_BYTES - window]
    mirror, spans = Mirror(), []
    narrow = 0
    for _ in range(job["ops"]):
        addr, length = random_span(rng, bases, window)
        data = rng.randbytes(length)
        size = None
        if rng.random() < 0.15:            # a narrow burst: 1, 2, 4... bytes a beat
            size = rng.randrange(axi.write_if.max_burst_size)
            addr -= addr % (1 << size)
            narrow += 1
        await axi.write(addr, data, size=size)
        mirror.write(addr, data)
        spans.append((addr, length))
        got = (await axi.read(addr, length, size=size)).data
        mirror.check(addr, got, f"read after write at {addr:#x} (+{length}, size {size})")
    for addr, length in spans:             # everything again, after all the writes
        mirror.check(addr, (await axi.read(addr, length)).data, f"read back at {addr:#x}")

    # Concurrent traffic: writes (own area, own IDs) in flight with reads of earlier spans.
    writes = []
    for i in range(6):
        addr = CONCURRENT + i * 8192 + rng.randrange(64)
        data = rng.randbytes(rng.randint(100, 3000))
        writes.append((addr, data, cocotb.start_soon(axi.write(addr, data, awid=i))))
    reads = [(addr, cocotb.start_soon(axi.read(addr, length, arid=8 + i)))
             for i, (addr, length) in enumerate(spans[:6])]
    for addr, data, task in writes:
        await task
        mirror.write(addr, data)
    for addr, task in reads:
        mirror.check(addr, (await task).data, f"concurrent read at {addr:#x}")
    for addr, data, _ in writes:
        mirror.check(addr, (await axi.read(addr, len(data))).data,
                     f"concurrent write at {addr:#x}")

    # Sustained rate: 64 KiB in aligned 256-beat bursts, no pauses.
    for channel in (axi.write_if.aw_channel, axi.write_if.w_channel, axi.write_if.b_channel,
                    axi.read_if.ar_channel, axi.read_if.r_channel):
        channel.clear_pause_generator()
        channel.pause = False              # (clearing leaves the last value, maybe paused)
    block = rng.randbytes(64 << 10)
    t0 = tb.cycle
    await axi.write(CONCURRENT + (64 << 10), block)
    write_cycles = tb.cycle - t0
    t0 = tb.cycle
    got = (await axi.read(CONCURRENT + (64 << 10), len(block))).data
    read_cycles = tb.cycle - t0
    assert got == block, "the 64 KiB block read back differs"
    job.put(write_read_back={"init_cycles": init_cycles, "ops": job["ops"], "narrow": narrow,
                             "bytes_checked": len(mirror.data), "write_cycles": write_cycles,
                             "read_cycles": read_cycles, "block_bytes": len(block),
                             "sys_cycles": tb.cycle})


# --- The board variant on its pins --------------------------------------------------------------

COMMANDS = {0b0111: "NOP", 0b0011: "ACT", 0b0101: "READ", 0b0100: "WRITE", 0b0010: "PRE",
            0b0001: "REF", 0b0000: "MRS", 0b0110: "BST"}


class SdrSdram:
    """A behavioural SDR SDRAM (4 banks, 16 bits, CL 2, burst length 1) on the board variant's
    ``sdram_*`` pins, sampled after each rising edge of ``sys_clk`` as the chip, clocked 90
    degrees later, sees them. CL 2: the chip drives the data of a READ it takes at its edge k
    from tAC after its edge k + 1 to tOH after edge k + 2, where the FPGA's input register
    takes it at its own edge k + 2: the model puts it on ``sdram_dq_i`` after the FPGA's edge
    k + 1 only, and junk in every other cycle.

    Records the commands up to the first ACT (``init``), every refresh, and any violation of
    the protocol in ``errors``: a command other than NOP before CKE is high, or within
    ``power_up`` cycles of it; ACT to an open bank, READ/WRITE to a closed one, REF or MRS with
    a bank open; tRP, tRCD, tRFC; WRITE without ``dq_oe``; ``dq_oe`` high after edge k + 1 or
    k + 2 of a READ (while the chip drives);
    the mode register not CL 2/BL 1 at the first ACT.
    """

    def __init__(self, dut, timing, power_up, rng):
        self.dut, self.t, self.power_up, self.rng = dut, timing, power_up, rng
        self.mem = {}
        self.open = [None] * 4
        self.closed_at = [-100] * 4     # cycle each bank was precharged
        self.opened_at = [-100] * 4
        self.busy_until = -1            # tRFC after a refresh
        self.cke_at = None
        self.mode = None
        self.init, self.refreshes, self.errors = [], [], []
        self.reads = self.writes = 0
        self.drive = {}                 # cycle -> read data to put on dq_i after that edge
        self.chip_drives = set()        # cycles after whose edge the chip drives dq
        self.first_act = None

    def error(self, cycle, text):
        if len(self.errors) < 20:
            self.errors.append(f"cycle {cycle}: {text}")

    async def run(self):
        d = self.dut
        cycle = 0
        while True:
            await RisingEdge(d.sys_clk)
            cycle += 1
            if cycle in self.drive:
                d.sdram_dq_i.value = self.drive.pop(cycle)
            else:
                d.sdram_dq_i.value = self.rng.getrandbits(16)     # junk outside the window
            await ReadOnly()
            self.sample(cycle)

    def sample(self, cycle):
        d = self.dut
        if cycle in self.chip_drives and int(d.sdram_dq_oe.value):
            self.error(cycle, "dq_oe high while the chip drives read data")
        self.chip_drives.discard(cycle)
        if int(d.sdram_cke.value) and self.cke_at is None:
            self.cke_at = cycle
        if int(d.sdram_cs_n.value):
            return
        cmd = COMMANDS[(int(d.sdram_ras_n.value) << 2) | (int(d.sdram_cas_n.value) << 1) |
                       int(d.sdram_we_n.value)]
        if cmd == "NOP":
            return
        a, ba, t = int(d.sdram_a.value), int(d.sdram_ba.value), self.t
        if self.cke_at is None:
            return self.error(cycle, f"{cmd} before CKE is high")
        if cycle < self.cke_at + self.power_up:
            self.error(cycle, f"{cmd} {cycle - self.cke_at} cycles after CKE high")
        if cycle < self.busy_until:
            self.error(cycle, f"{cmd} within tRFC of a refresh")
        if self.first_act is None:
            self.init.append((cmd, a, cycle - self.cke_at))
        if cmd == "ACT":
            if self.first_act is None:
                self.first_act = cycle
                if self.mode != 0x20:
                    self.error(cycle, f"first ACT with mode register {self.mode}")
            if self.open[ba] is not None:
                self.error(cycle, f"ACT to bank {ba} with row {self.open[ba]} open")
            if cycle < self.closed_at[ba] + t["tRP"]:
                self.error(cycle, f"ACT to bank {ba} within tRP")
            self.open[ba], self.opened_at[ba] = a, cycle
        elif cmd == "PRE":
            for b in (range(4) if a & 0x400 else [ba]):
                if self.open[b] is not None:
                    self.open[b], self.closed_at[b] = None, cycle
        elif cmd in ("REF", "MRS"):
            if any(row is not None for row in self.open):
                self.error(cycle, f"{cmd} with a bank open")
            if cmd == "REF":
                self.refreshes.append(cycle)
                self.busy_until = cycle + t["tRFC"]
            else:
                self.mode = a
        elif cmd in ("READ", "WRITE"):
            row = self.open[ba]
            if row is None:
                return self.error(cycle, f"{cmd} to closed bank {ba}")
            if cycle < self.opened_at[ba] + t["tRCD"]:
                self.error(cycle, f"{cmd} within tRCD")
            key = (ba, row, a & 0x1FF)
            if cmd == "WRITE":
                self.writes += 1
                if not int(d.sdram_dq_oe.value):
                    self.error(cycle, "WRITE without dq_oe")
                dm = int(d.sdram_dm.value)
                keep = (0xFF if dm & 1 else 0) | (0xFF00 if dm & 2 else 0)
                self.mem[key] = (self.mem.get(key, 0) & keep) | \
                    (int(d.sdram_dq_o.value) & ~keep & 0xFFFF)
            else:
                self.reads += 1
                self.drive[cycle + 1] = self.mem.get(key, 0)
                self.chip_drives |= {cycle + 1, cycle + 2}
            if a & 0x400:                 # auto-precharge
                self.open[ba], self.closed_at[ba] = None, cycle + 1
        else:
            self.error(cycle, f"unexpected {cmd}")


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def pins(dut):
    """The board variant (GENSDRPHY, registered pins) on :class:`SdrSdram`: the init sequence
    on the pins, refreshes, then random writes and reads over AXI, all read back equal."""
    job = read_job()
    rng = random.Random(job["seed"])
    dut.sdram_dq_i.value = 0
    model = SdrSdram(dut, job["timing"], job["power_up"], random.Random(rng.random()))
    cocotb.start_soon(model.run())
    _, clock, reset, init_cycles = await start(dut, job)
    axi = master_for(dut, clock, reset, rng, job["pause"])
    mirror, window, bases = Mirror(), job["window"], [0, DRAM_BYTES - job["window"]]
    for _ in range(job["ops"]):
        addr, length = random_span(rng, bases, window)
        data = rng.randbytes(length)
        await axi.write(addr, data)
        mirror.write(addr, data)
        mirror.check(addr, (await axi.read(addr, length)).data, f"read back at {addr:#x}")
    assert not model.errors, "\n".join(model.errors)
    gaps = [b - a for a, b in zip(model.refreshes[2:], model.refreshes[3:])]
    job.put(pins={"init_cycles": init_cycles, "init": model.init, "cke_at": model.cke_at,
                  "refreshes": len(model.refreshes), "max_refresh_gap": max(gaps),
                  "reads": model.reads, "writes": model.writes, "mode": model.mode})
