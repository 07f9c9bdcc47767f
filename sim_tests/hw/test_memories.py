"""The staged image memories: uploads go to a staging bank, a commit swaps all of them."""

import pytest
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from sps_hw.config import ROM_NAMES
from sps_hw.memories import READ_LATENCY, StagedImages, StagedMemory, image_write_layout


@pytest.mark.parametrize("read_latency", [1, 2])
def test_staged_memory_commit_and_reset(read_latency):
    """Writes go to the staging bank; commit swaps; a reset keeps the active bank."""
    mem = StagedMemory(width=8, depth=4, init=[1, 2, 3, 4], read_latency=read_latency)
    sim = Simulator(mem)
    sim.add_clock(1e-6)
    seen = {}

    async def bench(ctx):
        async def read_all():
            out = []
            for a in range(4):
                ctx.set(mem.read.addr, a)
                await ctx.tick().repeat(read_latency)
                out.append(ctx.get(mem.read.data))
            return out
        for a, v in enumerate([9, 8, 7, 6]):
            ctx.set(mem.write.valid, 1)
            ctx.set(mem.write.payload, {"addr": a, "data": v})
            await ctx.tick()
        ctx.set(mem.write.valid, 0)
        seen["before"] = await read_all()
        ctx.set(mem.commit, 1)
        await ctx.tick()
        ctx.set(mem.commit, 0)
        seen["after"] = await read_all()
        await ctx.tick().repeat(1)
        seen["active"] = ctx.get(mem.active)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"before": [1, 2, 3, 4], "after": [9, 8, 7, 6], "active": 1}


def test_staged_images_route_writes_by_region():
    """One write stream fills every region's staging bank; one commit makes all active."""
    shapes = {name: (unsigned(8 * (i + 1)), 4 + i) for i, name in enumerate(ROM_NAMES)}
    images = StagedImages(shapes, {"weights": [5, 6, 7, 8]})
    assert images.write.payload.shape() == image_write_layout(
        {name: (8 * (i + 1), 4 + i) for i, name in enumerate(ROM_NAMES)})
    sim = Simulator(images)
    sim.add_clock(1e-6)
    seen = {}

    async def bench(ctx):
        async def read(name, addr):
            port = getattr(images, f"read_{name}")
            ctx.set(port.addr, addr)
            ctx.set(port.en, 1)
            await ctx.tick().repeat(READ_LATENCY)
            return ctx.get(port.data)
        # Word 1 of each region i: bytes 0x10 * i + lane, little-endian.
        for region in range(len(ROM_NAMES)):
            for lane in range(region + 1):
                ctx.set(images.write.valid, 1)
                ctx.set(images.write.payload, {"region": region, "addr": 1, "lane": lane,
                                               "data": 0x10 * region + lane})
                await ctx.tick()
        ctx.set(images.write.valid, 0)
        seen["before"] = [await read(name, 1) for name in ROM_NAMES]
        seen["baked"] = await read("weights", 0)
        ctx.set(images.commit, 1)
        await ctx.tick()
        ctx.set(images.commit, 0)
        seen["after"] = [await read(name, 1) for name in ROM_NAMES]
    sim.add_testbench(bench)
    sim.run()
    expected = [int.from_bytes(bytes(0x10 * r + lane for lane in range(r + 1)), "little")
                for r in range(len(ROM_NAMES))]
    assert seen == {"before": [6, 0, 0, 0, 0], "baked": 5, "after": expected}
