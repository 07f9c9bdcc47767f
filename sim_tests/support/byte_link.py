"""The host link in amaranth.sim below its UART: whole bytes in and out, for speed.

:class:`ByteTransport` is :class:`boards.simulation.AmaranthTransport` with the link's
``UARTRx`` and ``UARTTx`` replaced by :class:`ByteRx` and :class:`ByteTx`: a byte reaches the
frame receiver in one cycle instead of ten bit times, and a response byte leaves as soon as the
sender offers it, so an exchange takes about a quarter of the cycles and none of the bit-level
testbench steps. The receiver keeps the UART's one-byte buffer and its overrun rule, so bytes
sent out of turn are lost as on the line; the transport logs which bytes got through.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from boards.simulation import AmaranthTransport
from boards.top import LinkedCore

__all__ = ["ByteRx", "ByteTransport", "ByteTx", "byte_level"]


class ByteRx(wiring.Component):
    """Stands in for :class:`boards.link.UARTRx`: ``byte`` arrives when ``strobe`` is high.

    As in the UART, a byte that arrives while the previous one still waits on ``o`` is dropped
    and ``overrun`` strobes (``rx`` and ``error`` are unused).
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    error: Out(1)
    overrun: Out(1)

    def __init__(self):
        super().__init__()
        self.strobe, self.byte = Signal(), Signal(8)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.strobe):
            with m.If(self.o.valid & ~self.o.ready):
                m.d.comb += self.overrun.eq(1)
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.byte), self.o.valid.eq(1)]
        return m


class ByteTx(wiring.Component):
    """Stands in for :class:`boards.link.UARTTx`: always ready; each byte taken toggles
    ``toggle`` (kept through a reset) and is left in ``byte``."""

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self):
        super().__init__()
        self.toggle, self.byte = Signal(reset_less=True), Signal(8, reset_less=True)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(1)
        with m.If(self.i.valid):
            m.d.sync += [self.toggle.eq(~self.toggle), self.byte.eq(self.i.payload)]
        return m


def byte_level(core, **link_args):
    """A :class:`boards.top.LinkedCore` of ``core`` whose link has :class:`ByteRx` and
    :class:`ByteTx` for a UART."""
    return LinkedCore(core, uart=(ByteRx(), ByteTx()), **link_args)


class ByteTransport(AmaranthTransport):
    """A host-link transport into ``top`` (from :func:`byte_level`) at byte level.

    Bytes written go to the receiver ``spacing`` cycles apart (``gap`` adds more). Besides the
    transport interface it records ``log`` (``(byte, got_through)`` for each byte sent),
    ``sent_at`` (the cycle the last byte was sent) and ``received_at`` (the cycle of each byte
    received); :meth:`cycle` is the simulation's current cycle.
    """

    def __init__(self, top, *, clk_hz, spacing=12):
        link = top.link
        self.byte_rx, self.byte_tx = link.uart_rx, link.uart_tx
        if not isinstance(self.byte_rx, ByteRx) or not isinstance(self.byte_tx, ByteTx):
            raise TypeError("top must come from byte_level()")
        self.spacing = spacing
        self.log = []
        self.sent_at = 0
        self.received_at = []
        super().__init__(top, rx=link.rx, tx=link.tx, clk_hz=clk_hz, divisor=4)
        self.byte_time = spacing / clk_hz
        self.bit_time = self.byte_time          # how often the idle line model looks for bytes

    def cycle(self):
        """The simulation's current cycle (from its time in femtoseconds)."""
        return round(self.sim._engine.now * self.clk_hz / 1e15)

    async def _send_byte(self, ctx, value):
        rx = self.byte_rx
        ctx.set(rx.byte, value)
        ctx.set(rx.strobe, 1)
        _, _, overrun = await ctx.tick().sample(rx.overrun)
        ctx.set(rx.strobe, 0)
        self.log.append((value, not overrun))
        self.sent_at = self.cycle()
        await ctx.delay((self.spacing - 1.5) / self.clk_hz)

    async def _sample(self, ctx):
        tx = self.byte_tx
        last = 0
        async for toggle, byte in ctx.changed(tx.toggle).sample(tx.byte):
            if toggle != last:                      # not the trigger's first report
                last = toggle
                self.received_at.append(self.cycle())
                self._received(byte)

    def send(self, data, spacing=None):
        """Write ``data``, each byte ``spacing`` cycles (a number or one per byte) after the
        one before it (at least ``self.spacing``, the first after whatever was queued)."""
        data = bytes(data)
        gaps = [spacing] * len(data) if spacing is None or isinstance(spacing, int) else spacing
        for i, (byte, gap) in enumerate(zip(data, gaps)):
            if i and gap is not None and gap > self.spacing:
                self.gap((gap - self.spacing) / self.clk_hz)
            self.write(bytes([byte]))

    def flush(self):
        """Run until every byte written has been sent; returns the bytes that got through."""
        start = len(self.log)
        want = start + sum(kind == "byte" for kind, _ in self.to_board)
        while len(self.log) < want:
            self._advance_to(self._t + self.byte_time)
        return bytes(b for b, ok in self.log[start:] if ok)
