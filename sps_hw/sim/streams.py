"""cocotb drivers for Amaranth ``lib.stream`` ports, a testbench base and payload packing.

An Amaranth ``stream.Signature`` port ``p`` appears in the Verilog that
``amaranth.back.verilog`` emits as the flat ports ``p__valid``, ``p__ready`` and
``p__payload`` (one vector even for a ``StructLayout`` or ``ArrayLayout`` payload: fields are
not ports; ``p__ready`` is absent with ``always_ready``, ``p__payload`` when it is zero-width).
A transfer happens at a rising edge of ``clk`` where ``valid`` and ``ready`` are both high.

The drivers act once per rising edge: right after the edge they read the handshake the DUT saw
at that edge (both Verilator and Icarus show pre-edge values there) and drive the next cycle's
``valid``/``ready``. Random gaps and stalls come from ``random.Random`` seeded per port, so a
run is reproducible.

Payload helpers: :func:`pack`/:func:`unpack` convert arrays of lanes (lane 0 in the LSBs, e.g.
a signed int8 vector) to and from payload words, vectorized; :func:`pack_payload` and
:func:`unpack_payload` do the same for one value of any Amaranth shape or data layout.
"""

import random
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, RisingEdge, Timer
from cocotb.utils import get_sim_steps, get_sim_time

__all__ = [
    "TB",
    "StreamSink",
    "StreamSource",
    "pack",
    "pack_payload",
    "unpack",
    "unpack_payload",
]

_NUMPY_WIDTHS = (8, 16, 32, 64)


# --- payload packing --------------------------------------------------------------------------

def pack(values, width):
    """Pack lanes into payload words: ``values[..., lanes]`` -> list of ``int``, lane 0 in LSBs.

    Each value must fit in ``width`` bits as a signed or an unsigned number; negative values are
    stored in two's complement. The leading dimensions are flattened in C order.
    """
    a = np.asarray(values)
    if a.ndim == 0 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"pack needs an integer array of lanes, not {a.dtype} of shape {a.shape}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, not {width!r}")
    lanes = a.shape[-1]
    a = a.reshape(-1, lanes)
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < -(1 << (width - 1)) or hi >= (1 << width):
            raise ValueError(f"values {lo}..{hi} do not fit in {width} bits")
    if width in _NUMPY_WIDTHS:
        raw = a.astype(f"<u{width // 8}").tobytes()      # wraps negatives: two's complement
        nbytes = lanes * width // 8
        return [int.from_bytes(raw[i:i + nbytes], "little") for i in range(0, len(raw), nbytes)]
    mask = (1 << width) - 1
    shifts = np.arange(lanes, dtype=object) * width
    lanes_obj = (a.astype(object) & mask) << shifts
    return [int(w) for w in lanes_obj.sum(axis=1)] if lanes else [0] * len(a)


def unpack(words, lanes, width, *, signed=True):
    """Split payload words into lanes: ``len(words) x lanes`` int64 array (lane 0 from LSBs)."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, not {width!r}")
    if not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"lanes must be a positive int, not {lanes!r}")
    words = [int(w) for w in words]
    if width in _NUMPY_WIDTHS and (signed or width < 64):
        nbytes = lanes * width // 8
        raw = b"".join(w.to_bytes(nbytes, "little") for w in words)
        kind = "i" if signed else "u"
        return np.frombuffer(raw, dtype=f"<{kind}{width // 8}").reshape(-1, lanes).astype(np.int64)
    mask = (1 << width) - 1
    shifts = np.arange(lanes, dtype=object) * width
    out = (np.array(words, dtype=object).reshape(-1, 1) >> shifts) & mask
    if signed:
        out = np.where(out >= (1 << (width - 1)), out - (1 << width), out)
    return out.astype(np.int64 if width < 64 or signed else np.uint64).reshape(-1, lanes)


def pack_payload(shape, value):
    """The payload word of ``value`` for an Amaranth shape or ``data`` layout.

    ``value`` is an int for a plain shape, a dict for a ``StructLayout``/``UnionLayout`` and a
    sequence for an ``ArrayLayout`` (nested as the layout is).
    """
    from amaranth.hdl import Shape  # imported here: amaranth adds ~0.5 s to sim start-up
    from amaranth.lib import data

    if isinstance(shape, data.Layout):
        word = 0
        if isinstance(shape, (data.StructLayout, data.UnionLayout)):
            items = value.items()
        else:
            items = enumerate(value)
        for key, item in items:
            fld = shape[key]
            word |= pack_payload(fld.shape, item) << fld.offset
        return word
    width = Shape.cast(shape).width
    value = int(value)
    if not -(1 << max(width - 1, 0)) <= value < (1 << width):
        raise ValueError(f"{value} does not fit in {shape!r}")
    return value & ((1 << width) - 1)


def unpack_payload(shape, word):
    """Inverse of :func:`pack_payload`: an int, a dict or a list, nested as ``shape`` is."""
    from amaranth.hdl import Shape
    from amaranth.lib import data

    word = int(word)
    if isinstance(shape, data.Layout):
        fields = {key: unpack_payload(fld.shape, word >> fld.offset) for key, fld in shape}
        return list(fields.values()) if isinstance(shape, data.ArrayLayout) else fields
    s = Shape.cast(shape)
    v = word & ((1 << s.width) - 1)
    return v - (1 << s.width) if s.signed and s.width and v >> (s.width - 1) else v


# --- drivers ----------------------------------------------------------------------------------

def _signal(dut, port, name, required=True):
    try:
        return getattr(dut, f"{port}__{name}")
    except AttributeError:
        if required:
            raise AttributeError(f"DUT has no signal {port}__{name}: expected an Amaranth "
                                 f"stream port {port!r}") from None
        return None


def _rng(seed, port):
    return random.Random(f"{cocotb.RANDOM_SEED}:{port}" if seed is None else seed)


def _check_prob(name, p):
    if not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(f"{name} must be a probability in (0, 1], not {p!r}")
    return float(p)


class _EdgeLoop:
    """One coroutine per clock that wakes at each rising edge and calls the drivers' handlers.

    Each ``await RisingEdge`` costs ~9 us of Python per cycle, so the drivers of a testbench
    share one (a source with nothing to send unregisters and costs nothing). Handlers run right
    after the edge, read the handshake the DUT saw at it, and drive the next cycle. The loop
    also tracks the last edge time and the period (shortest gap between handled edges).
    """

    def __init__(self, clk):
        self.clk = clk
        self.edge_time = None
        self.period = None
        self._handlers = []
        self._wake = Event()
        self._task = None

    def add(self, handler):
        if handler not in self._handlers:
            self._handlers.append(handler)
            self._wake.set()
        if self._task is None:
            self._task = cocotb.start_soon(self._run())

    def remove(self, handler):
        if handler in self._handlers:
            self._handlers.remove(handler)

    async def _run(self):
        edge = RisingEdge(self.clk)
        handlers = self._handlers
        while True:
            if not handlers:
                self._wake.clear()
                await self._wake.wait()
                continue
            await edge
            t = get_sim_time()
            if self.edge_time is not None:
                gap = t - self.edge_time
                if self.period is None or gap < self.period:
                    self.period = gap
            self.edge_time = t
            for handler in tuple(handlers):
                handler(t)


class _Driver:
    """What sources and sinks share: signals, RNG, edge loop and cycle-counted deadlines."""

    def __init__(self, dut, port, clk, tb, seed):
        self.port = port
        self.clk = clk
        self.valid = _signal(dut, port, "valid")
        self.ready = _signal(dut, port, "ready", required=False)
        self.payload = _signal(dut, port, "payload", required=False)
        self.times = []
        self._tb = tb
        self._loop = tb._loop if tb is not None else _EdgeLoop(clk)
        self._rng = _rng(seed, port)
        self._deadline = None
        # The edge loop may handle the edge of the current time step after the driver was set
        # up in that step: such an edge happened before the setup and must be ignored.
        self._armed_at = get_sim_time()

    def _set_deadline(self, timeout_cycles):
        """Set the deadline to the time of the ``timeout_cycles``-th rising edge from now.

        Computed from a known edge time and the period (the TB's, or the one the edge loop
        measured), so it is exact whether the caller runs before or after the edge loop within
        a time step.
        """
        if timeout_cycles is None:
            self._deadline = None
            return
        if not isinstance(timeout_cycles, int) or timeout_cycles < 1:
            raise ValueError(f"timeout_cycles must be a positive int, not {timeout_cycles!r}")
        if self._tb is not None and self._tb._t0 is not None:
            edge, period = self._tb._t0, self._tb.period_steps
        elif self._loop.period is not None:
            edge, period = self._loop.edge_time, self._loop.period
        else:
            raise RuntimeError(f"stream {self.port}: the clock period is not known yet; create "
                               f"the driver with TB.source/TB.sink and call TB.reset first")
        now = get_sim_time()
        since = (now - edge) % period
        self._deadline = now + (period - since) + (timeout_cycles - 1) * period


class StreamSource(_Driver):
    """Feeds items to the stream input ``port`` of the DUT, in order, with random valid gaps.

    Each cycle in which it could present the next item it does so with probability
    ``valid_prob``. Items are ints (payload words) or, with ``shape``, values for
    :func:`pack_payload`. ``times`` holds the simulation time (steps) of every transfer.
    Create it with :meth:`TB.source` (or pass the clock ``clk`` and, optionally, ``tb``).
    """

    def __init__(self, dut, port, clk, *, valid_prob=1.0, seed=None, shape=None, tb=None):
        super().__init__(dut, port, clk, tb, seed)
        self.valid_prob = _check_prob("valid_prob", valid_prob)
        self.shape = shape
        self.queued = 0
        self.sent = 0
        self._queue = deque()
        self._active = False        # valid is high with an item not yet taken
        self._high = False          # what valid is driven to
        self._busy = False          # registered with the edge loop
        self._idle = Event()
        self._idle.set()
        self._waiter = Event()
        self.valid.value = 0

    def send(self, items):
        """Queue ``items`` (an iterable of payload words, or of values with ``shape``)."""
        if self.shape is not None:
            items = [pack_payload(self.shape, v) for v in items]
        before = len(self._queue)
        self._queue.extend(int(w) for w in items)
        self.queued += len(self._queue) - before
        if self._queue and not self._busy:
            self._busy = True
            self._idle.clear()
            self._armed_at = get_sim_time()
            self._loop.add(self._on_edge)
            self._present()

    @property
    def idle(self):
        """True when every queued item has been transferred."""
        return self._idle.is_set()

    async def wait_idle(self, timeout_cycles=None):
        """Wait until every queued item was transferred; ``TimeoutError`` after the timeout."""
        if self.idle:
            return
        self._waiter.clear()
        self._set_deadline(timeout_cycles)
        await self._waiter.wait()
        self._deadline = None
        if not self.idle:
            raise TimeoutError(f"stream {self.port}: {self.queued - self.sent} of {self.queued} "
                               f"items not taken after {timeout_cycles} cycles")

    def _on_edge(self, t):
        if t <= self._armed_at:
            return
        if self._active and (self.ready is None or self.ready.value):
            self.sent += 1
            self.times.append(t)
            self._active = False
        if self._deadline is not None and t >= self._deadline:
            self._waiter.set()                  # wait_idle reports the timeout
        self._present()

    def _present(self):
        queue = self._queue
        if not self._active and queue and (
                self.valid_prob >= 1.0 or self._rng.random() < self.valid_prob):
            word = queue.popleft()
            if self.payload is not None:
                self.payload.value = word
            self._active = True
        if self._active != self._high:
            self.valid.value = int(self._active)
            self._high = self._active
        if not self._active and not queue:
            self._busy = False
            self._loop.remove(self._on_edge)
            self._idle.set()
            self._waiter.set()


class StreamSink(_Driver):
    """Takes items from the stream output ``port`` of the DUT, with random ready stalls.

    ``ready`` is high in a cycle with probability ``ready_prob``. Every transfer appends the
    payload to ``items`` (an int, or with ``shape`` the value from :func:`unpack_payload`) and
    its simulation time (steps) to ``times``. Transfers past any count waited for are kept too,
    so a test can check that nothing extra came out.
    Create it with :meth:`TB.sink` (or pass the clock ``clk`` and, optionally, ``tb``).
    """

    def __init__(self, dut, port, clk, *, ready_prob=1.0, seed=None, shape=None, tb=None):
        super().__init__(dut, port, clk, tb, seed)
        self.ready_prob = _check_prob("ready_prob", ready_prob)
        self.shape = shape
        self.items = []
        self._want = None
        self._done = Event()
        self._high = self.ready is None or self._draw()
        if self.ready is not None:
            self.ready.value = int(self._high)
        self._loop.add(self._on_edge)

    def _draw(self):
        return self.ready_prob >= 1.0 or self._rng.random() < self.ready_prob

    async def wait(self, count, timeout_cycles=None):
        """Wait until ``count`` items arrived in total and return the first ``count``.

        Raises ``TimeoutError`` if they have not after ``timeout_cycles`` rising edges.
        """
        if len(self.items) < count:
            self._done.clear()
            self._want = count
            self._set_deadline(timeout_cycles)
            await self._done.wait()
            self._want = self._deadline = None
            if len(self.items) < count:
                raise TimeoutError(f"stream {self.port}: {len(self.items)} of {count} items "
                                   f"after {timeout_cycles} cycles")
        return self.items[:count]

    def _on_edge(self, t):
        if t <= self._armed_at:
            return
        if self._high and self.valid.value:
            word = self.payload.value.to_unsigned() if self.payload is not None else 0
            self.items.append(word if self.shape is None else unpack_payload(self.shape, word))
            self.times.append(t)
            if self._want is not None and len(self.items) >= self._want:
                self._done.set()
        if self._deadline is not None and t >= self._deadline:
            self._done.set()
        if self.ready is not None and self.ready_prob < 1.0:
            r = self._rng.random() < self.ready_prob
            if r != self._high:
                self.ready.value = int(r)
                self._high = r


class TB:
    """Testbench base for an Amaranth design: clock ``clk``, active-high sync reset ``rst``.

    ``cycle`` counts rising edges since reset was released (the first edge after it is 1), from
    simulation time, so counting costs nothing per cycle. Stream drivers made with
    :meth:`source`/:meth:`sink` share one edge loop. Subclass it to add the DUT's drivers.
    """

    def __init__(self, dut, *, period_ns=10, clk="clk", rst="rst"):
        self.dut = dut
        self.clk = getattr(dut, clk)
        self.rst = getattr(dut, rst) if rst else None
        self.period_ns = period_ns
        self.period_steps = get_sim_steps(period_ns, "ns")
        self.clock = Clock(self.clk, period_ns, unit="ns")
        self._loop = _EdgeLoop(self.clk)
        self._running = False
        self._t0 = None

    def start_clock(self):
        if not self._running:
            self.clock.start(start_high=False)
            self._running = True

    async def reset(self, cycles=2):
        """Start the clock, hold ``rst`` high for ``cycles`` rising edges, release it."""
        if self.rst is not None:
            self.rst.value = 1
        self.start_clock()
        await ClockCycles(self.clk, cycles)
        if self.rst is not None:
            self.rst.value = 0
        self._t0 = get_sim_time()

    @property
    def cycle(self):
        """Rising edges since reset release."""
        return self.cycle_at(get_sim_time())

    def cycle_at(self, time_steps):
        """The cycle number of a simulation time in steps (e.g. an entry of ``sink.times``)."""
        if self._t0 is None:
            raise RuntimeError("cycle count starts at reset(): call it first")
        return (time_steps - self._t0) // self.period_steps

    async def cycles(self, n=1):
        """Wait ``n`` rising edges (after reset: two triggers however large ``n`` is)."""
        if n < 3 or self._t0 is None:
            await ClockCycles(self.clk, n)
            return
        now, period = get_sim_time(), self.period_steps
        nth_edge = now + (period - (now - self._t0) % period) + (n - 1) * period
        await Timer(nth_edge - period // 2 - now, "step")      # inside the last cycle
        await RisingEdge(self.clk)

    def source(self, port, **kwargs):
        """A :class:`StreamSource` on ``port``, clocked by this TB."""
        return StreamSource(self.dut, port, self.clk, tb=self, **kwargs)

    def sink(self, port, **kwargs):
        """A :class:`StreamSink` on ``port``, clocked by this TB."""
        return StreamSink(self.dut, port, self.clk, tb=self, **kwargs)
