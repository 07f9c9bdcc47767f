# amaranth: UnusedElaboratable=no
"""The image loader alone (``boards.link.loader``): uploads, refusals, COMMIT and DISCARD as
command items with random stalls, a core that takes bytes with random stalls and a stand-in
ledger that runs the loader's programs in the Python model with random delays; every answer
(its script, sent as the sender would) against a Python model of section 4 of
``docs/host_link.md`` and ``zlib.crc32``."""

import zlib

import numpy as np
import pytest

from boards.link import MemoryMap
from boards.link.loader import ImageLoader
from boards.link.ports import Op, Source
from boards.link.scripts import Data
from boards.protocol import REGIONS, Status

from ..support.link_stages import (
    LedgerModel,
    LedgerStandIn,
    execute,
    items,
    ledger_image,
    stall_timer,
)
from ..support.streams import run

MM = MemoryMap(weights=(16, 32), index=(4, 8), library=(9, 4), params=(20, 2), layers=(32, 2))
STALL = 60
ALL = (1 << len(REGIONS)) - 1


class Model:
    """The loader's protocol: what each command answers (status, arg) and leaves behind."""

    def __init__(self):
        self.verified, self.loading, self.model_valid = 0, False, False
        self.region = self.fill = self.remaining = self.expected = 0
        self.image = b""
        self.writes = []                    # (region, word address, lane, byte)
        self.tag = None

    def begin(self, region, length, crc):
        if region >= len(REGIONS):
            return Status.ERR_REGION, len(REGIONS)
        if length > MM[region].capacity:
            return Status.ERR_TOO_LARGE, MM[region].capacity
        self.region, self.remaining, self.expected = region, length, crc
        self.fill, self.image, self.loading = 0, b"", True
        self.verified &= ~(1 << region)
        return Status.OK, MM[region].capacity

    def data(self, offset, chunk):
        if not self.loading:
            return Status.ERR_STATE, 0
        if offset != self.fill:
            return Status.ERR_SEQUENCE, self.fill
        if len(chunk) > self.remaining:
            return Status.ERR_TOO_LARGE, self.fill
        wb = MM[self.region].word_bytes
        for byte in chunk:
            self.writes.append((self.region, self.fill // wb, self.fill % wb, byte))
            self.fill, self.remaining = self.fill + 1, self.remaining - 1
        self.image += chunk
        return Status.OK, self.fill

    def end(self):
        if not self.loading:
            return Status.ERR_STATE, 0
        if self.remaining:
            return Status.ERR_INCOMPLETE, self.fill
        self.loading = False
        if self.fill % MM[self.region].word_bytes:
            return Status.ERR_LENGTH, MM[self.region].word_bytes
        crc = zlib.crc32(self.image)
        if crc != self.expected:
            return Status.ERR_IMAGE_CRC, crc
        self.verified |= 1 << self.region
        return Status.OK, crc

    def commit(self, tag, active):
        if active:
            return Status.ERR_BUSY, 0
        if self.verified != ALL:
            return Status.ERR_NOT_STAGED, self.verified
        self.verified, self.loading, self.model_valid, self.tag = 0, False, True, tag
        return Status.OK, tag

    def discard(self):
        self.verified, self.loading = 0, False
        return Status.OK, 0


class Surroundings:
    """The core's write port (random stalls, or none at all while ``hold``), the stand-in
    ledger and the stall timer."""

    def __init__(self, dut, rng):
        self.dut, self.rng = dut, rng
        self.writes, self.commits = [], 0
        self.hold = False
        self.ledger = LedgerModel(ledger_image(MM, rng), ring_bit=5)
        command = dut.command.command

        def argument(ctx):
            assert ctx.get(command.valid), "ARG read without an item"
            return ctx.get(command.payload.arg)
        self.sources = {
            Source.ARG: argument, Source.NARG: lambda ctx: ~argument(ctx) & 0xFFFFFFFF,
            Source.COUNT: lambda ctx: ctx.get(command.payload.count),
            Source.IMAGE_CRC: lambda ctx: ctx.get(dut.crc),
            Source.VERIFIED: lambda ctx: ctx.get(dut.verified),
            Source.HEADER: lambda ctx: 0x11}
        self.stand_in = LedgerStandIn(dut.ledger, self.ledger, self.sources, rng)

    async def core(self, ctx):
        wr = self.dut.write
        ready = False
        async for _, _, valid, payload, commit in ctx.tick().sample(wr.valid, wr.payload,
                                                                    self.dut.commit):
            if ready and valid:
                self.writes.append((payload.region, payload.addr, payload.lane, payload.data))
            self.commits += commit
            ready = not self.hold and self.rng.random() < 0.5
            ctx.set(wr.ready, ready)

    def background(self):
        return [self.core, self.stand_in.testbench, stall_timer(self.dut.command, STALL)]

    async def command(self, ctx, command):
        """Run ``command``; returns its response's (status, first word) and the items taken."""
        result, taken = await execute(ctx, self.dut.command, command, self.rng)
        _, _, status, words = await self.stand_in.response(ctx, result.script)
        return (status, words[0]), taken


def board(seed):
    dut = ImageLoader(MM, max_payload=64)
    rng = np.random.default_rng(seed)
    return dut, Surroundings(dut, rng), rng


def test_constructor_checks():
    with pytest.raises(TypeError, match="memory_map"):
        ImageLoader({"weights": (8, 4)}, max_payload=64)
    with pytest.raises(ValueError, match="max_payload"):
        ImageLoader(MM, max_payload=8)


def test_model_valid_from_configuration():
    """A model baked into the images: *model valid* from the start, and after a reset."""
    dut = ImageLoader(MM, max_payload=64, model_valid=True)

    async def testbench(ctx):
        assert ctx.get(dut.model_valid) and not ctx.get(dut.loading)

    run(dut, testbench)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_uploads_and_refusals(seed):
    """Random uploads of every region, with every refusal mixed in; the bytes written, the
    answers, the CRC-32, the verified set, the ledger's words and COMMIT follow the model."""
    dut, env, rng = board(seed)
    model = Model()

    async def command(ctx, command, want):
        got, _ = await env.command(ctx, command)
        assert got == want
        assert ctx.get(dut.verified) == model.verified
        assert ctx.get(dut.loading) == model.loading
        assert ctx.get(dut.model_valid) == model.model_valid
        if model.loading:
            assert env.ledger.words[Data.FILL] == model.fill
            assert ctx.get(dut.crc) == zlib.crc32(model.image)

    async def upload(ctx, region, image, *, crc=None, chunk=20):
        crc = zlib.crc32(image) if crc is None else crc
        await command(ctx, items(Op.LOAD_BEGIN, region << 24, len(image), crc),
                      model.begin(region, len(image), crc))
        for offset in range(0, len(image), chunk):
            piece = image[offset:offset + chunk]
            if rng.random() < 0.2:              # a wrong offset first
                wrong = offset + int(rng.choice([-1, 1, 1 << 20]))
                await command(ctx, items(Op.LOAD_DATA, wrong & 0xFFFFFFFF, data=piece),
                              model.data(wrong, piece))
            if rng.random() < 0.1:              # a refused LOAD_BEGIN leaves the load open
                await command(ctx, items(Op.LOAD_BEGIN, 7 << 24, 4, 0), model.begin(7, 4, 0))
            await command(ctx, items(Op.LOAD_DATA, offset, data=piece), model.data(offset, piece))
        await command(ctx, items(Op.LOAD_END), model.end())

    async def testbench(ctx):
        images = {r.name: bytes(rng.integers(0, 256, r.capacity, dtype=np.uint8)) for r in MM}
        await command(ctx, items(Op.LOAD_END), model.end())                     # no load
        await command(ctx, items(Op.LOAD_DATA, 0, data=b"ab"), model.data(0, b"ab"))
        await command(ctx, items(Op.LOAD_BEGIN, 5 << 24, 4, 0), model.begin(5, 4, 0))
        await command(ctx, items(Op.LOAD_BEGIN, 255 << 24, 4, 0), model.begin(255, 4, 0))
        await command(ctx, items(Op.LOAD_BEGIN, 1 << 24, MM[1].capacity + 1, 0),
                      model.begin(1, MM[1].capacity + 1, 0))
        await command(ctx, items(Op.LOAD_BEGIN, 1 << 24, 1 << 31, 0), model.begin(1, 1 << 31, 0))
        await command(ctx, items(Op.LOAD_BEGIN, 1 << 24, 0xFFFFFFFF, 0),
                      model.begin(1, 0xFFFFFFFF, 0))
        await command(ctx, items(Op.COMMIT, 5), model.commit(5, False))         # none verified
        for code, r in enumerate(MM):
            await upload(ctx, code, images[r.name], chunk=int(rng.integers(5, 30)))
        ctx.set(dut.run_active, 1)
        await command(ctx, items(Op.COMMIT, 6), model.commit(6, True))
        ctx.set(dut.run_active, 0)
        tag = int(rng.integers(1 << 32))
        await command(ctx, items(Op.COMMIT, tag), model.commit(tag, False))
        assert env.ledger.words[Data.TAG] == tag
        await command(ctx, items(Op.COMMIT, 8), model.commit(8, False))         # again: none
        # Refused at LOAD_END: incomplete, not whole words, a wrong CRC-32; then too much data.
        weights = images["weights"]
        await command(ctx, items(Op.LOAD_BEGIN, 0, 8, zlib.crc32(weights[:8])),
                      model.begin(0, 8, zlib.crc32(weights[:8])))
        await command(ctx, items(Op.LOAD_DATA, 0, data=weights[:5]), model.data(0, weights[:5]))
        await command(ctx, items(Op.LOAD_END), model.end())                     # incomplete
        await command(ctx, items(Op.LOAD_DATA, 5, data=weights[5:9]), model.data(5, weights[5:9]))
        await command(ctx, items(Op.LOAD_DATA, 5), model.data(5, b""))          # no data
        await command(ctx, items(Op.LOAD_DATA, 5, data=weights[5:8]), model.data(5, weights[5:8]))
        await command(ctx, items(Op.LOAD_END), model.end())
        await upload(ctx, 2, images["library"][:7])                             # 5-byte words
        await upload(ctx, 3, images["params"], crc=zlib.crc32(images["params"]) ^ 1)
        await upload(ctx, 4, b"")                                               # empty
        await command(ctx, items(Op.DISCARD), model.discard())
        await upload(ctx, 4, images["layers"], chunk=8)
        await command(ctx, items(Op.DISCARD), model.discard())

    run(dut, testbench, background=env.background())
    assert env.writes == model.writes
    assert env.commits == 1


def test_stall():
    """A core that stops taking bytes: ERR_STALL with the bytes taken, the load closed."""
    dut, env, _ = board(5)
    model = Model()

    async def testbench(ctx):
        image = bytes(range(40))
        got, _ = await env.command(ctx, items(Op.LOAD_BEGIN, 0, 40, 0))
        assert got == model.begin(0, 40, 0)
        got, _ = await env.command(ctx, items(Op.LOAD_DATA, 0, data=image[:10]))
        assert got == model.data(0, image[:10])
        env.hold = True
        got, taken = await env.command(ctx, items(Op.LOAD_DATA, 10, data=image[10:20]))
        assert (got, taken) == ((Status.ERR_STALL, 10), 2)
        assert env.ledger.words[Data.FILL] == 10 and not ctx.get(dut.loading)

    run(dut, testbench, background=env.background())
    assert env.writes == model.writes
