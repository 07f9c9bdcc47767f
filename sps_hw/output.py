"""The output side: int32 accumulation across passes, requantization, ReLU, max-pool, and the
write of int8 results into the next feature buffer.

Pixels leave the array in the order they were issued (pass by pass, raster order within a
pass) with gaps, so the :class:`OutputSequencer` rebuilds every pixel's position and pass from
a valid bit alone: no tags travel through the array.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .pe import dsp_primitive, sb_mac16_32x16

__all__ = [
    "Accumulator",
    "ChannelParams",
    "MaxPool2",
    "OutputSequencer",
    "OutputWriter",
    "Requantizer",
    "round_clamp",
]


def _check_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, not {value}")


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
        _check_int("hw_bits", hw_bits)
        _check_int("count_bits", count_bits)
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
        _check_int("cols", cols)
        _check_int("depth", depth)
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


def round_clamp(m, product, shift, relu, name):
    """``clamp_r((product + (1 << (shift - 1))) >> shift)`` as an int8 value (0 for
    ``shift == 0``), combinational, without a wide shifter or a wide adder.

    ``(p + 2**(s-1)) >> s == (h >> 1) + (h & 1)`` with ``h = (2 * p) >> s``. Only the low 9 bits
    of ``h`` are shifted out of ``2 * p`` (a right shift in stages of 32, 16, ..., 1, each
    stage keeping just the bits the later ones can still bring into the window); the window's
    top bit and the bits a stage drops above it must all equal the sign, or ``h`` does not fit
    9 bits and the result saturates (``overflow``).
    """
    sign = product[-1]
    # 2 * product without its sign bit: the bits above are implicitly the sign.
    bits = [Const(0, 1)] + [product[i] for i in range(len(product) - 1)]
    dropped = []
    for j in reversed(range(len(shift))):
        step = 1 << j
        keep = 9 + step - 1                 # the window plus what the smaller stages shift
        if len(bits) > keep:
            high = Cat(*bits[keep:])
            dropped.append(~shift[j] & (high ^ sign.replicate(len(high))).any())
        bits = [Mux(shift[j], bits[i + step] if i + step < len(bits) else sign, bits[i])
                for i in range(min(keep, len(bits)))]
    bits += [sign] * (9 - len(bits))
    window = Signal(9, name=f"{name}_window")
    overflow = Signal(name=f"{name}_overflow")
    m.d.comb += [window.eq(Cat(*bits[:9])),
                 overflow.eq(Cat(*dropped, window[8] ^ sign).any())]
    # Without overflow h = window (9-bit signed, window[8] == sign) and the result is
    # (h >> 1) + h[0] in -128..128: 128 (h = 255) saturates, below 0 (h < -1) is 0 with ReLU.
    value = Signal(8, name=f"{name}_value")
    m.d.comb += value.eq(window[1:] + window[0])
    ones = window[:8].all()
    over = ~sign & (overflow | ones)
    under = sign & (overflow | (relu & ~ones))
    return Mux(shift == 0, 0, Mux(over, 127, Mux(under, Mux(relu, 0, -128), value)))


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
        _check_int("cols", cols)
        _check_int("mult_bits", mult_bits)
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
            shift = Signal(unsigned(6), name=f"shift_{c}")
            # Without a reset (out is only read with out_valid) the saturation can set and
            # clear the register directly.
            out = Signal(signed(8), name=f"out_{c}", reset_less=True)
            m.d.sync += [shift.eq(self.shift[c]),
                         out.eq(round_clamp(m, product, shift, relu1, f"rq_{c}"))]
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
        _check_int("cols", cols)
        _check_int("max_width", max_width)
        _check_int("hw_bits", hw_bits)
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
            _check_int(name, value)
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
