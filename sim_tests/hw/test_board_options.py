# amaranth: UnusedElaboratable=no
"""The accelerator's board options in amaranth.sim against ``compiler.golden``: narrow
counters and requantizer (``count_bits``, ``channel_bits``, ``mult_bits``), writable images
(staged memories written byte by byte, then committed), the start segment and multipliers
that register their operands (as DSP blocks do); the cycle counts stay those of the model."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from compiler import golden
from compiler.errors import SPSError
from sps_hw import program as prog
from sps_hw.config import ROM_NAMES, Config, word_bytes
from sps_hw.memories import READ_LATENCY
from sps_hw.top import Accelerator, rom_widths

from ..support.layers import layer, random_model, stats_monitor

SPECS = [layer("conv3", ci=3, h=5, w=6, co=3, keep=4, patterns=2, period=3, pool=True),
         layer("conv1", co=4), layer("fc", co=3, relu=False)]
NARROW = {"count_bits": 8, "channel_bits": 5, "mult_bits": 16}


def simulate(dut, x, n_out, *, writes=(), segment=None, max_cycles=100_000):
    """Write ``writes`` ((region, addr, lane, byte) ...), commit, then run one segment."""
    out, stats = [], []

    async def bench(ctx):
        if dut.writable:
            if segment is not None:
                ctx.set(dut.segment, segment)
            for region, addr, lane, byte in writes:
                ctx.set(dut.image_write.valid, 1)
                ctx.set(dut.image_write.payload, {"region": region, "addr": addr, "lane": lane,
                                                  "data": byte})
                await ctx.tick()
            ctx.set(dut.image_write.valid, 0)
            if writes:
                ctx.set(dut.image_commit, 1)
                await ctx.tick()
                ctx.set(dut.image_commit, 0)
        for v in x.reshape(-1):
            ctx.set(dut.act_in.valid, 1)
            ctx.set(dut.act_in.payload, int(v))
            await ctx.tick().until(dut.act_in.ready)
        ctx.set(dut.act_in.valid, 0)
        ctx.set(dut.act_out.ready, 1)
        cycles = 0
        while len(out) < n_out and cycles < max_cycles:
            if ctx.get(dut.act_out.valid):
                out.append(ctx.get(dut.act_out.payload.data))
            await ctx.tick()
            cycles += 1


    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(stats_monitor(dut, stats))
    sim.run()
    assert len(out) == n_out
    return np.array(out, np.int8), stats


def image_writes(cfg, images):
    """Every byte of every ROM image as (region, addr, lane, byte)."""
    writes = []
    for name, (bits, _) in rom_widths(cfg).items():
        for addr, word in enumerate(images[name]):
            writes += [(ROM_NAMES.index(name), addr, lane, (word >> (8 * lane)) & 0xFF)
                       for lane in range(word_bytes(bits))]
    return writes


@pytest.mark.parametrize("writable, layer_words, read_latency", [
    (False, 1, 2), (True, 1, 2), (False, 7, 1), (True, 16, 1), (True, 16, 2)])
def test_narrow_config_matches_golden(writable, layer_words, read_latency):
    """``layer_words`` > 1: each descriptor is read in that many words, and the model's
    cycle counts include the extra fetch cycles; with reads of 1 or 2 cycles."""
    model = random_model(SPECS, seed=11)
    cfg = prog.fit_config(model, rows=3, cols=2, layer_words=layer_words,
                          read_latency=read_latency, **NARROW)
    assert (cfg.count_bits, cfg.channel_bits, cfg.mult_bits) == (8, 5, 16)
    assert cfg.layer_depth == 4
    program = prog.build(model, cfg)
    assert not program.host and len(program.segments) == 1
    x = np.random.default_rng(2).integers(-128, 128, (3, 5, 6)).astype(np.int8)
    want = golden.infer(model, x)
    if writable:   # an empty accelerator, the images written through the port
        dut = Accelerator(cfg, writable=True)
        got, stats = simulate(dut, x, want.size, writes=image_writes(cfg, program.images))
    else:
        got, stats = simulate(Accelerator(cfg, program.images), x, want.size)
    np.testing.assert_array_equal(got, want.reshape(-1))
    assert stats == [(i, program.plans[e["name"]].cycles) for i, e in enumerate(model.layers)]


def test_start_segment():
    """``segment`` = 1: the layers of segment 0 are passed over, segment 1 runs as usual."""
    specs = [layer("conv3", ci=2, h=4, w=4, co=3, keep=9), layer("maxpool"),
             layer("conv1", co=3), layer("fc", co=2)]
    model = random_model(specs, seed=4)
    cfg = prog.fit_config(model, rows=2, cols=2)
    program = prog.build(model, cfg)
    assert len(program.segments) == 2
    seg = program.segments[1]
    acts = golden.run(model, np.random.default_rng(0).integers(-128, 128, (2, 4, 4))
                      .astype(np.int8))
    x = acts[seg.source]
    want = acts[seg.output]
    got, stats = simulate(Accelerator(cfg, program.images, writable=True), x, want.size,
                          segment=1)
    np.testing.assert_array_equal(got, want.reshape(-1))
    assert stats == [(1, program.plans["l2"].cycles), (2, program.plans["l3"].cycles)]


def test_packer_refuses_wide_mult_and_counts():
    model = random_model(SPECS, seed=11, extreme=True)          # mult near 2**31
    cfg = prog.fit_config(model, rows=3, cols=2)
    with pytest.raises(SPSError, match="does not fit the accelerator's 16-bit requantizer"):
        prog.build(model, cfg.replace(mult_bits=16))
    program = prog.build(random_model(SPECS, seed=11), cfg.replace(count_bits=3))
    assert {"l0", "l2"} <= set(program.host)
    assert "the counters hold 2**3" in program.host["l0"]


def test_writable_ports_and_validation():
    cfg = Config(rows=2, cols=2, max_hw=16, max_width=4, fmap_depth=16, weight_depth=8)
    dut = Accelerator(cfg, writable=True)
    assert {"image_write", "image_commit", "segment"} <= set(dut.signature.members)
    assert "image_write" not in Accelerator(cfg).signature.members
    assert len(ROM_NAMES) == 5
    with pytest.raises(TypeError, match="writable must be a bool"):
        Accelerator(cfg, writable=1)
    with pytest.raises(ValueError, match=r"mult_bits must be in 2\.\.32"):
        Config(mult_bits=40)


@pytest.mark.parametrize("single_port", [False, True])
def test_staged_memory_banks(single_port):
    """Writes go to the staging bank only, commit swaps, the read port sees the active one."""
    from sps_hw.memories import StagedMemory
    dut = StagedMemory(width=12, depth=8, init=[5, 6, 7], single_port=single_port)
    got = {}

    async def bench(ctx):
        async def read(addr):
            ctx.set(dut.read.addr, addr)
            ctx.set(dut.read.en, 1)
            await ctx.tick().repeat(READ_LATENCY)
            return ctx.get(dut.read.data)
        got["before"] = [await read(a) for a in range(3)]
        for addr, word in ((0, 0xABC), (2, 0x123)):
            for lane in range(2):
                ctx.set(dut.write.valid, 1)
                ctx.set(dut.write.payload, {"addr": addr, "lane": lane,
                                            "data": (word >> (8 * lane)) & 0xFF})
                await ctx.tick()
        ctx.set(dut.write.valid, 0)
        got["staged"] = [await read(a) for a in range(3)]   # not active yet
        ctx.set(dut.commit, 1)
        await ctx.tick()
        ctx.set(dut.commit, 0)
        got["after"] = [await read(a) for a in (0, 2)]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == {"before": [5, 6, 7], "staged": [5, 6, 7], "after": [0xABC, 0x123]}
