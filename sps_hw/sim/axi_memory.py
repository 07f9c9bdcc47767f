"""Timing for cocotbext-axi's ``AxiRam`` in the testbenches: added read latency, delayed
write responses, random pauses (``docs/memory.md``)."""

import random

import cocotb
from cocotb.triggers import ClockCycles, Timer
from cocotb.utils import get_sim_time

__all__ = ["delay_reads", "delay_responses", "pauses", "set_pauses"]


def pauses(rng, p):
    """An endless pause pattern: each cycle paused with probability ``p``."""
    while True:
        yield rng.random() < p


def set_pauses(ram, probabilities, rng):
    """Random pauses on the RAM's channels: ``probabilities`` maps ``ar``, ``r``, ``aw``,
    ``w``, ``b`` to the probability of a paused cycle (missing or 0: none)."""
    for name, channel in (("ar", ram.read_if.ar_channel), ("r", ram.read_if.r_channel),
                          ("aw", ram.write_if.aw_channel), ("w", ram.write_if.w_channel),
                          ("b", ram.write_if.b_channel)):
        p = probabilities.get(name, 0)
        if p:
            channel.set_pause_generator(pauses(random.Random(rng.random()), p))


def delay_reads(ram, cycles, period_steps):
    """The RAM starts a read burst ``cycles`` cycles after its address was taken (and holds
    further addresses meanwhile); ``period_steps`` is the clock period in simulator steps."""
    channel = ram.read_if.ar_channel
    put, recv = channel.queue.put_nowait, channel.recv

    def stamped(item):
        item.taken_at = get_sim_time()
        put(item)

    async def delayed_recv():
        item = await recv()
        wait = item.taken_at + cycles * period_steps - get_sim_time()
        if wait > 0:
            await Timer(wait, "step")
        return item

    channel.queue.put_nowait, channel.recv = stamped, delayed_recv


def delay_responses(ram, cycles, clk):
    """Each write response leaves ``cycles`` cycles later than the RAM would send it."""
    channel = ram.write_if.b_channel
    send = channel.send

    async def later(b):
        await ClockCycles(clk, cycles)
        await send(b)

    async def delayed_send(b):
        cocotb.start_soon(later(b))

    channel.send = delayed_send
