"""A stream stage: the tensor drainer (:class:`sps_hw.tensor_io.TensorDrainer`), which reads
the feature-buffer banks ``read_latency`` cycles ahead into a small queue and streams the
tensor out with backpressure.

The feature buffer is modelled by read ports that return, ``read_latency`` cycles after an
address, a tag naming the bank and word, so each element of the tensor has its own value
(the drainer's queue takes it ``latency`` cycles after the read).
Asserted every cycle:

- ``held``: an output the consumer has not taken stays offered, unchanged;
- ``in_order``: the queue receives exactly the tensor's elements, in C, H, W order, each once,
  the last one flagged, nothing after it;
- ``never_lost``: nothing is written into a full queue;
- ``no_extra``: no output is offered beyond the tensor's ``channels x hw`` elements;
- what makes them inductive: the walk's position is the queue's next element plus the reads
  in flight; queue level plus reads in flight never exceed the queue.

The consumer's ``ready``, reset and the tensor's shape (from 1x1 up to 3x3 here) are free; a
new tensor starts only once the last one has been taken, and its shape holds while it drains.
"""

from amaranth.hdl import Assert, Assume, Cat, Elaboratable, Module, Signal
from amaranth.hdl._ast import AnySeq

from sps_hw.tensor_io import TensorDrainer

from .sby import internals

__all__ = ["BANKS", "TensorDrainerHarness"]

BANKS = 2
PARAMS = {"banks": BANKS, "addr_bits": 3, "hw_bits": 2, "channel_bits": 2}


class TensorDrainerHarness(Elaboratable):
    """``broken`` removes the backpressure (reads are issued whatever the queue holds)."""

    def __init__(self, read_latency=2, broken=False):
        self.dut = TensorDrainer(**PARAMS, read_latency=read_latency)
        self.read_latency, self.broken = read_latency, broken

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        inside = internals(dut)
        walk, queue = (inside.submodules[n] for n in ("walk", "queue"))
        w = internals(walk).signals
        q = internals(queue).signals
        active, issue = inside.signals["active"], inside.signals["issue"]
        if self.broken:
            inside.module.d.comb += issue.eq(active)
        flight = [inside.signals[f"flight{i}_d1"] for i in range(dut.latency)]
        out = dut.stream

        # The tensor: its shape, taken at start and held; start only when idle.
        channels, hw = Signal(2), Signal(2)
        taken = Signal(4)                       # elements taken from the stream
        total = channels * hw
        idle = taken == total
        m.d.comb += [dut.start.eq(AnySeq(1)), dut.layer.channels.eq(AnySeq(2)),
                     dut.layer.hw.eq(AnySeq(2)), out.ready.eq(AnySeq(1))]
        with m.If(dut.start):
            m.d.comb += Assume(idle & (dut.layer.channels != 0) & (dut.layer.hw != 0))
            m.d.sync += [channels.eq(dut.layer.channels), hw.eq(dut.layer.hw), taken.eq(0)]
        with m.Else():
            m.d.comb += Assume((dut.layer.channels == channels) & (dut.layer.hw == hw))
        # The banks: word ``a`` of bank ``b`` holds the tag 2a + b.
        for b in range(BANKS):
            addr = dut.reads[b].addr
            for i in range(self.read_latency):
                reg = Signal.like(addr, name=f"addr{b}_d{i + 1}")
                m.d.sync += reg.eq(addr)
                addr = reg
            m.d.comb += dut.reads[b].data.eq(addr * BANKS + b)

        # held
        started, waiting, payload_p = Signal(), Signal(), Signal.like(out.payload)
        m.d.sync += [started.eq(1), waiting.eq(out.valid & ~out.ready),
                     payload_p.eq(out.payload)]
        with m.If(started & waiting):
            m.d.comb += Assert(out.valid & (out.payload.as_value() == payload_p.as_value()))
        # no_extra, and the count of what was taken
        with m.If(out.valid):
            m.d.comb += Assert(taken < total)
        with m.If(out.valid & out.ready & ~dut.start):
            m.d.sync += taken.eq(taken + 1)

        # in_order and never_lost: the queue's writes against the next element (c, p).
        c, p = Signal(2), Signal(2)
        with m.If(dut.start):
            m.d.sync += [c.eq(0), p.eq(0)]
        with m.If(queue.w_en):
            tag = ((c >> 1) * hw + p) * BANKS + c[0]
            last = (c == channels - 1) & (p == hw - 1)
            m.d.comb += Assert(queue.w_rdy & (queue.w_data == Cat(tag[:8], last)))
            m.d.sync += [p.eq(p + 1)]
            with m.If(p == hw - 1):
                m.d.sync += [p.eq(0), c.eq(c + 1)]
        written = c * hw + p                    # elements written into the queue

        # The invariants.
        in_flight = sum(flight)
        m.d.comb += [Assert(queue.level + in_flight <= queue.depth),
                     Assert(queue.level + taken == written),
                     Assert(q["inner_level"] <= queue.depth - 1),
                     Assert(queue.r_rdy | (q["inner_level"] <= 1)),
                     Assert(written + in_flight <= total), Assert((hw == 0) | (p < hw))]
        with m.If(active):
            # The walk counts the channels left (channels - channel) down to 1.
            pixel, left = w["pixel"], w["channels_left"]
            channel = channels - left
            m.d.comb += [Assert((pixel < hw) & (left >= 1) & (left <= channels)),
                         Assert(w["pixel_end"] == (pixel == hw - 1)),
                         Assert(w["channel_end"] == (left == 1)),
                         Assert(walk.bank == channel[0]),
                         Assert(w["block"] == (channel >> 1) * hw),
                         Assert(channel * hw + pixel == written + in_flight)]
        with m.Else():
            m.d.comb += Assert(written + in_flight == total)
        return m
