# amaranth: UnusedElaboratable=no
"""The tensor movers in amaranth.sim, against a small AXI4 memory written here: the bus widths
and limits the cocotb tests do not build (32 and 256 bits, bursts of one or two beats, one in
flight, narrow sizes), random stalls everywhere; the parameter checks."""

import random
from collections import deque

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from sps_hw.axi import (
    RESP_OKAY,
    RESP_SLVERR,
    AXI4Signature,
    BurstWriter,
    TensorReader,
    TensorWriter,
    crop_layout,
    join,
    rectangle_layout,
)

from ..support.streams import run, send, take

MEMORY = 1 << 14
CYCLES = 40_000         # the longest test takes under 10,000


class Movers(wiring.Component):
    """A reader and a writer on one bus (``reader``, ``writer`` and ``m_axi``)."""

    def __init__(self, **params):
        self.reader, self.writer = TensorReader(**params), TensorWriter(**params)
        super().__init__({"m_axi": wiring.Out(AXI4Signature(
            addr_width=params["addr_width"], data_width=params["data_width"]))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader, m.submodules.writer = self.reader, self.writer
        join(m, self.m_axi, self.reader.m_axi, self.writer.m_axi)
        return m


def memory(bus, mem, rng, p=0.7, fault=range(0)):
    """A testbench serving ``bus`` from the bytearray ``mem``: bursts in order, each channel
    ready or valid with probability ``p`` (a valid held until taken), byte strobes obeyed, a
    write burst answered once its address and last beat are in; beats at addresses in
    ``fault`` answer SLVERR (a write burst with one such beat)."""
    bb = len(bus.wdata) // 8

    async def serve(ctx):
        reads, writes, beats, responses = deque(), deque(), deque(), deque()
        r = None                        # the beat presented on R: (addr, last)
        bad = False                     # the write burst under way had a faulty beat
        while True:
            ar_ready, aw_ready, w_ready = (rng.random() < p for _ in range(3))
            if r is None and reads and rng.random() < p:
                addr, left = reads[0]
                r = (addr, left == 1)
                reads[0] = (addr + bb, left - 1)
                if left == 1:
                    reads.popleft()
            ctx.set(bus.rvalid, r is not None)
            if r is not None:
                ctx.set(bus.rdata, int.from_bytes(mem[r[0]:r[0] + bb], "little"))
                ctx.set(bus.rlast, r[1])
                ctx.set(bus.rresp, RESP_SLVERR if r[0] in fault else RESP_OKAY)
            b = bool(responses)
            ctx.set(bus.bvalid, b)
            if b:
                ctx.set(bus.bresp, responses[0])
            ctx.set(bus.arready, ar_ready)
            ctx.set(bus.awready, aw_ready)
            ctx.set(bus.wready, w_ready)
            _, _, ar, araddr, arlen, rready, aw, awaddr, awlen, w, wdata, wstrb, wlast, bready \
                = await ctx.tick().sample(
                    bus.arvalid, bus.araddr, bus.arlen, bus.rready, bus.awvalid, bus.awaddr,
                    bus.awlen, bus.wvalid, bus.wdata, bus.wstrb, bus.wlast, bus.bready)
            if ar and ar_ready:
                reads.append((araddr, arlen + 1))
            if r is not None and rready:
                r = None
            if aw and aw_ready:
                writes.append((awaddr, awlen + 1))
            if w and w_ready:               # W may come before its address
                beats.append((wdata, wstrb, wlast))
            while writes and beats:
                (addr, left), (wdata, wstrb, wlast) = writes[0], beats.popleft()
                assert wlast == (left == 1)
                for i in range(bb):
                    if wstrb >> i & 1:
                        mem[addr + i] = wdata >> 8 * i & 0xFF
                bad = bad or addr in fault
                writes[0] = (addr + bb, left - 1)
                if left == 1:
                    writes.popleft()
                    responses.append(RESP_SLVERR if bad else RESP_OKAY)
                    bad = False
            if b and bready:
                responses.popleft()

    return serve


@pytest.mark.parametrize("params", [
    {"data_width": 32, "max_burst": 1, "max_outstanding": 1, "size_width": 6},
    {"data_width": 256, "max_burst": 2, "max_outstanding": 3, "size_width": 7},
])
def test_random_tensors(params):
    """Random sub-rectangles read and crops written at once: the bytes read are numpy's
    slices, the memory is numpy's placement of the kept crops and nothing else."""
    rng = random.Random(params["data_width"])
    dut = Movers(addr_width=16, **params)
    image = bytearray(rng.randbytes(MEMORY))
    mem, model = bytearray(image), bytearray(image)
    half, max_cols = MEMORY // 2, (1 << params["size_width"]) - 1
    reads, want = [], []
    writes, payload = [], []
    for _ in range(20):
        c, h, w = rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, max_cols)
        base = rng.randrange(half - c * h * w)
        tensor = np.frombuffer(image, np.uint8)[base:base + c * h * w].reshape(c, h, w)
        c0, y0, x0 = rng.randrange(c), rng.randrange(h), rng.randrange(w)
        c1, y1, x1 = rng.randint(c0 + 1, c), rng.randint(y0 + 1, h), rng.randint(x0 + 1, w)
        reads.append({"base": base + (c0 * h + y0) * w + x0, "channels": c1 - c0,
                      "rows": y1 - y0, "cols": x1 - x0, "row_pitch": w,
                      "channel_pitch": h * w})
        want.extend(tensor[c0:c1, y0:y1, x0:x1].ravel())
        # A job's output of c x h x w, of which [r0, r1) x [k0, k1) goes to a tensor in the
        # other half with the same pitches, at a random corner.
        r0, k0 = rng.randrange(h), rng.randrange(w)
        r1, k1 = rng.randint(r0, h), rng.randint(k0, w)
        out = np.frombuffer(rng.randbytes(c * h * w), np.uint8).reshape(c, h, w)
        payload.extend(int(v) for v in out.ravel())
        dest = half + rng.randrange(half - c * h * w)
        writes.append({"base": dest + r0 * w + k0, "channels": c, "rows": h, "cols": w,
                       "row_pitch": w, "channel_pitch": h * w, "keep_row0": r0,
                       "keep_row1": r1, "keep_col0": k0, "keep_col1": k1})
        placed = np.frombuffer(model, np.uint8)[dest:dest + c * h * w].reshape(c, h, w)
        placed[:, r0:r1, k0:k1] = out[:, r0:r1, k0:k1]
    got, written, finished = [], bytearray(), []

    async def read_side(ctx):
        await send(ctx, dut.reader.cmd, reads, rng)

    async def bytes_out(ctx):
        got.extend(v & 0xFF for v in await take(ctx, dut.reader.data, len(want), rng))
        finished.append("read")

    async def write_side(ctx):
        await send(ctx, dut.writer.cmd, writes, rng)

    async def bytes_in(ctx):
        await send(ctx, dut.writer.data, [v - 256 if v > 127 else v for v in payload], rng)
        await ctx.tick().until(~dut.writer.busy)
        written.extend(mem)             # when busy falls, everything is written
        finished.append("write")

    async def watchdog(ctx):
        for _ in range(CYCLES):
            if len(finished) == 2:
                return
            await ctx.tick()
        raise AssertionError(f"the movers are not done after {CYCLES} cycles: {finished}")

    run(dut, read_side, bytes_out, write_side, bytes_in, watchdog,
        background=[memory(dut.m_axi, mem, random.Random(1))])
    assert got == [int(v) for v in want]
    assert written == model


def test_errors():
    """An SLVERR answer sets ``error`` (the bytes are still read or taken); a command taken
    while idle clears it, one taken while busy does not."""
    dut = Movers(addr_width=16, data_width=64, max_burst=4, max_outstanding=2, size_width=8)
    mem = bytearray(MEMORY)
    fault = range(0x1000, 0x1100)
    flags = []

    def rectangle(base):
        return {"base": base, "channels": 2, "rows": 3, "cols": 20, "row_pitch": 40,
                "channel_pitch": 200}

    async def bench(ctx):
        for bases in ([0x0F80], [0x0100], [0x0F80, 0x0100], [0x0100]):
            for base in bases:
                ctx.set(dut.reader.cmd.payload, rectangle(base))
                ctx.set(dut.writer.cmd.payload, {**rectangle(base), "keep_row0": 0,
                                                 "keep_row1": 3, "keep_col0": 0,
                                                 "keep_col1": 20})
                ctx.set(dut.reader.cmd.valid, 1)
                ctx.set(dut.writer.cmd.valid, 1)
                await ctx.tick().until(dut.reader.cmd.ready & dut.writer.cmd.ready)
                ctx.set(dut.reader.cmd.valid, 0)
                ctx.set(dut.writer.cmd.valid, 0)
            ctx.set(dut.reader.data.ready, 1)
            ctx.set(dut.writer.data.valid, 1)
            await ctx.tick().until(~dut.reader.busy & ~dut.writer.busy)
            flags.append((ctx.get(dut.reader.error), ctx.get(dut.writer.error)))

    run(dut, bench, background=[memory(dut.m_axi, mem, random.Random(2), fault=fault)])
    assert flags == [(1, 1), (0, 0), (1, 1), (0, 0)]


def test_parameters_are_checked():
    with pytest.raises(ValueError, match=r"size_width must be in 1..32, not 0"):
        TensorReader(size_width=0)
    with pytest.raises(TypeError, match=r"size_width must be an int, not 16\.0"):
        TensorWriter(size_width=16.0)
    with pytest.raises(ValueError, match="data_width must be one of 32, 64, 128, 256, not 8"):
        TensorWriter(data_width=8)
    with pytest.raises(ValueError, match=r"max_burst must be in 1..256, not 0"):
        TensorReader(max_burst=0)
    with pytest.raises(ValueError, match=r"max_outstanding must be in 1..64, not 65"):
        TensorWriter(max_outstanding=65)
    with pytest.raises(ValueError, match=r"counter_width must be in 1..64, not 0"):
        TensorReader(counter_width=0)
    with pytest.raises(TypeError, match="strobes must be a bool, not 1"):
        BurstWriter(strobes=1)


def test_members():
    reader, writer = TensorReader(addr_width=40, size_width=12), TensorWriter(data_width=128)
    assert reader.cmd.payload.shape() == rectangle_layout(40, 12)
    assert len(reader.data.payload) == 8 and reader.data.payload.shape().signed
    assert writer.cmd.payload.shape() == crop_layout(32, 16)
    assert set(rectangle_layout(32, 16).members) == {
        "base", "channels", "rows", "cols", "row_pitch", "channel_pitch"}
    assert set(crop_layout(32, 16).members) - set(rectangle_layout(32, 16).members) == {
        "keep_row0", "keep_row1", "keep_col0", "keep_col1"}
    assert "araddr" in reader.m_axi.signature.members and \
        "awaddr" not in reader.m_axi.signature.members
    assert "wstrb" in writer.m_axi.signature.members and \
        "araddr" not in writer.m_axi.signature.members
    strobed = BurstWriter(data_width=32, strobes=True)
    assert set(strobed.data.payload.shape().members) == {"data", "strb"}
    assert len(strobed.data.payload.strb) == 4
