"""The vector unit: the element-wise layers of a compiled model (``add``, global ``avgpool``,
``maxpool``; ``docs/spec.md`` sections 3.4-3.6) on int8 byte streams in C, H, W order, one
byte per cycle, bit-exact with :func:`compiler.golden.run_layer`.

A command (:data:`VectorCommand`, built from a manifest layer by :func:`vector_command`)
starts a job; :func:`vector_cycles` gives its exact length (``docs/hardware.md``, section
"Vector unit").
"""

from amaranth.hdl import Const, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from compiler.errors import SPSError

from .checks import check_int
from .output import ShiftCode, round_clamp, shift_code
from .registers import delayed

__all__ = ["OPS", "VectorCommand", "VectorUnit", "vector_command", "vector_command_layout",
           "vector_cycles"]

#: The ``op`` code of each layer kind.
OPS = {"add": 0, "avgpool": 1, "maxpool": 2}

#: Cycles from a slot's take to its result's write into the output queue (every op).
_LATENCY = 6
#: Output queue depth: the latency plus the two entries a steady stream keeps in it, plus one.
_QUEUE = _LATENCY + 3
#: Width of the requantized sum: a 24-bit channel sum times a 32-bit unsigned multiplier
#: (56 bits), plus a byte times the other multiplier (40 bits).
_SUM_BITS = 57


def vector_command_layout():
    """The layout of one vector-unit command; ``channels``, ``height``, ``width`` give the
    shape of the input tensor (``a``)."""
    return data.StructLayout({
        "op": unsigned(2),
        "channels": unsigned(16), "height": unsigned(16), "width": unsigned(16),
        "relu": unsigned(1),
        "mult_a": unsigned(32), "mult_b": unsigned(32), "shift": unsigned(6),
        "kernel": unsigned(2), "stride": unsigned(2), "pad": unsigned(1),
    })


#: The command layout (:func:`vector_command_layout`).
VectorCommand = vector_command_layout()


def vector_command(layer, channels=None, *, max_width=256):
    """The :data:`VectorCommand` field values (a dict) that run the manifest ``layer`` on
    ``channels`` of its channels (all by default; the first operand's shape is ``in_shape``).

    Raises :class:`~compiler.errors.SPSError` for a layer the unit cannot run (one whose
    maxpool rows are wider than ``max_width``, the unit's parameter, among others). An add
    must reach the unit in pieces of at most its ``chunk`` bytes (:class:`VectorUnit`).
    """
    name = layer.get("name", "?")

    def refuse(why):
        raise SPSError(f"layer {name!r}: {why}")

    def field(key, low, high):
        value = layer.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            refuse(f"{layer['op']} {key} {value!r} is outside {low}..{high}, "
                   f"which the vector unit runs")
        return value

    op = layer.get("op")
    if op not in OPS:
        refuse(f"op {op!r} does not run on the vector unit (add, avgpool and maxpool do)")
    shape = layer.get("in_shape")
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v < 1 << 16
                       for v in shape)):
        refuse(f"in_shape {shape!r} is not three sizes in 1..65535")
    c, h, w = shape
    if channels is not None:
        c = check_int("channels", channels, minimum=1, maximum=shape[0])
    command = dict.fromkeys(VectorCommand.members, 0)
    command.update(op=OPS[op], channels=c, height=h, width=w)
    if op in ("add", "avgpool"):
        if not isinstance(layer.get("relu"), bool):
            refuse(f"{op} relu {layer.get('relu')!r} is not a bool")
        command.update(relu=int(layer["relu"]), shift=field("shift", 1, 63))
    if op == "add":
        command.update(mult_a=field("mult_a", 1, 2**32 - 1), mult_b=field("mult_b", 1, 2**32 - 1))
    elif op == "avgpool":
        if h * w > 1 << 16:
            refuse(f"avgpool over {h} x {w} pixels: the vector unit sums at most 65536")
        command.update(mult_a=field("mult", 1, 2**32 - 1))
    else:
        k, s, p = field("kernel", 2, 3), field("stride", 1, 2), field("pad", 0, 1)
        if w > max_width:
            refuse(f"maxpool rows of {w} pixels exceed the vector unit's max_width {max_width}")
        if h + 2 * p < k or w + 2 * p < k:
            refuse(f"maxpool kernel {k} does not fit the padded {h} x {w} map")
        command.update(kernel=k, stride=s, pad=p)
    return command


def _pool_modes(k, s, p):
    """Whether a max-pool defers each line's padded last window to the next line's first
    position (``defer``), or appends a virtual position to each line (``extra``)."""
    return k == 3 and s == 1 and p == 1, k == 2 and s == 1 and p == 1


def vector_cycles(command):
    """The cycles ``busy`` is high for ``command`` (a :data:`VectorCommand` dict; it is taken
    in the cycle before the first) when ``a`` and ``b`` are always valid and ``out`` always
    ready: one setup cycle, one per input slot, then the pipeline and the output queue."""
    op, c, h, w = (command[key] for key in ("op", "channels", "height", "width"))
    n = c * h * w
    if op != OPS["maxpool"]:
        slots, fires = (2 * n if op == OPS["add"] else n), True
    else:
        k, s, p = command["kernel"], command["stride"], command["pad"]
        defer, extra = _pool_modes(k, s, p)
        slots = c * (h + extra) * (w + extra) + (w + 1 if defer else 0)
        oh, ow = ((size + 2 * p - k) // s + 1 for size in (h, w))
        # Whether the last slot completes a window (if not, the last result is out before
        # the last slot has left the pipeline).
        fires = defer or extra or ((ow - 1) * s + k - 1 - p >= w - 1
                                   and (oh - 1) * s + k - 1 - p >= h - 1)
    # The last slot's result is written into the queue _LATENCY cycles after its take, and
    # taken from the queue two cycles later.
    return 1 + slots + _LATENCY + (2 if fires else 1)


def _products(m, a, b, mult_a, mult_b):
    """``a * mult_a + b * mult_b`` (``a`` signed 24 bits, ``b`` signed 8, the multipliers
    unsigned 32) three cycles later: six registered products of at most 17 x 17 bits (a DSP
    block each), then three partial sums, then the total."""
    a_hi, a_lo = a[16:].as_signed(), a[:16]
    ma_hi, ma_lo, mb_hi, mb_lo = mult_a[16:], mult_a[:16], mult_b[16:], mult_b[:16]
    products = {"hh": a_hi * ma_hi, "hl": a_hi * ma_lo, "lh": a_lo * ma_hi,
                "ll": a_lo * ma_lo, "bh": b * mb_hi, "bl": b * mb_lo}
    p = {}
    for name, value in products.items():
        p[name] = Signal(value.shape(), name=f"product_{name}", reset_less=True)
        m.d.sync += p[name].eq(value)
    high, mid, low = (Signal(signed(n), name=name, reset_less=True)
                      for n, name in ((25, "sum_high"), (36, "sum_mid"), (35, "sum_low")))
    total = Signal(signed(_SUM_BITS), reset_less=True)
    m.d.sync += [high.eq(p["hh"]), mid.eq(p["hl"] + p["lh"] + p["bh"]),
                 low.eq(p["ll"] + p["bl"]),
                 total.eq((high << 32) + (mid << 16) + low)]
    return total


def _max(*values):
    best = values[0]
    for v in values[1:]:
        best = Mux(v > best, v, best)
    return best


class _Counter(Elaboratable):
    """A position ``0 .. span - 1`` with ``last`` kept in step (no comparator before its
    users); ``step`` moves on, wrapping after ``last``; ``restart`` rewinds."""

    def __init__(self, bits):
        self.restart, self.step = Signal(), Signal()
        self.span = Signal(bits)
        self.pos = Signal(bits)
        self.last = Signal()

    def elaborate(self, platform):
        m = Module()
        with m.If(self.restart | (self.step & self.last)):
            m.d.sync += [self.pos.eq(0), self.last.eq(self.span == 1)]
        with m.Elif(self.step):
            m.d.sync += [self.pos.eq(self.pos + 1), self.last.eq(self.pos + 2 == self.span)]
        return m


class _Axis(_Counter):
    """One axis of a max-pool walk (a row's columns, or a channel's rows, as positions of a
    ``span``-long line) and the window that completes at the current position.

    ``fire`` says a window completes; it takes the position's value (``m0``) and those one
    and two positions back (``m1``, ``m2``). A window normally completes at its last
    position. With ``early`` (pad 1, stride 2) a window reaching into the trailing padding
    completes at the line's last position; with ``defer`` (3x3, stride 1, pad 1) it completes
    at the next line's first position, taking the two positions before it. (A 2x2 stride-1
    pad-1 pool has a virtual last position of value -128 in its ``span`` instead.)
    ``long``: the line holds at least two real positions.
    """

    def __init__(self, bits):
        super().__init__(bits)
        self.long, self.k3, self.s2, self.early, self.defer = (Signal() for _ in range(5))
        self.first_gap = Signal(2)          # positions to the first window's end: k - 1 - p
        self.fire, self.m0, self.m1, self.m2 = (Signal() for _ in range(4))

    def elaborate(self, platform):
        m = super().elaborate(platform)
        gap = Signal(2)                     # positions to the next window's end
        back1, back2 = Signal(), Signal()   # one / two positions back are in this line
        pending = Signal()                  # the last line's deferred window
        normal = gap == 0
        early = self.early & self.last & (gap == 1)
        m.d.comb += [
            self.fire.eq(pending | normal | early),
            self.m0.eq(~pending),
            self.m1.eq(pending | (back1 & (normal | self.k3))),
            self.m2.eq(Mux(pending, self.long, normal & self.k3 & back2)),
        ]
        start = [gap.eq(self.first_gap), back1.eq(0), back2.eq(0)]
        with m.If(self.restart):
            m.d.sync += [*start, pending.eq(0)]
        with m.Elif(self.step & self.last):
            m.d.sync += [*start, pending.eq(self.defer)]
        with m.Elif(self.step):
            m.d.sync += [gap.eq(Mux(normal, self.s2, gap - 1)), back1.eq(1), back2.eq(back1),
                         pending.eq(0)]
        return m


class VectorUnit(wiring.Component):
    """Runs one :data:`VectorCommand` at a time (``cmd``, taken while ``busy`` is low) on the
    int8 streams ``a`` (and ``b`` for an add), all in C, H, W order; results leave on ``out``.

    - add: ``n = channels * height * width <= chunk`` bytes; all of ``a`` is first stored,
      then each byte of ``b`` gives ``clamp_r(rq(a * mult_a + b * mult_b, 1, shift))``;
    - avgpool: one result per channel, ``clamp_r(rq(sum, mult_a, shift))``;
    - maxpool: ``kernel`` x ``kernel`` windows, ``stride``, ``pad``, through two line
      buffers of ``max_width + 1`` bytes (``width <= max_width``).

    A command starts with one setup cycle; then a byte (or a maxpool's virtual slot) a cycle
    is taken while fewer than three results wait in the output queue, so no result is ever
    dropped and ``out.ready`` reaches no ``ready`` of ``a``/``b`` combinationally. A result
    is valid on ``out`` :attr:`latency` cycles after the byte that completes it is taken
    (add: the ``b`` byte; avgpool: the channel's last). :func:`vector_cycles` gives a job's
    cycles; a command must come from :func:`vector_command` (an add cut to ``chunk``).
    """

    #: Cycles from the take of a byte to its result's ``out.valid`` (every op).
    latency = _LATENCY + 2

    def __init__(self, *, max_width=256, chunk=2048):
        self.max_width = check_int("max_width", max_width, minimum=1, maximum=(1 << 16) - 1)
        self.chunk = check_int("chunk", chunk, minimum=1, maximum=1 << 16)
        super().__init__({
            "cmd": In(stream.Signature(VectorCommand)),
            "a": In(stream.Signature(signed(8))),
            "b": In(stream.Signature(signed(8))),
            "out": Out(stream.Signature(signed(8))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # The command, with what the walk derives from it, taken while idle.
        cfg = Signal(data.StructLayout({
            "add": 1, "max": 1, "relu": 1, "mult_a": 32, "mult_b": 32,
            "code": ShiftCode(_SUM_BITS), "channels": 16, "xspan": 17, "yspan": 17,
            "width": 16, "ow": 17, "ow1": 1, "ow2": 1, "wlong": 1, "hlong": 1, "k3": 1,
            "s2": 1, "early": 1, "defer": 1, "extra": 1, "first_gap": 2,
        }))
        cmd = self.cmd.payload
        take_cmd = self.cmd.valid & ~self.busy
        k3, s2, p1 = cmd.kernel == 3, cmd.stride == 2, cmd.pad
        defer, extra = k3 & ~s2 & p1, (cmd.kernel == 2) & ~s2 & p1
        last_col = (cmd.width + 2 * p1 - cmd.kernel) >> s2     # ow - 1
        with m.If(take_cmd):
            m.d.sync += [
                cfg.add.eq(cmd.op == OPS["add"]), cfg.max.eq(cmd.op == OPS["maxpool"]),
                cfg.relu.eq(cmd.relu),
                cfg.mult_a.eq(cmd.mult_a), cfg.mult_b.eq(cmd.mult_b),
                cfg.code.eq(shift_code(cmd.shift, _SUM_BITS)),
                cfg.channels.eq(cmd.channels), cfg.width.eq(cmd.width),
                cfg.xspan.eq(cmd.width + extra), cfg.yspan.eq(cmd.height + extra),
                cfg.ow.eq(last_col + 1), cfg.ow1.eq(last_col == 0), cfg.ow2.eq(last_col == 1),
                cfg.wlong.eq(cmd.width >= 2), cfg.hlong.eq(cmd.height >= 2),
                cfg.k3.eq(k3), cfg.s2.eq(s2), cfg.early.eq(p1 & s2),
                cfg.defer.eq(defer), cfg.extra.eq(extra),
                cfg.first_gap.eq(cmd.kernel - 1 - p1),
            ]
        m.d.comb += self.cmd.ready.eq(~self.busy)

        # Job control: a setup cycle, the walk over the input slots (for an add: a, then
        # b), then the drain of the pipeline and the output queue.
        setup, running, phase_b, ended = Signal(), Signal(), Signal(), Signal()
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=8, depth=_QUEUE)
        credit = queue.level < 3
        m.submodules.x = x = _Axis(17)
        m.submodules.y = y = _Counter(17)
        m.submodules.ch = ch = _Counter(16)
        flushing, flush_last = Signal(), Signal()
        flush = Signal(16)
        m.d.comb += [x.span.eq(cfg.xspan), x.long.eq(cfg.wlong), y.span.eq(cfg.yspan),
                     ch.span.eq(cfg.channels)]
        x_virtual, y_virtual = cfg.extra & x.last, cfg.extra & y.last
        real = ~flushing & ~x_virtual & ~y_virtual
        final = Mux(flushing, flush_last, ch.last & y.last & x.last & ~cfg.defer)
        go = Signal()
        m.d.comb += [
            go.eq(running & credit & (~real | Mux(phase_b, self.b.valid, self.a.valid))),
            self.a.ready.eq(running & credit & real & ~phase_b),
            self.b.ready.eq(running & credit & real & phase_b),
        ]
        switch = go & final & cfg.add & ~phase_b        # from a to b
        last_go = go & final & ~switch
        restart = setup | switch
        m.d.comb += [
            x.restart.eq(restart), y.restart.eq(restart), ch.restart.eq(restart),
            x.step.eq(go), y.step.eq(go & x.last), ch.step.eq(go & x.last & y.last),
        ]
        with m.If(restart):
            m.d.sync += flushing.eq(0)
        with m.Elif(go & ~flushing & ch.last & y.last & x.last & cfg.defer):
            m.d.sync += [flushing.eq(1), flush.eq(0), flush_last.eq(0)]
        with m.Elif(go & flushing):
            m.d.sync += [flush.eq(flush + 1), flush_last.eq(flush + 1 == cfg.width)]
        # The channel's first and last slot (avgpool).
        first = Signal()
        with m.If(restart | (go & x.last & y.last)):
            m.d.sync += first.eq(1)
        with m.Elif(go):
            m.d.sync += first.eq(0)

        with m.If(take_cmd):
            m.d.sync += [self.busy.eq(1), setup.eq(1), phase_b.eq(0)]
        with m.If(setup):
            m.d.sync += [setup.eq(0), running.eq(1)]
        with m.If(switch):
            m.d.sync += phase_b.eq(1)
        with m.If(last_go):
            m.d.sync += running.eq(0)
        # The last slot leaves the pipeline, then the queue empties.
        m.d.sync += ended.eq(ended | delayed(m, last_go, _LATENCY, "last"))
        taking_last = (queue.level == 1) & self.out.valid & self.out.ready
        with m.If(ended & ((queue.level == 0) | taking_last)):
            m.d.sync += [self.busy.eq(0), ended.eq(0)]

        # Stage 1: the slot's byte (-128 on a virtual slot) and position, registered.
        s1 = Signal(data.StructLayout({
            "valid": 1, "b": 1, "first": 1, "last": 1, "fire": 1, "m0": 1, "m1": 1, "m2": 1,
            "data": signed(8)}))
        m.d.sync += [
            s1.valid.eq(go), s1.b.eq(phase_b), s1.first.eq(first), s1.last.eq(x.last & y.last),
            s1.fire.eq(x.fire), s1.m0.eq(x.m0), s1.m1.eq(x.m1), s1.m2.eq(x.m2),
            s1.data.eq(Mux(real, Mux(phase_b, self.b.payload, self.a.payload), -128)),
        ]

        # add: a into the chunk memory, read as b arrives (the word is there at stage 1).
        m.submodules.chunk = chunk = memory.Memory(shape=signed(8), depth=self.chunk, init=[])
        chunk_wr, chunk_rd = chunk.write_port(), chunk.read_port()
        addr = Signal(range(self.chunk + 1))
        with m.If(restart):
            m.d.sync += addr.eq(0)
        with m.Elif(go):
            m.d.sync += addr.eq(addr + 1)
        m.d.comb += [chunk_wr.addr.eq(addr), chunk_wr.data.eq(self.a.payload),
                     chunk_wr.en.eq(go & cfg.add & ~phase_b), chunk_rd.addr.eq(addr)]

        # avgpool: the channel's running sum.
        acc = Signal(signed(24))
        acc_next = Signal(signed(24))
        m.d.comb += acc_next.eq(Mux(s1.first, 0, acc) + s1.data)
        with m.If(s1.valid):
            m.d.sync += acc.eq(acc_next)

        # Requantization. Stage 2: the operands (add: a from the memory, b; avgpool: the sum
        # at the channel's last byte); the products and their sum in three cycles; then the
        # rounding shift and the clamp (a register between them) into the queue.
        op1, op2 = Signal(signed(24), reset_less=True), Signal(signed(8), reset_less=True)
        m.d.sync += [op1.eq(Mux(cfg.add, chunk_rd.data, acc_next)),
                     op2.eq(Mux(cfg.add, s1.data, 0))]
        rq_valid = delayed(m, s1.valid & Mux(cfg.add, s1.b, s1.last), 5, "rq_valid")
        total = _products(m, op1, op2, cfg.mult_a, cfg.mult_b)
        rq = round_clamp(m, total, cfg.code, cfg.relu, "rq", register=True)

        # maxpool: the maximum of the window a slot completes (if any), first along its row,
        # then over its rows, one comparison per stage. Stage 2: the two bytes before.
        h1, h2 = Signal(signed(8)), Signal(signed(8))
        with m.If(s1.valid):
            m.d.sync += [h1.eq(s1.data), h2.eq(h1)]
        low = Const(-128, signed(8))
        part = data.StructLayout({"valid": 1, "m0": 1, "data": signed(8), "other": signed(8)})
        s2 = Signal(part)
        m.d.sync += [s2.valid.eq(s1.valid & s1.fire), s2.m0.eq(s1.m0), s2.data.eq(s1.data),
                     s2.other.eq(_max(Mux(s1.m1, h1, low), Mux(s1.m2, h2, low)))]
        # Stage 3: the row maximum; its column (each row gives ow of them) and row (the
        # vertical axis). The row maxima of the last two rows, by column, are read here.
        hm, hm_valid = Signal(signed(8)), Signal()
        m.d.sync += [hm_valid.eq(s2.valid), hm.eq(_max(Mux(s2.m0, s2.data, low), s2.other))]
        m.submodules.ox = ox = _Counter(17)
        m.submodules.oy = oy = _Axis(17)
        m.d.comb += [
            ox.span.eq(cfg.ow), ox.restart.eq(setup), ox.step.eq(hm_valid),
            oy.span.eq(cfg.yspan), oy.long.eq(cfg.hlong), oy.restart.eq(setup),
            oy.step.eq(hm_valid & ox.last),
        ]
        for axis in (x, oy):
            m.d.comb += [axis.k3.eq(cfg.k3), axis.s2.eq(cfg.s2), axis.early.eq(cfg.early),
                         axis.defer.eq(cfg.defer), axis.first_gap.eq(cfg.first_gap)]
        lines = []
        for i in (1, 2):
            m.submodules[f"line{i}"] = line = memory.Memory(
                shape=signed(8), depth=self.max_width + 1, init=[])
            wr, rd = line.write_port(), line.read_port()
            m.d.comb += rd.addr.eq(ox.pos)
            # Stage 4: the words, registered (only a register follows a block RAM).
            lines.append((wr, delayed(m, rd.data, 1, f"line{i}", reset_less=True)))
        (wr1, word1), (wr2, word2) = lines
        window = data.StructLayout({"valid": 1, "fire": 1, "m0": 1, "m1": 1, "m2": 1,
                                    "col": 17, "data": signed(8)})
        s4, s5 = Signal(window), Signal(window)
        m.d.sync += [s4.valid.eq(hm_valid), s4.fire.eq(hm_valid & oy.fire), s4.m0.eq(oy.m0),
                     s4.m1.eq(oy.m1), s4.m2.eq(oy.m2), s4.col.eq(ox.pos), s4.data.eq(hm),
                     s5.eq(s4)]
        # Stage 5: the column's last two rows, and this row's maximum written over them.
        # Entries written after the read come from the events one and two cycles before,
        # when they had the same column (ow 1: the latest event; ow 2: the one two cycles
        # back if another came between).
        ahead1, ahead2 = delayed(m, s5.valid, 1, "ahead"), delayed(m, s5.valid, 2, "ahead")
        near = cfg.ow1 & ahead1
        far = ahead2 & Mux(cfg.ow1, ~ahead1, cfg.ow2 & ahead1)
        back1, back2 = Signal(signed(8)), Signal(signed(8))
        m.d.comb += [
            back1.eq(Mux(near, delayed(m, s5.data, 1, "near_data", reset_less=True),
                         Mux(far, delayed(m, s5.data, 2, "far_data", reset_less=True),
                             word1))),
            back2.eq(Mux(near, delayed(m, back1, 1, "near_back", reset_less=True),
                         Mux(far, delayed(m, back1, 2, "far_back", reset_less=True), word2))),
            wr1.addr.eq(s5.col), wr1.data.eq(s5.data), wr1.en.eq(s5.valid),
            wr2.addr.eq(s5.col), wr2.data.eq(back1), wr2.en.eq(s5.valid),
        ]
        # Stage 6: the window's maximum, into the queue.
        s6 = Signal(part)
        m.d.sync += [s6.valid.eq(s5.fire), s6.m0.eq(s5.m0), s6.data.eq(s5.data),
                     s6.other.eq(_max(Mux(s5.m1, back1, low), Mux(s5.m2, back2, low)))]
        pooled = _max(Mux(s6.m0, s6.data, low), s6.other)

        m.d.comb += [
            queue.w_data.eq(Mux(cfg.max, pooled, rq)),
            queue.w_en.eq(Mux(cfg.max, s6.valid, rq_valid)),
            self.out.payload.eq(queue.r_data),
            self.out.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.out.ready),
        ]
        return m
