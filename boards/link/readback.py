"""Output readback: the ring of produced bytes and OUTPUT."""

from functools import partial

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int

from ..protocol import Status
from .core_if import ACT_SHAPE
from .executor import answer, refuse
from .ports import OUTPUT_HEADER, ExecutorSignature, Kind, OutputState, Word
from .serial import gt_const

__all__ = ["OutputReadback", "check_ring"]


def check_ring(out_depth, count_bits):
    """Check the ring's size (a power of two) and the counters' width against each other."""
    check_int("out_depth", out_depth, minimum=16, maximum=1 << 24)
    if out_depth & (out_depth - 1):
        raise ValueError(f"out_depth must be a power of two, not {out_depth!r}")
    check_int("count_bits", count_bits, minimum=8, maximum=32)
    if out_depth > 1 << (count_bits - 1):
        raise ValueError(f"out_depth {out_depth} needs count_bits > {count_bits}")


class OutputReadback(wiring.Component):
    """Keeps the core's output bytes in a ring of ``out_depth`` until the host acknowledges them,
    and executes OUTPUT (``docs/host_link.md`` section 5).

    ``written`` counts the bytes produced since ``restart`` (a RUN), ``released`` is the oldest
    one still held; the core waits (``act_out.ready`` low) while the ring is full. OUTPUT
    ``offset, max`` is refused unless ``released <= offset <= written``; otherwise it releases
    everything before ``offset`` and answers with up to ``max`` bytes, which ``data`` streams
    from the ring to the sender.

    Parameters
    ----------
    out_depth : int
        Bytes of the ring (a power of two).
    count_bits : int
        Width of the byte counters (``out_depth <= 2 ** (count_bits - 1)``).
    max_payload : int
        Largest payload (bounds an OUTPUT response's data).

    Members
    -------
    command : ``In(ExecutorSignature(max_payload))``
    act_out : ``In(stream.Signature(signed(8)))``
    data : ``Out(stream.Signature(8))``
        The ring's bytes from the acknowledged offset on.
    state : ``Out(OutputState(count_bits))``
        Bytes produced and acknowledged (the words of OUTPUT's answers).
    restart : ``In(1)``
        Strobe: a run starts; the ring empties.
    """

    def __init__(self, *, out_depth, count_bits, max_payload):
        check_ring(out_depth, count_bits)
        check_int("max_payload", max_payload, minimum=OUTPUT_HEADER + 1, maximum=0xFFFF)
        self.out_depth, self.count_bits, self.max_payload = out_depth, count_bits, max_payload
        super().__init__({
            "command": In(ExecutorSignature(max_payload)),
            "act_out": In(stream.Signature(ACT_SHAPE)),
            "data": Out(stream.Signature(8)),
            "state": Out(OutputState(count_bits)),
            "restart": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cw = self.count_bits
        k = self.out_depth.bit_length() - 1             # ring address bits
        items = self.command.command
        arg = items.payload.arg
        act = self.act_out

        # The byte at ``written`` is never the one read (the ring is full then, or the read
        # byte is not used): no read-during-write logic (``no_rw_check``).
        m.submodules.ring = ring = memory.Memory(shape=8, depth=self.out_depth, init=[],
                                                 attrs={"no_rw_check": 1})
        ring_w, ring_r = ring.write_port(), ring.read_port()
        written = Signal(cw)                # bytes produced since RUN
        released = Signal(cw)               # bytes the host has acknowledged
        level = Signal(k + 1)
        ring_ptr = Signal(k)
        # ring_ptr changed: the read port and the register behind it (``data.payload``: the
        # block RAM's data goes straight into a register) catch up in two cycles.
        moved = Signal(2)
        m.d.comb += [
            self.state.written.eq(written), self.state.released.eq(released),
            level.eq(written[:k + 1] - released[:k + 1]),
            act.ready.eq(~level[k]),
            ring_w.addr.eq(written[:k]), ring_w.data.eq(act.payload),
            ring_w.en.eq(act.valid & act.ready),
            ring_r.addr.eq(ring_ptr),
            self.data.valid.eq(~moved.any()),
        ]
        m.d.sync += [moved.eq(moved << 1), self.data.payload.eq(ring_r.data)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [ring_ptr.eq(ring_ptr + 1), moved.eq(1)]
        with m.If(ring_w.en):
            m.d.sync += written.eq(written + 1)
        with m.If(self.restart):
            m.d.sync += [written.eq(0), released.eq(0)]

        flag_lt, flag_hi = Signal(), Signal()   # offset before released; beyond the ring
        avail = Signal(k + 2)               # bytes from offset on (negative: beyond written)
        room = self.max_payload - OUTPUT_HEADER
        respond = partial(answer, m, self.command)

        with m.FSM():
            with m.State("IDLE"):               # the offset
                diff = arg[:cw] - released
                high = arg[cw:] != 0
                m.d.sync += [flag_lt.eq(~high & diff[cw]),
                             flag_hi.eq(high | (diff[k + 1:cw] != 0)), avail.eq(diff[:k + 1])]
                with m.If(items.valid):
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += avail.eq(level - avail[:k + 1])
                m.next = "DECIDE"
            with m.State("DECIDE"):
                refuse(m, self.command, [
                    (flag_lt, Status.ERR_SEQUENCE, Word.RELEASED),
                    (flag_hi | avail[k + 1], Status.ERR_SEQUENCE, Word.WRITTEN)])
                with m.Else():
                    m.d.comb += items.ready.eq(1)
                    m.d.sync += [released.eq(arg[:cw]), ring_ptr.eq(arg[:k]), moved.eq(1)]
                    m.next = "LIMIT"
            with m.State("LIMIT"):              # max
                mx = arg[16:32]
                if k + 1 < 16:
                    smaller = (mx[k + 1:] == 0) & (mx[:k + 1] < avail)
                else:
                    smaller = mx < avail
                with m.If(items.valid):
                    with m.If(smaller):
                        m.d.sync += avail.eq(mx)
                    m.next = "SIZE"
            with m.State("SIZE"):
                respond(Status.OK, kind=Kind.OUTPUT,
                        ndata=Mux(gt_const(avail, room), room, avail))
        return m
