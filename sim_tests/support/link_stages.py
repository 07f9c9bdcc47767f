"""Driving the stages of the host link (``boards.link``) alone in amaranth.sim: commands for an
executor, item by item, and its one result."""

__all__ = ["execute", "item", "items", "ledger_reads", "stall_timer"]


def item(op, arg=0, *, last=False, count=0):
    """One command item (``boards.link.ports.command_layout``) as a ``ctx.set`` value."""
    return {"op": op, "arg": arg, "last": int(last), "count": count}


def items(op, *args, data=b""):
    """The items the dispatcher makes of a command: its argument words, then one per data byte
    (in ``arg[24:32]``); ``count`` is the number of data bytes."""
    values = list(args) + [byte << 24 for byte in data]
    if not values:
        values = [0]
    return [item(op, value, last=i == len(values) - 1, count=len(data))
            for i, value in enumerate(values)]


async def execute(ctx, port, command, rng, *, valid=0.7, cycles=100_000):
    """Offer the ``command`` items on an executor's ``port`` (the executor's own, flipped by the
    caller's signature) until it answers. Returns ``(result, items taken)``; fails if the
    executor takes the last item without answering, or shows a result payload while not valid.
    """
    taken = 0
    for payload in command:
        while rng.random() >= valid:
            ctx.set(port.command.valid, 0)
            await ctx.tick()
        ctx.set(port.command.valid, 1)
        ctx.set(port.command.payload, payload)
        for _ in range(cycles):
            _, _, took, answered, result = await ctx.tick().sample(
                port.command.ready, port.result.valid, port.result.payload)
            assert answered or result.as_value().value == 0, "result payload while not valid"
            if answered:
                assert took, "a result without taking the item"
                ctx.set(port.command.valid, 0)
                return result, taken + 1
            if took:
                taken += 1
                break
        else:
            raise AssertionError(f"item {taken} not taken in {cycles} cycles")
    raise AssertionError("the executor took every item without answering")


def stall_timer(port, limit):
    """A testbench standing in for the receiver's stall timer: ``port.stalled`` rises once
    ``port.waiting`` has been high for ``limit`` consecutive cycles."""
    async def testbench(ctx):
        waited = 0
        async for _, _, waiting in ctx.tick().sample(port.waiting):
            waited = waited + 1 if waiting else 0
            ctx.set(port.stalled, waited >= limit)
    return testbench


def ledger_reads(port, word, rng, *, ready=0.5):
    """A testbench standing in for the ledger's read port ``port`` (a
    ``boards.link.ports.LedgerRead``, flipped): takes an address in a cycle with probability
    ``ready`` and shows ``word(address)`` on ``data`` two cycles later, for that cycle only
    (noise in the others)."""
    async def testbench(ctx):
        took, due = False, None
        async for _, _, valid, addr in ctx.tick().sample(port.addr.valid, port.addr.payload):
            ctx.set(port.data, int(rng.integers(1 << 32)) if due is None else due)
            due = word(addr) if took and valid else None
            took = rng.random() < ready
            ctx.set(port.addr.ready, took)
    return testbench
