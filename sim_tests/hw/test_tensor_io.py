"""amaranth.sim tests of the tensor loader and drainer, each with its own walk and as the
:class:`~sps_hw.tensor_io.TensorIO` that shares one: a tensor streamed into the banks and
back out, with random stalls, arrives in C, H, W order at the documented bank words."""

from types import SimpleNamespace

import numpy as np
import pytest
from amaranth import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from sps_hw.memories import FeatureBuffer
from sps_hw.tensor_io import TensorDrainer, TensorIO, TensorLoader


class Loop(Elaboratable):
    """A feature buffer between a loader and a drainer, or (``shared``) a TensorIO; the
    ports ``loader`` and ``drainer`` (start, layer, stream, done) either way."""

    def __init__(self, banks, depth, read_latency, shared):
        self.buffer = FeatureBuffer(banks=banks, depth=depth, read_latency=read_latency)
        bits = max(1, (depth - 1).bit_length())
        self.banks, self.shared = banks, shared
        if shared:
            self.io = io = TensorIO(banks=banks, addr_bits=bits, hw_bits=8,
                                    read_latency=read_latency)
            self.loader = SimpleNamespace(
                start=io.load_start, stream=io.act_in, done=io.load_done,
                layer=SimpleNamespace(channels=io.layer.in_channels, hw=io.layer.in_hw))
            self.drainer = SimpleNamespace(
                start=io.drain_start, stream=io.act_out, done=io.drain_done,
                layer=SimpleNamespace(channels=io.layer.out_channels, hw=io.layer.out_hw))
            self.writes, self.reads = io.write, io.reads
        else:
            self.loader = TensorLoader(banks=banks, addr_bits=bits, hw_bits=8)
            self.drainer = TensorDrainer(banks=banks, addr_bits=bits, hw_bits=8,
                                         read_latency=read_latency)
            self.writes, self.reads = self.loader.write, self.drainer.reads

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = self.buffer
        if self.shared:
            m.submodules.io = self.io
        else:
            m.submodules.loader, m.submodules.drainer = self.loader, self.drainer
        for b in range(self.banks):
            wiring.connect(m, self.writes[b], self.buffer.write[b])
            wiring.connect(m, self.reads[b], self.buffer.read[b])
        return m


@pytest.mark.parametrize("banks, channels, hw, valid_prob, ready_prob, read_latency", [
    (1, 3, 4, 1.0, 1.0, 2), (3, 7, 5, 0.5, 0.4, 2), (4, 4, 1, 0.8, 0.3, 1), (2, 5, 9, 1.0, 0.5, 1)])
@pytest.mark.parametrize("shared", [False, True], ids=["own_walks", "shared_walk"])
def test_round_trip(banks, channels, hw, valid_prob, ready_prob, read_latency, shared):
    depth = -(-channels // banks) * hw
    dut = Loop(banks, depth, read_latency, shared)
    rng = np.random.default_rng(channels * hw)
    x = rng.integers(-128, 128, size=channels * hw)
    got, last = [], []

    async def testbench(ctx):
        ld, dr = dut.loader, dut.drainer
        # A shared walk takes the shape of the tensor in motion: the other one is wrong.
        for port, shape in ((ld, (channels, hw)), (dr, (channels + 1, hw + 2) if shared else
                                                   (channels, hw))):
            ctx.set(port.layer.channels, shape[0])
            ctx.set(port.layer.hw, shape[1])
        if shared:
            ctx.set(dut.io.loading, 1)
        ctx.set(ld.start, 1)
        await ctx.tick()
        ctx.set(ld.start, 0)
        for v in x:
            while rng.random() >= valid_prob:
                ctx.set(ld.stream.valid, 0)
                await ctx.tick()
            ctx.set(ld.stream.valid, 1)
            ctx.set(ld.stream.payload, int(v))
            assert not ctx.get(ld.done)
            await ctx.tick().until(ld.stream.ready)
        ctx.set(ld.stream.valid, 0)
        # The last element is written (done) in the cycle after it was taken.
        assert ctx.get(ld.done) and not ctx.get(ld.stream.ready)
        if shared:
            ctx.set(dut.io.loading, 0)
            ctx.set(ld.layer.channels, channels + 1)
            ctx.set(ld.layer.hw, hw + 2)
            ctx.set(dr.layer.channels, channels)
            ctx.set(dr.layer.hw, hw)
        ctx.set(dr.start, 1)
        await ctx.tick()
        ctx.set(dr.start, 0)
        cycles = 0
        while len(got) < len(x) and cycles < 50 * len(x):
            ready = rng.random() < ready_prob
            ctx.set(dr.stream.ready, ready)
            if ready and ctx.get(dr.stream.valid):
                got.append(ctx.get(dr.stream.payload.data))
                last.append(ctx.get(dr.stream.payload.last))
            await ctx.tick()
            cycles += 1
        ctx.set(dr.stream.ready, 1)
        for _ in range(5):
            assert not ctx.get(dr.stream.valid)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    np.testing.assert_array_equal(got, x)
    assert last == [0] * (len(x) - 1) + [1]
