"""Driving the stages of the host link (``boards.link``) alone in amaranth.sim: commands for an
executor, item by item, and its one result; the ledger as a Python model and as a stand-in
that runs the stages' programs; what every response script should send."""

from boards.link.ports import LEDGER_DEPTH, Source, op_layout
from boards.link.scripts import INFO_WORDS, Data, Script, image
from boards.protocol import REGIONS, Status

__all__ = ["LedgerModel", "LedgerStandIn", "execute", "expected_response", "item", "items",
           "ledger_image", "ledger_values", "stall_timer"]

U32 = (1 << 32) - 1


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


def ledger_values(memory_map=None, rng=None, *, max_payload=64):
    """Data words of a ledger image (``boards.link.scripts.image``): a link's constants
    (``max_payload``, the regions of ``memory_map``) and, with ``rng``, random INFO words,
    tag and counters."""
    values = {Data.MAX_PAYLOAD: max_payload, Data.N_REGIONS: len(REGIONS)}
    if rng is not None:
        for word in [*(Data.INFO + i for i in range(INFO_WORDS)), Data.TAG, Data.RUNS,
                     Data.RUN_CYCLES, Data.ERRORS, Data.WRITTEN, Data.RELEASED, Data.IN_COUNT,
                     Data.FILL]:
            values[word] = int(rng.integers(1 << 32))
    if memory_map is not None:
        for r in memory_map:
            values[Data.CAPACITY + r.code] = r.capacity
            values[Data.WORD_BYTES + r.code] = r.word_bytes
    return values


#: The fields of an op: name, (offset, width).
OP_FIELDS = {name: (field.offset, field.width) for name, field in op_layout()}


class LedgerModel:
    """The ledger (``boards.link.ledger.StatusLedger``) in Python: its words and its ops
    (``boards.link.ports.op_layout``) run one at a time.

    ``source(s)`` gives the value of a :class:`~boards.link.ports.Source` the ledger does not
    make itself (``ONE``, ``C256``, ``C64K``, ``RING`` are its constants).
    """

    def __init__(self, words, *, ring_bit):
        self.words = list(words)
        self.constants = {Source.ONE: 1, Source.C256: 1 << 8, Source.C64K: 1 << 16,
                          Source.RING: 1 << ring_bit}
        self.result = self.carry = self.zero = self.last = 0

    @staticmethod
    def decode(word):
        """An op word as a dict of its fields."""
        return {name: word >> offset & ((1 << width) - 1)
                for name, (offset, width) in OP_FIELDS.items()}

    def step(self, pc, source):
        """Run the op at ``pc``; returns its ``last`` bit."""
        op = self.decode(self.words[pc])
        a = 0 if op["zero_a"] else self.words[op["addr"]]
        b = 0
        for s in Source:
            if op["sel"] >> s & 1:
                b |= self.constants[s] if s in self.constants else source(s) & U32
        total = a + b + op["cin"]
        self.result, self.carry = total & U32, total >> 32 & 1
        low, high = self.result & 0xFFFF == 0, self.result >> 16 == 0
        self.zero, self.last = int(low and high), op["last"]
        wraps = op["sat"] and ((op["sel"] >> Source.ONE & 1 and low)
                               or (op["sel"] >> Source.C64K & 1 and high))
        if op["write"] and not wraps:
            self.words[op["addr"]] = self.result
        return op["last"]

    def run(self, addr, source, *, single=False):
        """Run the program at ``addr`` (``single``: its first op alone); returns its ops."""
        pc, ops = addr, 1
        while not self.step(pc, source) and not single:
            pc, ops = (pc + 1) % LEDGER_DEPTH, ops + 1
        return ops

    def response(self, script, source):
        """What the sender makes of ``script``: ``(CMD, LEN, status, words)`` (the command byte
        of the request comes from ``source(Source.HEADER)``)."""
        self.step(script, source)
        header = self.result
        words, pc = [], script
        while True:
            pc += 1
            last = self.step(pc, source)
            words.append(self.result)
            if last:
                return header & 0xFF, header >> 8 & 0xFFFF, header >> 24, words


def expected_response(script, data, source):
    """What ``script`` (a :class:`~boards.link.scripts.Script`) must send by
    ``docs/host_link.md`` sections 2 and 3, independently of how the scripts are laid out:
    ``(status, words)`` from the ledger's data words ``data`` (indexed by
    :class:`~boards.link.scripts.Data`) and the registers ``source(s)``."""
    written = (data[Data.WRITTEN] + source(Source.WRITTEN_LOW)) & U32
    word = {"ZERO": 0, "ARG": source(Source.ARG8), "MAX_PAYLOAD": data[Data.MAX_PAYLOAD],
            "N_REGIONS": data[Data.N_REGIONS], "FILL": data[Data.FILL],
            "IMAGE_CRC": source(Source.IMAGE_CRC), "VERIFIED": source(Source.VERIFIED),
            "TAG": data[Data.TAG], "RUNS": data[Data.RUNS], "IN_COUNT": data[Data.IN_COUNT],
            "RELEASED": data[Data.RELEASED], "WRITTEN": written}
    regional = {Script.OK_CAPACITY: (Status.OK, Data.CAPACITY),
                Script.ERR_TOO_LARGE_CAPACITY: (Status.ERR_TOO_LARGE, Data.CAPACITY),
                Script.ERR_LENGTH_WORD_BYTES: (Status.ERR_LENGTH, Data.WORD_BYTES)}
    for first, (status, base) in regional.items():
        for r in range(len(REGIONS)):
            if script == first + 2 * r:
                return status, [data[base + r]]
    if script == Script.INFO:
        return Status.OK, [data[Data.INFO + i] for i in range(INFO_WORDS)]
    if script == Script.STATUS:
        return Status.OK, [source(Source.STATUS0), data[Data.TAG], data[Data.RUNS],
                           (data[Data.RUN_CYCLES] + source(Source.RUN_LOW)) & U32,
                           source(Source.CORE), data[Data.IN_COUNT], written, data[Data.ERRORS]]
    if script == Script.OUTPUT:
        return Status.OK, [source(Source.STATUS0), written]
    name = Script(script).name          # a generic response: "<status>_<word>"
    for suffix, value in word.items():
        if name.endswith("_" + suffix):
            return Status[name[:-len(suffix) - 1]], [value]
    raise ValueError(f"no response for script {name}")


class LedgerStandIn:
    """A testbench standing in for the ledger on a caller's ``port`` (a
    ``boards.link.ports.LedgerPort``, flipped), running the programs in a :class:`LedgerModel`.

    It takes a program with probability ``ready`` in a cycle it is free, stays ``busy`` for
    ``busy`` (a range) cycles per op, with noise on ``result``, ``carry``, ``zero`` and
    ``last``, and reads each op's sources (``sources[s](ctx)``; a missing one fails the test)
    in a random cycle of it; then it shows the program's outputs until the next one starts.
    ``counters`` are the carries its owner holds until the ledger adds them:
    ``(level(ctx), ack signal, program)``; each is served, when the stand-in is free, with
    probability ``serve``, its ``ack`` high in the cycle its word is written. :meth:`query`
    runs a function in the stand-in between two programs, where the model's words and the
    carries not yet added agree.
    """

    def __init__(self, port, model, sources, rng, *, ready=0.5, busy=(1, 8), counters=(),
                 serve=0.1):
        self.port, self.model, self.sources, self.rng = port, model, sources, rng
        self.ready, self.busy, self.counters, self.serve = ready, busy, counters, serve
        self.programs = []                  # (addr, single) of the programs run
        self.queries = []

    def source(self, ctx):
        def value(s):
            if s not in self.sources:
                raise AssertionError(f"an op reads source {Source(s).name}")
            return self.sources[s](ctx)
        return value

    async def query(self, ctx, function):
        """``function(ctx)``, run by the stand-in between two programs."""
        box = []
        self.queries.append((function, box))
        while not box:
            await ctx.tick()
        return box[0]

    async def response(self, ctx, script):
        """What the sender would make of ``script`` now (:meth:`LedgerModel.response`)."""
        return await self.query(ctx, lambda ctx: self.model.response(script, self.source(ctx)))

    def _noise(self, ctx):
        port, rng = self.port, self.rng
        ctx.set(port.result, int(rng.integers(1 << 32)))
        for signal in (port.carry, port.zero, port.last):
            ctx.set(signal, int(rng.integers(2)))

    async def testbench(self, ctx):
        port, model, rng = self.port, self.model, self.rng
        offered = None                      # the request seen in the cycle before
        while True:
            while self.queries:
                function, box = self.queries.pop(0)
                box.append(function(ctx))
            waiting = [c for c in self.counters if c[0](ctx)]
            if waiting and rng.random() < self.serve:
                _, ack, program = waiting[0]
                ctx.set(port.program.ready, 0)
                await ctx.tick()                # the caller's last result, still shown
                self._noise(ctx)                # the update's own
                for _ in range(int(rng.integers(0, 6))):
                    await ctx.tick()
                model.run(program, self.source(ctx))
                ctx.set(ack, 1)
                await ctx.tick()
                ctx.set(ack, 0)
                offered = None
                continue
            take = rng.random() < self.ready
            ctx.set(port.program.ready, take)
            _, _, valid, payload = await ctx.tick().sample(port.program.valid,
                                                           port.program.payload)
            request = (payload.addr, payload.single) if valid else None
            if offered is not None:
                assert request == offered, f"program request {offered} withdrawn or changed"
            offered = request
            if not (take and valid):
                continue
            offered = None
            ctx.set(port.program.ready, 0)
            ctx.set(port.busy, 1)
            self.programs.append(request)
            pc = payload.addr
            while True:
                cycles = int(rng.integers(*self.busy))
                sample_at = int(rng.integers(cycles))
                for cycle in range(cycles):
                    self._noise(ctx)
                    if cycle == sample_at:
                        last = model.step(pc, self.source(ctx))
                    await ctx.tick()
                if last or payload.single:
                    break
                pc = (pc + 1) % LEDGER_DEPTH
            ctx.set(port.busy, 0)
            ctx.set(port.result, model.result)
            ctx.set(port.carry, model.carry)
            ctx.set(port.zero, model.zero)
            ctx.set(port.last, model.last)



def ledger_image(memory_map=None, rng=None, *, max_payload=64):
    """A ledger image (``boards.link.scripts.image``) with :func:`ledger_values`."""
    return image(ledger_values(memory_map, rng, max_payload=max_payload))
