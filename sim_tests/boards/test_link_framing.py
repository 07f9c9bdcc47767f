# amaranth: UnusedElaboratable=no
"""The frame receiver alone (``boards.link.framing``): frames from ``boards.protocol``'s
encoder amid noise, with random gaps; damaged, oversized and truncated ones; the payload
streamed back with random stalls; the CRC-16 register lent to the sender; the stall timer it
lends to the dispatcher."""

import binascii

import numpy as np
import pytest

from boards.link.framing import FrameReceiver
from boards.protocol import SYNC, Status, encode_frame

from ..support.streams import run, send, take

MAX_PAYLOAD, TIMEOUT, HOLD = 64, 200, 50


def receiver():
    return FrameReceiver(max_payload=MAX_PAYLOAD, timeout=TIMEOUT, hold_timeout=HOLD)


async def frame_of(ctx, dut, rng, *, read):
    """Wait for the next frame, take its payload (``read`` bytes: all or none) with random
    stalls, release it; return (cmd, length, status, payload)."""
    await ctx.tick().until(dut.frame.valid)
    frame = ctx.get(dut.frame.payload)
    got = await take(ctx, dut.payload, read, rng)
    assert [b.last for b in got] == [i == read - 1 for i in range(read)]
    await ctx.tick().repeat(2)
    assert not ctx.get(dut.payload.valid)           # nothing more
    ctx.set(dut.frame.ready, 1)
    await ctx.tick()
    ctx.set(dut.frame.ready, 0)
    return frame.cmd, frame.length, frame.status, bytes(b.data for b in got)


def test_constructor_checks():
    with pytest.raises(ValueError, match="max_payload"):
        FrameReceiver(max_payload=8, timeout=10)
    with pytest.raises(ValueError, match="hold_timeout"):
        FrameReceiver(max_payload=64, timeout=10, hold_timeout=0)


@pytest.mark.parametrize("seed", [1, 2])
def test_frames_amid_noise(seed):
    """Well-formed frames are handed on whole; bytes between frames are ignored; a damaged
    payload or CRC is ERR_CRC, a LEN beyond max_payload ERR_LENGTH."""
    dut = receiver()
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(12):
        cmd = int(rng.integers(256))
        payload = bytes(rng.integers(0, 256, int(rng.integers(MAX_PAYLOAD + 1)), dtype=np.uint8))
        wire = bytearray(encode_frame(cmd, payload))
        status = Status.OK
        if rng.random() < 0.3:              # a bit flipped after LEN
            wire[int(rng.integers(4, len(wire)))] ^= 1 << int(rng.integers(8))
            status = Status.ERR_CRC
        elif rng.random() < 0.15:           # LEN too large (the rest is drained)
            wire = bytearray(encode_frame(cmd, bytes(MAX_PAYLOAD + 1)))
            payload, status = b"", Status.ERR_LENGTH
        noise = bytes(b for b in rng.integers(0, 256, 5, dtype=np.uint8) if b != SYNC)
        frames.append((noise + bytes(wire), cmd, payload, status))

    async def host(ctx):
        for wire, *_ in frames:
            await send(ctx, dut.i, wire, rng)
            await ctx.tick().repeat(TIMEOUT + 20)       # the line quiet: the frame is over

    async def consumer(ctx):
        for _, cmd, payload, status in frames:
            got = await frame_of(ctx, dut, rng, read=len(payload) if status == Status.OK else 0)
            if status == Status.OK:
                assert got == (cmd, len(payload), status, payload)
            else:
                assert (got[0], got[2]) == (cmd, status)

    run(dut, host, consumer)


def test_truncated_frame():
    """Half a frame, then silence: ERR_TIMEOUT once the line has been quiet for the timeout."""
    dut = receiver()
    rng = np.random.default_rng(3)
    seen, clock = {}, [0]

    async def counter(ctx):
        async for _ in ctx.tick():
            clock[0] += 1

    async def host(ctx):
        await send(ctx, dut.i, encode_frame(0x13, b"abcd")[:5], rng)
        seen["sent"] = clock[0]

    async def consumer(ctx):
        await ctx.tick().until(dut.frame.valid)
        seen["frame"] = clock[0]
        assert ctx.get(dut.frame.payload.status) == Status.ERR_TIMEOUT
        assert ctx.get(dut.frame.payload.cmd) == 0x13

    run(dut, host, consumer, background=[counter])
    assert TIMEOUT <= seen["frame"] - seen["sent"] <= TIMEOUT + 12


def test_held_frame_lends_crc_and_timer():
    """While a frame is held: the sender's CRC-16 is CRC-16/CCITT-FALSE of what it shifts in;
    the stall timer expires after HOLD consecutive counting cycles, and restarts when not."""
    dut = receiver()
    rng = np.random.default_rng(4)
    data = b"\x93\x05\x00status"

    async def host(ctx):
        await send(ctx, dut.i, encode_frame(0x02, b""), rng)

    async def consumer(ctx):
        await ctx.tick().until(dut.frame.valid)
        tx = dut.tx_crc
        ctx.set(tx.start, 1)
        await ctx.tick()
        ctx.set(tx.start, 0)
        for byte in data:
            for i in range(8):
                ctx.set(tx.valid, 1)
                ctx.set(tx.data, byte >> (7 - i) & 1)
                await ctx.tick()
        ctx.set(tx.valid, 0)
        assert ctx.get(tx.value) == binascii.crc_hqx(data, 0xFFFF)
        ctx.set(dut.hold.count, 1)
        await ctx.tick().repeat(HOLD - 10)
        ctx.set(dut.hold.count, 0)              # a byte taken: the wait starts again
        await ctx.tick()
        ctx.set(dut.hold.count, 1)
        for n in range(1, HOLD + 1):
            assert not ctx.get(dut.hold.expired), n
            await ctx.tick()
        assert ctx.get(dut.hold.expired)

    run(dut, host, consumer)
