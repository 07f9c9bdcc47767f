"""The board side of the host link: UART, frame receiver and command engine.

:class:`HostLink` executes the requests of ``docs/host_link.md`` against a core through a
:class:`~boards.link.core_if.CoreInterface`. Image uploads are staged: bytes go to the core's
staging copy, each region is checked (length and CRC-32) by ``LOAD_END``, and only ``COMMIT``
with all five regions verified makes them active. Whatever goes wrong before that (a damaged
or truncated frame, an oversized or corrupted image, a reset), the committed model stays.

The engine is built to be small on an iCE40 (the UART leaves at least 40 cycles per byte):
CRCs are bit-serial (one CRC-16 register checks requests and makes responses), block RAMs
have no read-during-write logic, counters are only as wide as the memories and streams need,
request arguments and response words share one shift register, and every value a response can
carry comes from one shared word multiplexer.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import crc, memory, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..protocol import MIN_PAYLOAD_LENGTH, PAYLOAD_LENGTH, SYNC, VERSION, Cmd, Status
from .core_if import CoreInterface, LinkStatus, MemoryMap
from .framing import FrameReceiver
from .serial import SerialCRC, gt_const
from .uart import UARTRx, UARTTx, _check_divisor

__all__ = ["IMAGE_CRC", "HostLink"]

#: Image check: CRC-32/ISO-HDLC (zlib.crc32), the reference; the gateware computes it
#: bit-serially (:class:`~boards.link.serial.SerialCRC`).
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
                                                     timeout=self.frame_timeout,
                                                     hold_timeout=self.stall_timeout)
        m.d.comb += uart_rx.rx.eq(self.rx)
        wiring.connect(m, uart_rx.o, rx_fifo.w_stream)
        wiring.connect(m, rx_fifo.r_stream, framer.i)
        m.d.comb += [self.tx.eq(uart_tx.tx),
                     self.status.rx.eq(uart_rx.o.valid & uart_rx.o.ready),
                     self.status.tx.eq(uart_tx.i.valid & uart_tx.i.ready)]
        frame = framer.frame.payload
        lw = self.max_payload.bit_length()
        length = frame.length[:lw]          # a valid LEN is at most max_payload

        # --- state ----------------------------------------------------------------------------
        iw = max(mm.max_capacity, 1).bit_length()       # image byte counters
        cw = self.count_bits                            # stream byte counters
        k = self.out_depth.bit_length() - 1             # output ring address bits
        model_valid = Signal(init=self.model_valid, reset_less=True)
        model_tag = Signal(32, init=self.model_tag, reset_less=True)
        verified = Signal(n_regions)
        loading = Signal()
        region = Signal(3)                  # region of the open load
        region_arg = Signal(3)              # region named by the last LOAD_BEGIN
        region_bad = Signal()
        fill = Signal(iw)                   # image bytes received
        remaining = Signal(iw)              # image bytes still expected
        expect_crc = Signal(32)
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
        last_error = Signal(4)              # status codes are 0..15

        # ``args``: request arguments shifted in from the payload (little-endian, the last
        # byte read ends up in bits 24..31); later the word being sent, shifted out bytewise.
        args = Signal(32)
        offset = args
        ptr = Signal(range(self.max_payload + 1))
        nbit = Signal(3)                    # bit of a byte going into a serial CRC
        stall_hit = framer.hold_timed_out       # cycles waiting for the core, counted by
        #                                         the framer's idle counter (free while held)
        flag_lt, flag_hi = Signal(), Signal()
        avail = Signal(k + 2)
        big, seq_data, much, incomplete, crc_bad, seq_input, high = (
            Signal(name=n) for n in ("big", "seq_data", "much", "incomplete", "crc_bad",
                                     "seq_input", "high"))
        diff = Signal(cw + 1)

        m.d.comb += [
            self.status.model_valid.eq(model_valid), self.status.busy.eq(running),
            self.status.done.eq(done), self.status.loading.eq(loading),
        ]
        with m.If((uart_rx.error | uart_rx.overrun) & (rx_errors != 0xFFFF)):
            m.d.sync += rx_errors.eq(rx_errors + 1)
        # RUN and COMMIT reach the core from flip-flops, a cycle after EXECUTE decided them.
        start, commit = Signal(), Signal()
        m.d.sync += [start.eq(0), commit.eq(0)]
        m.d.comb += [core.start.eq(start), core.commit.eq(commit)]
        with m.If(start):
            m.d.sync += [running.eq(1), run_cycles.eq(0)]
        with m.Elif(running):
            m.d.sync += run_cycles.eq(run_cycles + 1)
        with m.If(core.done):
            m.d.sync += [running.eq(0), done.eq(1)]

        # --- output ring: results kept until the host asks beyond them ------------------------
        # The byte at ``written`` is never the one read (the ring is full then, or the read
        # byte is not used): no read-during-write logic (``no_rw_check``).
        m.submodules.ring = ring = memory.Memory(shape=8, depth=self.out_depth, init=[],
                                                 attrs={"no_rw_check": 1})
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

        # --- payload bytes to the core (the read port holds the byte at ``ptr``) ------------
        m.submodules.image_crc = image_crc = SerialCRC(32, 0x04C11DB7, 0xFFFFFFFF, reflect=True)
        image_crc_value = image_crc.value ^ 0xFFFFFFFF
        wr = core.write
        pl = framer.payload
        m.d.comb += [wr.payload.region.eq(region), wr.payload.addr.eq(waddr),
                     wr.payload.lane.eq(lane), wr.payload.data.eq(pl.data),
                     core.act_in.payload.eq(pl.data), core.segment.eq(args[24:]),
                     image_crc.data.eq(pl.data.bit_select(nbit, 1)),
                     pl.addr.eq(ptr), pl.en.eq(1)]

        # --- per-region constants -------------------------------------------------------------
        capacity = Signal(iw)               # of the region named by LOAD_BEGIN
        word_bytes = Signal(mm.lane_width + 1)      # of the open load
        last_lane = Signal(mm.lane_width)
        with m.Switch(region_arg):
            for r in mm:
                with m.Case(r.code):
                    m.d.comb += capacity.eq(r.capacity)
        with m.Switch(region):
            for r in mm:
                with m.Case(r.code):
                    m.d.comb += [word_bytes.eq(r.word_bytes), last_lane.eq(r.word_bytes - 1)]

        # --- the request's command ------------------------------------------------------------
        # Decoded once when the frame arrives (registered: the decisions below stay shallow).
        lengths = {**PAYLOAD_LENGTH, **MIN_PAYLOAD_LENGTH}
        known, fixed = Signal(), Signal()
        exp_len = Signal(4)                 # expected (or minimum) payload length, <= 9
        last_arg = Signal(3)                # index of the last payload byte read into args
        op = Signal(range(len(lengths) + 1))        # the command, as an index (0: unknown)
        opcode = {cmd: i + 1 for i, cmd in enumerate(lengths)}
        with m.If(framer.frame.valid & ~framer.frame.ready):
            m.d.sync += [known.eq(0), exp_len.eq(0), fixed.eq(0), last_arg.eq(0), op.eq(0)]
            with m.Switch(frame.cmd):
                for cmd, n in lengths.items():
                    with m.Case(cmd):
                        m.d.sync += [known.eq(1), exp_len.eq(n), fixed.eq(cmd in PAYLOAD_LENGTH),
                                     last_arg.eq({Cmd.LOAD_BEGIN: 4, Cmd.RUN: 0}.get(cmd, 3)),
                                     op.eq(opcode[cmd])]
        short = length[4:] == 0
        data_len = Signal(lw)               # LOAD_DATA's bytes (LEN >= 4 by then)
        with m.If(framer.frame.valid & ~framer.frame.ready):
            m.d.sync += data_len.eq(length - 4)
        if iw > lw:                         # LOAD_DATA: more bytes than the image has left
            too_much = (remaining[lw:] == 0) & (data_len > remaining[:lw])
        else:
            too_much = data_len > remaining
        bad_length = Mux(fixed, ~short | (length[:4] != exp_len), short & (length[:4] < exp_len))

        # --- response words: every value a response can carry, each once -------------------
        # A response is: header word (SYNC CMD LEN), the status byte, words, data, CRC-16.
        # Each goes through ``args``: loaded whole from ``word`` before its first byte.
        rsp_status = Signal(4)
        rsp_kind = Signal(2)
        rsp_sel = Signal(5)
        ndata = Signal(range(self.max_payload - _OUTPUT_HEADER + 1))
        witem = Signal(4)
        info = self.info_words()
        info_word = Signal(32)
        with m.Switch(witem):
            for i, w in enumerate(info):
                with m.Case(i):
                    m.d.comb += info_word.eq(w)
        sequences = {
            "status": ["status0", "model_tag", "runs", "run_cycles", "core_cycles",
                       "in_count", "written", "errors"],
            "output": ["status0", "written"],
            "info": ["info"] * len(info),
        }
        kinds = ["generic", "status", "output", "info"]
        nwords = {"generic": 1, **{kd: len(v) for kd, v in sequences.items()}}
        rsp_len = Signal(16)                # only OUTPUT responses carry data bytes
        with m.Switch(rsp_kind):
            for i, kind in enumerate(kinds):
                with m.Case(i):
                    base = 1 + 4 * nwords[kind]
                    m.d.comb += rsp_len.eq(ndata + base if kind == "output" else base)
        flags = Cat(model_valid, running, done, loading, stalled, Const(0, 3))
        fcrc = framer.crc
        pool = {
            "header": Cat(Const(SYNC, 8), frame.cmd[:7], Const(1, 1), rsp_len),
            "status": rsp_status, "crc16": Cat(fcrc[8:], fcrc[:8]), "info": info_word,
            "zero": Const(0, 8), "length": exp_len, "max_payload": Const(self.max_payload, 16),
            "n_regions": Const(n_regions, 8), "cmd": frame.cmd, "fill": fill,
            "capacity": capacity, "word_bytes": word_bytes,
            "verified": verified, "crc": image_crc_value, "released": released,
            "in_count": in_count, "written": written, "runs": runs, "model_tag": model_tag,
            "run_cycles": run_cycles, "core_cycles": core.cycles,
            "status0": Cat(flags, verified, Const(0, 8 - n_regions), last_error),
            "errors": Cat(frame_errors, rx_errors),
        }
        sel = {name: i for i, name in enumerate(pool)}
        wsel = Signal(range(len(pool)))
        word = Signal(32)                   # registered: settles in TX_WORD, used in TX_LOAD
        with m.Switch(wsel):
            for i, value in enumerate(pool.values()):
                with m.Case(i):
                    m.d.sync += word.eq(value)

        phase = Signal(range(5))            # header, status, words, data, crc
        bsub = Signal(2)
        tx_byte = Mux(phase == 3, ring_r.data, args[:8])
        last_word = Signal()
        with m.Switch(rsp_kind):
            for i, kind in enumerate(kinds):
                with m.Case(i):
                    m.d.comb += last_word.eq(witem == nwords[kind] - 1)
        # Which pool word the response sends next (registered: it settles in TX_SETTLE).
        with m.Switch(phase):
            with m.Case(0):
                m.d.sync += wsel.eq(sel["header"])
            with m.Case(1):
                m.d.sync += wsel.eq(sel["status"])
            with m.Case(2):
                with m.Switch(rsp_kind):
                    with m.Case(kinds.index("generic")):
                        m.d.sync += wsel.eq(rsp_sel)
                    for kind, names in sequences.items():
                        with m.Case(kinds.index(kind)):
                            with m.Switch(witem):
                                for i, name in enumerate(names):
                                    with m.Case(i):
                                        m.d.sync += wsel.eq(sel[name])
            with m.Default():
                m.d.sync += wsel.eq(sel["crc16"])

        def respond(status, arg="zero", kind="generic"):
            m.d.sync += [rsp_status.eq(status), rsp_kind.eq(kinds.index(kind)),
                         rsp_sel.eq(sel[arg])]
            if kind != "output":
                m.d.sync += ndata.eq(0)
            m.next = "RESPOND"

        m.d.comb += framer.hold_count.eq((core.act_in.valid & ~core.act_in.ready)
                                         | (wr.valid & ~wr.ready))

        def fetch_use(name, last, target, then):
            """States ``name``_FETCH/_USE: shift payload bytes ptr..``last`` into ``target``."""
            with m.State(name + "_FETCH"):
                m.next = name + "_USE"
            with m.State(name + "_USE"):
                m.d.sync += [target.eq(Cat(target[8:], pl.data)), ptr.eq(ptr + 1)]
                with m.If(ptr[:4] == last):
                    m.next = then
                with m.Else():
                    m.next = name + "_FETCH"

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += ptr.eq(0)
                with m.If(framer.frame.valid):
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
                with m.If(~known):
                    respond(Status.ERR_UNKNOWN, "cmd")
                with m.Elif(bad_length):
                    respond(Status.ERR_LENGTH, "length")
                with m.Elif(exp_len == 0):
                    m.next = "CHECK"
                with m.Else():
                    m.next = "ARG_FETCH"

            # Read the arguments: LOAD_BEGIN's region byte apart, then up to 4 bytes.
            with m.State("ARG_FETCH"):
                m.next = "ARG_USE"
            with m.State("ARG_USE"):
                m.d.sync += ptr.eq(ptr + 1)
                with m.If((op == opcode[Cmd.LOAD_BEGIN]) & (ptr == 0)):
                    m.d.sync += [region_arg.eq(pl.data[:3]),
                                 region_bad.eq(gt_const(pl.data, n_regions - 1))]
                with m.Else():
                    m.d.sync += args.eq(Cat(args[8:], pl.data))
                with m.If(ptr[:3] == last_arg):
                    m.next = "CHECK"
                with m.Else():
                    m.next = "ARG_FETCH"

            # The wide comparisons of EXECUTE, registered (their operands hold still).
            with m.State("CHECK"):
                m.d.sync += [
                    big.eq((args[iw:] != 0) | (args[:iw] > capacity)),
                    seq_data.eq((offset[:iw] != fill) | (offset[iw:] != 0)),
                    much.eq(too_much),
                    incomplete.eq(remaining != 0),
                    crc_bad.eq(image_crc_value != expect_crc),
                    seq_input.eq((offset[:cw] != in_count) | (offset[cw:] != 0)),
                    high.eq(offset[cw:] != 0),
                    diff.eq(offset[:cw] - released),
                ]
                m.next = "EXECUTE"

            with m.State("EXECUTE"):
                with m.Switch(op):
                    with m.Case(opcode[Cmd.INFO]):
                        respond(Status.OK, kind="info")
                    with m.Case(opcode[Cmd.STATUS]):
                        respond(Status.OK, kind="status")
                    with m.Case(opcode[Cmd.DISCARD]):
                        m.d.sync += [verified.eq(0), loading.eq(0)]
                        respond(Status.OK)
                    with m.Case(opcode[Cmd.LOAD_BEGIN]):
                        with m.If(region_bad):
                            respond(Status.ERR_REGION, "n_regions")
                        with m.Elif(big):
                            respond(Status.ERR_TOO_LARGE, "capacity")
                        with m.Else():
                            m.next = "BEGIN_FETCH"
                    with m.Case(opcode[Cmd.LOAD_DATA]):
                        with m.If(~loading):
                            respond(Status.ERR_STATE)
                        with m.Elif(seq_data):
                            respond(Status.ERR_SEQUENCE, "fill")
                        with m.Elif(much):
                            respond(Status.ERR_TOO_LARGE, "fill")
                        with m.Else():
                            m.next = "DATA_FETCH"
                    with m.Case(opcode[Cmd.LOAD_END]):
                        with m.If(~loading):
                            respond(Status.ERR_STATE)
                        with m.Elif(incomplete):
                            respond(Status.ERR_INCOMPLETE, "fill")
                        with m.Elif(lane != 0):
                            m.d.sync += loading.eq(0)
                            respond(Status.ERR_LENGTH, "word_bytes")
                        with m.Elif(crc_bad):
                            m.d.sync += loading.eq(0)
                            respond(Status.ERR_IMAGE_CRC, "crc")
                        with m.Else():
                            m.d.sync += [loading.eq(0), verified.bit_select(region, 1).eq(1)]
                            respond(Status.OK, "crc")
                    with m.Case(opcode[Cmd.COMMIT]):
                        with m.If(running | core.busy):
                            respond(Status.ERR_BUSY)
                        with m.Elif(verified != (1 << n_regions) - 1):
                            respond(Status.ERR_NOT_STAGED, "verified")
                        with m.Else():
                            m.d.sync += commit.eq(1)
                            m.d.sync += [model_valid.eq(1), model_tag.eq(args), verified.eq(0),
                                         loading.eq(0)]
                            respond(Status.OK, "model_tag")
                    with m.Case(opcode[Cmd.RUN]):
                        with m.If(~model_valid):
                            respond(Status.ERR_NO_MODEL)
                        with m.Elif(running | core.busy):
                            respond(Status.ERR_BUSY)
                        with m.Else():
                            m.d.sync += [start.eq(1), done.eq(0), stalled.eq(0),
                                         runs.eq(runs + 1), in_count.eq(0),
                                         written.eq(0), released.eq(0)]
                            respond(Status.OK, "runs")
                    with m.Case(opcode[Cmd.INPUT]):
                        with m.If(~running):
                            respond(Status.ERR_NOT_RUNNING)
                        with m.Elif(seq_input):
                            respond(Status.ERR_SEQUENCE, "in_count")
                        with m.Else():
                            m.next = "INPUT_FETCH"
                    with m.Case(opcode[Cmd.OUTPUT]):
                        # diff = offset - released: below zero, or beyond level
                        m.d.sync += [flag_lt.eq(~high & diff[cw]),
                                     flag_hi.eq(high | (diff[k + 1:cw] != 0)),
                                     avail.eq(diff[:k + 1])]
                        m.next = "OUTPUT_CHECK"

            # LOAD_BEGIN region u8, length u32, crc32 u32 (length checked, crc32 next)
            fetch_use("BEGIN", 8, expect_crc, "BEGIN_DONE")
            with m.State("BEGIN_DONE"):
                m.d.comb += image_crc.start.eq(1)
                m.d.sync += [
                    region.eq(region_arg), remaining.eq(args[:iw]), fill.eq(0),
                    waddr.eq(0), lane.eq(0), loading.eq(1),
                    verified.bit_select(region_arg, 1).eq(0),
                ]
                respond(Status.OK, "capacity")

            # LOAD_DATA offset u32, bytes: each byte to the core, then into the CRC-32
            with m.State("DATA_FETCH"):
                with m.If(ptr == length):
                    respond(Status.OK, "fill")
                with m.Else():
                    m.next = "DATA_LOAD"
            with m.State("DATA_LOAD"):
                m.d.comb += framer.hold_clear.eq(1)
                m.next = "DATA_USE"
            with m.State("DATA_USE"):
                m.d.comb += wr.valid.eq(1)
                with m.If(wr.ready):
                    m.d.sync += [fill.eq(fill + 1), remaining.eq(remaining - 1)]
                    with m.If(lane == last_lane):
                        m.d.sync += [lane.eq(0), waddr.eq(waddr + 1)]
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
                    m.next = "DATA_CRC"
                with m.Elif(stall_hit):
                    m.d.sync += loading.eq(0)
                    respond(Status.ERR_STALL, "fill")
            with m.State("DATA_CRC"):
                m.d.comb += image_crc.valid.eq(1)
                m.d.sync += nbit.eq(nbit + 1)
                with m.If(nbit == 7):
                    m.d.sync += ptr.eq(ptr + 1)
                    m.next = "DATA_FETCH"

            # INPUT offset u32, bytes
            with m.State("INPUT_FETCH"):
                with m.If(ptr == length):
                    respond(Status.OK, "in_count")
                with m.Else():
                    m.next = "INPUT_LOAD"
            with m.State("INPUT_LOAD"):
                m.d.comb += framer.hold_clear.eq(1)
                m.next = "INPUT_USE"
            with m.State("INPUT_USE"):
                m.d.comb += core.act_in.valid.eq(1)
                with m.If(core.act_in.ready):
                    m.d.sync += [in_count.eq(in_count + 1), ptr.eq(ptr + 1)]
                    m.next = "INPUT_FETCH"
                with m.Elif(stall_hit):
                    m.d.sync += stalled.eq(1)
                    respond(Status.ERR_STALL, "in_count")

            # OUTPUT offset u32, max u16
            room = self.max_payload - _OUTPUT_HEADER
            with m.State("OUTPUT_CHECK"):
                m.d.sync += avail.eq(level - avail[:k + 1])     # what is left beyond offset
                with m.If(flag_lt):
                    respond(Status.ERR_SEQUENCE, "released")
                with m.Elif(flag_hi):
                    respond(Status.ERR_SEQUENCE, "written")
                with m.Else():
                    m.next = "OUTPUT_LEFT"
            with m.State("OUTPUT_LEFT"):
                with m.If(avail[k + 1]):
                    respond(Status.ERR_SEQUENCE, "written")
                with m.Else():
                    m.d.sync += [released.eq(offset[:cw]), ring_ptr.eq(offset[:k])]
                    m.next = "MAX_FETCH"
            fetch_use("MAX", 5, args, "OUTPUT_LIMIT")
            with m.State("OUTPUT_LIMIT"):
                mx = args[16:32]
                if k + 1 < 16:
                    smaller = (mx[k + 1:] == 0) & (mx[:k + 1] < avail)
                else:
                    smaller = mx < avail
                with m.If(smaller):
                    m.d.sync += avail.eq(mx)
                m.next = "OUTPUT_SIZE"
            with m.State("OUTPUT_SIZE"):
                m.d.sync += ndata.eq(Mux(gt_const(avail, room), room, avail))
                respond(Status.OK, kind="output")

            # Send the response: SYNC CMD LEN, status, words, data, CRC.
            with m.State("RESPOND"):
                m.d.sync += [phase.eq(0), bsub.eq(0), witem.eq(0)]
                with m.If(rsp_status != Status.OK):
                    m.d.comb += self.status.error.eq(1)
                    m.d.sync += last_error.eq(rsp_status)
                m.next = "TX_SETTLE"
            with m.State("TX_SETTLE"):             # wsel follows phase and witem
                m.next = "TX_WORD"
            with m.State("TX_WORD"):               # word follows wsel
                m.next = "TX_LOAD"
            with m.State("TX_LOAD"):
                with m.If((bsub == 0) & (phase != 3)):
                    m.d.sync += args.eq(word)
                m.d.sync += nbit.eq(0)
                m.next = "TX_CRC"
            with m.State("TX_CRC"):                # CMD..data into the CRC-16, MSB first
                with m.If((phase == 0) & (bsub == 0)):
                    m.d.comb += framer.tx_start.eq(1)
                    m.next = "TX_SEND"
                with m.Elif(phase == 4):
                    m.next = "TX_SEND"
                with m.Else():
                    m.d.comb += [framer.tx_valid.eq(1),
                                 framer.tx_data.eq(tx_byte.bit_select(~nbit, 1))]
                    m.d.sync += nbit.eq(nbit + 1)
                    with m.If(nbit == 7):
                        m.next = "TX_SEND"
            with m.State("TX_SEND"):
                m.d.comb += [uart_tx.i.valid.eq(1), uart_tx.i.payload.eq(tx_byte)]
                with m.If(uart_tx.i.ready):
                    m.d.sync += [bsub.eq(bsub + 1), args.eq(Cat(args[8:], pl.data))]   # as ARG_USE
                    m.next = "TX_SETTLE"
                    with m.Switch(phase):
                        with m.Case(0):
                            with m.If(bsub == 3):
                                m.d.sync += phase.eq(1)
                        with m.Case(1):
                            m.d.sync += [phase.eq(2), bsub.eq(0)]
                        with m.Case(2):
                            with m.If(bsub == 3):
                                m.d.sync += witem.eq(witem + 1)
                                with m.If(last_word):
                                    with m.If(ndata != 0):
                                        m.d.sync += phase.eq(3)
                                    with m.Else():
                                        m.d.sync += phase.eq(4)
                        with m.Case(3):
                            m.d.sync += [ring_ptr.eq(ring_ptr + 1), ndata.eq(ndata - 1),
                                         bsub.eq(0)]
                            with m.If(ndata == 1):
                                m.d.sync += phase.eq(4)
                        with m.Case(4):
                            with m.If(bsub == 1):
                                m.d.comb += framer.frame.ready.eq(1)
                                m.next = "IDLE"
        return m
