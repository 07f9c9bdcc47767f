"""A host-link transport into an Amaranth simulation, through a bit-level UART line model.

:class:`AmaranthTransport` wraps a design that has a UART (``rx`` in, ``tx`` out) in
``amaranth.sim``: bytes the host writes are driven onto ``rx`` bit by bit (start bit, 8 data
bits LSB first, stop bit) by an async testbench, and another testbench decodes ``tx`` by
sampling each bit in its middle. Simulated time advances only inside ``read``/``idle``, so the
host code of :mod:`boards.host` runs unchanged against the simulated board and its timeouts are
in simulated seconds. Faults are injected with :meth:`AmaranthTransport.corrupt_next`,
:meth:`~AmaranthTransport.drive_line` (noise, glitches, breaks),
:meth:`~AmaranthTransport.reset_board` and a host baud-rate error.
"""

from collections import deque

from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.sim import Simulator

__all__ = ["AmaranthTransport"]


class _Harness(Elaboratable):
    """The design in a ``sync`` domain whose reset the testbench controls."""

    def __init__(self, dut, rx, tx):
        self.dut, self.rx, self.tx = dut, rx, tx
        self.host_rx = Signal(init=1)        # line into the board
        self.host_tx = Signal(init=1)        # line out of the board
        self.rst = Signal()

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain()
        m.submodules.dut = self.dut
        m.d.comb += [cd.rst.eq(self.rst), self.rx.eq(self.host_rx), self.host_tx.eq(self.tx)]
        return m


class AmaranthTransport:
    """Transport for :class:`boards.host.Link` into an ``amaranth.sim`` simulation.

    Parameters
    ----------
    dut : Elaboratable
        The board design; it is placed in a ``sync`` domain clocked at ``clk_hz``.
    rx, tx : Signal
        The design's UART input and output.
    clk_hz : float
        Simulated clock frequency.
    divisor : int
        The board's clock cycles per bit; the host line runs at ``clk_hz / divisor`` scaled
        by ``1 + baud_error``.
    vcd : str
        Optional VCD file to write.
    """

    def __init__(self, dut, *, rx, tx, clk_hz, divisor, baud_error=0.0, vcd=None):
        self.harness = _Harness(dut, rx, tx)
        self.clk_hz = clk_hz
        self.bit_time = divisor / clk_hz * (1 + baud_error)
        self.byte_time = 10 * self.bit_time
        self.to_board = deque()          # (kind, value): byte, reset, gap, levels, peek
        self.from_board = deque()
        self.line_errors = 0             # board bytes with a bad stop bit
        self.written = 0                 # bytes driven onto the line so far
        self.received = 0                # bytes decoded from the line so far
        self._corrupt = {}               # byte index -> XOR mask, host to board
        self._corrupt_rx = {}            # byte index -> XOR mask, board to host
        self.muted = False               # drop the host's bytes (a disconnected line)
        self._t = 0.0
        self.sim = Simulator(self.harness)
        self.sim.add_clock(1 / clk_hz, domain="sync")
        self.sim.add_testbench(self._drive, background=True)
        self.sim.add_testbench(self._sample, background=True)
        self._vcd = None
        if vcd:
            self._vcd = self.sim.write_vcd(vcd)
            self._vcd.__enter__()

    # --- line model ---------------------------------------------------------------------------

    async def _drive(self, ctx):
        h = self.harness
        while True:
            if not self.to_board:
                await ctx.delay(self.bit_time)
                continue
            kind, value = self.to_board.popleft()
            if kind == "byte" and self.muted:
                self.written += 1
            elif kind == "byte":
                value ^= self._corrupt.pop(self.written, 0)
                self.written += 1
                await self._send_byte(ctx, value)
            elif kind == "reset":
                ctx.set(h.rst, 1)
                await ctx.delay(value / self.clk_hz)
                ctx.set(h.rst, 0)
            elif kind == "gap":
                await ctx.delay(value)
            elif kind == "levels":
                for level, seconds in value:
                    ctx.set(h.host_rx, level)
                    await ctx.delay(seconds)
            elif kind == "peek":
                exprs, result = value
                result.extend(ctx.get(e) for e in exprs)

    async def _send_byte(self, ctx, value):
        """Drive one byte onto the line: start bit, 8 data bits LSB first, stop bit."""
        for bit in [0, *((value >> i) & 1 for i in range(8)), 1]:
            ctx.set(self.harness.host_rx, bit)
            await ctx.delay(self.bit_time)

    def _received(self, byte):
        """A byte from the board arrived (with any fault injected on the way back)."""
        self.from_board.append(byte ^ self._corrupt_rx.pop(self.received, 0))
        self.received += 1

    async def _sample(self, ctx):
        h = self.harness
        while True:
            await ctx.negedge(h.host_tx)
            await ctx.delay(1.5 * self.bit_time)
            byte = 0
            for i in range(8):
                byte |= ctx.get(h.host_tx) << i
                await ctx.delay(self.bit_time)
            if ctx.get(h.host_tx):
                self._received(byte)
            else:
                self.line_errors += 1

    # --- fault injection ----------------------------------------------------------------------

    def corrupt_next(self, index, mask=0x01):
        """Flip ``mask`` in the ``index``-th byte (from 0) the host writes from now on."""
        self._corrupt[self.written + len(self._pending_bytes()) + index] = mask

    def corrupt_answer(self, index, mask=0x01):
        """Flip ``mask`` in the ``index``-th byte (from 0) the board sends from now on."""
        self._corrupt_rx[self.received + index] = mask

    def _pending_bytes(self):
        return [v for k, v in self.to_board if k == "byte"]

    def reset_board(self, cycles=4):
        """Pulse the board's reset after the bytes written so far have been sent."""
        self.to_board.append(("reset", cycles))

    def gap(self, seconds):
        """Keep the line idle for ``seconds`` before the bytes written after this call."""
        self.to_board.append(("gap", seconds))

    def send_break(self, seconds):
        """Hold the line low for ``seconds`` (after the bytes written so far)."""
        self.drive_line([(0, seconds), (1, 2 * self.bit_time)])

    def drive_line(self, levels):
        """Drive the line to each ``(level, seconds)`` in turn, after the bytes written so far
        (glitches, breaks, noise); it stays at the last level."""
        self.to_board.append(("levels", list(levels)))

    def peek(self, *exprs):
        """Values of ``exprs`` (signals, memory rows) once everything queued has been sent."""
        result = []
        self.to_board.append(("peek", (exprs, result)))
        while not result and exprs:
            self._advance_to(self._t + self.bit_time)
        return result

    # --- transport interface ------------------------------------------------------------------

    def now(self):
        return self._t

    def _advance_to(self, t):
        if t > self._t:
            self.sim.run_until(t)
            # run_until stops at the first event at or after ``t``, which may lie beyond it;
            # continue from there (the engine counts femtoseconds).
            self._t = max(t, self.sim._engine.now / 1e15)

    def write(self, data):
        self.to_board.extend(("byte", b) for b in bytes(data))

    def read(self, n, timeout):
        deadline = self._t + max(timeout, 0)
        while len(self.from_board) < n and self._t < deadline:
            self._advance_to(min(deadline, self._t + self.byte_time))
        k = min(n, len(self.from_board))
        return bytes(self.from_board.popleft() for _ in range(k))

    def idle(self, seconds):
        self._advance_to(self._t + seconds)

    def flush_input(self):
        self.from_board.clear()

    def drain(self):
        """Run until everything written has been sent on the line."""
        while self.to_board:
            self._advance_to(self._t + self.byte_time)

    def close(self):
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None
