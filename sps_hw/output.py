"""The output side: int32 accumulation across passes, requantization, ReLU, max-pool, and the
write of int8 results into the next feature buffer.

Pixels leave the array in the order they were issued (pass by pass, raster order within a
pass) with gaps, so the :class:`OutputSequencer` rebuilds every pixel's position and pass from
a valid bit alone: no tags travel through the array.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .pe import dsp_primitive, sb_mac16_32x16

__all__ = [
    "Accumulator",
    "ChannelParams",
    "MaxPool2",
    "OutputSequencer",
    "OutputWriter",
    "Requantizer",
    "ShiftCode",
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


class OutputSequencer(wiring.Component):
    """Position and pass of each pixel leaving the array, counted from ``valid`` pulses.

    A layer has ``groups`` output groups of ``subs * passes`` passes of ``hw`` pixels
    (``width`` wide). For the pixel flagged by ``valid`` it gives the pixel index ``pixel``,
    its column ``x`` and row parity ``y_odd``, the group, whether its pass is the ``first`` or
    ``last`` of the group, and ``end`` on the last pixel of the layer. ``restart`` rewinds.
    """

    def __init__(self, *, hw_bits, count_bits=24):
        check_int("hw_bits", hw_bits, minimum=1)
        check_int("count_bits", count_bits, minimum=1)
        super().__init__({
            "restart": In(1),
            "valid": In(1),
            "hw": In(hw_bits), "width": In(hw_bits),
            "passes": In(count_bits), "subs": In(hw_bits), "groups": In(count_bits),
            "pixel": Out(hw_bits), "x": Out(hw_bits), "y_odd": Out(1),
            "group": Out(count_bits), "first": Out(1), "last": Out(1), "end": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pixel, x = Signal.like(self.pixel), Signal.like(self.x)
        y_odd = Signal()
        p, sub, group = Signal.like(self.passes), Signal.like(self.subs), Signal.like(self.group)
        # Each counter's increment also finds its end (`n + 1 == limit`): one adder each.
        pixel_1, x_1, p_1, sub_1, group_1 = pixel + 1, x + 1, p + 1, sub + 1, group + 1
        last_pixel = pixel_1 == self.hw
        last_x = x_1 == self.width
        last_p = p_1 == self.passes
        last_sub = sub_1 == self.subs
        last_pass = last_p & last_sub
        m.d.comb += [
            self.pixel.eq(pixel), self.x.eq(x), self.y_odd.eq(y_odd), self.group.eq(group),
            self.first.eq((p == 0) & (sub == 0)),
            self.last.eq(last_pass),
            self.end.eq(self.valid & last_pixel & last_pass & (group_1 == self.groups)),
        ]
        with m.If(self.restart):
            m.d.sync += [pixel.eq(0), x.eq(0), y_odd.eq(0), p.eq(0), sub.eq(0), group.eq(0)]
        with m.Elif(self.valid):
            with m.If(last_pixel):
                m.d.sync += [pixel.eq(0), x.eq(0), y_odd.eq(0)]
                with m.If(last_p):
                    m.d.sync += p.eq(0)
                    with m.If(last_sub):
                        m.d.sync += [sub.eq(0), group.eq(group_1)]
                    with m.Else():
                        m.d.sync += sub.eq(sub_1)
                with m.Else():
                    m.d.sync += p.eq(p_1)
            with m.Else():
                m.d.sync += pixel.eq(pixel_1)
                with m.If(last_x):
                    m.d.sync += [x.eq(0), y_odd.eq(~y_odd)]
                with m.Else():
                    m.d.sync += x.eq(x_1)
        return m


class Accumulator(wiring.Component):
    """int32 partial sums of ``cols`` output channels for up to ``depth`` pixels.

    Control comes one cycle ahead of the data: ``valid``/``pixel``/``first``/``last`` name the
    pixel whose column sums arrive on ``sums`` (with the group's ``bias``) the next cycle. The
    first pass of a group stores ``bias + sums``, later passes add ``sums``; in the last pass
    the total goes out on ``result`` one cycle after the sums arrived (``result_valid``).
    """

    def __init__(self, *, cols, depth):
        check_int("cols", cols, minimum=1)
        check_int("depth", depth, minimum=1)
        self.cols, self.depth = cols, depth
        super().__init__({
            "valid": In(1), "pixel": In(range(depth)), "first": In(1), "last": In(1),
            "sums": In(data.ArrayLayout(signed(32), cols)),
            "bias": In(data.ArrayLayout(signed(32), cols)),
            "result_valid": Out(1),
            "result": Out(data.ArrayLayout(signed(32), cols)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = memory.Memory(
            shape=data.ArrayLayout(signed(32), self.cols), depth=self.depth, init=[])
        wr = buffer.write_port()
        rd = buffer.read_port(transparent_for=(wr,))
        valid, first, last = Signal(), Signal(), Signal()
        pixel = Signal.like(self.pixel)
        m.d.sync += [valid.eq(self.valid), first.eq(self.first), last.eq(self.last),
                     pixel.eq(self.pixel)]
        m.d.comb += [rd.addr.eq(self.pixel), rd.en.eq(self.valid)]
        total = Signal(data.ArrayLayout(signed(32), self.cols))
        for c in range(self.cols):
            m.d.comb += total[c].eq(self.sums[c] + Mux(first, self.bias[c], rd.data[c]))
        m.d.comb += [wr.addr.eq(pixel), wr.data.eq(total), wr.en.eq(valid & ~last)]
        m.d.sync += [self.result_valid.eq(valid & last), self.result.eq(total)]
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


def round_clamp(m, product, shift, relu, name):
    """``clamp_r((product + (1 << (shift - 1))) >> shift)`` as an int8 value (0 for
    ``shift == 0``), combinational, without a wide shifter or a wide adder.

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

    # Without overflow h = window (9-bit signed, window[8] == sign) and the result is
    # value = (h >> 1) + h[0] (a carry chain) in -128..128; a positive value saturates at
    # 128, where value[7] is the carry into bit 7 (window[8] == 0): it sets bits 0..6 too.
    value = Signal(8, name=f"{name}_value")
    m.d.comb += value.eq(window[1:] + window[0])
    positive = Signal(name=f"{name}_positive", attrs=keep)
    negative = Signal(name=f"{name}_negative", attrs=keep)
    m.d.comb += [positive.eq(~sign & ~code.zero), negative.eq(sign & ~relu & ~code.zero)]
    low = Cat(*(Mux(forced, positive, value[k] | (positive & value[7])) for k in range(7)))
    return Cat(low, negative & (forced | value[7])).as_signed()  # forced == overflow here


class Requantizer(wiring.Component):
    """``clamp_r((acc * mult + (1 << (shift - 1))) >> shift)`` per channel, exact.

    Two pipeline stages (``latency``): the product, then the rounding shift and the clamp to
    int8 (to 0..127 with ``relu``; :func:`round_clamp`). ``mult``/``shift`` must be valid
    with ``valid``; ``out`` holds a result only with ``out_valid`` (it has no reset value).
    ``multiplier``: ``"SB_MAC16"`` computes each 32 x ``mult_bits`` product
    (``mult_bits <= 16``) in two iCE40 SB_MAC16 (the second one adds the first one's upper
    half and registers the product); ``None`` infers ``*`` and a product register; ``"auto"``
    picks SB_MAC16 when elaborated for an iCE40 platform.
    """

    latency = 2

    def __init__(self, *, cols, mult_bits=32, multiplier="auto"):
        check_int("cols", cols, minimum=1)
        check_int("mult_bits", mult_bits, minimum=1)
        if multiplier not in ("auto", None, "SB_MAC16"):
            raise ValueError(f"multiplier must be 'auto', None or 'SB_MAC16', not "
                             f"{multiplier!r}")
        if multiplier == "SB_MAC16" and mult_bits > 16:
            raise ValueError(f"multiplier 'SB_MAC16' needs mult_bits <= 16, not {mult_bits}")
        self.cols, self.mult_bits, self.multiplier = cols, mult_bits, multiplier
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
        mac = self.multiplier
        if mac == "auto":
            mac = "SB_MAC16" if dsp_primitive(platform) == "SB_MAC16" and \
                self.mult_bits <= 16 else None
        valid1, relu1 = Signal(), Signal()
        m.d.sync += [valid1.eq(self.valid), relu1.eq(self.relu), self.out_valid.eq(valid1)]
        for c in range(self.cols):
            if mac == "SB_MAC16":
                product = sb_mac16_32x16(m, self.acc[c], self.mult[c], f"mac_{c}")
            else:
                product = Signal(signed(32 + self.mult_bits), name=f"product_{c}")
                m.d.sync += product.eq(self.acc[c] * self.mult[c])
            # The shift is decoded while the product is computed.
            code = Signal(ShiftCode(len(product)), name=f"shift_code_{c}")
            out = Signal(signed(8), name=f"out_{c}", reset_less=True)
            m.d.sync += [code.eq(shift_code(self.shift[c], len(product))),
                         out.eq(round_clamp(m, product, code, relu1, f"rq_{c}"))]
            m.d.comb += self.out[c].eq(out)
        return m


class MaxPool2(wiring.Component):
    """2x2 stride-2 max-pool of a raster-order image stream of ``cols`` channels.

    Input pixels come with their column ``x`` and row parity ``y_odd``; a half-width line
    buffer keeps the maxima of the even row. An output leaves on ``out`` (with its pooled
    pixel index ``index``, counting from ``first``, the first pixel of an image) when a 2x2
    window is complete; trailing odd rows and columns are dropped (SPEC: pool k=2, s=2, p=0).
    With ``enable`` low every pixel passes through. Latency is ``latency`` cycles.
    """

    latency = 2

    def __init__(self, *, cols, max_width, hw_bits):
        check_int("cols", cols, minimum=1)
        check_int("max_width", max_width, minimum=1)
        check_int("hw_bits", hw_bits, minimum=1)
        self.cols, self.max_width = cols, max_width
        row = data.ArrayLayout(signed(8), cols)
        super().__init__({
            "enable": In(1),
            "valid": In(1), "first": In(1), "x": In(hw_bits), "y_odd": In(1),
            "values": In(row),
            "out_valid": Out(1), "index": Out(hw_bits), "out": Out(row),
        })

    def elaborate(self, platform):
        m = Module()
        row = data.ArrayLayout(signed(8), self.cols)
        m.submodules.line = line = memory.Memory(shape=row, depth=max(1, self.max_width // 2),
                                                 init=[])
        wr = line.write_port()
        rd = line.read_port()
        # Stage 0: read the line buffer at x // 2.
        m.d.comb += [rd.addr.eq(self.x >> 1), rd.en.eq(self.valid)]
        valid, first, x_odd, y_odd = Signal(), Signal(), Signal(), Signal()
        half = Signal(len(self.x) - 1 if len(self.x) > 1 else 1)
        values = Signal(row)
        m.d.sync += [valid.eq(self.valid), first.eq(self.first), x_odd.eq(self.x[0]),
                     y_odd.eq(self.y_odd), half.eq(self.x >> 1), values.eq(self.values)]

        # Stage 1: combine with the even column (held) and the even row (line buffer).
        held = Signal(row)
        pair = Signal(row)
        quad = Signal(row)
        for c in range(self.cols):
            m.d.comb += [
                pair[c].eq(Mux(held[c] > values[c], held[c], values[c])),
                quad[c].eq(Mux(rd.data[c] > pair[c], rd.data[c], pair[c])),
            ]
        with m.If(valid & ~x_odd):
            m.d.sync += held.eq(values)
        m.d.comb += [wr.addr.eq(half), wr.data.eq(pair), wr.en.eq(valid & x_odd & ~y_odd)]
        emit = Signal()
        m.d.comb += emit.eq(valid & Mux(self.enable, x_odd & y_odd, 1))
        index = Signal.like(self.index)
        with m.If(valid & first):
            m.d.sync += index.eq(Mux(emit, 1, 0))
        with m.Elif(emit):
            m.d.sync += index.eq(index + 1)
        m.d.sync += [
            self.out_valid.eq(emit),
            self.out.eq(Mux(self.enable, quad, values)),
            self.index.eq(Mux(first, 0, index)),
        ]
        return m


class OutputWriter(wiring.Component):
    """Writes each output pixel's ``cols`` channels into the ``banks`` of a feature buffer.

    Channel ``co`` of pixel ``i`` goes to bank ``co mod banks`` at word
    ``(co // banks) * out_hw + i``. Groups of ``cols`` channels arrive in order, each with
    its ``out_hw`` pixels in order (``index`` 0, 1, ...); ``restart`` (at a layer's start)
    selects group 0, and channels at or beyond ``channels`` are not written. Every bank's
    words are thus written in ascending order: its address is a counter (``out_hw`` only
    documents the layout).
    """

    def __init__(self, *, cols, banks, addr_bits, hw_bits, channel_bits=16):
        for name, value in (("cols", cols), ("banks", banks), ("addr_bits", addr_bits),
                            ("hw_bits", hw_bits), ("channel_bits", channel_bits)):
            check_int(name, value, minimum=1)
        if banks < cols:
            raise ValueError(f"banks ({banks}) must be at least cols ({cols})")
        self.cols, self.banks = cols, banks
        super().__init__({
            "restart": In(1),
            "out_hw": In(hw_bits),
            "channels": In(channel_bits),
            "valid": In(1), "index": In(hw_bits),
            "values": In(data.ArrayLayout(signed(8), cols)),
            "write": In(memory.WritePort.Signature(addr_width=addr_bits,
                                                   shape=signed(8))).array(banks),
        })

    def elaborate(self, platform):
        m = Module()
        cols, banks = self.cols, self.banks
        addr_bits = len(self.write[0].addr)
        # Group state: bank of its first channel, channels left.
        first_bank = Signal(range(banks))
        left = Signal(len(self.channels) + 1)
        started = Signal()
        advance = self.valid & (self.index == 0) & started
        wrap = first_bank + cols >= banks
        next_bank = Mux(wrap, first_bank + cols - banks, first_bank + cols)
        cur_bank = Mux(advance, next_bank, first_bank)
        cur_left = Mux(advance, left - cols, left)
        # Channels of this group to write: min(cols, channels left), then small compares.
        count = Signal(range(cols + 1))
        m.d.comb += count.eq(Mux(cur_left >= cols, cols, cur_left))
        with m.If(self.restart):
            m.d.sync += [first_bank.eq(0), left.eq(self.channels), started.eq(0)]
        with m.Elif(self.valid):
            m.d.sync += [first_bank.eq(cur_bank), left.eq(cur_left), started.eq(1)]
        for b in range(banks):
            col = Signal(range(banks), name=f"col_{b}")
            m.d.comb += col.eq(b - cur_bank if b == banks - 1 else
                               Mux(b >= cur_bank, b - cur_bank, b + banks - cur_bank))
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
                         port.en.eq(self.valid & (col < count))]
            with m.If(self.restart):
                m.d.sync += addr.eq(0)
            with m.Elif(port.en):
                m.d.sync += addr.eq(addr + 1)
        return m
