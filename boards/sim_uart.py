"""cocotb side of a simulated board (``--port sim:BOARD``): a bit-level UART line model that
serves a host process over a Unix socket.

The simulator runs this test (see :mod:`boards.sim_transport`); the host process owns the
:class:`~boards.sim_transport.VerilatorTransport`. Simulation is in lock step with the host:
time advances only while the host waits (``read`` until bytes or a deadline, ``idle``), and
while the test waits for the host's next request the simulator is paused, so every timeout is
in simulated time and a run is deterministic.

The line model: bytes from the host are driven onto ``rx`` as 8N1 frames (start bit, 8 data
bits LSB first, stop bit; bit edges on falling clock edges), ``tx`` is decoded by sampling each
bit in its middle. Both run at ``divisor`` clock cycles per bit, the board's own rate.
"""

import os
import socket
from collections import deque

import cocotb
from cocotb.triggers import Event, FallingEdge, First, Timer
from cocotb.utils import get_sim_time

from boards.sim_transport import (
    DIVISOR_ENV,
    OP_CLOSE,
    OP_FLUSH,
    OP_GAP,
    OP_HELLO,
    OP_IDLE,
    OP_READ,
    OP_RESET,
    OP_WRITE,
    SOCKET_ENV,
    pack_u64s,
    recv_message,
    send_message,
    unpack_u64s,
)
from sps_hw.sim.streams import TB


class Line:
    """The UART line between host and board: a driver on ``rx`` and a decoder on ``tx``."""

    def __init__(self, dut, period_steps, divisor):
        self.dut = dut
        self.bit = period_steps * divisor          # steps per bit, both directions
        self.to_board = deque()          # ("byte", value), ("reset", steps), ("gap", steps)
        self.from_board = bytearray()
        self.line_errors = 0                       # board bytes with a bad stop bit
        self.sent = 0                              # bytes driven onto rx
        self.received = 0                          # bytes decoded from tx
        self.queued = Event()                      # something was put in to_board
        self.got_byte = Event()                    # a byte from the board was decoded
        dut.rx.value = 1

    def put(self, item):
        self.to_board.append(item)
        self.queued.set()

    async def drive(self):
        """Send queued items; bit runs of equal value are one timer each."""
        dut, bit = self.dut, self.bit
        while True:
            if not self.to_board:
                self.queued.clear()
                await self.queued.wait()
                await FallingEdge(dut.clk)             # bit edges between clock edges
                continue
            kind, value = self.to_board.popleft()
            if kind == "byte":
                bits = [0, *((value >> i) & 1 for i in range(8)), 1]
                i = 0
                while i < 10:
                    j = i
                    while j < 10 and bits[j] == bits[i]:
                        j += 1
                    dut.rx.value = bits[i]
                    await Timer((j - i) * bit, "step")
                    i = j
                self.sent += 1
            elif kind == "reset":
                dut.rst.value = 1
                await Timer(value, "step")
                dut.rst.value = 0
            elif kind == "gap":
                await Timer(value, "step")

    async def sample(self):
        """Decode bytes on ``tx``: wait for a start bit, sample every bit in its middle."""
        dut, bit = self.dut, self.bit
        while True:
            await FallingEdge(dut.tx)
            await Timer(bit + bit // 2, "step")
            byte = 0
            for i in range(8):
                byte |= int(dut.tx.value) << i
                await Timer(bit, "step")
            if int(dut.tx.value):
                self.from_board.append(byte)
                self.received += 1
                self.got_byte.set()
            else:
                self.line_errors += 1


@cocotb.test()
async def serve_host(dut):
    """Serve one host session: requests from the socket until CLOSE (or the host is gone)."""
    tb = TB(dut)
    divisor = int(os.environ[DIVISOR_ENV])
    line = Line(dut, tb.period_steps, divisor)
    await tb.reset()
    t0 = get_sim_time()

    def now():
        return get_sim_time() - t0

    cocotb.start_soon(line.drive())
    cocotb.start_soon(line.sample())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ[SOCKET_ENV])
    try:
        send_message(sock, OP_HELLO, pack_u64s(tb.period_steps, divisor))
        while True:
            message = recv_message(sock)
            if message is None:
                dut._log.info("host closed the connection")
                return
            op, payload = message
            if op == OP_WRITE:
                for b in payload:
                    line.put(("byte", b))
            elif op == OP_READ:
                n, deadline = unpack_u64s(payload)
                while len(line.from_board) < n and now() < deadline:
                    line.got_byte.clear()
                    await First(Timer(deadline - now(), "step"), line.got_byte.wait())
                k = min(n, len(line.from_board))
                data = bytes(line.from_board[:k])
                del line.from_board[:k]
                send_message(sock, OP_READ, pack_u64s(now()) + data)
            elif op == OP_IDLE:
                until, = unpack_u64s(payload)
                if until > now():
                    await Timer(until - now(), "step")
                send_message(sock, OP_IDLE, pack_u64s(now()))
            elif op == OP_FLUSH:
                line.from_board.clear()
            elif op == OP_RESET:
                cycles, = unpack_u64s(payload)
                line.put(("reset", cycles * tb.period_steps))
            elif op == OP_GAP:
                cycles, = unpack_u64s(payload)
                line.put(("gap", cycles * tb.period_steps))
            elif op == OP_CLOSE:
                send_message(sock, OP_CLOSE, pack_u64s(now(), line.sent, line.received,
                                                       line.line_errors))
                return
            else:
                raise ValueError(f"unknown request 0x{op:02x} from the host")
    finally:
        sock.close()
