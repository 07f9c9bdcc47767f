"""cocotb tests of ``designs.DmaPair`` (a BurstReader and a BurstWriter on one ``m_axi``)
against cocotbext-axi's ``AxiRam``, run by ``test_dma.py``.

The job gives ``data_width``, ``max_burst``, ``max_outstanding``, ``addr_width``,
``beats_width``, ``seed``, and per test its sizes and the probabilities of pauses (each AXI
channel of the RAM), of ready stalls on ``rd_data`` and of valid gaps on ``wr_data``.
A :class:`Watch` checks every cycle what AXI demands of a manager and records every burst.
"""

import random

import cocotb
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiBus, AxiRam

from sps_hw.sim.axi_memory import delay_reads, delay_responses, set_pauses
from sps_hw.sim.job import read_job
from sps_hw.sim.streams import TB, pack_payload

RAM_BYTES = 1 << 16
PAGE = 4096


class Watch:
    """Watches ``m_axi`` and the DMA ports at every rising edge.

    Checks: AR/AW/W valid stays high, with the same payload, until taken; no burst is longer
    than ``max_burst`` or crosses 4 KiB; bursts in flight (read: address taken to last beat;
    write: address presented to response) never exceed ``max_outstanding``; W beats per burst
    match AWLEN, with WLAST on the last; ``wstrb`` all ones, or with ``job["strobes"]`` not
    all zeros. Records the bursts ``(cycle, addr, beats)`` at their
    address handshakes, the cycles of R and W beats and B responses, the last cycle each
    DMA was busy, and counts the cycles in which each stalled, as the RTL should.
    """

    def __init__(self, dut, tb, job):
        self.dut, self.tb = dut, tb
        self.beat_bytes = job["data_width"] // 8
        self.max_burst, self.max_outstanding = job["max_burst"], job["max_outstanding"]
        self.strobes = job.get("strobes", False)
        self.ar, self.aw = [], []          # (cycle, addr, beats) at the address handshake
        self.r, self.w, self.b = [], [], []   # cycles of R beats, W beats, B responses
        self.stalls = {"rd": 0, "wr": 0}
        self.busy_last = {"rd": None, "wr": None}     # the last edge that saw busy high
        self.errors = []

    def start(self):
        """Watch from now on (after reset)."""
        cocotb.start_soon(self._run())

    def _fail(self, message):
        self.errors.append(f"cycle {self.tb.cycle}: {message}")

    def _burst(self, kind, addr, length):
        beats = length + 1
        if beats > self.max_burst:
            self._fail(f"{kind} burst of {beats} beats, more than {self.max_burst}")
        if addr // PAGE != (addr + beats * self.beat_bytes - 1) // PAGE:
            self._fail(f"{kind} burst at {addr:#x} of {beats} beats crosses 4 KiB")
        if addr % self.beat_bytes:
            self._fail(f"{kind} burst at {addr:#x} is not aligned")

    async def _run(self):
        d = self.dut
        edge = RisingEdge(d.clk)
        held = {}                     # channel -> payload, while valid and not yet taken
        fields = {"ar": (d.m_axi_araddr, d.m_axi_arlen, d.m_axi_arsize, d.m_axi_arburst),
                  "aw": (d.m_axi_awaddr, d.m_axi_awlen, d.m_axi_awsize, d.m_axi_awburst),
                  "w": (d.m_axi_wdata, d.m_axi_wlast, d.m_axi_wstrb)}
        handshake = {"ar": (d.m_axi_arvalid, d.m_axi_arready),
                     "aw": (d.m_axi_awvalid, d.m_axi_awready),
                     "w": (d.m_axi_wvalid, d.m_axi_wready)}
        size = (self.beat_bytes - 1).bit_length()
        aw_beats = []                 # beats of each write burst, in the order presented
        w_burst = w_beat = 0          # the burst and beat the next W beat belongs to
        reads_in_flight = writes_in_flight = 0
        while True:
            await edge
            cycle = self.tb.cycle
            taken = {}
            for ch, (valid, ready) in handshake.items():
                if not int(valid.value):
                    if ch in held:
                        self._fail(f"{ch}valid dropped before the transfer was taken")
                        del held[ch]
                    continue
                payload = tuple(int(s.value) for s in fields[ch])
                if ch in held and held[ch] != payload:
                    self._fail(f"{ch} payload changed while waiting: {held[ch]} -> {payload}")
                if ch == "aw" and "aw" not in held:
                    aw_beats.append(payload[1] + 1)
                    writes_in_flight += 1
                if int(ready.value):
                    held.pop(ch, None)
                    taken[ch] = payload
                else:
                    held[ch] = payload
            for ch in ("ar", "aw"):
                if ch in taken:
                    addr, length, sz, burst = taken[ch]
                    if (sz, burst) != (size, 1):
                        self._fail(f"{ch}size {sz}, {ch}burst {burst}: expected {size}, INCR")
                    self._burst(ch, addr, length)
                    getattr(self, ch).append((cycle, addr, length + 1))
            if "ar" in taken:
                reads_in_flight += 1
            if "w" in taken:
                self.w.append(cycle)
                _, last, strb = taken["w"]
                full = (1 << self.beat_bytes) - 1
                if (strb == 0) if self.strobes else (strb != full):
                    self._fail(f"wstrb {strb:#x}")
                if w_burst >= len(aw_beats):
                    self._fail("a W beat before its burst's address")
                elif bool(last) != (w_beat == aw_beats[w_burst] - 1):
                    self._fail(f"wlast {last} on beat {w_beat} of a {aw_beats[w_burst]}-beat "
                               f"burst")
                w_beat += 1
                if last:
                    w_burst, w_beat = w_burst + 1, 0
            if int(d.m_axi_rvalid.value) and int(d.m_axi_rready.value):
                self.r.append(cycle)
                if int(d.m_axi_rlast.value):
                    reads_in_flight -= 1
            if int(d.m_axi_bvalid.value) and int(d.m_axi_bready.value):
                self.b.append(cycle)
                writes_in_flight -= 1
            if reads_in_flight > self.max_outstanding:
                self._fail(f"{reads_in_flight} read bursts in flight")
            if writes_in_flight > self.max_outstanding:
                self._fail(f"{writes_in_flight} write bursts in flight")
            if int(d.rd_busy.value):
                self.busy_last["rd"] = cycle
                if int(d.rd_data__ready.value) and not int(d.rd_data__valid.value):
                    self.stalls["rd"] += 1
            if int(d.wr_busy.value):
                self.busy_last["wr"] = cycle
                if int(d.wr_data__valid.value) and not int(d.wr_data__ready.value):
                    self.stalls["wr"] += 1

    def check(self):
        assert not self.errors, f"{len(self.errors)} AXI violations, first: {self.errors[0]}"


class Bench:
    """The RAM (pauses on every channel), the DMA's stream drivers and a :class:`Watch`."""

    def __init__(self, dut, job, test, *, fault=None):
        self.job, self.dut = job, dut
        conf = job[test]
        self.rng = random.Random(f"{job['seed']}:{test}")
        self.tb = TB(dut)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=RAM_BYTES)
        ram = self.ram
        set_pauses(ram, conf.get("pause", {}), self.rng)
        if fault is not None:        # bytes in range(*fault) answer SLVERR
            self._fault(fault)
        if conf.get("queue"):        # addresses the RAM takes ahead of the burst it serves
            ram.read_if.ar_channel.queue_occupancy_limit = conf["queue"]
            ram.write_if.aw_channel.queue_occupancy_limit = conf["queue"]
        latency = conf.get("latency", {})
        if latency.get("r"):
            delay_reads(ram, latency["r"], self.tb.period_steps)
        if latency.get("b"):
            delay_responses(ram, latency["b"], dut.clk)
        self.image = bytes(self.rng.randrange(256) for _ in range(RAM_BYTES))
        ram.write(0, self.image)
        self.beat_bytes = job["data_width"] // 8
        self.rd_cmd = self.tb.source("rd_cmd", seed=self.rng.random())
        self.wr_cmd = self.tb.source("wr_cmd", seed=self.rng.random())
        self.rd_data = self.tb.sink("rd_data", ready_prob=conf.get("ready", 1.0),
                                    seed=self.rng.random())
        self.wr_data = self.tb.source("wr_data", valid_prob=conf.get("valid", 1.0),
                                      seed=self.rng.random())
        self.watch = Watch(dut, self.tb, job)

    async def reset(self):
        await self.tb.reset()
        self.watch.start()

    def _fault(self, fault):
        lo, hi = fault
        read, write = self.ram.read_if._read, self.ram.write_if._write

        async def faulty_read(address, length):
            if lo <= address < hi:
                raise OSError("fault")
            return await read(address, length)

        async def faulty_write(address, data):
            if lo <= address < hi:
                raise OSError("fault")
            await write(address, data)

        self.ram.read_if._read, self.ram.write_if._write = faulty_read, faulty_write

    def commands(self, words):
        from sps_hw.axi import command_layout  # amaranth: imported only where needed
        layout = command_layout(self.job["addr_width"], self.job["beats_width"])
        return [pack_payload(layout, {"addr": a, "beats": n}) for a, n in words]

    def random_commands(self, count, lo, hi, max_beats):
        """``count`` commands ``(addr, beats)`` inside bytes ``lo..hi`` of the RAM; a third
        start just below a 4 KiB boundary; lengths from 1 to ``max_beats``."""
        out = []
        for _ in range(count):
            beats = self.rng.choice([1, self.rng.randrange(1, 8),
                                     self.rng.randrange(1, max_beats + 1)])
            span = beats * self.beat_bytes
            addr = self.rng.randrange(lo, hi - span + 1) // self.beat_bytes * self.beat_bytes
            if self.rng.random() < 0.33:
                edge = self.rng.randrange(lo // PAGE + 1, (hi - span) // PAGE + 1) * PAGE
                near = edge - self.rng.randrange(1, 4) * self.beat_bytes
                if lo <= near and near + span <= hi:
                    addr = near
            out.append((addr, beats))
        return out

    def expected(self, commands, image):
        words = []
        for addr, beats in commands:
            for i in range(beats):
                a = addr + i * self.beat_bytes
                words.append(int.from_bytes(image[a:a + self.beat_bytes], "little"))
        return words

    def check_memory(self, model):
        """The RAM equals ``model`` (bytes) to the bit, no error flag is up, and the DMA's
        stall counters equal the stalls the :class:`Watch` saw."""
        ram = self.ram.read(0, RAM_BYTES)
        diff = [a for a in range(RAM_BYTES) if ram[a] != model[a]]
        assert not diff, f"{len(diff)} RAM bytes differ from the model, first at {diff[0]:#x}"
        dut = self.dut
        assert int(dut.rd_error.value) == 0 and int(dut.wr_error.value) == 0
        counted = {"rd": int(dut.rd_stalls.value), "wr": int(dut.wr_stalls.value)}
        assert counted == self.watch.stalls, f"stall counters {counted}, watched " \
                                             f"{self.watch.stalls}"

    async def idle(self, timeout_cycles):
        """Wait until both DMAs are idle and every command was taken."""
        for _ in range(timeout_cycles):
            if self.rd_cmd.idle and self.wr_cmd.idle and self.wr_data.idle and \
                    not int(self.dut.rd_busy.value) and not int(self.dut.wr_busy.value):
                return
            await RisingEdge(self.dut.clk)
        raise TimeoutError(f"the DMAs are still busy after {timeout_cycles} cycles")


@cocotb.test()
async def traffic(dut):
    """Random reads and writes at once, on disjoint halves of the RAM, with pauses on every
    channel, ready stalls and valid gaps: the reader's words equal the RAM to the bit, the
    RAM equals what the writer was given, the stall counters equal the watched ones."""
    job = read_job()
    conf = job["traffic"]
    bench = Bench(dut, job, "traffic")
    half = RAM_BYTES // 2
    reads = bench.random_commands(conf["commands"], 0, half, conf["max_beats"])
    writes = bench.random_commands(conf["commands"], half, RAM_BYTES, conf["max_beats"])
    want_read = bench.expected(reads, bench.image)
    model = bytearray(bench.image)
    payload = []
    for addr, beats in writes:
        for i in range(beats):
            word = bench.rng.getrandbits(8 * bench.beat_bytes)
            payload.append(word)
            a = addr + i * bench.beat_bytes
            model[a:a + bench.beat_bytes] = word.to_bytes(bench.beat_bytes, "little")
    await bench.reset()
    bench.rd_cmd.send(bench.commands(reads))
    bench.wr_cmd.send(bench.commands(writes))
    bench.wr_data.send(payload)
    got = await bench.rd_data.wait(len(want_read), timeout_cycles=conf["timeout_cycles"])
    await bench.idle(conf["timeout_cycles"])
    await bench.tb.cycles(20)
    bench.watch.check()
    assert len(bench.rd_data.items) == len(want_read), "the reader sent extra words"
    bad = [i for i, (g, w) in enumerate(zip(got, want_read)) if g != w]
    assert not bad, f"{len(bad)} words differ from the RAM, first {bad[0]}: " \
                    f"{got[bad[0]]:#x} != {want_read[bad[0]]:#x}"
    bench.check_memory(model)
    watch = bench.watch
    job.put(traffic={
        "read_words": len(want_read), "write_words": len(payload),
        "read_bursts": len(watch.ar), "write_bursts": len(watch.aw),
        "read_bursts_max": max(b for _, _, b in watch.ar),
        "write_bursts_max": max(b for _, _, b in watch.aw),
        "read_4k_cut": sum(1 for _, a, b in watch.ar if (a + b * bench.beat_bytes) % PAGE == 0),
        "stalls": bench.watch.stalls, "cycles": bench.tb.cycle,   # = the counters
    })


@cocotb.test()
async def errors(dut):
    """SLVERR answers (bytes 0x3000..0x30FF fault) set the error flag of the reader and of the
    writer, the reader still delivering every word; a command taken while idle clears it."""
    job = read_job()
    bench = Bench(dut, job, "errors", fault=(0x3000, 0x3100))
    bb = bench.beat_bytes
    n = 0x200 // bb
    passes = [(0x2F00, 0x9000), (0x1000, 0xA000), (None, 0x30F0), (None, 0x100)]
    await bench.reset()
    flags = []
    for read_addr, write_addr in passes:
        if read_addr is not None:
            bench.rd_cmd.send(bench.commands([(read_addr, n)]))
        bench.wr_cmd.send(bench.commands([(write_addr, n)]))
        bench.wr_data.send([bench.rng.getrandbits(8 * bb) for _ in range(n)])
        await bench.idle(5000)
        flags.append((int(dut.rd_error.value), int(dut.wr_error.value)))
    await bench.tb.cycles(5)
    bench.watch.check()
    assert flags == [(1, 0), (0, 0), (0, 1), (0, 0)], f"error flags {flags}"
    words = bench.rd_data.items
    assert len(words) == 2 * n, f"{len(words)} words read, expected {2 * n}"
    assert words[n:] == bench.expected([(0x1000, n)], bench.image)


@cocotb.test()
async def throughput(dut):
    """No pauses, no stalls: the cycle of every handshake of one read command, then of one
    write command (counted from each command's own handshake), and the RAM's latencies as
    seen on the first burst (AR to first R, WLAST to B)."""
    job = read_job()
    conf = job["throughput"]
    beats = conf["beats"]
    bench = Bench(dut, job, "throughput")
    watch, t = bench.watch, bench.tb.cycle_at
    await bench.reset()
    bench.rd_cmd.send(bench.commands([(conf["read_addr"], beats)]))
    got = await bench.rd_data.wait(beats, timeout_cycles=10 * beats + 1000)
    await bench.idle(1000)
    assert got == bench.expected([(conf["read_addr"], beats)], bench.image)
    c = t(bench.rd_cmd.times[0])
    read = {"ar": [x - c for x, _, _ in watch.ar], "data": [t(x) - c for x in bench.rd_data.times],
            "done": watch.busy_last["rd"] - c}
    read["latency"] = read["data"][0] - read["ar"][0]
    await bench.tb.cycles(5)
    bench.wr_cmd.send(bench.commands([(conf["write_addr"], beats)]))
    bench.wr_data.send([bench.rng.getrandbits(8 * bench.beat_bytes) for _ in range(beats)])
    await bench.idle(10 * beats + 1000)
    await bench.tb.cycles(2)
    c = t(bench.wr_cmd.times[0])
    write = {"aw": [x - c for x, _, _ in watch.aw], "data": [t(x) - c for x in bench.wr_data.times],
             "b": [x - c for x in watch.b], "done": watch.busy_last["wr"] - c}
    write["latency"] = write["b"][0] - write["data"][watch.aw[0][2] - 1]
    watch.check()
    job.put(throughput={"read": read, "write": write})
