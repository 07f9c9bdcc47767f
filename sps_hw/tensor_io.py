"""Tensors in and out: the activation streams to and from the feature buffers.

A tensor of ``channels x hw`` int8 values travels in C, H, W order (channel by channel, each
in raster order). In a feature buffer channel ``c``, pixel ``i`` is bank ``c mod banks``,
word ``(c // banks) * hw + i``.
"""

from amaranth.hdl import Array, Cat, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .config import check_read_latency
from .memories import READ_LATENCY
from .registers import delayed

__all__ = ["OutputWord", "TensorDrainer", "TensorIO", "TensorIOLayer", "TensorLoader",
           "TensorShape"]

#: A result byte and whether it is the last of its tensor.
OutputWord = data.StructLayout({"data": signed(8), "last": unsigned(1)})


class TensorShape(wiring.Signature):
    """The shape of a tensor to load or drain: ``channels`` of ``hw`` pixels."""

    def __init__(self, channel_bits, hw_bits):
        super().__init__({"channels": Out(channel_bits), "hw": Out(hw_bits)})


def _check(**values):
    for name, value in values.items():
        check_int(name, value, minimum=1)


class TensorIOLayer(wiring.Signature):
    """The shapes :class:`TensorIO` takes: the layer's input tensor (loaded) and its output
    tensor (drained)."""

    def __init__(self, channel_bits, hw_bits):
        super().__init__({"in_channels": Out(channel_bits), "in_hw": Out(hw_bits),
                          "out_channels": Out(channel_bits), "out_hw": Out(hw_bits)})


class _Walk(Elaboratable):
    """Position (bank, word) of the next element of a tensor in C, H, W order.

    ``last`` (the next element is the tensor's last) is a register kept in step with the
    counters, so no comparison lies between them and the users of ``last``. Each user (one,
    or several that take turns) restarts and steps it through the pair of :meth:`user`."""

    def __init__(self, banks, addr_bits, hw_bits, channel_bits):
        self.banks = banks
        self.channels, self.hw = Signal(channel_bits), Signal(hw_bits)
        self.bank = Signal(range(banks))
        self.word = Signal(addr_bits)
        self.last = Signal()
        self._users = []

    def user(self):
        """A ``(restart, step)`` pair of signals for one more user of this walk."""
        pair = Signal(name=f"restart_{len(self._users)}"), Signal(name=f"step_{len(self._users)}")
        self._users.append(pair)
        return pair

    def elaborate(self, platform):
        m = Module()
        restart, step = (Cat(pair[i] for pair in self._users).any() for i in range(2))
        pixel = Signal.like(self.hw)
        channels_left = Signal.like(self.channels)     # channels - the channel
        block = Signal.like(self.word)
        pixel_end = Signal()            # pixel == hw - 1
        channel_end = Signal()          # channels_left == 1
        m.d.comb += [self.word.eq(block + pixel), self.last.eq(pixel_end & channel_end)]
        with m.If(restart):
            m.d.sync += [pixel.eq(0), channels_left.eq(self.channels), block.eq(0),
                         self.bank.eq(0), pixel_end.eq(self.hw == 1),
                         channel_end.eq(self.channels == 1)]
        with m.Elif(step):
            with m.If(pixel_end):
                m.d.sync += [pixel.eq(0), channels_left.eq(channels_left - 1),
                             pixel_end.eq(self.hw == 1), channel_end.eq(channels_left == 2)]
                with m.If(self.bank == self.banks - 1):
                    m.d.sync += [self.bank.eq(0), block.eq(block + self.hw)]
                with m.Else():
                    m.d.sync += self.bank.eq(self.bank + 1)
            with m.Else():
                m.d.sync += [pixel.eq(pixel + 1), pixel_end.eq(pixel + 2 == self.hw)]
        return m


def _walk_of(m, block):
    """The walk ``block`` steps and its ``(restart, step)``: the shared one it was given, or
    one of its own (a submodule) over its ``layer``."""
    if block._user is not None:
        return (block._walk, *block._user)
    m.submodules.walk = walk = _Walk(block.banks, block.addr_bits, block.hw_bits,
                                     len(block.layer.channels))
    m.d.comb += [walk.channels.eq(block.layer.channels), walk.hw.eq(block.layer.hw)]
    return (walk, *walk.user())


class TensorLoader(wiring.Component):
    """Writes a ``channels x hw`` tensor (``layer``) from the ``stream`` into the
    feature-buffer banks.

    ``start`` begins; an element is written in the cycle it is taken (a feature buffer's
    owner may register the writes), ``done`` is high in the cycle after the last one.
    ``stream`` is ready only while a tensor is being loaded. ``walk`` (of :class:`TensorIO`)
    is a walk shared with a drainer, which its owner gives the tensor's shape; by default the
    loader has its own.
    """

    def __init__(self, *, banks, addr_bits, hw_bits, channel_bits=16, walk=None):
        _check(banks=banks, addr_bits=addr_bits, hw_bits=hw_bits, channel_bits=channel_bits)
        self.banks, self.addr_bits, self.hw_bits = banks, addr_bits, hw_bits
        self._walk, self._user = walk, None if walk is None else walk.user()
        super().__init__({
            "start": In(1), "layer": In(TensorShape(channel_bits, hw_bits)),
            "stream": In(stream.Signature(signed(8))),
            "write": In(memory.WritePort.Signature(addr_width=addr_bits,
                                                   shape=signed(8))).array(banks),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        walk, restart, step = _walk_of(m, self)
        active = Signal()
        take = Signal()
        m.d.comb += [
            restart.eq(self.start), step.eq(take),
            self.stream.ready.eq(active),
            take.eq(active & self.stream.valid),
            self.done.eq(delayed(m, take & walk.last, 1, "done")),
        ]
        with m.If(self.start):
            m.d.sync += active.eq(1)
        with m.Elif(take & walk.last):
            m.d.sync += active.eq(0)
        for b in range(self.banks):
            m.d.comb += [
                self.write[b].addr.eq(walk.word),
                self.write[b].data.eq(self.stream.payload),
                self.write[b].en.eq(take & (walk.bank == b)),
            ]
        return m


class TensorDrainer(wiring.Component):
    """Streams a ``channels x hw`` tensor (``layer``) out of the feature-buffer banks.

    ``start`` begins; each element leaves on ``stream`` (the last one flagged), at up to one
    per cycle, with backpressure. ``done`` is high in the cycle the last element is taken.
    ``walk`` is as for :class:`TensorLoader`.
    """

    def __init__(self, *, banks, addr_bits, hw_bits, channel_bits=16,
                 read_latency=READ_LATENCY, walk=None):
        _check(banks=banks, addr_bits=addr_bits, hw_bits=hw_bits, channel_bits=channel_bits)
        self.read_latency = check_read_latency(read_latency)
        #: Cycles from a read to the queue's write of its element: the read, and with reads
        #: of 2 or more a register behind the choice of its bank (the banks are spread over
        #: the die).
        self.latency = read_latency + (read_latency > 1)
        self.banks, self.addr_bits, self.hw_bits = banks, addr_bits, hw_bits
        self._walk, self._user = walk, None if walk is None else walk.user()
        super().__init__({
            "start": In(1), "layer": In(TensorShape(channel_bits, hw_bits)),
            "reads": In(memory.ReadPort.Signature(addr_width=addr_bits,
                                                  shape=signed(8))).array(banks),
            "stream": Out(stream.Signature(OutputWord)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # Reads in flight (latency) plus the queue never exceed the queue's depth.
        latency = self.latency
        depth = latency + 3
        walk, restart, step = _walk_of(m, self)
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=9, depth=depth)
        active = Signal()           # elements left to read
        issue = Signal()
        # Reads issued in the last read_latency cycles; the oldest one's data arrives now.
        flight = [issue & ~self.start]
        for i in range(latency):
            flight.append(delayed(m, flight[-1], 1, f"flight{i}"))
        flight = flight[1:]
        pending = flight[-1]
        bank = delayed(m, walk.bank, self.read_latency, "bank")
        last = delayed(m, walk.last, latency, "last")
        m.d.comb += [
            restart.eq(self.start), step.eq(issue),
            issue.eq(active & (queue.level + sum(flight) < depth)),
        ]
        with m.If(self.start):
            m.d.sync += active.eq(1)
        with m.Elif(issue & walk.last):
            m.d.sync += active.eq(0)
        for b in range(self.banks):
            m.d.comb += [self.reads[b].addr.eq(walk.word), self.reads[b].en.eq(issue)]
        data_in = delayed(m, Array(self.reads[b].data for b in range(self.banks))[bank],
                          latency - self.read_latency, "data", reset_less=True)
        m.d.comb += [
            queue.w_data.eq(Cat(data_in, last)),
            queue.w_en.eq(pending),
            self.stream.payload.eq(queue.r_data),
            self.stream.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.stream.ready),
            self.done.eq(queue.r_rdy & self.stream.ready & queue.r_data[8]),
        ]
        return m


class TensorIO(wiring.Component):
    """A :class:`TensorLoader` and a :class:`TensorDrainer` sharing one walk: a layer's
    input tensor (``layer.in_*``) is loaded while ``loading`` is high, its output tensor
    (``layer.out_*``) drained otherwise; the two never run at once."""

    def __init__(self, *, banks, addr_bits, hw_bits, channel_bits=16,
                 read_latency=READ_LATENCY):
        _check(banks=banks, addr_bits=addr_bits, hw_bits=hw_bits, channel_bits=channel_bits)
        self.walk = _Walk(banks, addr_bits, hw_bits, channel_bits)
        shared = {"banks": banks, "addr_bits": addr_bits, "hw_bits": hw_bits,
                  "channel_bits": channel_bits, "walk": self.walk}
        self.loader = TensorLoader(**shared)
        self.drainer = TensorDrainer(**shared, read_latency=read_latency)
        load, drain = self.loader.signature.members, self.drainer.signature.members
        super().__init__({
            "layer": In(TensorIOLayer(channel_bits, hw_bits)), "loading": In(1),
            "load_start": load["start"], "load_done": load["done"],
            "act_in": load["stream"], "write": load["write"],
            "drain_start": drain["start"], "drain_done": drain["done"],
            "act_out": drain["stream"], "reads": drain["reads"],
        })

    def elaborate(self, platform):
        m = Module()
        walk, loader, drainer = self.walk, self.loader, self.drainer
        m.submodules.walk, m.submodules.loader, m.submodules.drainer = walk, loader, drainer
        layer = self.layer
        m.d.comb += [
            walk.channels.eq(Mux(self.loading, layer.in_channels, layer.out_channels)),
            walk.hw.eq(Mux(self.loading, layer.in_hw, layer.out_hw)),
            loader.start.eq(self.load_start), self.load_done.eq(loader.done),
            drainer.start.eq(self.drain_start), self.drain_done.eq(drainer.done),
        ]
        wiring.connect(m, wiring.flipped(self.act_in), loader.stream)
        wiring.connect(m, drainer.stream, wiring.flipped(self.act_out))
        for ours, theirs in ((self.write, loader.write), (self.reads, drainer.reads)):
            for outer, inner in zip(ours, theirs):
                wiring.connect(m, wiring.flipped(outer), inner)
        return m
