"""The word shifter alone (``boards.link.words``): argument bytes pushed in from the top, words
loaded and shifted out low byte first, against a Python model."""

import numpy as np

from boards.link.words import WordShifter

from ..support.streams import run


def test_push_load_shift():
    dut = WordShifter()
    rng = np.random.default_rng(1)

    async def testbench(ctx):
        model = 0
        for _ in range(300):
            op = int(rng.integers(4))
            byte, word = int(rng.integers(256)), int(rng.integers(1 << 32))
            ctx.set(dut.arguments.push, op == 0)
            ctx.set(dut.arguments.byte, byte)
            ctx.set(dut.words.load, op == 1)
            ctx.set(dut.words.word, word)
            ctx.set(dut.words.shift, op == 2)
            if op == 1:
                model = word
            elif op in (0, 2):
                model = model >> 8 | byte << 24
            await ctx.tick()
            assert ctx.get(dut.arguments.value) == ctx.get(dut.words.value) == model

    run(dut, testbench)
