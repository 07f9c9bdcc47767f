# amaranth: UnusedElaboratable=no
"""The image loader alone (``boards.link.loader``): uploads, refusals, COMMIT and DISCARD as
command items with random stalls, a core that takes bytes with random stalls and a stand-in
ledger, against a Python model of section 4 of ``docs/host_link.md`` and ``zlib.crc32``."""

import zlib

import numpy as np
import pytest

from boards.link import MemoryMap
from boards.link.loader import ImageLoader
from boards.link.ports import Op, Word
from boards.protocol import REGIONS, Status

from ..support.link_stages import execute, items, ledger_reads, stall_timer
from ..support.streams import run

MM = MemoryMap(weights=(16, 32), index=(4, 8), library=(9, 4), params=(20, 2), layers=(32, 2))
STALL = 60
ALL = (1 << len(REGIONS)) - 1


class Model:
    """The loader's protocol: what each command answers and leaves behind."""

    def __init__(self):
        self.verified, self.loading, self.model_valid = 0, False, False
        self.region = self.fill = self.remaining = self.expected = 0
        self.image = b""
        self.writes = []                    # (region, word address, lane, byte)
        self.tag = None

    def begin(self, region, length, crc):
        if region >= len(REGIONS):
            return Status.ERR_REGION, Word.N_REGIONS
        if length > MM[region].capacity:
            return Status.ERR_TOO_LARGE, Word.CAPACITY + region
        self.region, self.remaining, self.expected = region, length, crc
        self.fill, self.image, self.loading = 0, b"", True
        self.verified &= ~(1 << region)
        return Status.OK, Word.CAPACITY + region

    def data(self, offset, chunk):
        if not self.loading:
            return Status.ERR_STATE, Word.ARG
        if offset != self.fill:
            return Status.ERR_SEQUENCE, Word.FILL
        if len(chunk) > self.remaining:
            return Status.ERR_TOO_LARGE, Word.FILL
        wb = MM[self.region].word_bytes
        for byte in chunk:
            self.writes.append((self.region, self.fill // wb, self.fill % wb, byte))
            self.fill, self.remaining = self.fill + 1, self.remaining - 1
        self.image += chunk
        return Status.OK, Word.FILL

    def end(self):
        if not self.loading:
            return Status.ERR_STATE, Word.ARG
        if self.remaining:
            return Status.ERR_INCOMPLETE, Word.FILL
        self.loading = False
        if self.fill % MM[self.region].word_bytes:
            return Status.ERR_LENGTH, Word.WORD_BYTES + self.region
        if zlib.crc32(self.image) != self.expected:
            return Status.ERR_IMAGE_CRC, Word.IMAGE_CRC
        self.verified |= 1 << self.region
        return Status.OK, Word.IMAGE_CRC

    def commit(self, tag, active):
        if active:
            return Status.ERR_BUSY, Word.ARG
        if self.verified != ALL:
            return Status.ERR_NOT_STAGED, Word.VERIFIED
        self.verified, self.loading, self.model_valid, self.tag = 0, False, True, tag
        return Status.OK, Word.TAG

    def discard(self):
        self.verified, self.loading = 0, False
        return Status.OK, Word.ARG


class Surroundings:
    """The core's write port (random stalls, or none at all while ``hold``) and the ledger's
    store and read ports."""

    def __init__(self, dut, rng):
        self.dut, self.rng = dut, rng
        self.writes, self.words, self.commits = [], {}, 0
        self.hold = False

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

    async def store(self, ctx):
        store = self.dut.store
        ready = False
        async for _, _, valid, payload in ctx.tick().sample(store.valid, store.payload):
            if ready and valid:
                self.words[payload.word] = payload.data
            ready = self.rng.random() < 0.5
            ctx.set(store.ready, ready)

    def ledger(self):
        """The ledger's store and read ports."""
        return [self.store, ledger_reads(self.dut.ledger, lambda a: self.words.get(a, 0),
                                         self.rng)]


def board(seed):
    dut = ImageLoader(MM, max_payload=64)
    rng = np.random.default_rng(seed)
    return dut, Surroundings(dut, rng), rng


def test_constructor_checks():
    with pytest.raises(TypeError, match="memory_map"):
        ImageLoader({"weights": (8, 4)}, max_payload=64)
    with pytest.raises(ValueError, match="max_payload"):
        ImageLoader(MM, max_payload=8)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_uploads_and_refusals(seed):
    """Random uploads of every region, with every refusal mixed in; the bytes written, the
    answers, the CRC-32, the verified set and COMMIT follow the model."""
    dut, env, rng = board(seed)
    model = Model()

    async def command(ctx, command, want):
        result, _ = await execute(ctx, dut.command, command, rng)
        assert (result.status, result.word) == want
        state = dut.state
        assert ctx.get(state.verified) == model.verified
        assert ctx.get(state.loading) == model.loading
        assert ctx.get(state.model_valid) == model.model_valid
        if model.loading:
            assert ctx.get(state.fill) == model.fill
            assert ctx.get(state.crc) == zlib.crc32(model.image)

    async def upload(ctx, region, image, *, crc=None, chunk=20):
        crc = zlib.crc32(image) if crc is None else crc
        await command(ctx, items(Op.LOAD_BEGIN, region << 24, len(image), crc),
                      model.begin(region, len(image), crc))
        await ctx.tick()                        # the stand-in ledger has seen the store
        assert env.words[Word.EXPECTED_CRC] == crc
        for offset in range(0, len(image), chunk):
            piece = image[offset:offset + chunk]
            if rng.random() < 0.2:              # a wrong offset first
                wrong = offset + int(rng.choice([-1, 1, 1 << 20]))
                await command(ctx, items(Op.LOAD_DATA, wrong & 0xFFFFFFFF, data=piece),
                              model.data(wrong, piece))
            await command(ctx, items(Op.LOAD_DATA, offset, data=piece), model.data(offset, piece))
        await command(ctx, items(Op.LOAD_END), model.end())

    async def testbench(ctx):
        images = {r.name: bytes(rng.integers(0, 256, r.capacity, dtype=np.uint8)) for r in MM}
        await command(ctx, items(Op.LOAD_END), model.end())                     # no load
        await command(ctx, items(Op.LOAD_DATA, 0, data=b"ab"), model.data(0, b"ab"))
        await command(ctx, items(Op.LOAD_BEGIN, 5 << 24, 4, 0), model.begin(5, 4, 0))
        await command(ctx, items(Op.LOAD_BEGIN, 1 << 24, MM[1].capacity + 1, 0),
                      model.begin(1, MM[1].capacity + 1, 0))
        await command(ctx, items(Op.LOAD_BEGIN, 1 << 24, 1 << 31, 0), model.begin(1, 1 << 31, 0))
        await command(ctx, items(Op.COMMIT, 5), model.commit(5, False))         # none verified
        for code, r in enumerate(MM):
            await upload(ctx, code, images[r.name])
        ctx.set(dut.run_active, 1)
        await command(ctx, items(Op.COMMIT, 6), model.commit(6, True))
        ctx.set(dut.run_active, 0)
        await command(ctx, items(Op.COMMIT, 7), model.commit(7, False))
        await ctx.tick()
        assert env.words[Word.TAG] == 7
        # Refused at LOAD_END: incomplete, not whole words, a wrong CRC-32; then too much data.
        weights = images["weights"]
        await command(ctx, items(Op.LOAD_BEGIN, 0, 8, zlib.crc32(weights[:8])),
                      model.begin(0, 8, zlib.crc32(weights[:8])))
        await command(ctx, items(Op.LOAD_DATA, 0, data=weights[:5]), model.data(0, weights[:5]))
        await command(ctx, items(Op.LOAD_END), model.end())                     # incomplete
        await command(ctx, items(Op.LOAD_DATA, 5, data=weights[5:9]), model.data(5, weights[5:9]))
        await upload(ctx, 2, images["library"][:7])                             # 5-byte words
        await upload(ctx, 3, images["params"], crc=zlib.crc32(images["params"]) ^ 1)
        await command(ctx, items(Op.DISCARD), model.discard())
        await upload(ctx, 4, images["layers"], chunk=8)
        await command(ctx, items(Op.DISCARD), model.discard())

    run(dut, testbench, background=[env.core, *env.ledger(), stall_timer(dut.command, STALL)])
    assert env.writes == model.writes
    assert env.commits == 1


def test_stall():
    """A core that stops taking bytes: ERR_STALL with the bytes taken, the load closed."""
    dut, env, rng = board(5)
    model = Model()

    async def testbench(ctx):
        image = bytes(range(40))
        result, _ = await execute(ctx, dut.command, items(Op.LOAD_BEGIN, 0, 40, 0), rng)
        assert result.status == Status.OK
        model.begin(0, 40, 0)
        result, _ = await execute(ctx, dut.command, items(Op.LOAD_DATA, 0, data=image[:10]), rng)
        model.data(0, image[:10])
        env.hold = True
        result, taken = await execute(ctx, dut.command,
                                      items(Op.LOAD_DATA, 10, data=image[10:20]), rng)
        assert (result.status, result.word, taken) == (Status.ERR_STALL, Word.FILL, 2)
        assert ctx.get(dut.state.fill) == 10 and not ctx.get(dut.state.loading)

    run(dut, testbench, background=[env.core, *env.ledger(), stall_timer(dut.command, STALL)])
    assert env.writes == model.writes
