"""Streams (``amaranth.lib.stream``) in amaranth.sim testbenches: offering payloads and taking
them with random stalls, and running a design's testbenches.

Transfers are seen as sampled at the clock edge (``ctx.tick().sample``), so testbenches that
drive the inputs of one design side by side see the same transfers as the design.
"""

from amaranth.sim import Simulator

__all__ = ["run", "send", "take"]


def run(dut, *testbenches, background=()):
    """Simulate ``dut`` with a 1 MHz ``sync`` clock until every testbench has returned (the
    ``background`` ones run alongside and may loop forever)."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    for testbench in background:
        sim.add_testbench(testbench, background=True)
    sim.run()


async def send(ctx, port, payloads, rng, *, valid=0.7):
    """Offer each of ``payloads`` on the stream ``port`` in turn, after idle cycles (each with
    probability ``1 - valid``); returns after the last transfer, ``valid`` low."""
    for payload in payloads:
        while rng.random() >= valid:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def take(ctx, port, count, rng, *, ready=0.7, cycles=100_000):
    """Take ``count`` payloads from the stream ``port``, ready in a cycle with probability
    ``ready``; fails if they take more than ``cycles``. Returns them (``ctx.get`` values)."""
    got = []
    for _ in range(cycles):
        if len(got) == count:
            break
        ready_now = rng.random() < ready
        ctx.set(port.ready, ready_now)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if ready_now and valid:
            got.append(payload)
    ctx.set(port.ready, 0)
    assert len(got) == count, f"{len(got)} of {count} transfers in {cycles} cycles"
    return got
