"""The staged image memories: uploads go to a staging bank, a commit swaps all of them."""

import pytest
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from sps_hw.config import ROM_NAMES
from sps_hw.memories import (
    DROP_INIT,
    READ_LATENCY,
    FeatureBuffer,
    StagedImages,
    StagedMemory,
    image_write_layout,
)

from ..support.synthesis import cell_counts


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


@pytest.mark.parametrize("registered", [False, True])
def test_staged_images_route_writes_by_region(registered):
    """One write stream fills every region's staging bank; one commit makes all active. With
    ``registered_writes`` every memory takes writes and commits a cycle late, in order."""
    shapes = {name: (unsigned(8 * (i + 1)), 4 + i) for i, name in enumerate(ROM_NAMES)}
    images = StagedImages(shapes, {"weights": [5, 6, 7, 8]}, registered_writes=registered)
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
        if registered:                  # the commit reaches the memories a cycle late
            await ctx.tick()
        seen["after"] = [await read(name, 1) for name in ROM_NAMES]
    sim.add_testbench(bench)
    sim.run()
    expected = [int.from_bytes(bytes(0x10 * r + lane for lane in range(r + 1)), "little")
                for r in range(len(ROM_NAMES))]
    assert seen == {"before": [6, 0, 0, 0, 0], "baked": 5, "after": expected}


def test_feature_buffer_reads_merge_into_block_ram(tmp_path):
    """Yosys puts nothing but the block RAMs and the second read register around the banks:
    no read-during-write logic (``sps_hw.memories.read_port``; Amaranth's synchronous port
    made it add a comparator and a multiplexer per data bit, 117 LUT4 for 4 banks)."""
    banks = 4
    cells = cell_counts(tmp_path, FeatureBuffer(banks=banks, depth=2048, read_latency=2),
                        "synth_ecp5 -top top")
    assert cells.get("LUT4", 0) == 0, cells
    assert cells["DP16KD"] == banks and cells["TRELLIS_FF"] == banks * 8, cells


@pytest.mark.parametrize("drop, luts", [(False, 8), (True, 0)])
def test_ice40_read_registers_without_power_up_value(tmp_path, drop, luts):
    """An iCE40 block RAM has no initial output: for the read register's ``init`` Yosys puts
    an AND per data bit behind it, unless the board build's ``DROP_INIT`` removed it."""
    cells = cell_counts(tmp_path, FeatureBuffer(banks=1, depth=512, read_latency=1),
                        f"{DROP_INIT if drop else ''}; synth_ice40 -top top")
    assert cells["SB_RAM40_4K"] == 1 and cells.get("SB_LUT4", 0) == luts, cells
