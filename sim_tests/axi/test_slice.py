# amaranth: UnusedElaboratable=no
"""The AXI4 register slice: every channel delivers its beats in order, unchanged, under random
stalls on both sides, one beat per cycle when neither side stalls, and no output depends
combinationally on an input."""

import random

import pytest
from amaranth.sim import Simulator

from sps_hw.axi.signature import AXI4Signature
from sps_hw.axi.slice import AXI4RegisterSlice

SIG = AXI4Signature(addr_width=32, data_width=64, id_width=2)
#: channel -> (the side driving valid, the payload members checked)
CHANNELS = {"aw": ("s_axi", ("awaddr", "awlen", "awid")), "w": ("s_axi", ("wdata", "wlast")),
            "b": ("m_axi", ("bid", "bresp")), "ar": ("s_axi", ("araddr", "arlen")),
            "r": ("m_axi", ("rdata", "rid", "rlast"))}


def _run(beats, p_valid, p_ready, seed):
    """Send ``beats`` random beats on every channel at once; return (sent, received,
    cycles) per channel."""
    dut = AXI4RegisterSlice(SIG)
    rng = random.Random(seed)
    sent = {ch: [tuple(rng.getrandbits(len(getattr(dut.s_axi, n))) for n in names)
                 for _ in range(beats)] for ch, (_, names) in CHANNELS.items()}
    got = {ch: [] for ch in CHANNELS}
    cycles = {}

    def ends(ch):
        src_name, names = CHANNELS[ch]
        src, dst = (dut.s_axi, dut.m_axi) if src_name == "s_axi" else (dut.m_axi, dut.s_axi)
        return src, dst, names

    def producer(ch):
        async def bench(ctx):
            src, _, names = ends(ch)
            for beat in sent[ch]:
                while rng.random() >= p_valid:
                    await ctx.tick()
                for name, value in zip(names, beat):
                    ctx.set(getattr(src, name), value)
                ctx.set(getattr(src, ch + "valid"), 1)
                await ctx.tick().until(getattr(src, ch + "ready"))
                ctx.set(getattr(src, ch + "valid"), 0)
        return bench

    def consumer(ch):
        async def bench(ctx):
            _, dst, names = ends(ch)
            cycle = 0
            while len(got[ch]) < beats:
                ready = rng.random() < p_ready
                ctx.set(getattr(dst, ch + "ready"), ready)
                _, _, valid, *payload = await ctx.tick().sample(
                    getattr(dst, ch + "valid"), *(getattr(dst, n) for n in names))
                cycle += 1
                if valid and ready:
                    got[ch].append(tuple(payload))
            cycles[ch] = cycle
        return bench

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for ch in CHANNELS:
        sim.add_testbench(producer(ch))
        sim.add_testbench(consumer(ch))
    sim.run_until(1e-8 * 20 * beats)              # a lost beat fails the test, not hangs it
    return sent, got, cycles


@pytest.mark.parametrize("seed", range(3))
def test_random_stalls(seed):
    sent, got, _ = _run(200, p_valid=0.6, p_ready=0.5, seed=seed)
    assert got == sent


def test_full_throughput():
    """No stalls: 100 beats in 100 cycles plus the slice's one cycle of latency."""
    sent, got, cycles = _run(100, p_valid=1.0, p_ready=1.0, seed=7)
    assert got == sent
    assert set(cycles.values()) == {101}


def test_outputs_are_registers():
    """Within a cycle, nothing the slice drives follows what drives it."""
    dut = AXI4RegisterSlice(SIG)
    seen = []

    async def bench(ctx):
        outputs = [(dut.m_axi, n) for n, m in SIG.members.items() if m.flow.name == "Out"] + \
                  [(dut.s_axi, n) for n, m in SIG.members.items() if m.flow.name == "In"]
        before = [ctx.get(getattr(port, n)) for port, n in outputs]
        for name, member in SIG.members.items():    # every input to all ones
            port = dut.s_axi if member.flow.name == "Out" else dut.m_axi
            ctx.set(getattr(port, name), (1 << len(getattr(port, name))) - 1)
        seen.append(before == [ctx.get(getattr(port, n)) for port, n in outputs])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [True]


def test_refuses_other_signatures():
    with pytest.raises(TypeError, match="signature must be an AXI4Signature"):
        AXI4RegisterSlice(SIG.flip())
