"""The tile engine: the SPS core behind an AXI4 memory master, running a table of jobs that
lives in external memory (``docs/hardware.md`` section 12, ``docs/tiling.md``).

A *job* (:mod:`sps_hw.jobs`) is one layer the core runs as it is: a tile of a layer's output
by a chunk of its output channels. Its *record* (:func:`job_layout`, :data:`RECORD_BYTES`
bytes in the job table) says where its images are (0 bytes: the active image is kept),
which sub-rectangle of which tensor to load into the core (0 channels: the input is still
in the feature buffer, the descriptor's ``resident`` flag) and where to write which crop of
its output. For each job the engine

1. reads its record and *stages* its images into the core's inactive banks, while the core
   still computes the previous job (one reader, one byte a cycle);
2. waits until the core is idle and the previous job's output is written;
3. *commits* the staged images (only those it staged), hands the writer the job's crop and
   starts the core (``go``), then *loads* the job's input into the core; the core computes,
   and drains its output through the writer to memory.

Cycles of job ``j`` run from its commit to the next job's (the first job's from the start,
the last job's to the end), so they add up to the run's cycles; ``jobs`` reports each job's
cycles, its computation (the core's layer cycles), and the bytes it read and wrote, exactly
as :mod:`sps_hw.tiling` predicts them.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import (
    AXI4LiteSignature,
    AXI4Signature,
    Register,
    RegisterFile,
    TensorReader,
    TensorWriter,
    crop_layout,
    join,
    rectangle_layout,
)
from .config import ROM_NAMES, Config
from .controller import Stats
from .counters import Actions
from .memories import word_bytes
from .top import Accelerator, rom_widths
from .vector import VectorCommand, VectorUnit

__all__ = ["RECORD_BYTES", "REGISTERS", "VECTOR_CHUNK", "VECTOR_WIDTH", "JobStats",
           "TileEngine", "job_layout"]

#: Bytes of a job record in the job table (a whole number of 64-bit words).
RECORD_BYTES = 128
#: Width of the byte counts of images and of the sizes of tensor rectangles.
SIZE_WIDTH = 24
#: The vector unit's widest max-pool row and largest add piece, in bytes.
VECTOR_WIDTH, VECTOR_CHUNK = 256, 2048
#: One per finished job: its index in the table, its cycles, the core's computation cycles
#: among them, and the bytes it read and wrote.
JobStats = data.StructLayout({"job": unsigned(32), "cycles": unsigned(32),
                              "compute": unsigned(32), "read_bytes": unsigned(32),
                              "write_bytes": unsigned(32)})


def job_layout(addr_width=32):
    """The layout of a job record: ``vector`` (0: a job of the core, 1: of the vector unit),
    per image (:data:`~sps_hw.config.ROM_NAMES` order) its ``addr`` and ``bytes`` (0: keep
    the active image), the rectangle ``load`` into the core or the vector unit's ``a`` (0
    channels: the core's input is resident), ``load_b`` into its ``b`` (an add), the crop
    ``store`` of the output (0 channels: nothing, for a core job that writes no output),
    and the vector unit's ``command``."""
    return data.StructLayout({
        "vector": unsigned(1),
        "images": data.ArrayLayout(data.StructLayout({"addr": unsigned(addr_width),
                                                      "bytes": unsigned(SIZE_WIDTH)}),
                                   len(ROM_NAMES)),
        "load": rectangle_layout(addr_width, SIZE_WIDTH),
        "load_b": rectangle_layout(addr_width, SIZE_WIDTH),
        "store": crop_layout(addr_width, SIZE_WIDTH),
        "command": VectorCommand,
    })


#: The AXI4-Lite registers, in address order (32-bit words from offset 0).
REGISTERS = (
    Register("start", "pulse", 1),          # write 1: run the table
    Register("table", "rw"),                # byte address of the first job record
    Register("count", "rw"),                # jobs to run
    Register("status", "ro", 2),            # bit 0 busy, bit 1 an AXI error since the start
    Register("done", "w1c", 1),             # set when a run ends; the interrupt's cause
    Register("irq_enable", "rw", 1),
    Register("jobs_done", "ro"),
    Register("cycles", "ro"),               # of the last (or current) run
    Register("compute", "ro"),              # the core's layer cycles among them
    Register("read_bytes", "ro"),
    Register("write_bytes", "ro"),
)


class TileEngine(wiring.Component):
    """An SPS core of size ``cfg`` (:class:`~sps_hw.config.Config`) that runs job tables from
    external memory.

    Members
    -------
    m_axi : ``Out(AXI4Signature(addr_width, data_width))``
        Every access to memory: records, images and input tiles read, outputs written.
    s_axi : ``In(AXI4LiteSignature(addr_width=6, data_width=32))``
        The registers of :data:`REGISTERS`.
    irq : ``Out(1)``
        A run ended (``done``) and ``irq_enable`` is set.
    jobs : ``Out(stream.Signature(JobStats, always_ready=True))``
        Each finished job's figures.
    stats, actions
        The core's (:class:`~sps_hw.top.Accelerator`): a job's layer is always layer 0.
    """

    def __init__(self, cfg, *, addr_width=32, data_width=64, max_burst=256,
                 max_outstanding=16, multiplier="auto"):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
        self.cfg = cfg
        self.record = job_layout(addr_width)
        if self.record.size > 8 * RECORD_BYTES:
            raise ValueError(f"a job record of {self.record.size} bits does not fit "
                             f"{RECORD_BYTES} bytes")
        mover = {"addr_width": addr_width, "data_width": data_width, "size_width": SIZE_WIDTH,
                 "max_burst": max_burst, "max_outstanding": max_outstanding}
        self.reader, self.writer = TensorReader(**mover), TensorWriter(**mover)
        self.core = Accelerator(cfg, writable=True, jobs=True, multiplier=multiplier)
        self.vector = VectorUnit(max_width=VECTOR_WIDTH, chunk=VECTOR_CHUNK)
        self.registers = RegisterFile(REGISTERS, addr_width=6, irq=("done", "irq_enable"))
        ports = {
            "m_axi": Out(AXI4Signature(addr_width=addr_width, data_width=data_width)),
            "s_axi": In(AXI4LiteSignature(addr_width=6, data_width=32)),
            "irq": Out(1),
            "jobs": Out(stream.Signature(JobStats, always_ready=True)),
            "stats": Out(stream.Signature(Stats, always_ready=True)),
        }
        if cfg.counters:
            ports["actions"] = Out(stream.Signature(Actions, always_ready=True))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        core, reader, writer, regs = self.core, self.reader, self.writer, self.registers
        vector = self.vector
        m.submodules.core, m.submodules.reader, m.submodules.vector = core, reader, vector
        m.submodules.writer, m.submodules.registers = writer, regs
        join(m, self.m_axi, reader.m_axi, writer.m_axi)
        wiring.connect(m, wiring.flipped(self.s_axi), regs.s_axi)
        wiring.connect(m, wiring.flipped(self.stats), core.stats)
        if self.cfg.counters:
            wiring.connect(m, wiring.flipped(self.actions), core.actions)
        m.d.comb += [self.irq.eq(regs.irq), core.segment.eq(0)]

        rec = Signal(self.record)
        shifter = Signal(8 * RECORD_BYTES)          # the record's bytes as they arrive
        job = Signal(32)                            # the job being fetched and staged
        region = Signal(range(len(ROM_NAMES)))      # the image being staged
        staged = Signal(len(ROM_NAMES))             # the images staged for the next commit
        addr = Signal.like(core.image_write.payload.addr)
        lane = Signal.like(core.image_write.payload.lane)
        route = Signal(3)                           # where the reader's bytes go
        ROUTE_RECORD, ROUTE_IMAGE, ROUTE_CORE, ROUTE_A, ROUTE_B = range(5)

        # The reader's bytes: into the record, into a staging bank, or into the core.
        byte = reader.data
        taken = byte.valid & byte.ready
        last_lane = Signal()
        widths = rom_widths(self.cfg)
        with m.Switch(region):
            for i, name in enumerate(ROM_NAMES):
                with m.Case(i):
                    m.d.comb += last_lane.eq(lane == word_bytes(widths[name][0]) - 1)
        write = core.image_write.payload
        m.d.comb += [write.region.eq(region), write.addr.eq(addr), write.lane.eq(lane),
                     write.data.eq(byte.payload), core.act_in.payload.eq(byte.payload),
                     vector.a.payload.eq(byte.payload), vector.b.payload.eq(byte.payload)]
        with m.Switch(route):
            with m.Case(ROUTE_RECORD):
                m.d.comb += byte.ready.eq(1)
                with m.If(byte.valid):
                    m.d.sync += shifter.eq(Cat(shifter[8:], byte.payload))
            with m.Case(ROUTE_IMAGE):
                m.d.comb += [core.image_write.valid.eq(byte.valid),
                             byte.ready.eq(core.image_write.ready)]
                with m.If(taken):
                    m.d.sync += lane.eq(lane + 1)
                    with m.If(last_lane):
                        m.d.sync += [lane.eq(0), addr.eq(addr + 1)]
            with m.Case(ROUTE_CORE):
                m.d.comb += [core.act_in.valid.eq(byte.valid), byte.ready.eq(core.act_in.ready)]
            with m.Case(ROUTE_A):
                m.d.comb += [vector.a.valid.eq(byte.valid), byte.ready.eq(vector.a.ready)]
            with m.Case(ROUTE_B):
                m.d.comb += [vector.b.valid.eq(byte.valid), byte.ready.eq(vector.b.ready)]
        # The output of the job's unit goes to the writer.
        vector_job = Signal()
        with m.If(vector_job):
            m.d.comb += [writer.data.payload.eq(vector.out.payload),
                         writer.data.valid.eq(vector.out.valid),
                         vector.out.ready.eq(writer.data.ready)]
        with m.Else():
            m.d.comb += [writer.data.payload.eq(core.act_out.payload.data),
                         writer.data.valid.eq(core.act_out.valid),
                         core.act_out.ready.eq(writer.data.ready)]
        # The vector unit's command, held until taken.
        command_pending = Signal()
        m.d.comb += [vector.cmd.valid.eq(command_pending), vector.cmd.payload.eq(rec.command)]
        with m.If(vector.cmd.valid & vector.cmd.ready):
            m.d.sync += command_pending.eq(0)

        # The writer's crop, held until taken.
        store_pending = Signal()
        m.d.comb += [writer.cmd.valid.eq(store_pending), writer.cmd.payload.eq(rec.store)]
        with m.If(writer.cmd.valid & writer.cmd.ready):
            m.d.sync += store_pending.eq(0)

        # Figures: the run's, and the current job's (the next job's record and images are
        # read while the current one runs: they are counted apart until its commit).
        running = Signal()
        count = Signal(32)
        cycles, compute, read_total, write_total = (Signal(32, name=n) for n in (
            "cycles", "compute", "read_total", "write_total"))
        span, job_compute, job_read, next_read, job_write = (Signal(32, name=n) for n in (
            "span", "job_compute", "job_read", "next_read", "job_write"))
        error = Signal()
        done_pulse = Signal()
        bus = self.m_axi
        strobes = Signal(range(len(bus.wstrb) + 1))
        m.d.comb += strobes.eq(sum(bus.wstrb[i] for i in range(len(bus.wstrb))))
        with m.If(running):
            m.d.sync += [cycles.eq(cycles + 1), span.eq(span + 1)]
            with m.If(taken):
                m.d.sync += read_total.eq(read_total + 1)
                with m.If(route >= ROUTE_CORE):        # the job's input, not the next's
                    m.d.sync += job_read.eq(job_read + 1)
                with m.Else():
                    m.d.sync += next_read.eq(next_read + 1)
            with m.If(bus.wvalid & bus.wready):
                m.d.sync += [write_total.eq(write_total + strobes),
                             job_write.eq(job_write + strobes)]
            with m.If(core.stats.valid):
                m.d.sync += [compute.eq(compute + core.stats.payload.cycles),
                             job_compute.eq(core.stats.payload.cycles)]
            # The vector unit computes while busy and not waiting for its operands.
            starved = (vector.a.ready & ~vector.a.valid) | (vector.b.ready & ~vector.b.valid)
            with m.If(vector.busy & ~starved):
                m.d.sync += [compute.eq(compute + 1), job_compute.eq(job_compute + 1)]
            with m.If(reader.error | writer.error):
                m.d.sync += error.eq(1)
        jobs_done = Signal(32)
        m.d.comb += [
            regs.status.eq(Cat(running, error)), regs.done.eq(done_pulse),
            regs.jobs_done.eq(jobs_done), regs.cycles.eq(cycles), regs.compute.eq(compute),
            regs.read_bytes.eq(read_total), regs.write_bytes.eq(write_total),
        ]

        def finish_job():
            """Report the job that ran until now, and start counting the next one's."""
            m.d.comb += [self.jobs.valid.eq(job != 0),
                         self.jobs.payload.job.eq(job - 1),
                         self.jobs.payload.cycles.eq(span + 1),
                         self.jobs.payload.compute.eq(job_compute),
                         self.jobs.payload.read_bytes.eq(job_read),
                         self.jobs.payload.write_bytes.eq(job_write)]
            m.d.sync += [job_compute.eq(0), job_read.eq(next_read), next_read.eq(0),
                         job_write.eq(0)]
            with m.If(job != 0):        # the first job's cycles count from the start
                m.d.sync += [span.eq(0), jobs_done.eq(jobs_done + 1)]

        idle = core.idle & ~writer.busy & ~store_pending & ~vector.busy & ~command_pending
        with m.FSM():
            with m.State("IDLE"):
                with m.If(regs.start):
                    m.d.sync += [running.eq(1), error.eq(0), job.eq(0), count.eq(regs.count),
                                 cycles.eq(0), compute.eq(0), read_total.eq(0),
                                 write_total.eq(0), span.eq(0), job_compute.eq(0),
                                 job_read.eq(0), next_read.eq(0), job_write.eq(0),
                                 jobs_done.eq(0)]
                    m.next = "NEXT"
            with m.State("NEXT"):
                with m.If(job == count):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [reader.cmd.valid.eq(1),
                             reader.cmd.payload.base.eq(regs.table + job * RECORD_BYTES),
                             reader.cmd.payload.channels.eq(1),
                             reader.cmd.payload.rows.eq(1),
                             reader.cmd.payload.cols.eq(RECORD_BYTES)]
                m.d.sync += route.eq(ROUTE_RECORD)
                with m.If(reader.cmd.ready):
                    m.next = "RECORD"
            with m.State("RECORD"):
                with m.If(~reader.busy):
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += [rec.eq(shifter[:self.record.size]), region.eq(0), staged.eq(0)]
                m.next = "STAGE"
            with m.State("STAGE"):
                image = rec.images[region]
                m.d.comb += [reader.cmd.payload.base.eq(image.addr),
                             reader.cmd.payload.channels.eq(1),
                             reader.cmd.payload.rows.eq(1),
                             reader.cmd.payload.cols.eq(image.bytes)]
                m.d.sync += [route.eq(ROUTE_IMAGE), addr.eq(0), lane.eq(0)]
                with m.If(image.bytes == 0):
                    with m.If(region == len(ROM_NAMES) - 1):
                        m.next = "WAIT"
                    with m.Else():
                        m.d.sync += region.eq(region + 1)
                with m.Else():
                    m.d.comb += reader.cmd.valid.eq(1)
                    with m.If(reader.cmd.ready):
                        m.d.sync += staged.eq(staged | (1 << region))
                        m.next = "STAGING"
            with m.State("STAGING"):
                with m.If(~reader.busy):
                    with m.If(region == len(ROM_NAMES) - 1):
                        m.next = "WAIT"
                    with m.Else():
                        m.d.sync += region.eq(region + 1)
                        m.next = "STAGE"
            with m.State("WAIT"):
                with m.If(idle):
                    finish_job()
                    m.d.comb += [core.image_commit_regions.eq(staged),
                                 core.go.eq(~rec.vector)]
                    m.d.sync += [store_pending.eq(1), job.eq(job + 1),
                                 vector_job.eq(rec.vector), command_pending.eq(rec.vector)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += [reader.cmd.payload.eq(rec.load),
                             reader.cmd.valid.eq(rec.load.channels != 0)]
                m.d.sync += route.eq(Mux(rec.vector, ROUTE_A, ROUTE_CORE))
                with m.If(rec.load.channels == 0):
                    m.next = "NEXT"
                with m.Elif(reader.cmd.ready):
                    m.next = "LOADING"
            with m.State("LOADING"):
                with m.If(~reader.busy):
                    with m.If(rec.load_b.channels != 0):
                        m.next = "LOAD_B"
                    with m.Else():
                        m.next = "NEXT"
            with m.State("LOAD_B"):
                m.d.comb += [reader.cmd.payload.eq(rec.load_b), reader.cmd.valid.eq(1)]
                m.d.sync += route.eq(ROUTE_B)
                with m.If(reader.cmd.ready):
                    m.next = "LOADING_B"
            with m.State("LOADING_B"):
                with m.If(~reader.busy):
                    m.next = "NEXT"
            with m.State("FINISH"):
                with m.If(idle):
                    finish_job()
                    m.d.comb += done_pulse.eq(1)
                    m.d.sync += running.eq(0)
                    m.next = "IDLE"
        return m
