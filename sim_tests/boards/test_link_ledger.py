# amaranth: UnusedElaboratable=no
"""The status ledger alone (``boards.link.ledger``): counters updated by read-modify-write,
words stored and read by two readers with random timing, a reset, against a Python model."""

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal

from boards.link.ledger import CLEARED, COUNTERS, SPACING, STROBES, StatusLedger
from boards.link.ports import LEDGER_DEPTH, Word

from ..support.streams import run

INIT = [0x1000 + 17 * i for i in range(LEDGER_DEPTH)]


class Board(Elaboratable):
    """The ledger with a reset input."""

    def __init__(self):
        self.ledger = StatusLedger(INIT)
        self.rst = Signal()

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain()
        m.d.comb += cd.rst.eq(self.rst)
        m.submodules.ledger = self.ledger
        return m


class Model:
    """What the ledger should hold: the initial words, cleared counters."""

    def __init__(self):
        self.words = dict(enumerate(INIT))
        self.reset()

    def reset(self):
        for word in CLEARED:
            self.words[word] = 0

    def count(self, name):
        for strobe, word, increment, half in COUNTERS:
            value = self.words[word]
            if strobe != name or (half is not None and (value >> 16 * half) & 0xFFFF == 0xFFFF):
                continue
            self.words[word] = 0 if increment is None else (value + increment) & 0xFFFFFFFF


def test_constructor_checks():
    with pytest.raises(ValueError, match=f"at most {LEDGER_DEPTH} words"):
        StatusLedger([0] * (LEDGER_DEPTH + 1))
    with pytest.raises(ValueError, match=r"init\[2\]"):
        StatusLedger([0, 0, 1 << 32])
    with pytest.raises(TypeError, match=r"init\[0\]"):
        StatusLedger(["x"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counters_stores_and_reads(seed):
    """Strobes, stores and reads of both ports at random; every read returns the model's word
    with every strobe before it counted; a reset clears the counters and keeps the rest."""
    board = Board()
    ledger = board.ledger
    rng = np.random.default_rng(seed)
    model = Model()
    reads_done = [0, 0]

    async def testbench(ctx):
        last = dict.fromkeys(STROBES, -SPACING)
        reading = [None, None]                  # address offered on each read port
        arriving = []                           # (port, address, word) of the reads taken
        storing = None
        for cycle in range(3000):
            if cycle == 1500:                   # a reset in the middle
                ctx.set(board.rst, 1)
                await ctx.tick()
                ctx.set(board.rst, 0)
                model.reset()
                arriving = []
                continue
            strobes = [name for name in STROBES
                       if cycle - last[name] >= SPACING and rng.random() < 0.05]
            for name in STROBES:
                ctx.set(getattr(ledger, name), name in strobes)
            if storing is None and rng.random() < 0.02:
                storing = (int(rng.choice([Word.TAG, Word.EXPECTED_CRC])),
                           int(rng.integers(1 << 32)))
            ctx.set(ledger.store.valid, storing is not None)
            if storing is not None:
                ctx.set(ledger.store.payload, {"word": storing[0], "data": storing[1]})
            for port, read in zip(range(2), ledger.read):
                if reading[port] is None and rng.random() < 0.3:
                    reading[port] = int(rng.integers(LEDGER_DEPTH))
                ctx.set(read.addr.valid, reading[port] is not None)
                if reading[port] is not None:
                    ctx.set(read.addr.payload, reading[port])
            taken = [(p, reading[p], model.words[reading[p]]) for p in range(2)
                     if reading[p] is not None and ctx.get(ledger.read[p].addr.ready)]
            if storing is not None and ctx.get(ledger.store.ready):
                model.words[storing[0]] = storing[1]
                storing = None
            for name in strobes:
                last[name] = cycle
                model.count(name)
            await ctx.tick()
            for port, addr, word in arriving:   # taken in the cycle before the last
                assert ctx.get(ledger.read[port].data) == word, f"cycle {cycle}: word {addr}"
                reads_done[port] += 1
            arriving = taken
            for port, *_ in taken:
                reading[port] = None

    run(board, testbench)
    assert min(reads_done) > 200


def test_error_counters_saturate():
    """Frame errors stop at 0xFFFF; the UART errors beside them keep counting."""
    board = Board()
    ledger = board.ledger

    async def testbench(ctx):
        for i in range(0x10002):
            ctx.set(ledger.frame_error, 1)
            ctx.set(ledger.rx_error, i < 3)
            await ctx.tick()
            ctx.set(ledger.frame_error, 0)
            ctx.set(ledger.rx_error, 0)
            await ctx.tick().repeat(SPACING - 1 if i < 3 else 2)
        await ctx.tick().repeat(8)
        ctx.set(ledger.read[0].addr.valid, 1)
        ctx.set(ledger.read[0].addr.payload, Word.ERRORS)
        await ctx.tick().until(ledger.read[0].addr.ready)
        ctx.set(ledger.read[0].addr.valid, 0)
        await ctx.tick()
        assert ctx.get(ledger.read[0].data) == 3 << 16 | 0xFFFF

    run(board, testbench)
