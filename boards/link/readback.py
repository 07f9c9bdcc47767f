"""Output readback: the ring of produced bytes and OUTPUT."""

from functools import partial

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.checks import check_int
from sps_hw.logic import gt_const
from sps_hw.memories import NO_RW_CHECK, read_port

from .core_if import ACT_SHAPE
from .executor import answer, refuse
from .ledger import LedgerCall
from .ports import OUTPUT_HEADER, ExecutorSignature, LedgerPort, ndata_width
from .scripts import Program, Script

__all__ = ["OutputReadback", "check_ring"]


def check_ring(out_depth):
    """Check the ring's size: a power of two."""
    check_int("out_depth", out_depth, minimum=16, maximum=1 << 24)
    if out_depth & (out_depth - 1):
        raise ValueError(f"out_depth must be a power of two, not {out_depth!r}")


class OutputReadback(wiring.Component):
    """Keeps the core's output bytes in a ring of ``out_depth`` until the host acknowledges them,
    and executes OUTPUT (``docs/host_link.md`` section 5).

    The bytes produced since ``restart`` (a RUN) and the oldest one still held (``released``)
    are counted in ``2 * out_depth`` here, enough for the ring's addresses and its fill level,
    and in full by the ledger: bit ``k + 1`` of ``written`` (``out_depth = 2**k``) is a carry
    the ledger has not added yet (``written_ack`` clears it in the cycle it does), the ledger
    keeps the last acknowledged offset whole. The core waits (``act_out.ready`` low, from a
    flip-flop) while the ring is full. OUTPUT ``offset, max`` is refused unless
    ``released <= offset <= written`` (one add in the ledger, ``released - offset``, and
    what it leaves below ``2 * out_depth``); otherwise it releases everything before
    ``offset`` and answers with up to ``max`` bytes, which ``data`` streams from the ring to
    the sender: ``ndata`` of them, counting down as they go (``more`` while any remain).

    Parameters
    ----------
    out_depth : int
        Bytes of the ring (a power of two).
    max_payload : int
        Largest payload (bounds an OUTPUT response's data).

    Members
    -------
    command : ``In(ExecutorSignature(max_payload))``
    ledger : ``Out(LedgerPort())``
    act_out : ``In(stream.Signature(signed(8)))``
    data : ``Out(stream.Signature(8))``
        The ring's bytes from the acknowledged offset on.
    ndata, more : ``Out(ndata_width(max_payload))``, ``Out(1)``
    written : ``Out(k + 2)``
    written_ack : ``In(1)``
    restart : ``In(1)``
        Strobe: a run starts; the ring empties.
    """

    def __init__(self, *, out_depth, max_payload):
        check_ring(out_depth)
        check_int("max_payload", max_payload, minimum=OUTPUT_HEADER + 1, maximum=0xFFFF)
        self.out_depth, self.max_payload = out_depth, max_payload
        self.ring_bit = out_depth.bit_length()          # k + 1
        super().__init__({
            "command": In(ExecutorSignature(max_payload)),
            "ledger": Out(LedgerPort()),
            "act_out": In(stream.Signature(ACT_SHAPE)),
            "data": Out(stream.Signature(8)),
            "ndata": Out(ndata_width(max_payload)),
            "more": Out(1),
            "written": Out(self.ring_bit + 1),
            "written_ack": In(1),
            "restart": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        k = self.ring_bit - 1                           # ring address bits
        items = self.command.command
        arg = items.payload.arg
        act = self.act_out
        ledger = self.ledger
        call = LedgerCall(m, ledger)

        # The byte at ``written`` is never the one read (the ring is full then, or the read
        # byte is not used): no read-during-write logic (``no_rw_check``).
        m.submodules.ring = ring = memory.Memory(shape=8, depth=self.out_depth, init=[],
                                                 attrs=NO_RW_CHECK)
        ring_w, ring_r = ring.write_port(), read_port(m, ring, "ring")
        written = Signal(k + 2)             # bytes produced since RUN, mod 2 * out_depth
        released = Signal(k + 1)            # bytes the host has acknowledged, likewise
        level = Signal(k + 1)
        full = Signal()
        ring_ptr = Signal(k)
        # ring_ptr changed: the read port and the register behind it (``data.payload``: the
        # block RAM's data goes straight into a register) catch up in two cycles.
        moved = Signal(2)
        m.d.comb += [
            self.written.eq(written), level.eq(written[:k + 1] - released),
            act.ready.eq(~full),
            ring_w.addr.eq(written[:k]), ring_w.data.eq(act.payload),
            ring_w.en.eq(act.valid & act.ready),
            ring_r.addr.eq(ring_ptr),
            self.more.eq(self.ndata != 0), self.data.valid.eq(self.more & ~moved.any()),
        ]
        # Full from the level of the cycle before: at most one byte more arrives meanwhile.
        m.d.sync += [full.eq(level[k] | level[:k].all()), moved.eq(moved << 1),
                     self.data.payload.eq(ring_r.data)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [ring_ptr.eq(ring_ptr + 1), moved.eq(1), self.ndata.eq(self.ndata - 1)]
        with m.If(ring_w.en):
            m.d.sync += written.eq(written + 1)
        with m.If(self.written_ack):
            m.d.sync += written[k + 1].eq(0)
        with m.If(self.restart):
            m.d.sync += [written.eq(0), released.eq(0)]

        flag_lt, flag_far = Signal(), Signal()  # offset before released; far beyond it
        avail = Signal(k + 2)               # bytes from offset on (negative: beyond written)
        room = self.max_payload - OUTPUT_HEADER
        respond = partial(answer, m, self.command)

        with m.FSM():
            with m.State("IDLE"):               # the offset
                with m.If(items.valid):
                    m.next = "CHECK"
            with m.State("CHECK"):              # released - offset, in the ledger
                with m.If(call(Program.CHECK_RELEASED)):
                    diff = ledger.result            # minus the bytes released by this offset
                    near = ledger.zero | diff[k + 1:].all()
                    m.d.sync += [flag_lt.eq(ledger.carry & ~ledger.zero), flag_far.eq(~near),
                                 avail.eq(level + diff[:k + 2])]
                    m.next = "DECIDE"
            with m.State("DECIDE"):
                refuse(m, self.command, [
                    (flag_lt, Script.ERR_SEQUENCE_RELEASED),
                    (flag_far | avail[k + 1], Script.ERR_SEQUENCE_WRITTEN)])
                with m.Else():
                    m.next = "RELEASE"
            with m.State("RELEASE"):
                with m.If(call(Program.STORE_RELEASED)):
                    m.d.comb += items.ready.eq(1)
                    m.d.sync += [released.eq(arg[:k + 1]), ring_ptr.eq(arg[:k]), moved.eq(1)]
                    m.next = "LIMIT"
            with m.State("LIMIT"):              # max
                mx = arg[16:32]
                if k + 1 < 16:
                    smaller = (mx[k + 1:] == 0) & (mx[:k + 1] < avail[:k + 1])
                else:
                    smaller = mx < avail[:k + 1]
                with m.If(items.valid):
                    with m.If(smaller):
                        m.d.sync += avail.eq(mx)
                    m.next = "SIZE"
            with m.State("SIZE"):
                m.d.sync += self.ndata.eq(Mux(gt_const(avail[:k + 1], room), room, avail[:k + 1]))
                respond(Script.OUTPUT)
        return m
