"""Host-link transports by port name: a serial device, or ``sim:BOARD`` for a simulated board.

:func:`open_transport` opens what ``sps run --port`` names: :class:`SerialTransport`
(pyserial) for a device such as ``/dev/ttyUSB1``, or the transport registered for
``sim:BOARD``: every board of :data:`boards.platforms.BOARDS` as its top level under Verilator
(:class:`boards.sim_transport.VerilatorTransport`) unless :func:`register_sim_transport` gave
another. The transport interface is described in :mod:`boards.host`.
"""

import sys
import time

from compiler.errors import SPSError

from .platforms import BOARDS
from .sim_transport import VerilatorTransport

__all__ = ["SerialTransport", "open_transport", "register_sim_transport"]


class SerialTransport:
    """A serial port (pyserial), e.g. ``/dev/ttyUSB1`` at ``baud``, or any URL pyserial opens
    (``socket://host:port``, ``rfc2217://host:port``, ``loop://``). A port that fails on the way
    (a USB adapter unplugged) is an :class:`~compiler.errors.SPSError` naming it."""

    def __init__(self, port, baud):
        try:
            import serial  # deferred: pyserial is only needed for a real board
        except ImportError:
            raise SPSError("--port needs pyserial (pip install pyserial)") from None
        self.port = port
        try:
            self.serial = serial.serial_for_url(port, baud, timeout=0)
        except (serial.SerialException, OSError, ValueError) as e:
            raise SPSError(f"--port {port}: cannot open ({e})") from None
        self.byte_time = 10.0 / baud

    def _io(self, what, call, *args):
        try:
            return call(*args)
        except OSError as e:                # pyserial's SerialException is one
            raise SPSError(f"--port {self.port}: {what} failed ({e})") from None

    def now(self):
        return time.monotonic()

    def write(self, data):
        self._io("writing", self.serial.write, data)
        self._io("writing", self.serial.flush)

    def read(self, n, timeout):
        self.serial.timeout = max(timeout, 0)
        return self._io("reading", self.serial.read, n)

    def idle(self, seconds):
        time.sleep(seconds)

    def flush_input(self):
        self._io("flushing the input", self.serial.reset_input_buffer)

    def close(self):
        self.serial.close()


def _stderr(message):
    print(message, file=sys.stderr, flush=True)


#: ``sim:<board>`` -> ``factory(baud, core)``; every board starts as its top level under
#: Verilator.
_SIM_TRANSPORTS = {
    name: lambda baud, core, name=name: VerilatorTransport(name, core=core, progress=_stderr)
    for name in BOARDS}


def register_sim_transport(board, factory):
    """Make ``--port sim:<board>`` open ``factory(baud, core)``."""
    _SIM_TRANSPORTS[board] = factory


def open_transport(port, baud, core=None):
    """A transport for ``port``: ``sim:<board>`` (a simulated board, with ``core`` as
    :func:`boards.sim_transport.board_design` takes it: ``None`` for the block-RAM build,
    ``"dram"`` for the DRAM build) or a serial device."""
    if port.startswith("sim:"):
        board = port[4:]
        if board not in _SIM_TRANSPORTS:
            known = ", ".join(sorted(_SIM_TRANSPORTS)) or "none registered"
            raise SPSError(f"--port {port}: no simulated board {board!r} (known: {known})")
        return _SIM_TRANSPORTS[board](baud, core)
    return SerialTransport(port, baud)
