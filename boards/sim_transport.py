"""``--port sim:BOARD``: a board's top level under Verilator, behind a bit-level UART model.

:class:`VerilatorTransport` is a host-link transport (``boards.host``) whose far end is the
board's design (:class:`boards.top.BoardTop` without the platform's I/O buffers) simulated by
Verilator through :func:`sps_hw.sim.runner.simulate`. The simulator runs the cocotb test
:mod:`boards.sim_uart` in a child process (started from a background thread), which connects
back to this process over a Unix socket and serves the transport's requests:

- ``write`` queues bytes that the line model drives onto the board's ``rx``, bit by bit;
- ``read(n, timeout)`` lets the simulation run until ``n`` bytes were decoded from ``tx`` or
  ``timeout`` simulated seconds passed; ``idle`` runs it for a while;
- between requests the simulator is paused, so the host code runs unchanged, every timeout is
  in simulated time (``now()`` is simulated cycles / the board's clock) and a session is
  deterministic.

The simulated UART runs at ``divisor`` (default :data:`SIM_DIVISOR`) clock cycles per bit, a
faster line than the board's 3 or 4 Mbaud (the ``baud`` of ``sps run`` does not apply to it);
the board's clock, buffers and timeouts are its own. The Verilator build is kept in ``build_dir``
(default ``$SPS_SIM_BOARDS/<board>`` or ``~/.cache/sps/sim-boards/<board>``) and reused while
the design is unchanged; sessions sharing a build directory run one after the other.
``sps run --port sim:BOARD`` opens it through :func:`boards.transports.open_transport`.
"""

import contextlib
import math
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from compiler.errors import SPSError
from sps_hw import verilog

from .core import SPSCore
from .dram.core import DramCore
from .link.uart import _check_divisor
from .platforms import SELFTEST_MAP, board_spec
from .selftest import SelfTestCore
from .top import BoardTop

__all__ = [
    "SIM_DIVISOR",
    "SimBoard",
    "VerilatorTransport",
    "board_design",
]

#: Clock cycles per UART bit of a simulated board (the link's minimum).
SIM_DIVISOR = 4

#: Environment variables of the simulator process (read by :mod:`boards.sim_uart`).
SOCKET_ENV = "SPS_BOARD_SOCKET"
DIVISOR_ENV = "SPS_BOARD_DIVISOR"
#: Where simulated boards are built unless ``build_dir`` is given.
BUILD_ENV = "SPS_SIM_BOARDS"

# Socket messages: op u8, length u32, payload. Requests without an answer: WRITE (bytes),
# FLUSH, RESET (cycles), GAP (cycles). READ (n, deadline) -> READ (now, bytes);
# IDLE (until) -> IDLE (now); CLOSE -> CLOSE (now, sent, received, line errors). The
# simulator opens with HELLO (clock period in steps, divisor). Times are simulation steps
# since the end of the initial reset.
OP_HELLO, OP_WRITE, OP_READ, OP_IDLE, OP_FLUSH, OP_RESET, OP_GAP, OP_CLOSE = range(1, 9)
_HEAD = struct.Struct("<BI")


def pack_u64s(*values):
    return struct.pack(f"<{len(values)}Q", *values)


def unpack_u64s(payload, count=None):
    count = len(payload) // 8 if count is None else count
    return struct.unpack_from(f"<{count}Q", payload)


def _recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def send_message(sock, op, payload=b""):
    sock.sendall(_HEAD.pack(op, len(payload)) + payload)


def recv_message(sock):
    """``(op, payload)``, or ``None`` when the other side closed the connection."""
    head = _recv_exact(sock, _HEAD.size)
    if head is None:
        return None
    op, length = _HEAD.unpack(head)
    payload = _recv_exact(sock, length) if length else b""
    return None if payload is None else (op, payload)


# --- the design --------------------------------------------------------------------------------

def board_design(spec, core=None):
    """The :class:`~boards.top.BoardTop` of ``spec`` with ``core``: ``None`` for the SPS core
    the board is built with (:class:`boards.core.SPSCore` of ``spec.config``), ``"dram"`` for
    its DRAM build (:class:`boards.dram.core.DramCore`; the top adds the DRAM controller),
    ``"selftest"`` for the link's stand-in core (:class:`boards.selftest.SelfTestCore`), or a
    component."""
    if core is None:
        core = SPSCore(spec.config)
    elif core == "dram":
        spec = spec.dram_build()
        core = DramCore(spec.config, half_bytes=spec.dram_half_bytes)
    elif core == "selftest":
        core = SelfTestCore(SELFTEST_MAP)
    elif isinstance(core, str):
        raise ValueError(f"core must be None, 'dram', 'selftest' or a component, not {core!r}")
    return BoardTop(spec, core)


class SimBoard(wiring.Component):
    """The simulation top: a board's design with its UART lines and status signals as ports
    (no I/O buffers), clocked by ``clk``.

    ``rst`` (synchronous, active high) is registered before it resets the ``sync`` domain,
    like a button behind a synchronizer: no logic then depends combinationally on a top-level
    input, which Verilator evaluates again at every clock toggle (measured 0-30% faster).
    """

    clk: In(1)
    rst: In(1)
    rx: In(1, init=1)
    tx: Out(1, init=1)
    model_valid: Out(1)
    busy: Out(1)
    done: Out(1)
    loading: Out(1)
    error: Out(1)

    def __init__(self, top):
        if not isinstance(top, BoardTop):
            raise TypeError(f"top must be a boards.top.BoardTop, not {top!r}")
        self.top = top
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain()
        m.domains.board_rst = rst_domain = ClockDomain(reset_less=True)
        rst = Signal(init=1)
        m.d.comb += [sync.clk.eq(self.clk), rst_domain.clk.eq(self.clk), sync.rst.eq(rst)]
        m.d.board_rst += rst.eq(self.rst)
        m.submodules.top = top = self.top
        linked, status = top.linked, top.linked.status
        m.d.comb += [linked.rx.eq(self.rx), self.tx.eq(linked.tx)]
        m.d.comb += [getattr(self, name).eq(getattr(status, name))
                     for name in ("model_valid", "busy", "done", "loading", "error")]
        return m


def _port_access(top, module="board"):
    """A Verilator configuration making only the top-level ports visible to cocotb.

    cocotb's runner builds with ``--public-flat-rw``: every signal writable through VPI, so
    Verilator re-evaluates all combinational logic at every clock toggle. The line model
    needs only the ports; with ``--no-public-flat-rw`` and this file the simulated board runs
    5-11x faster (iCEBreaker: 510,000 instead of 47,000 cycles/s with the SPS core).
    """
    lines = [f'public_flat_rw -module "{module}" -var "{name}"\n'
             for name in top.signature.members]
    return "`verilator_config\n" + "".join(lines)


def _write_if_changed(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text() == text:
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


#: Verilog and port access of the designs converted in this process, by (board, divisor,
#: core name).
_DESIGNS = {}


def _default_build_dir(board):
    root = os.environ.get(BUILD_ENV)
    root = Path(root) if root else Path.home() / ".cache" / "sps" / "sim-boards"
    return root / board


# --- the transport -----------------------------------------------------------------------------

class VerilatorTransport:
    """Host-link transport to a simulated board (see the module docstring).

    Parameters
    ----------
    board : str
        A name from :data:`boards.platforms.BOARDS`.
    core : None, "selftest" or Component
        The core behind the link (see :func:`board_design`): the SPS core by default.
    divisor : int
        Clock cycles per UART bit in the simulation.
    build_dir : path, optional
        Verilator build directory (reused while the design is unchanged).
    waves : bool
        Record ``build_dir/verilator/dump.vcd``.
    build_args : sequence of str
        Extra Verilator arguments (e.g. ``["-CFLAGS", "-O3"]``).
    progress : callable, optional
        Called with one-line messages (building, ready).
    """

    def __init__(self, board, *, core=None, divisor=SIM_DIVISOR, build_dir=None, waves=False,
                 build_args=(), progress=None):
        spec = board_spec(board)
        if core == "dram":                  # the DRAM build's clocks
            spec = spec.dram_build()
        _check_divisor(divisor)
        say = progress or (lambda msg: None)
        self.board = board
        self.spec = replace(spec, baud=spec.clk_hz // divisor)
        self.clk_hz = spec.clk_hz
        self.divisor = divisor
        self.byte_time = 10 * divisor / spec.clk_hz
        if build_dir is None:
            kind = "" if core is None else f"-{core}" if isinstance(core, str) else "-custom"
            build_dir = _default_build_dir(board + kind)
        self.build_dir = Path(build_dir)
        self.stats = None
        self._written = 0
        self._received = 0
        self._corrupt = {}               # host byte index -> XOR mask
        self._corrupt_rx = {}            # board byte index -> XOR mask
        self._steps = 0                  # simulated time, in steps since reset
        self._sock = None
        self._error = None
        self._result = None
        t_start = time.monotonic()

        key = (board, divisor, core) if core is None or isinstance(core, str) else None
        design = _DESIGNS.get(key)
        if design is None:
            top = board_design(self.spec, core)
            sim_top = SimBoard(top)
            extra = [] if top.dram is None else [top.dram.sources(sim=True)]
            design = verilog.convert(sim_top, name="board"), _port_access(sim_top), extra
            if key is not None:
                _DESIGNS[key] = design
        text, access, extra = design
        sources = [_write_if_changed(self.build_dir / "board.v", text), *extra,
                   _write_if_changed(self.build_dir / "ports.vlt", access)]
        self._lint = {}
        if extra:                           # Migen's Verilog idioms (litedram_gen)
            from .dram.litedram_gen import VERILATOR_WAIVERS
            self._lint = {"lint_waivers": VERILATOR_WAIVERS}
        self._tmp = tempfile.mkdtemp(prefix="sps-board-")
        # cocotb rewrites the asserts of every module the simulator imports (numpy,
        # amaranth, ...) without caching the result: 1.2 s per start. sim_uart has none.
        env = {SOCKET_ENV: os.path.join(self._tmp, "socket"), DIVISOR_ENV: divisor,
               "COCOTB_REWRITE_ASSERTION_FILES": ""}
        self._thread = threading.Thread(target=self._simulate, daemon=True, name=f"sim:{board}",
                                        args=(sources, env, waves, build_args))
        say(f"sps: sim:{board}: starting the simulation (built in {self.build_dir} when the "
            f"design changed)")
        try:
            self._connect(env[SOCKET_ENV])
        except BaseException:
            if self._sock is not None:
                self._sock.close()          # the simulation ends when its host is gone
                self._sock = None
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        self.startup_s = time.monotonic() - t_start
        say(f"sps: sim:{board}: ready after {self.startup_s:.1f} s")

    def _connect(self, path):
        """Start the simulation and wait until it connects and says HELLO."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen(1)
            listener.settimeout(0.2)
            self._thread.start()
            while self._sock is None:
                try:
                    self._sock, _ = listener.accept()
                except TimeoutError:
                    if not self._thread.is_alive():
                        self._fail("the simulation ended before it connected")
        self._sock.settimeout(None)
        self._period, divisor = unpack_u64s(self._expect(OP_HELLO))
        if divisor != self.divisor:
            self._fail(f"the simulation runs divisor {divisor}, expected {self.divisor}")

    def _simulate(self, sources, env, waves, build_args):
        # deferred: cocotb's runner loads when a simulation starts, not for a real board's port
        from sps_hw.sim.runner import simulate
        try:
            self._result = simulate(sources, "board", "boards.sim_uart",
                                    build_dir=self.build_dir, env=env, waves=waves,
                                    build_args=["--no-public-flat-rw", *build_args],
                                    **self._lint)
        except BaseException as e:              # handed to the host thread by _fail
            self._error = e

    def _fail(self, what):
        self._thread.join(timeout=5)
        detail = ""
        if self._error is not None:
            detail = f": {str(self._error).splitlines()[0]}"
            log = getattr(self._error, "log", None)
            if log:
                detail += f" (log: {log})"
        raise SPSError(f"sim:{self.board}: {what}{detail}")

    def _expect(self, op):
        try:
            message = recv_message(self._sock)
        except OSError:
            message = None
        if message is None:
            self._fail("the simulation stopped answering")
        got, payload = message
        if got != op:
            self._fail(f"the simulation answered request {op} with {got}")
        return payload

    def _send(self, op, payload=b""):
        try:
            send_message(self._sock, op, payload)
        except OSError:
            self._fail("the simulation is gone")

    def _steps_for(self, seconds):
        return math.ceil(max(seconds, 0.0) * self.clk_hz * self._period)

    # --- transport interface -----------------------------------------------------------------

    def now(self):
        return self._steps / (self._period * self.clk_hz)

    @property
    def cycles(self):
        """Simulated clock cycles since the board came out of its initial reset."""
        return self._steps // self._period

    def write(self, data):
        data = bytearray(data)
        for i in range(len(data)):
            data[i] ^= self._corrupt.pop(self._written + i, 0)
        self._written += len(data)
        if data:
            self._send(OP_WRITE, bytes(data))

    def read(self, n, timeout):
        if n <= 0:
            return b""
        self._send(OP_READ, pack_u64s(n, self._steps + self._steps_for(timeout)))
        payload = self._expect(OP_READ)
        self._steps, = unpack_u64s(payload, 1)
        data = bytearray(payload[8:])
        for i in range(len(data)):
            data[i] ^= self._corrupt_rx.pop(self._received + i, 0)
        self._received += len(data)
        return bytes(data)

    def idle(self, seconds):
        self._send(OP_IDLE, pack_u64s(self._steps + self._steps_for(seconds)))
        self._steps, = unpack_u64s(self._expect(OP_IDLE))

    def flush_input(self):
        self._send(OP_FLUSH)

    # --- fault injection ---------------------------------------------------------------------

    def corrupt_next(self, index, mask=0x01):
        """Flip ``mask`` in the ``index``-th byte (from 0) the host writes from now on."""
        self._corrupt[self._written + index] = mask

    def corrupt_answer(self, index, mask=0x01):
        """Flip ``mask`` in the ``index``-th byte (from 0) the host reads from now on."""
        self._corrupt_rx[self._received + index] = mask

    def reset_board(self, cycles=4):
        """Pulse the board's reset once the bytes written so far have been sent."""
        self._send(OP_RESET, pack_u64s(cycles))

    def gap(self, seconds):
        """Keep the line idle for ``seconds`` before the bytes written after this call."""
        self._send(OP_GAP, pack_u64s(math.ceil(max(seconds, 0.0) * self.clk_hz)))

    # --- end ---------------------------------------------------------------------------------

    def close(self):
        """End the session; returns ``{seconds, sent, received, line_errors}`` (simulated).

        :class:`~compiler.errors.SPSError` if the simulation failed.
        """
        if self._sock is None:
            return self.stats
        try:
            self._send(OP_CLOSE)
            steps, sent, received, line_errors = unpack_u64s(self._expect(OP_CLOSE))
            self.stats = {"seconds": steps / (self._period * self.clk_hz), "sent": sent,
                          "received": received, "line_errors": line_errors}
        finally:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
            self._thread.join()
            shutil.rmtree(self._tmp, ignore_errors=True)
        if self._error is not None:
            self._fail("the simulation failed")
        return self.stats

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
