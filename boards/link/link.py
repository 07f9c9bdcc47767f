"""The board side of the host link: UART, frame receiver and command engine.

:class:`HostLink` executes the requests of ``docs/host_link.md`` against a core through a
:class:`~boards.link.core_if.CoreInterface`. Image uploads are staged: bytes go to the core's
staging copy, each region is checked (length and CRC-32) by ``LOAD_END``, and only ``COMMIT``
with all five regions verified makes them active. Whatever goes wrong before that (a damaged
or truncated frame, an oversized or corrupted image, a reset), the committed model stays.

The engine is built to be small and fast on an iCE40: it checks one registered condition per
cycle (the UART leaves thousands of cycles per byte), counters are only as wide as the memories
and streams need, and every value a response can carry comes from one shared word multiplexer.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import crc, memory, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..protocol import MIN_PAYLOAD_LENGTH, PAYLOAD_LENGTH, RESPONSE, SYNC, VERSION, Cmd, Status
from .core_if import CoreInterface, LinkStatus, MemoryMap
from .framing import FRAME_CRC, FrameReceiver
from .uart import UARTRx, UARTTx, _check_divisor

__all__ = ["IMAGE_CRC", "HostLink"]

#: Image check: CRC-32/ISO-HDLC (zlib.crc32), one byte per cycle.
IMAGE_CRC = crc.catalog.CRC32_ISO_HDLC(data_width=8)

_OUTPUT_HEADER = 1 + 8          # status, status word 0, out_count


def _u32(value, name):
    if not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise ValueError(f"{name} must be an int in 0..2**32-1, not {value!r}")


class HostLink(wiring.Component):
    """UART host link with a command engine driving a core.

    Parameters
    ----------
    memory_map : MemoryMap
        The core's image memories.
    clk_hz : int
        Clock frequency (reported to the host; with ``divisor`` it fixes the baud rate).
    divisor : int
        Clock cycles per UART bit (see :func:`~boards.link.uart.divisor_for`).
    max_payload : int
        Largest request payload (bytes); also bounds the data in an OUTPUT response.
    out_depth : int
        Bytes of output buffered for the host (a power of two); the core stalls beyond.
    frame_timeout : int
        Cycles of silence after which a partial frame is dropped (default 50 ms).
    stall_timeout : int
        Cycles the link waits for the core to take an image byte or an input byte (1 s).
    count_bits : int
        Width of the input and output byte counters (a run moves less than ``2**count_bits``
        bytes each way).
    board_id, rows, cols : int
        Reported by INFO so the host can check what it talks to.
    model_valid : bool
        Whether the core's images hold a model at configuration (baked into block RAM).
    model_tag : int
        The tag of that model (see COMMIT).
    """

    def __init__(self, memory_map, *, clk_hz, divisor, max_payload=512, out_depth=1024,
                 frame_timeout=None, stall_timeout=None, count_bits=24, board_id=0, rows=0,
                 cols=0, model_valid=False, model_tag=0):
        if not isinstance(memory_map, MemoryMap):
            raise TypeError(f"memory_map must be a MemoryMap, not {memory_map!r}")
        _u32(clk_hz, "clk_hz")
        _check_divisor(divisor)
        if not isinstance(max_payload, int) or not 64 <= max_payload <= 0xFFFF:
            raise ValueError(f"max_payload must be an int in 64..65535, not {max_payload!r}")
        if (not isinstance(out_depth, int) or out_depth < 16 or out_depth > 1 << 24
                or out_depth & (out_depth - 1)):
            raise ValueError(f"out_depth must be a power of two in 16..2**24, not {out_depth!r}")
        if frame_timeout is None:
            frame_timeout = max(clk_hz // 20, 40 * divisor)        # 50 ms
        if stall_timeout is None:
            stall_timeout = max(clk_hz, 1000)                      # 1 s
        for name, value in (("frame_timeout", frame_timeout), ("stall_timeout", stall_timeout)):
            _u32(value, name)
            if value < 1:
                raise ValueError(f"{name} must be at least 1 cycle, not {value!r}")
        if frame_timeout < 12 * divisor:
            raise ValueError(f"frame_timeout ({frame_timeout} cycles) must exceed one byte time "
                             f"on the line ({10 * divisor} cycles) with margin: at least "
                             f"{12 * divisor}")
        if not isinstance(count_bits, int) or not 8 <= count_bits <= 32:
            raise ValueError(f"count_bits must be an int in 8..32, not {count_bits!r}")
        if out_depth > 1 << (count_bits - 1):
            raise ValueError(f"out_depth {out_depth} needs count_bits > {count_bits}")
        for name, value in (("board_id", board_id), ("rows", rows), ("cols", cols)):
            if not isinstance(value, int) or not 0 <= value <= 255:
                raise ValueError(f"{name} must be an int in 0..255, not {value!r}")
        _u32(model_tag, "model_tag")
        self.memory_map = memory_map
        self.clk_hz, self.divisor = clk_hz, divisor
        self.max_payload, self.out_depth = max_payload, out_depth
        self.frame_timeout, self.stall_timeout = frame_timeout, stall_timeout
        self.count_bits = count_bits
        self.board_id, self.rows, self.cols = board_id, rows, cols
        self.model_valid, self.model_tag = bool(model_valid), model_tag
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "status": Out(LinkStatus()),
            "core": Out(CoreInterface(memory_map)),
        })

    @property
    def baud(self):
        return self.clk_hz / self.divisor

    def info_words(self):
        """The 32-bit words of the INFO response after its status byte."""
        mm = self.memory_map
        words = [VERSION | self.board_id << 8 | self.rows << 16 | self.cols << 24,
                 self.max_payload | len(mm.regions) << 16,
                 self.out_depth, self.clk_hz, self.frame_timeout, self.stall_timeout]
        for region in mm:
            words += [region.width, region.depth]
        return words

    def elaborate(self, platform):
        m = Module()
        mm = self.memory_map
        core = self.core
        n_regions = len(mm.regions)

        # --- bytes in and out -----------------------------------------------------------------
        m.submodules.uart_rx = uart_rx = UARTRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTx(self.divisor)
        m.submodules.rx_fifo = rx_fifo = SyncFIFOBuffered(width=8, depth=16)
        m.submodules.framer = framer = FrameReceiver(max_payload=self.max_payload,
                                                     timeout=self.frame_timeout)
        m.d.comb += uart_rx.rx.eq(self.rx)
        wiring.connect(m, uart_rx.o, rx_fifo.w_stream)
        wiring.connect(m, rx_fifo.r_stream, framer.i)
        m.d.comb += [self.tx.eq(uart_tx.tx),
                     self.status.rx.eq(uart_rx.o.valid & uart_rx.o.ready),
                     self.status.tx.eq(uart_tx.i.valid & uart_tx.i.ready)]
        frame = framer.frame.payload

        # --- state ----------------------------------------------------------------------------
        iw = max(mm.max_capacity, 1).bit_length()       # image byte counters
        cw = self.count_bits                            # stream byte counters
        model_valid = Signal(init=self.model_valid, reset_less=True)
        model_tag = Signal(32, init=self.model_tag, reset_less=True)
        verified = Signal(n_regions)
        loading = Signal()
        region = Signal(3)
        capacity = Signal(iw)
        fill = Signal(iw)                   # image bytes received
        remaining = Signal(iw)              # image bytes still expected
        expect_crc = Signal(32)
        word_bytes_m1 = Signal(mm.lane_width)
        lane = Signal(mm.lane_width)
        waddr = Signal(mm.addr_width)

        running = Signal()
        done = Signal()
        stalled = Signal()
        runs = Signal(16)
        run_cycles = Signal(32)
        in_count = Signal(cw)
        written = Signal(cw)                # output bytes produced since RUN
        released = Signal(cw)               # output bytes the host has acknowledged
        frame_errors = Signal(16)
        rx_errors = Signal(16)
        last_error = Signal(8)

        args = Signal(72)                   # the first 9 payload bytes
        offset = args[:32]
        ptr = Signal(range(self.max_payload + 1))
        stall = Signal(range(self.stall_timeout + 1))
        exp_len = Signal(8)                 # expected (or minimum) payload length
        last_arg = Signal(4)                # index of the last byte copied into ``args``
        fixed_len = Signal()
        known = Signal()
        flag_a, flag_b = Signal(), Signal()     # conditions registered for the next state
        avail = Signal(cw)

        m.d.comb += [
            self.status.model_valid.eq(model_valid), self.status.busy.eq(running),
            self.status.done.eq(done), self.status.loading.eq(loading),
        ]
        with m.If((uart_rx.error | uart_rx.overrun) & (rx_errors != 0xFFFF)):
            m.d.sync += rx_errors.eq(rx_errors + 1)
        with m.If(running):
            m.d.sync += run_cycles.eq(run_cycles + 1)
        with m.If(core.done):
            m.d.sync += [running.eq(0), done.eq(1)]

        # --- output ring: results kept until the host asks beyond them ------------------------
        k = self.out_depth.bit_length() - 1
        m.submodules.ring = ring = memory.Memory(shape=8, depth=self.out_depth, init=[])
        ring_w, ring_r = ring.write_port(), ring.read_port()
        ring_ptr = Signal(k)
        level = Signal(k + 1)
        m.d.comb += [
            level.eq(written[:k + 1] - released[:k + 1]),
            core.act_out.ready.eq(~level[k]),
            ring_w.addr.eq(written[:k]), ring_w.data.eq(core.act_out.payload),
            ring_w.en.eq(core.act_out.valid & core.act_out.ready),
            ring_r.addr.eq(ring_ptr),
        ]
        with m.If(ring_w.en):
            m.d.sync += written.eq(written + 1)
        ring_byte = Signal(8)               # block RAM output, registered before use
        m.d.sync += ring_byte.eq(ring_r.data)

        # --- image bytes to the core ----------------------------------------------------------
        m.submodules.image_crc = image_crc = IMAGE_CRC.create()
        wr = core.write
        pl = framer.payload
        byte = Signal(8)                    # the payload byte being handed to the core
        m.d.comb += [wr.payload.region.eq(region), wr.payload.addr.eq(waddr),
                     wr.payload.lane.eq(lane), wr.payload.data.eq(byte),
                     core.act_in.payload.eq(byte), image_crc.data.eq(byte),
                     pl.addr.eq(ptr), pl.en.eq(1)]

        # --- response words: every value a response can carry, each once -------------------
        flags = Cat(model_valid, running, done, loading, stalled, Const(0, 3))
        pool = {
            "zero": Const(0, 8), "length": exp_len, "max_payload": Const(self.max_payload, 16),
            "n_regions": Const(n_regions, 8), "cmd": frame.cmd, "fill": fill,
            "capacity": capacity, "word_bytes": word_bytes_m1 + 1,
            "verified": verified, "crc": image_crc.crc, "released": released,
            "in_count": in_count, "written": written, "runs": runs, "model_tag": model_tag,
            "run_cycles": run_cycles, "core_cycles": core.cycles,
            "status0": Cat(flags, verified, Const(0, 8 - n_regions), last_error),
            "errors": Cat(frame_errors, rx_errors),
        }
        for i, w in enumerate(self.info_words()):
            pool[f"info{i}"] = Const(w, 32)
        sel = {name: i for i, name in enumerate(pool)}
        # The words of each kind of response, in order (a generic one carries ``rsp_sel``).
        sequences = {
            "status": ["status0", "model_tag", "runs", "run_cycles", "core_cycles",
                       "in_count", "written", "errors"],
            "output": ["status0", "written"],
            "info": [f"info{i}" for i in range(len(self.info_words()))],
        }
        nwords = {"generic": 1, **{k: len(v) for k, v in sequences.items()}}
        kinds = list(nwords)

        wsel = Signal(range(len(pool)))
        word = Signal(32)
        with m.Switch(wsel):
            for i, value in enumerate(pool.values()):
                with m.Case(i):
                    m.d.comb += word.eq(value)

        # Response being sent.
        rsp_cmd = Signal(8)
        rsp_status = Signal(8)
        rsp_kind = Signal(range(len(kinds)))
        rsp_sel = Signal(range(len(pool)))
        witem = Signal(range(max(nwords.values()) + 1))
        rsp_len = Signal(16)
        ndata = Signal(range(self.max_payload + 1))
        m.submodules.tx_crc = tx_crc = FRAME_CRC.create()
        phase = Signal(range(5))            # header, status, words, data, crc
        count = Signal(range(max(self.max_payload, max(nwords.values())) + 1))
        bsub = Signal(2)
        tbyte = Signal(8)
        latch = Signal(32)

        def respond(status, arg="zero", kind="generic", n=0):
            m.d.sync += [rsp_status.eq(status), rsp_kind.eq(kinds.index(kind)),
                         rsp_sel.eq(sel[arg]), ndata.eq(n)]
            m.next = "RESPOND"

        # Cycles waiting for the core (act_in or write valid and not ready), registered.
        stall_hit = Signal()
        with m.If((core.act_in.valid & ~core.act_in.ready) | (wr.valid & ~wr.ready)):
            m.d.sync += [stall.eq(stall + 1), stall_hit.eq(stall == self.stall_timeout - 1)]

        # Which pool word the response sends next (registered: it settles during TX_SEND).
        with m.Switch(rsp_kind):
            with m.Case(kinds.index("generic")):
                m.d.sync += wsel.eq(rsp_sel)
            for kind, names in sequences.items():
                with m.Case(kinds.index(kind)):
                    with m.Switch(witem):
                        for i, name in enumerate(names):
                            with m.Case(i):
                                m.d.sync += wsel.eq(sel[name])

        with m.FSM():
            with m.State("IDLE"):
                with m.If(framer.frame.valid):
                    m.d.sync += [rsp_cmd.eq(frame.cmd | RESPONSE), ptr.eq(0), args.eq(0)]
                    with m.If(frame.status != Status.OK):
                        with m.If(frame_errors != 0xFFFF):
                            m.d.sync += frame_errors.eq(frame_errors + 1)
                        m.d.sync += [
                            rsp_status.eq(frame.status), rsp_kind.eq(kinds.index("generic")),
                            rsp_sel.eq(Mux(frame.status == Status.ERR_LENGTH,
                                           sel["max_payload"], sel["zero"])),
                            ndata.eq(0)]
                        m.next = "RESPOND"
                    with m.Else():
                        m.next = "DECODE"

            with m.State("DECODE"):
                m.d.sync += [known.eq(0), fixed_len.eq(1), exp_len.eq(0)]
                with m.Switch(frame.cmd):
                    for cmd, n in {**PAYLOAD_LENGTH, **MIN_PAYLOAD_LENGTH}.items():
                        with m.Case(cmd):
                            m.d.sync += [known.eq(1), exp_len.eq(n),
                                         fixed_len.eq(cmd in PAYLOAD_LENGTH)]
                m.d.sync += [last_arg.eq(Mux(frame.length > 9, 8, frame.length - 1)),
                             flag_b.eq(frame.length == 0)]
                m.next = "LENGTH_COMPARE"
            with m.State("LENGTH_COMPARE"):
                m.d.sync += flag_a.eq(Mux(fixed_len, frame.length != exp_len,
                                          frame.length < exp_len))
                m.next = "CHECK_LENGTH"
            with m.State("CHECK_LENGTH"):
                with m.If(~known):
                    respond(Status.ERR_UNKNOWN, "cmd")
                with m.Elif(flag_a):
                    respond(Status.ERR_LENGTH, "length")
                with m.Elif(flag_b):
                    m.next = "EXECUTE"
                with m.Else():
                    m.next = "ARG_FETCH"

            # Copy the first (up to) 9 payload bytes into ``args``.
            with m.State("ARG_FETCH"):
                m.next = "ARG_USE"
            with m.State("ARG_USE"):
                m.d.sync += [args.word_select(ptr[:4], 8).eq(pl.data), ptr.eq(ptr + 1)]
                with m.If(ptr[:4] == last_arg):
                    m.next = "EXECUTE"
                with m.Else():
                    m.next = "ARG_FETCH"

            with m.State("EXECUTE"):
                m.d.sync += ptr.eq(4)
                with m.Switch(frame.cmd):
                    with m.Case(Cmd.INFO):
                        respond(Status.OK, kind="info")
                    with m.Case(Cmd.STATUS):
                        respond(Status.OK, kind="status")
                    with m.Case(Cmd.DISCARD):
                        m.d.sync += [verified.eq(0), loading.eq(0)]
                        respond(Status.OK)
                    with m.Case(Cmd.LOAD_BEGIN):
                        m.next = "BEGIN_REGION"
                    with m.Case(Cmd.LOAD_DATA):
                        m.d.sync += [flag_a.eq((offset[:iw] == fill) & (offset[iw:] == 0)),
                                     flag_b.eq(frame.length - 4 <= remaining)]
                        m.next = "DATA_CHECK"
                    with m.Case(Cmd.LOAD_END):
                        m.d.sync += [flag_a.eq(image_crc.crc == expect_crc),
                                     flag_b.eq(remaining == 0)]
                        m.next = "END_CHECK"
                    with m.Case(Cmd.COMMIT):
                        m.next = "COMMIT"
                    with m.Case(Cmd.RUN):
                        m.next = "RUN"
                    with m.Case(Cmd.INPUT):
                        m.d.sync += flag_a.eq((offset[:cw] == in_count) & (offset[cw:] == 0))
                        m.next = "INPUT_CHECK"
                    with m.Case(Cmd.OUTPUT):
                        high = offset[cw:] != 0
                        m.d.sync += [flag_a.eq(~high & (offset[:cw] < released)),
                                     flag_b.eq(high | (offset[:cw] > written))]
                        m.next = "OUTPUT_CHECK"

            # LOAD_BEGIN region u8, length u32, crc32 u32
            with m.State("BEGIN_REGION"):
                with m.If(args[:8] >= n_regions):
                    respond(Status.ERR_REGION, "n_regions")
                with m.Else():
                    with m.Switch(args[:3]):
                        for r in mm:
                            with m.Case(r.code):
                                m.d.sync += [capacity.eq(r.capacity),
                                             word_bytes_m1.eq(r.word_bytes - 1)]
                    m.next = "BEGIN_COMPARE"
            with m.State("BEGIN_COMPARE"):
                m.d.sync += flag_a.eq((args[8 + iw:40] != 0) | (args[8:8 + iw] > capacity))
                m.next = "BEGIN_SIZE"
            with m.State("BEGIN_SIZE"):
                with m.If(flag_a):
                    respond(Status.ERR_TOO_LARGE, "capacity")
                with m.Else():
                    m.d.comb += image_crc.start.eq(1)
                    m.d.sync += [
                        region.eq(args[:3]), remaining.eq(args[8:40]), fill.eq(0),
                        expect_crc.eq(args[40:72]), waddr.eq(0), lane.eq(0), loading.eq(1),
                        verified.bit_select(args[:3], 1).eq(0),
                    ]
                    respond(Status.OK, "capacity")

            # LOAD_DATA offset u32, bytes
            with m.State("DATA_CHECK"):
                with m.If(~loading):
                    respond(Status.ERR_STATE)
                with m.Elif(~flag_a):
                    respond(Status.ERR_SEQUENCE, "fill")
                with m.Elif(~flag_b):
                    respond(Status.ERR_TOO_LARGE, "fill")
                with m.Else():
                    m.next = "DATA_FETCH"
            with m.State("DATA_FETCH"):
                with m.If(ptr == frame.length):
                    respond(Status.OK, "fill")
                with m.Else():
                    m.next = "DATA_LOAD"
            with m.State("DATA_LOAD"):
                m.d.sync += [byte.eq(pl.data), wr.valid.eq(1), stall_hit.eq(0), stall.eq(0)]
                m.next = "DATA_USE"
            with m.State("DATA_USE"):
                with m.If(wr.ready):
                    m.d.comb += image_crc.valid.eq(1)
                    m.d.sync += [fill.eq(fill + 1), remaining.eq(remaining - 1),
                                 ptr.eq(ptr + 1), wr.valid.eq(0)]
                    with m.If(lane == word_bytes_m1):
                        m.d.sync += [lane.eq(0), waddr.eq(waddr + 1)]
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
                    m.next = "DATA_FETCH"
                with m.Elif(stall_hit):
                    m.d.sync += [loading.eq(0), wr.valid.eq(0)]
                    respond(Status.ERR_STALL, "fill")

            # LOAD_END
            with m.State("END_CHECK"):
                with m.If(~loading):
                    respond(Status.ERR_STATE)
                with m.Elif(~flag_b):
                    respond(Status.ERR_INCOMPLETE, "fill")
                with m.Elif(lane != 0):
                    m.d.sync += loading.eq(0)
                    respond(Status.ERR_LENGTH, "word_bytes")
                with m.Elif(~flag_a):
                    m.d.sync += loading.eq(0)
                    respond(Status.ERR_IMAGE_CRC, "crc")
                with m.Else():
                    m.d.sync += [loading.eq(0), verified.bit_select(region, 1).eq(1)]
                    respond(Status.OK, "crc")

            # COMMIT tag u32
            with m.State("COMMIT"):
                with m.If(running | core.busy):
                    respond(Status.ERR_BUSY)
                with m.Elif(verified != (1 << n_regions) - 1):
                    respond(Status.ERR_NOT_STAGED, "verified")
                with m.Else():
                    m.d.comb += core.commit.eq(1)
                    m.d.sync += [model_valid.eq(1), model_tag.eq(args[:32]), verified.eq(0),
                                 loading.eq(0)]
                    respond(Status.OK, "model_tag")

            # RUN segment u8
            with m.State("RUN"):
                with m.If(~model_valid):
                    respond(Status.ERR_NO_MODEL)
                with m.Elif(running | core.busy):
                    respond(Status.ERR_BUSY)
                with m.Else():
                    m.d.comb += [core.start.eq(1), core.segment.eq(args[:8])]
                    m.d.sync += [running.eq(1), done.eq(0), stalled.eq(0), runs.eq(runs + 1),
                                 run_cycles.eq(0), in_count.eq(0), written.eq(0),
                                 released.eq(0)]
                    respond(Status.OK, "runs")

            # INPUT offset u32, bytes
            with m.State("INPUT_CHECK"):
                with m.If(~running):
                    respond(Status.ERR_NOT_RUNNING)
                with m.Elif(~flag_a):
                    respond(Status.ERR_SEQUENCE, "in_count")
                with m.Else():
                    m.next = "INPUT_FETCH"
            with m.State("INPUT_FETCH"):
                with m.If(ptr == frame.length):
                    respond(Status.OK, "in_count")
                with m.Else():
                    m.next = "INPUT_LOAD"
            with m.State("INPUT_LOAD"):
                m.d.sync += [byte.eq(pl.data), core.act_in.valid.eq(1), stall_hit.eq(0),
                             stall.eq(0)]
                m.next = "INPUT_USE"
            with m.State("INPUT_USE"):
                with m.If(core.act_in.ready):
                    m.d.sync += [in_count.eq(in_count + 1), ptr.eq(ptr + 1),
                                 core.act_in.valid.eq(0)]
                    m.next = "INPUT_FETCH"
                with m.Elif(stall_hit):
                    m.d.sync += [stalled.eq(1), core.act_in.valid.eq(0)]
                    respond(Status.ERR_STALL, "in_count")

            # OUTPUT offset u32, max u16
            room = self.max_payload - _OUTPUT_HEADER
            with m.State("OUTPUT_CHECK"):
                with m.If(flag_a):
                    respond(Status.ERR_SEQUENCE, "released")
                with m.Elif(flag_b):
                    respond(Status.ERR_SEQUENCE, "written")
                with m.Else():
                    m.d.sync += [released.eq(offset), ring_ptr.eq(offset),
                                 avail.eq(written - offset[:cw])]
                    m.next = "OUTPUT_LIMIT"
            with m.State("OUTPUT_LIMIT"):
                m.d.sync += args[32:48].eq(Mux(args[32:48] < room, args[32:48], room))
                m.next = "OUTPUT_SIZE"
            with m.State("OUTPUT_SIZE"):
                m.d.sync += avail.eq(Mux(avail < args[32:48], avail, args[32:48]))
                m.next = "OUTPUT_RESPOND"
            with m.State("OUTPUT_RESPOND"):
                respond(Status.OK, kind="output", n=avail)

            # Send the response: SYNC CMD LEN, status, words, data, CRC.
            with m.State("RESPOND"):
                nw = Signal(8)
                with m.Switch(rsp_kind):
                    for i, kind in enumerate(kinds):
                        with m.Case(i):
                            m.d.comb += nw.eq(nwords[kind])
                m.d.sync += [rsp_len.eq(1 + 4 * nw + ndata), phase.eq(0), count.eq(nw),
                             bsub.eq(0), witem.eq(0)]
                with m.If(rsp_status != Status.OK):
                    m.d.comb += self.status.error.eq(1)
                    m.d.sync += last_error.eq(rsp_status)
                m.next = "TX_PREP"
            with m.State("TX_PREP"):
                with m.Switch(phase):
                    with m.Case(0):
                        with m.Switch(bsub):
                            for i, value in enumerate((SYNC, rsp_cmd, rsp_len[:8],
                                                       rsp_len[8:])):
                                with m.Case(i):
                                    m.d.sync += tbyte.eq(value)
                    with m.Case(1):
                        m.d.sync += tbyte.eq(rsp_status)
                    with m.Case(2):
                        with m.If(bsub == 0):              # latch each word whole
                            m.d.sync += [tbyte.eq(word[:8]), latch.eq(word)]
                        with m.Else():
                            m.d.sync += tbyte.eq(latch.word_select(bsub, 8))
                    with m.Case(3):
                        m.d.sync += [tbyte.eq(ring_byte), ring_ptr.eq(ring_ptr + 1)]
                    with m.Case(4):
                        m.d.sync += tbyte.eq(Mux(bsub == 0, tx_crc.crc[8:], tx_crc.crc[:8]))
                m.next = "TX_SEND"
            with m.State("TX_SETTLE"):             # wsel follows witem
                m.next = "TX_PREP"
            with m.State("TX_SEND"):
                first = (phase == 0) & (bsub == 0)
                m.d.comb += [uart_tx.i.valid.eq(1), uart_tx.i.payload.eq(tbyte),
                             tx_crc.data.eq(tbyte), tx_crc.start.eq(first)]
                with m.If(uart_tx.i.ready):
                    m.d.comb += tx_crc.valid.eq(~first & (phase != 4))
                    m.d.sync += bsub.eq(bsub + 1)
                    m.next = "TX_SETTLE"
                    with m.Switch(phase):
                        with m.Case(0):
                            with m.If(bsub == 3):
                                m.d.sync += phase.eq(1)
                        with m.Case(1):
                            m.d.sync += bsub.eq(0)
                            with m.If(count != 0):
                                m.d.sync += phase.eq(2)
                            with m.Elif(ndata != 0):
                                m.d.sync += [phase.eq(3), count.eq(ndata)]
                            with m.Else():
                                m.d.sync += phase.eq(4)
                        with m.Case(2):
                            with m.If(bsub == 3):
                                m.d.sync += [witem.eq(witem + 1), count.eq(count - 1)]
                                with m.If(count == 1):
                                    with m.If(ndata != 0):
                                        m.d.sync += [phase.eq(3), count.eq(ndata)]
                                    with m.Else():
                                        m.d.sync += [phase.eq(4), bsub.eq(0)]
                        with m.Case(3):
                            m.d.sync += count.eq(count - 1)
                            with m.If(count == 1):
                                m.d.sync += [phase.eq(4), bsub.eq(0)]
                        with m.Case(4):
                            with m.If(bsub == 1):
                                m.d.comb += framer.frame.ready.eq(1)
                                m.next = "IDLE"
        return m
