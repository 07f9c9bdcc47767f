# amaranth: UnusedElaboratable=no
"""The burst splitter (amaranth.sim): commands become the longest INCR bursts the rules allow."""

import random

import pytest

from sps_hw.axi import PAGE_BYTES, BurstSplitter

from ..support.streams import run, send, take


def split(addr, beats, beat_bytes, max_burst, addr_width):
    """The bursts ``(addr, beats)`` of a command: as long as ``max_burst``, the command's end
    and the next 4 KiB boundary allow (the address wraps at ``2**addr_width``)."""
    addr -= addr % beat_bytes
    bursts = []
    while beats:
        n = min(beats, max_burst, (PAGE_BYTES - addr % PAGE_BYTES) // beat_bytes)
        bursts.append((addr, n))
        addr, beats = (addr + n * beat_bytes) % (1 << addr_width), beats - n
    return bursts


def random_commands(rng, count, beat_bytes, beats_width, addr_width=16):
    commands = []
    for _ in range(count):
        beats = rng.choice([0, 1, rng.randrange(1, 20), rng.randrange(1, 1 << beats_width)])
        # Some start just below a 4 KiB boundary, so that their first burst is cut there.
        addr = rng.randrange(1 << addr_width)
        if rng.random() < 0.3:
            addr = (addr | (PAGE_BYTES - 1)) - rng.randrange(4) * beat_bytes
        commands.append((addr, beats))
    return commands


@pytest.mark.parametrize("data_width, max_burst", [(32, 256), (64, 16), (128, 100), (256, 1),
                                                   (256, 256)])
def test_bursts_follow_the_rules(data_width, max_burst):
    rng = random.Random(data_width * 1000 + max_burst)
    beat_bytes, beats_width = data_width // 8, 10
    dut = BurstSplitter(addr_width=16, data_width=data_width, beats_width=beats_width,
                        max_burst=max_burst)
    commands = random_commands(rng, 40, beat_bytes, beats_width)
    want = [b for a, n in commands for b in split(a, n, beat_bytes, max_burst, 16)]
    got = []

    async def source(ctx):
        await send(ctx, dut.cmd, [{"addr": a, "beats": n} for a, n in commands], rng)

    async def sink(ctx):
        for p in await take(ctx, dut.burst, len(want), rng, ready=0.6):
            got.append((p.addr, p.len + 1))

    run(dut, source, sink)
    assert got == want
    for addr, n in got:
        assert 1 <= n <= max_burst
        assert addr // PAGE_BYTES == (addr + n * beat_bytes - 1) // PAGE_BYTES


def test_a_burst_every_cycle():
    """With ``burst`` always ready, a long command leaves a burst every cycle, the first two
    cycles after the command is taken; ``busy`` covers exactly the split."""
    dut = BurstSplitter(addr_width=32, data_width=64, beats_width=16, max_burst=16)
    seen = []

    async def bench(ctx):
        ctx.set(dut.burst.ready, 1)
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.cmd.payload, {"addr": 0x1F80, "beats": 100})
        await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        for cycle in range(1, 12):
            _, _, valid, payload, busy = await ctx.tick().sample(
                dut.burst.valid, dut.burst.payload, dut.busy)
            seen.append((cycle, busy, valid and (payload.addr, payload.len + 1)))

    run(dut, bench)
    bursts = [(0x1F80, 16), (0x2000, 16), (0x2080, 16), (0x2100, 16), (0x2180, 16),
              (0x2200, 16), (0x2280, 4)]
    assert seen == [(1, 1, 0), *((c, 1, b) for c, b in zip(range(2, 9), bursts)),
                    (9, 0, 0), (10, 0, 0), (11, 0, 0)]


def test_parameters_are_checked():
    with pytest.raises(ValueError, match=r"max_burst must be in 1..256, not 257"):
        BurstSplitter(addr_width=32, data_width=64, beats_width=8, max_burst=257)
    with pytest.raises(ValueError, match="data_width must be one of 32, 64, 128, 256, not 48"):
        BurstSplitter(addr_width=32, data_width=48, beats_width=8)
    with pytest.raises(TypeError, match="beats_width must be an int, not '8'"):
        BurstSplitter(addr_width=32, data_width=64, beats_width="8")
    with pytest.raises(ValueError, match=r"addr_width must be in 12..64, not 11"):
        BurstSplitter(addr_width=11, data_width=64, beats_width=8)
