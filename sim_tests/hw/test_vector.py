# amaranth: UnusedElaboratable=no
"""amaranth.sim tests of the vector unit: add, global avgpool and maxpool jobs back to back on
random tensors and parameters, with random gaps on ``a`` and ``b`` and stalls on ``out``,
against ``compiler.golden.run_layer`` to the bit; the exact cycles of ``vector_cycles``
without stalls; the parameter checks and the layers ``vector_command`` refuses."""

import numpy as np
import pytest

from compiler import golden
from compiler.errors import SPSError
from compiler.quantize import multiplier
from sps_hw.vector import OPS, VectorUnit, vector_command, vector_cycles

from ..support.streams import run, send, take

MAX_WIDTH, CHUNK = 16, 256
#: (valid probability on a and b, ready probability on out): none, then random stalls.
STALLS = [(1.0, 1.0), (0.6, 0.5), (0.9, 0.25)]


def layer(op, shape, **params):
    """A manifest layer dict of ``op`` reading ``shape``."""
    c, h, w = shape
    out = {"add": [c, h, w], "avgpool": [c, 1, 1]}.get(op)
    if op == "maxpool":
        k, s, p = params["kernel"], params["stride"], params["pad"]
        out = [c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1]
    return {"name": f"{op}_{c}x{h}x{w}", "op": op, "inputs": ["x", "y"][:2 if op == "add" else 1],
            "in_shape": list(shape), "out_shape": out, **params}


def tensor(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def simulate(jobs, valid, ready, seed):
    """Run ``jobs`` (layer, inputs) back to back on one unit, the commands issued as soon as
    it is idle and the operands of all jobs offered as one stream each. Returns the cycles
    each job was busy, and the output bytes got and wanted."""
    dut = VectorUnit(max_width=MAX_WIDTH, chunk=CHUNK)
    rng = np.random.default_rng(seed)
    commands, a, b, want = [], [], [], []
    for lay, inputs in jobs:
        commands.append(vector_command(lay, max_width=MAX_WIDTH))
        a += inputs[0].flatten().tolist()
        b += inputs[1].flatten().tolist() if len(inputs) > 1 else []
        want += golden.run_layer(lay, None, inputs).flatten().tolist()
    cycles, got = [], []

    async def control(ctx):
        for command in commands:
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, command)
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            busy = 0
            while ctx.get(dut.busy):
                await ctx.tick()
                busy += 1
            cycles.append(busy)

    async def feed_a(ctx):
        await send(ctx, dut.a, a, rng, valid=valid)

    async def feed_b(ctx):
        await send(ctx, dut.b, b, rng, valid=valid)

    async def drain(ctx):
        got.extend(await take(ctx, dut.out, len(want), rng, ready=ready))
        for _ in range(4):          # nothing more comes out
            await ctx.tick()
            assert not ctx.get(dut.out.valid)

    run(dut, control, drain, background=(feed_a, feed_b))
    return commands, cycles, got, want


def check(jobs, valid, ready, seed):
    commands, cycles, got, want = simulate(jobs, valid, ready, seed)
    assert got == want
    expected = [vector_cycles(command) for command in commands]
    if valid == ready == 1.0:
        assert cycles == expected
    else:
        assert all(c >= e for c, e in zip(cycles, expected))


def add_jobs(rng):
    jobs = []
    shapes = [(1, 1, CHUNK), (4, 6, 9), (1, 1, 1), (1, 1, 37), (2, 3, 5)]
    for i, shape in enumerate(shapes):
        params = {"mult_a": int(rng.integers(2**14, 2**16)),
                  "mult_b": int(rng.integers(2**14, 2**16)),
                  "shift": int(rng.integers(14, 32)), "relu": i % 2 == 1}
        jobs.append((layer("add", shape, **params), [tensor(rng, shape), tensor(rng, shape)]))
    # Exact ties: (a + b) / 2 rounds toward plus infinity, both signs; the largest
    # multipliers; shift 63 (every result 0).
    corners = [{"mult_a": 2**14, "mult_b": 2**14, "shift": 15, "relu": False},
               {"mult_a": 2**14, "mult_b": 2**14, "shift": 15, "relu": True},
               {"mult_a": 1, "mult_b": 1, "shift": 1, "relu": False},
               {"mult_a": 2**32 - 1, "mult_b": 3 * 2**30, "shift": 33, "relu": False},
               {"mult_a": 2**32 - 1, "mult_b": 2**32 - 1, "shift": 63, "relu": True}]
    for params in corners:
        shape = (2, 4, 5)
        jobs.append((layer("add", shape, **params), [tensor(rng, shape), tensor(rng, shape)]))
    return jobs


def avgpool_jobs(rng):
    jobs = []
    for i, shape in enumerate([(64, 7, 7), (3, 1, 1), (5, 4, 3), (2, 9, 1)]):
        mult, shift = multiplier(rng.uniform(0.5, 4.0) / (shape[1] * shape[2]))
        params = {"mult": int(mult[0]), "shift": int(shift[0]), "relu": i % 2 == 0}
        jobs.append((layer("avgpool", shape, **params), [tensor(rng, shape)]))
    # Sums of extreme signs and the largest multiplier.
    x = np.full((2, 4, 4), -128, dtype=np.int8)
    x[1] = 127
    jobs.append((layer("avgpool", x.shape, mult=2**32 - 1, shift=42, relu=False), [x]))
    jobs.append((layer("avgpool", x.shape, mult=2**14, shift=15, relu=True), [x]))
    return jobs


#: Maxpool windows and maps: the required 3x3 s2 p1, 2x2 s2 p0 and 3x3 s1 p1 on odd and even
#: sizes, then every kernel, stride and padding on small and one-pixel-wide maps.
POOLS = [((3, 2, 1), (3, 7, 7)), ((3, 2, 1), (2, 8, 6)), ((2, 2, 0), (3, 7, 9)),
         ((2, 2, 0), (2, 6, 8)), ((3, 1, 1), (3, 5, 5)), ((3, 1, 1), (2, 6, 4)),
         ((3, 2, 1), (1, 1, MAX_WIDTH)), ((2, 1, 1), (1, 2, MAX_WIDTH)),
         ((2, 2, 0), (2, 2, 2))] + [
    ((k, s, p), shape) for k in (2, 3) for s in (1, 2) for p in (0, 1)
    for shape in [(2, 5, 4), (1, 1, 3), (2, 3, 1), (2, 2, 2)] if min(shape[1:]) + 2 * p >= k]


def maxpool_jobs(rng):
    jobs = []
    for (k, s, p), shape in POOLS:
        x = tensor(rng, shape)
        if rng.random() < 0.2:
            x = np.full(shape, -128, dtype=np.int8)        # only ties with the padding
        jobs.append((layer("maxpool", shape, kernel=k, stride=s, pad=p), [x]))
    return jobs


@pytest.mark.parametrize("valid, ready", STALLS)
def test_add(valid, ready):
    check(add_jobs(np.random.default_rng(1)), valid, ready, seed=11)


@pytest.mark.parametrize("valid, ready", STALLS)
def test_avgpool(valid, ready):
    check(avgpool_jobs(np.random.default_rng(2)), valid, ready, seed=12)


@pytest.mark.parametrize("valid, ready", STALLS)
def test_maxpool(valid, ready):
    check(maxpool_jobs(np.random.default_rng(3)), valid, ready, seed=13)


def test_mixed_jobs():
    """Jobs of all three ops interleaved: nothing of one job stays behind for the next."""
    rng = np.random.default_rng(4)
    jobs = [job for group in zip(add_jobs(rng), avgpool_jobs(rng)[1:], maxpool_jobs(rng))
            for job in group]
    check(jobs, 0.8, 0.6, seed=14)


def test_latency():
    """Without stalls a result leaves ``VectorUnit.latency`` cycles after the byte that
    completes it: each b byte of an add, a channel's last byte for avgpool, the bottom right
    pixel of each 2x2 window."""
    rng = np.random.default_rng(5)
    dut = VectorUnit(max_width=MAX_WIDTH, chunk=CHUNK)
    pool = layer("maxpool", (2, 4, 6), kernel=2, stride=2, pad=0)
    jobs = [(layer("add", (2, 2, 3), **ADD), [tensor(rng, (2, 2, 3)), tensor(rng, (2, 2, 3))]),
            (layer("avgpool", (3, 2, 2), **AVG), [tensor(rng, (3, 2, 2))]),
            (pool, [tensor(rng, (2, 4, 6))])]
    seen = {"a": [], "b": [], "out": []}

    async def control(ctx):
        ctx.set(dut.out.ready, 1)
        for lay, _ in jobs:
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, vector_command(lay))
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            await ctx.tick().until(~dut.busy)

    async def monitor(ctx):
        cycle = 0
        while True:
            ports = [getattr(dut, name) for name in seen]
            _, _, *flags = await ctx.tick().sample(*(p.valid & p.ready for p in ports))
            for name, flag in zip(seen, flags):
                if flag:
                    seen[name].append(cycle)
            cycle += 1

    async def feed_a(ctx):
        await send(ctx, dut.a, [v for _, x in jobs for v in x[0].flatten().tolist()], rng,
                   valid=1.0)

    async def feed_b(ctx):
        await send(ctx, dut.b, jobs[0][1][1].flatten().tolist(), rng, valid=1.0)

    run(dut, control, background=(monitor, feed_a, feed_b))
    completes = (seen["b"] + seen["a"][12 + 3:24:4]
                 + np.array(seen["a"][24:]).reshape(2, 4, 6)[:, 1::2, 1::2].ravel().tolist())
    assert [t - VectorUnit.latency for t in seen["out"]] == completes


def test_cycles_formula():
    """A few values by hand: an add stores n bytes then takes n, plus the setup cycle and
    the pipeline; a 3x3 s1 p1 pool spends a row and a pixel more after the last channel."""
    add = vector_command(layer("add", (1, 1, 10), mult_a=1, mult_b=1, shift=1, relu=False))
    assert vector_cycles(add) == 1 + 10 + 10 + 8
    avg = vector_command(layer("avgpool", (2, 3, 3), mult=1, shift=1, relu=False))
    assert vector_cycles(avg) == 1 + 18 + 8
    pool = vector_command(layer("maxpool", (2, 4, 4), kernel=3, stride=1, pad=1))
    assert vector_cycles(pool) == 1 + 32 + 5 + 8
    # 2x2 s2 p0 drops an odd last row: its last pixel completes no window.
    pool = vector_command(layer("maxpool", (1, 5, 4), kernel=2, stride=2, pad=0))
    assert vector_cycles(pool) == 1 + 20 + 7


@pytest.mark.parametrize("params, error", [
    ({"max_width": 0}, ValueError), ({"max_width": 1 << 16}, ValueError),
    ({"max_width": 8.0}, TypeError), ({"chunk": 0}, ValueError),
    ({"chunk": (1 << 16) + 1}, ValueError), ({"chunk": True}, TypeError),
])
def test_unit_parameters(params, error):
    with pytest.raises(error, match=next(iter(params))):
        VectorUnit(**params)


def test_vector_command_fields():
    add = layer("add", (8, 4, 4), mult_a=20000, mult_b=30000, shift=17, relu=True)
    assert vector_command(add, channels=3) == {
        "op": OPS["add"], "channels": 3, "height": 4, "width": 4, "relu": 1,
        "mult_a": 20000, "mult_b": 30000, "shift": 17, "kernel": 0, "stride": 0, "pad": 0}
    avg = vector_command(layer("avgpool", (8, 7, 7), mult=12345, shift=20, relu=False))
    assert (avg["op"], avg["mult_a"], avg["mult_b"], avg["shift"]) == (OPS["avgpool"], 12345,
                                                                        0, 20)
    pool = vector_command(layer("maxpool", (8, 9, 9), kernel=3, stride=2, pad=1))
    assert (pool["op"], pool["kernel"], pool["stride"], pool["pad"]) == (OPS["maxpool"], 3, 2, 1)
    with pytest.raises(ValueError, match="channels"):
        vector_command(add, channels=9)
    with pytest.raises(TypeError, match="channels"):
        vector_command(add, channels=2.0)


POOL = {"kernel": 3, "stride": 2, "pad": 1}
ADD = {"mult_a": 20000, "mult_b": 30000, "shift": 17, "relu": False}
AVG = {"mult": 20000, "shift": 17, "relu": False}


@pytest.mark.parametrize("op, shape, params, words", [
    ("conv", (8, 4, 4), {}, "op 'conv'"),
    ("maxpool", (8, 9, 9), {**POOL, "kernel": 4}, "kernel 4"),
    ("maxpool", (8, 9, 9), {**POOL, "kernel": 1}, "kernel 1"),
    ("maxpool", (8, 9, 9), {**POOL, "stride": 3}, "stride 3"),
    ("maxpool", (8, 9, 9), {**POOL, "pad": 2}, "pad 2"),
    ("maxpool", (8, 9, 300), POOL, "max_width 256"),
    ("maxpool", (8, 1, 9), {**POOL, "pad": 0}, "does not fit"),
    ("add", (8, 4, 4), {**ADD, "shift": 0}, "shift 0"),
    ("add", (8, 4, 4), {**ADD, "shift": 64}, "shift 64"),
    ("add", (8, 4, 4), {**ADD, "mult_a": 0}, "mult_a 0"),
    ("add", (8, 4, 4), {**ADD, "mult_b": 2**32}, "mult_b 4294967296"),
    ("add", (8, 4, 4), {**ADD, "relu": 1}, "relu 1"),
    ("add", (8, 0, 4), ADD, "in_shape"),
    ("avgpool", (8, 300, 300), AVG, "65536"),
    ("avgpool", (8, 7, 7), {**AVG, "mult": 2.5}, "mult 2.5"),
])
def test_vector_command_refusals(op, shape, params, words):
    with pytest.raises(SPSError) as info:
        vector_command(layer(op, shape, **params))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"layer '{op}_") and words in message
