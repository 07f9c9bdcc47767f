"""UART transmitter and receiver (8 data bits, no parity, 1 stop bit, LSB first).

Both take ``divisor``, the number of clock cycles per bit (``round(clk_hz / baud)``); the
receiver samples each bit in its middle, so it tolerates a baud mismatch of a few percent.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int

__all__ = ["UARTRx", "UARTTx", "divisor_for"]

MIN_DIVISOR = 4


def divisor_for(clk_hz, baud, tolerance=0.02):
    """Clock cycles per bit for ``baud`` at ``clk_hz``; ``ValueError`` beyond ``tolerance``."""
    if clk_hz <= 0 or baud <= 0:
        raise ValueError(f"clock and baud rate must be positive, not {clk_hz!r} and {baud!r}")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"baud rate {baud} needs at least {MIN_DIVISOR} clock cycles per bit; "
                         f"a {clk_hz / 1e6:g} MHz clock allows at most {clk_hz // MIN_DIVISOR}")
    error = abs(clk_hz / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"baud rate {baud} is {error:.1%} off at {clk_hz / 1e6:g} MHz "
                         f"(divisor {divisor}); at most {tolerance:.0%} works reliably")
    return divisor


def _check_divisor(divisor):
    check_int("divisor", divisor, minimum=MIN_DIVISOR, maximum=1 << 24)


class UARTTx(wiring.Component):
    """Sends each byte of the stream ``i`` on ``tx`` (idle high).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(10, init=0x3FF)        # stop, data[7:0], start; LSB goes out first
        bits = Signal(range(11))
        timer = Signal(range(self.divisor))

        m.d.comb += [self.tx.eq(shreg[0]), self.i.ready.eq(bits == 0)]
        with m.If(bits == 0):
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq((1 << 9) | (self.i.payload << 1)), bits.eq(10),
                             timer.eq(self.divisor - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [shreg.eq((1 << 9) | (shreg >> 1)), bits.eq(bits - 1),
                         timer.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """Receives bytes on ``rx`` into the stream ``o``.

    A byte that completes while the previous one still waits on ``o`` is dropped and
    ``overrun`` strobes; a byte whose stop bit is low is dropped and ``error`` strobes (the
    receiver then waits for the line to return high, so a break yields one error).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor))
        bits = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):                      # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq((rx << 7) | (shreg >> 1)), timer.eq(self.divisor - 1),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m
