"""The output side: int32 accumulation across passes, requantization, ReLU, max-pool, and the
write of int8 results into the next feature buffer.

Pixels leave the array in the order they were issued (pass by pass, raster order within a
pass) with gaps, so the :class:`OutputSequencer` rebuilds every pixel's position and pass from
a valid bit alone: no tags travel through the array.
"""

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .config import check_read_latency
from .memories import NO_RW_CHECK, READ_LATENCY, read_port
from .registers import delayed
from .vendor import WIDE_PRODUCT_LATENCY, WideMultiplier, replica

__all__ = [
    "Accumulator",
    "ChannelParams",
    "MaxPool2",
    "OutputSequencer",
    "OutputWriter",
    "PoolLayer",
    "Requantizer",
    "SequencerLayer",
    "ShiftCode",
    "WriterLayer",
    "round_clamp",
    "shift_code",
]


def ChannelParams(cols, mult_bits=32):
    """Per-output-channel constants of one group of ``cols`` channels (a parameter ROM word);
    ``mult`` is ``mult_bits`` wide (signed)."""
    return data.StructLayout({
        "bias": data.ArrayLayout(signed(32), cols),
        "mult": data.ArrayLayout(signed(mult_bits), cols),
        "shift": data.ArrayLayout(unsigned(6), cols),
    })


class _Raster(Elaboratable):
    """Position of the next pixel of raster-order images of ``hw`` pixels: ``pixel`` and the
    flags ``first`` (pixel 0) and ``last`` (pixel ``hw - 1``) kept in step, and given a
    ``width``, its column ``x`` and row parity ``y_odd``. ``step`` moves on; ``restart``
    rewinds."""

    def __init__(self, hw, width=None):
        self.hw, self.width = hw, width
        self.restart, self.step = Signal(), Signal()
        self.pixel = Signal.like(hw)
        self.first, self.last = Signal(), Signal()
        if width is not None:
            self.x, self.y_odd = Signal.like(width), Signal()

    def elaborate(self, platform):
        m = Module()
        rewind = self.restart | (self.step & self.last)
        with m.If(rewind):
            m.d.sync += [self.pixel.eq(0), self.first.eq(1), self.last.eq(self.hw == 1)]
        with m.Elif(self.step):
            m.d.sync += [self.pixel.eq(self.pixel + 1), self.first.eq(0),
                         self.last.eq(self.pixel + 2 == self.hw)]
        if self.width is None:
            return m
        x_end = Signal()                    # x == width - 1
        with m.If(rewind):
            m.d.sync += [self.x.eq(0), self.y_odd.eq(0), x_end.eq(self.width == 1)]
        with m.Elif(self.step & x_end):
            m.d.sync += [self.x.eq(0), x_end.eq(self.width == 1), self.y_odd.eq(~self.y_odd)]
        with m.Elif(self.step):
            m.d.sync += [self.x.eq(self.x + 1), x_end.eq(self.x + 2 == self.width)]
        return m


class SequencerLayer(wiring.Signature):
    """The layer fields the output sequencer takes (``controller.Descriptor``)."""

    def __init__(self, hw_bits, count_bits):
        super().__init__({"hw": Out(hw_bits), "passes": Out(count_bits),
                          "subs": Out(hw_bits), "groups": Out(count_bits)})


class OutputSequencer(wiring.Component):
    """Position and pass of each pixel leaving the array, counted from ``valid`` pulses.

    A layer has ``groups`` output groups of ``subs * passes`` passes of ``hw`` pixels. For the
    pixel flagged by ``valid`` it gives the pixel index ``pixel``, the group, whether its pass
    is the ``first`` or ``last`` of the group, and ``end`` on the last pixel of the layer.
    ``restart`` rewinds.
    """

    def __init__(self, *, hw_bits, count_bits=24):
        check_int("hw_bits", hw_bits, minimum=1)
        check_int("count_bits", count_bits, minimum=1)
        super().__init__({
            "restart": In(1),
            "valid": In(1),
            "layer": In(SequencerLayer(hw_bits, count_bits)),
            "pixel": Out(hw_bits),
            "group": Out(count_bits), "first": Out(1), "last": Out(1), "end": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        layer = self.layer
        m.submodules.raster = raster = _Raster(layer.hw)
        # The passes and sub-passes left (from the limit down to 1) and the group; each
        # counter's end (the last pass, sub-pass, group) is a flag kept in step with it.
        p_left, sub_left = Signal.like(layer.passes), Signal.like(layer.subs)
        group, groups_left = Signal.like(self.group), Signal.like(layer.groups)
        p_end, sub_end, group_end, p_zero, sub_zero = (
            Signal(name=n) for n in ("p_end", "sub_end", "group_end", "p_zero", "sub_zero"))
        last_pass = p_end & sub_end
        m.d.comb += [
            raster.restart.eq(self.restart), raster.step.eq(self.valid),
            self.pixel.eq(raster.pixel), self.group.eq(group),
            self.first.eq(p_zero & sub_zero),
            self.last.eq(last_pass),
            self.end.eq(self.valid & raster.last & last_pass & group_end),
        ]
        first_p = [p_left.eq(layer.passes), p_end.eq(layer.passes == 1), p_zero.eq(1)]
        first_sub = [sub_left.eq(layer.subs), sub_end.eq(layer.subs == 1), sub_zero.eq(1)]
        with m.If(self.restart):
            m.d.sync += [*first_p, *first_sub, group.eq(0), groups_left.eq(layer.groups),
                         group_end.eq(layer.groups == 1)]
        with m.Elif(self.valid):
            with m.If(raster.last):
                with m.If(p_end):
                    m.d.sync += first_p
                    with m.If(sub_end):
                        m.d.sync += [*first_sub, group.eq(group + 1),
                                     groups_left.eq(groups_left - 1),
                                     group_end.eq(groups_left == 2)]
                    with m.Else():
                        m.d.sync += [sub_left.eq(sub_left - 1), sub_end.eq(sub_left == 2),
                                     sub_zero.eq(0)]
                with m.Else():
                    m.d.sync += [p_left.eq(p_left - 1), p_end.eq(p_left == 2), p_zero.eq(0)]
        return m


class Accumulator(wiring.Component):
    """int32 partial sums of ``cols`` output channels for up to ``depth`` pixels.

    Control comes ``read_latency`` cycles ahead of the data (the buffer's read):
    ``valid``/``pixel``/``first``/``last`` name the pixel whose
    column sums arrive on ``sums`` (with the group's ``bias``) that much later. The first
    pass of a group stores ``bias + sums``, later passes add ``sums``; the total is
    registered and written back the next cycle, so a pixel's entry must not be read again
    within :attr:`rmw_cycles` cycles. In the last pass the total goes out on ``result`` one
    cycle after the sums arrived (``result_valid``).
    """

    def __init__(self, *, cols, depth, read_latency=READ_LATENCY):
        check_int("cols", cols, minimum=1)
        check_int("depth", depth, minimum=1)
        self.read_latency = check_read_latency(read_latency)
        self.cols, self.depth = cols, depth
        #: Cycles from a pixel's read to the write of its new total, plus one: the least
        #: distance between two reads of one pixel (no read-during-write logic in the RAM).
        self.rmw_cycles = read_latency + 2
        super().__init__({
            "valid": In(1), "pixel": In(range(depth)), "first": In(1), "last": In(1),
            "sums": In(data.ArrayLayout(signed(32), cols)),
            "bias": In(data.ArrayLayout(signed(32), cols)),
            "result_valid": Out(1),
            "result": Out(data.ArrayLayout(signed(32), cols)),
        })

    def elaborate(self, platform):
        m = Module()
        row = data.ArrayLayout(signed(32), self.cols)
        m.submodules.buffer = buffer = memory.Memory(shape=row, depth=self.depth, init=[],
                                                     attrs=NO_RW_CHECK)
        wr = buffer.write_port()
        rd = read_port(m, buffer, "stored", latency=self.read_latency)
        m.d.comb += [rd.addr.eq(self.pixel), rd.en.eq(self.valid)]
        stored = rd.data
        # The control of the arriving sums, and one cycle later of their total; each column
        # takes `first` from a register of its own (it selects 32 bits in each).
        valid, last, pixel = (delayed(m, v, self.read_latency, n) for v, n in (
            (self.valid, "valid"), (self.last, "last"), (self.pixel, "pixel")))
        first = delayed(m, self.first, self.read_latency - 1, "first")
        total = Signal(row, reset_less=True)            # data: no reset logic
        for c in range(self.cols):
            first_c = replica(m, platform, first, f"first_{c}")
            m.d.sync += total[c].eq(self.sums[c] + Mux(first_c, self.bias[c], stored[c]))
        write, finish = delayed(m, valid & ~last, 1, "write"), delayed(m, valid & last, 1, "end")
        m.d.comb += [wr.addr.eq(delayed(m, pixel, 1, "wpixel")), wr.data.eq(total),
                     wr.en.eq(write), self.result_valid.eq(finish), self.result.eq(total)]
        return m


def ShiftCode(width):
    """The decoded rounding shift ``s = 8 * coarse + fine`` that :func:`round_clamp` takes for
    a ``width``-bit product: ``coarse`` one-hot over the byte offsets that still reach a
    non-sign bit, ``fine`` (``s mod 8``) one-hot, and ``zero``, set when the result is 0
    whatever the product (``s == 0``, or ``s`` beyond every non-sign bit)."""
    return data.StructLayout({
        "coarse": unsigned((width - 1) // 8 + 1),
        "fine": unsigned(8),
        "zero": unsigned(1),
    })


def shift_code(shift, width):
    """``shift`` (6 bits) as a :func:`ShiftCode` value for a ``width``-bit product."""
    shift = Value.cast(shift)
    coarse = shift[3:]
    count = (width - 1) // 8 + 1
    return Cat(Cat(*(coarse == j for j in range(count))),
               Cat(*(shift[:3] == f for f in range(8))),
               (shift == 0) | (coarse >= count))


#: What :func:`round_clamp` keeps between its two halves: the 9-bit window of the shifted
#: product, whether bits 0..6 of the result are forced (overflow or a zero result), and the
#: result's sign cases.
RoundWindow = data.StructLayout({"window": 9, "forced": 1, "positive": 1, "negative": 1})


def round_clamp(m, product, shift, relu, name, *, register=False):
    """``clamp_r((product + (1 << (shift - 1))) >> shift)`` as an int8 value (0 for
    ``shift == 0``), without a wide shifter or a wide adder; combinational, or with
    ``register`` a pipeline register between the window selection and the clamp (a result
    one cycle later).

    ``shift`` is the 6-bit shift or its :func:`ShiftCode` (a register of it takes the
    decoding off the path). With ``h = (2 * product) >> shift`` the result is
    ``(h >> 1) + (h & 1)``; only the 9-bit window of ``h`` is selected, in two one-hot
    AND-OR stages (the byte offset ``8 * coarse`` of a 16-bit window, then ``fine``), while
    the overflow test (a product bit at ``shift + 7`` or above differs from the sign) runs
    beside them on thermometer masks; the saturation is folded into the LUT level after the
    rounding increment, and no logic drives a register's reset.
    """
    product = Value.cast(product)
    width = len(product)
    layout = ShiftCode(width)
    code = shift if isinstance(shift, data.View) else layout(shift_code(shift, width))
    count = len(code.coarse)
    sign = product[-1]
    # `keep` makes these signals LUT boundaries: left to itself, ABC trades depth for area
    # where its delay model (no routing) sees slack, which costs this path LUT levels.
    keep = {"keep": 1}

    def bit(i):
        return Const(0, 1) if i < 0 else product[i] if i < width else sign

    # The 16 bits from 8 * coarse - 1 (the window for every fine offset), then the window.
    window16 = Signal(16, name=f"{name}_window16", attrs=keep)
    for j in range(16):
        m.d.comb += window16[j].eq(Cat(*(code.coarse[c] & bit(8 * c - 1 + j)
                                         for c in range(count))).any())
    fine = code.fine
    window = Signal(9, name=f"{name}_window", attrs=keep)
    for k in range(9):
        m.d.comb += window[k].eq(Cat(*(fine[f] & window16[f + k] for f in range(8))).any())

    # Overflow: a bit at shift + 7 or above that differs from the sign, within the 16 bits
    # (positions 8 + fine and up) or above them (byte segments from 8 * coarse + 15 up).
    inside = Cat(*((window16[j] ^ sign) & ~fine[j - 7:].any() for j in range(8, 16)))
    above = []
    for t in range(count):
        bits = [product[i] for i in range(8 * t + 15, min(8 * t + 23, width - 1))]
        if bits:
            reach = Cat(*code.coarse[:t + 1]).any()          # coarse <= t
            above.append(reach & (Cat(*bits) ^ sign.replicate(len(bits))).any())
    # Bits 0..6 are forced: to 0 when the result is 0 (zero shift code, or negative with
    # ReLU) or on a negative overflow (-128), to 1 on a positive one (127).
    inside_lo = Signal(name=f"{name}_inside_lo", attrs=keep)
    inside_hi = Signal(name=f"{name}_inside_hi", attrs=keep)
    above_kill = Signal(name=f"{name}_above_kill", attrs=keep)
    forced = Signal(name=f"{name}_forced", attrs=keep)
    m.d.comb += [inside_lo.eq(inside[:4].any()), inside_hi.eq(inside[4:].any()),
                 above_kill.eq(Cat(*above).any() | code.zero | (sign & relu)),
                 forced.eq(inside_lo | inside_hi | above_kill)]

    half = Signal(RoundWindow, name=f"{name}_half")
    m.d.comb += [half.window.eq(window), half.forced.eq(forced),
                 half.positive.eq(~sign & ~code.zero), half.negative.eq(sign & ~relu & ~code.zero)]
    if register:
        half = delayed(m, half, 1, f"{name}_half", reset_less=True)
    # Without overflow h = window (9-bit signed, window[8] == sign) and the result is
    # value = (h >> 1) + h[0] (a carry chain) in -128..128; a positive value saturates at
    # 128, where value[7] is the carry into bit 7 (window[8] == 0): it sets bits 0..6 too.
    value = Signal(8, name=f"{name}_value")
    m.d.comb += value.eq(half.window[1:] + half.window[0])
    low = Cat(*(Mux(half.forced, half.positive, value[k] | (half.positive & value[7]))
                for k in range(7)))
    # forced == overflow here
    return Cat(low, half.negative & (half.forced | value[7])).as_signed()


class Requantizer(wiring.Component):
    """``clamp_r((acc * mult + (1 << (shift - 1))) >> shift)`` per channel, exact.

    Pipelined (:attr:`latency` cycles): the product (a
    :class:`~sps_hw.vendor.WideMultiplier`, its DSP blocks on ECP5 and iCE40), the window of
    the rounding shift, then the clamp to int8 (to 0..127 with ``relu``; :func:`round_clamp`).
    ``mult``/``shift`` must be valid with ``valid``; ``out`` holds a result only with
    ``out_valid`` (it has no reset value). ``multiplier`` picks the multipliers'
    :data:`~sps_hw.vendor.PRIMITIVES` (``"auto"``: the platform's DSP blocks).
    """

    latency = WIDE_PRODUCT_LATENCY + 2

    def __init__(self, *, cols, mult_bits=32, multiplier="auto"):
        check_int("cols", cols, minimum=1)
        check_int("mult_bits", mult_bits, minimum=1, maximum=32)
        self.cols, self.mult_bits, self.multiplier = cols, mult_bits, multiplier
        self.products = [WideMultiplier(32, mult_bits, primitive=multiplier) for _ in range(cols)]
        super().__init__({
            "valid": In(1),
            "acc": In(data.ArrayLayout(signed(32), cols)),
            "mult": In(data.ArrayLayout(signed(mult_bits), cols)),
            "shift": In(data.ArrayLayout(unsigned(6), cols)),
            "relu": In(1),
            "out_valid": Out(1),
            "out": Out(data.ArrayLayout(signed(8), cols)),
        })

    def elaborate(self, platform):
        m = Module()
        product_at = WIDE_PRODUCT_LATENCY
        relu = delayed(m, self.relu, product_at, "relu")
        m.d.comb += self.out_valid.eq(delayed(m, self.valid, self.latency, "valid"))
        for c, mult in enumerate(self.products):
            m.submodules[f"product_{c}"] = mult
            m.d.comb += [mult.a.eq(self.acc[c]), mult.b.eq(self.mult[c])]
            width = len(mult.p)
            # The shift is decoded while the product is computed.
            shift = delayed(m, self.shift[c], product_at - 1, f"shift_{c}", reset_less=True)
            code = Signal(ShiftCode(width), name=f"shift_code_{c}", reset_less=True)
            out = Signal(signed(8), name=f"out_{c}", reset_less=True)
            m.d.sync += [code.eq(shift_code(shift, width)),
                         out.eq(round_clamp(m, mult.p, code, relu, f"rq_{c}", register=True))]
            m.d.comb += self.out[c].eq(out)
        return m


class PoolLayer(wiring.Signature):
    """The layer fields the pool takes: whether it ``pool``s, and the images' ``hw`` pixels
    and ``width``."""

    def __init__(self, hw_bits):
        super().__init__({"pool": Out(1), "hw": Out(hw_bits), "width": Out(hw_bits)})


class MaxPool2(wiring.Component):
    """2x2 stride-2 max-pool of a stream of raster-order images of ``cols`` channels, one
    comparison per pipeline stage.

    Each valid pixel is the next of an image of ``layer.hw`` pixels, ``layer.width`` wide
    (``restart`` rewinds); a half-width line buffer keeps the maxima of the even row. An
    output leaves on ``out`` when a 2x2 window is complete, ``out_first`` on the first of an
    image; trailing odd rows and columns are dropped (``docs/spec.md`` section 3.3: k=2, s=2,
    p=0). With ``layer.pool`` low every pixel passes through. Latency is ``latency`` cycles.
    """

    latency = 3

    def __init__(self, *, cols, max_width, hw_bits):
        check_int("cols", cols, minimum=1)
        check_int("max_width", max_width, minimum=1)
        check_int("hw_bits", hw_bits, minimum=1)
        self.cols, self.max_width = cols, max_width
        row = data.ArrayLayout(signed(8), cols)
        super().__init__({
            "restart": In(1), "layer": In(PoolLayer(hw_bits)),
            "valid": In(1), "values": In(row),
            "out_valid": Out(1), "out_first": Out(1), "out": Out(row),
        })

    def elaborate(self, platform):
        m = Module()
        row = data.ArrayLayout(signed(8), self.cols)
        m.submodules.raster = raster = _Raster(self.layer.hw, self.layer.width)
        m.d.comb += [raster.restart.eq(self.restart), raster.step.eq(self.valid)]
        # The only read of a word in the cycle of its write (width 2: the odd row's first
        # pixel reads the pair the even row's last one writes) is not used.
        m.submodules.line = line = memory.Memory(shape=row, depth=max(1, self.max_width // 2),
                                                 init=[], attrs=NO_RW_CHECK)
        wr = line.write_port()
        rd = read_port(m, line, "line")
        # Stage 1: the pixel and its position, registered; the maximum with the even column
        # (held), registered; the even row's maximum (line buffer) read at x // 2.
        x = raster.x
        pixel = data.StructLayout({"valid": 1, "first": 1, "x_odd": 1, "y_odd": 1,
                                   "half": range(max(2, self.max_width // 2)), "values": row})
        p1 = Signal(pixel)
        m.d.sync += [p1.valid.eq(self.valid), p1.first.eq(raster.first), p1.x_odd.eq(x[0]),
                     p1.y_odd.eq(raster.y_odd), p1.half.eq(x >> 1), p1.values.eq(self.values)]
        # Without pooling `pair` is the pixel itself: the values of stage 2.
        held, pair = Signal(row, reset_less=True), Signal(row, reset_less=True)
        with m.If(p1.valid & ~p1.x_odd):
            m.d.sync += held.eq(p1.values)
        for c in range(self.cols):
            bigger = self.layer.pool & (held[c] > p1.values[c])
            m.d.sync += pair[c].eq(Mux(bigger, held[c], p1.values[c]))
        m.d.comb += [rd.addr.eq(p1.half), rd.en.eq(p1.valid)]
        # Stage 2: the 2x2 maximum; the even row's pairs go into the line buffer.
        p2 = Signal(pixel)
        m.d.sync += p2.eq(p1)
        quad = Signal(row)
        for c in range(self.cols):
            m.d.comb += quad[c].eq(Mux(rd.data[c] > pair[c], rd.data[c], pair[c]))
        m.d.comb += [wr.addr.eq(p2.half), wr.data.eq(pair),
                     wr.en.eq(p2.valid & p2.x_odd & ~p2.y_odd)]
        emit = Signal()
        m.d.comb += emit.eq(p2.valid & Mux(self.layer.pool, p2.x_odd & p2.y_odd, 1))
        # No output of the current image yet: the next one is its first.
        fresh = Signal()
        with m.If(p2.valid & p2.first):
            m.d.sync += fresh.eq(~emit)
        with m.Elif(emit):
            m.d.sync += fresh.eq(0)
        m.d.sync += [
            self.out_valid.eq(emit),
            self.out_first.eq(emit & (p2.first | fresh)),
            self.out.eq(Mux(self.layer.pool, quad, pair)),
        ]
        return m


class WriterLayer(wiring.Signature):
    """The layer field the output writer takes: the output tensor's ``channels``."""

    def __init__(self, channel_bits):
        super().__init__({"channels": Out(channel_bits)})


class OutputWriter(wiring.Component):
    """Writes each output pixel's ``cols`` channels into the ``banks`` of a feature buffer.

    Channel ``co`` of pixel ``i`` goes to bank ``co mod banks`` at word
    ``(co // banks) * out_hw + i``. Groups of ``cols`` channels arrive in order, each with
    its pixels in order (``first`` on pixel 0); ``restart`` (at a layer's start) selects group
    0, and channels at or beyond ``channels`` are not written. Every bank's words are thus
    written in ascending order: its address is a counter. A pixel is on ``write`` in the
    cycle it arrives (:attr:`latency` 0; the feature buffers register their writes). The
    placement of the next group (which bank takes which column) is computed ahead: a group
    starts at least two cycles after the one before it and after ``restart``.
    """

    latency = 0

    def __init__(self, *, cols, banks, addr_bits, channel_bits=16):
        for name, value in (("cols", cols), ("banks", banks), ("addr_bits", addr_bits),
                            ("channel_bits", channel_bits)):
            check_int(name, value, minimum=1)
        if banks < cols:
            raise ValueError(f"banks ({banks}) must be at least cols ({cols})")
        self.cols, self.banks = cols, banks
        super().__init__({
            "restart": In(1),
            "layer": In(WriterLayer(channel_bits)),
            "valid": In(1), "first": In(1),
            "values": In(data.ArrayLayout(signed(8), cols)),
            "write": In(memory.WritePort.Signature(addr_width=addr_bits,
                                                   shape=signed(8))).array(banks),
        })

    def elaborate(self, platform):
        m = Module()
        cols, banks = self.cols, self.banks
        addr_bits = len(self.write[0].addr)
        # A placement: the column each bank takes, and whether it takes one (mask).
        placement = data.StructLayout({"col": data.ArrayLayout(range(banks), banks),
                                       "mask": banks})
        # The next group: the bank of its first channel and the channels left from it on,
        # and its placement (a cycle behind them); the current group's placement.
        nxt_bank = Signal(range(banks))
        nxt_left = Signal(len(self.layer.channels) + 1)
        nxt, cur = Signal(placement), Signal(placement)
        # col < nxt_left for a col below banks: no comparison as wide as nxt_left.
        low = len(Const(banks - 1))
        many = nxt_left[low:].any()
        for b in range(banks):
            # (b - nxt_bank) mod banks; the last bank is never below nxt_bank.
            col = Signal(range(banks), name=f"col_{b}")
            m.d.comb += col.eq(b - nxt_bank if b == banks - 1 else
                               Mux(b >= nxt_bank, b - nxt_bank, b + banks - nxt_bank))
            left = many | (col < nxt_left[:low])
            used = left if cols == banks else (col < cols) & left
            m.d.sync += [nxt.col[b].eq(col), nxt.mask[b].eq(used)]
        starts = self.valid & self.first
        with m.If(self.restart):
            m.d.sync += [nxt_bank.eq(0), nxt_left.eq(self.layer.channels)]
        with m.Elif(starts):
            wrap = nxt_bank + cols >= banks
            m.d.sync += [cur.eq(nxt), nxt_left.eq(nxt_left - cols),
                         nxt_bank.eq(Mux(wrap, nxt_bank + cols - banks, nxt_bank + cols))]
        # The write stage.
        for b in range(banks):
            col = Signal.like(cur.col[b], name=f"place_col_{b}")
            mask = Signal(name=f"place_mask_{b}")
            m.d.comb += [col.eq(Mux(starts, nxt.col[b], cur.col[b])),
                         mask.eq(Mux(starts, nxt.mask[b], cur.mask[b]))]
            value = Signal(signed(8), name=f"value_{b}")
            with m.Switch(col):
                for c in range(cols):
                    with m.Case(c):
                        m.d.comb += value.eq(self.values[c])
            # Bank b takes channels b, b + banks, ... and each one's pixels in order: its
            # words are written in ascending order from 0, so a counter is its address.
            addr = Signal(addr_bits, name=f"addr_{b}")
            port = self.write[b]
            m.d.comb += [port.addr.eq(addr), port.data.eq(value),
                         port.en.eq(self.valid & mask)]
            with m.If(self.restart):
                m.d.sync += addr.eq(0)
            with m.Elif(port.en):
                m.d.sync += addr.eq(addr + 1)
        return m
