"""Tensors in and out: the activation streams to and from the feature buffers.

A tensor of ``channels x hw`` int8 values travels in C, H, W order (channel by channel, each
in raster order). In a feature buffer channel ``c``, pixel ``i`` is bank ``c mod banks``,
word ``(c // banks) * hw + i``.
"""

from amaranth.hdl import Array, Cat, Elaboratable, Module, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .memories import READ_LATENCY
from .registers import delayed

__all__ = ["OutputWord", "TensorDrainer", "TensorLoader", "TensorShape"]

#: A result byte and whether it is the last of its tensor.
OutputWord = data.StructLayout({"data": signed(8), "last": unsigned(1)})


class TensorShape(wiring.Signature):
    """The shape of a tensor to load or drain: ``channels`` of ``hw`` pixels."""

    def __init__(self, channel_bits, hw_bits):
        super().__init__({"channels": Out(channel_bits), "hw": Out(hw_bits)})


def _check(**values):
    for name, value in values.items():
        check_int(name, value, minimum=1)


class _Walk(Elaboratable):
    """Position (bank, word) of the next element of a tensor in C, H, W order.

    ``last`` (the next element is the tensor's last) is a register kept in step with the
    counters, so no comparison lies between them and the users of ``last``."""

    def __init__(self, banks, addr_bits, hw_bits, channel_bits):
        self.banks = banks
        self.restart, self.step = Signal(), Signal()
        self.channels, self.hw = Signal(channel_bits), Signal(hw_bits)
        self.bank = Signal(range(banks))
        self.word = Signal(addr_bits)
        self.last = Signal()

    def elaborate(self, platform):
        m = Module()
        pixel = Signal.like(self.hw)
        channel = Signal.like(self.channels)
        block = Signal.like(self.word)
        pixel_end = Signal()            # pixel == hw - 1
        channel_end = Signal()          # channel == channels - 1
        m.d.comb += [self.word.eq(block + pixel), self.last.eq(pixel_end & channel_end)]
        with m.If(self.restart):
            m.d.sync += [pixel.eq(0), channel.eq(0), block.eq(0), self.bank.eq(0),
                         pixel_end.eq(self.hw == 1), channel_end.eq(self.channels == 1)]
        with m.Elif(self.step):
            with m.If(pixel_end):
                m.d.sync += [pixel.eq(0), channel.eq(channel + 1), pixel_end.eq(self.hw == 1),
                             channel_end.eq(channel + 2 == self.channels)]
                with m.If(self.bank == self.banks - 1):
                    m.d.sync += [self.bank.eq(0), block.eq(block + self.hw)]
                with m.Else():
                    m.d.sync += self.bank.eq(self.bank + 1)
            with m.Else():
                m.d.sync += [pixel.eq(pixel + 1), pixel_end.eq(pixel + 2 == self.hw)]
        return m


class TensorLoader(wiring.Component):
    """Writes a ``channels x hw`` tensor (``layer``) from the ``stream`` into the
    feature-buffer banks.

    ``start`` begins; ``done`` is high in the cycle the last element is written, one cycle
    after it was taken (the writes are registered). ``stream`` is ready only while a tensor
    is being loaded.
    """

    def __init__(self, *, banks, addr_bits, hw_bits, channel_bits=16):
        _check(banks=banks, addr_bits=addr_bits, hw_bits=hw_bits, channel_bits=channel_bits)
        self.banks, self.addr_bits, self.hw_bits = banks, addr_bits, hw_bits
        super().__init__({
            "start": In(1), "layer": In(TensorShape(channel_bits, hw_bits)),
            "stream": In(stream.Signature(signed(8))),
            "write": In(memory.WritePort.Signature(addr_width=addr_bits,
                                                   shape=signed(8))).array(banks),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.walk = walk = _Walk(self.banks, self.addr_bits, self.hw_bits,
                                         len(self.layer.channels))
        active = Signal()
        take = Signal()
        m.d.comb += [
            walk.channels.eq(self.layer.channels), walk.hw.eq(self.layer.hw),
            walk.restart.eq(self.start), walk.step.eq(take),
            self.stream.ready.eq(active),
            take.eq(active & self.stream.valid),
            self.done.eq(delayed(m, take & walk.last, 1, "done")),
        ]
        with m.If(self.start):
            m.d.sync += active.eq(1)
        with m.Elif(take & walk.last):
            m.d.sync += active.eq(0)
        addr, value = delayed(m, walk.word, 1, "addr"), delayed(m, self.stream.payload, 1, "data")
        for b in range(self.banks):
            m.d.comb += [
                self.write[b].addr.eq(addr),
                self.write[b].data.eq(value),
                self.write[b].en.eq(delayed(m, take & (walk.bank == b), 1, f"en{b}")),
            ]
        return m


class TensorDrainer(wiring.Component):
    """Streams a ``channels x hw`` tensor (``layer``) out of the feature-buffer banks.

    ``start`` begins; each element leaves on ``stream`` (the last one flagged), at up to one
    per cycle, with backpressure. ``done`` is high in the cycle the last element is taken.
    """

    def __init__(self, *, banks, addr_bits, hw_bits, channel_bits=16,
                 read_latency=READ_LATENCY):
        _check(banks=banks, addr_bits=addr_bits, hw_bits=hw_bits, channel_bits=channel_bits)
        self.read_latency = check_int("read_latency", read_latency, minimum=1, maximum=2)
        self.banks, self.addr_bits, self.hw_bits = banks, addr_bits, hw_bits
        super().__init__({
            "start": In(1), "layer": In(TensorShape(channel_bits, hw_bits)),
            "reads": In(memory.ReadPort.Signature(addr_width=addr_bits,
                                                  shape=signed(8))).array(banks),
            "stream": Out(stream.Signature(OutputWord)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # Reads in flight (read_latency) plus the queue never exceed the queue's depth.
        latency = self.read_latency
        depth = latency + 3
        m.submodules.walk = walk = _Walk(self.banks, self.addr_bits, self.hw_bits,
                                         len(self.layer.channels))
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=9, depth=depth)
        active = Signal()           # elements left to read
        issue = Signal()
        # Reads issued in the last read_latency cycles; the oldest one's data arrives now.
        flight = [issue & ~self.start]
        for i in range(latency):
            flight.append(delayed(m, flight[-1], 1, f"flight{i}"))
        flight = flight[1:]
        pending = flight[-1]
        bank = delayed(m, walk.bank, latency, "bank")
        last = delayed(m, walk.last, latency, "last")
        m.d.comb += [
            walk.channels.eq(self.layer.channels), walk.hw.eq(self.layer.hw),
            walk.restart.eq(self.start), walk.step.eq(issue),
            issue.eq(active & (queue.level + sum(flight) < depth)),
        ]
        with m.If(self.start):
            m.d.sync += active.eq(1)
        with m.Elif(issue & walk.last):
            m.d.sync += active.eq(0)
        for b in range(self.banks):
            m.d.comb += [self.reads[b].addr.eq(walk.word), self.reads[b].en.eq(issue)]
        data_in = Array(self.reads[b].data for b in range(self.banks))[bank]
        m.d.comb += [
            queue.w_data.eq(Cat(data_in, last)),
            queue.w_en.eq(pending),
            self.stream.payload.eq(queue.r_data),
            self.stream.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.stream.ready),
            self.done.eq(queue.r_rdy & self.stream.ready & queue.r_data[8]),
        ]
        return m
