"""The input side of the array: feature-buffer reads and the bank-to-row crossbar."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .config import check_read_latency
from .indexing import SLOTS, BaseConfig, RouteConfig
from .memories import READ_LATENCY
from .registers import delayed

__all__ = ["Feeder", "FeederLayer"]


class FeederLayer(wiring.Signature):
    """The layer field the feeder takes: ``hw`` pixels per pass."""

    def __init__(self, hw_bits):
        super().__init__({"hw": Out(hw_bits)})


class Feeder(wiring.Component):
    """Reads one pixel of every channel of the current pass and routes it to the rows.

    A pass needs at most ``banks`` consecutive channels, which live in distinct banks, so
    every bank is read once per pixel: bank ``b`` reads the pass's channel that lives there,
    at word ``(block_next if b < first_bank else block) + pixel + j`` for the ``j``-th pixel
    of the pass (``pixel`` the pass's first pixel; see :class:`~sps_hw.indexing.BaseConfig`).
    Row ``r`` takes the bank its channel is in
    (:class:`~sps_hw.indexing.RouteConfig`).

    ``issue`` reads the next pixel (``hw`` per pass, passes back to back); the pixels reach
    ``pixels`` :attr:`latency` cycles later (:meth:`latency_of`): with reads of
    ``read_latency`` 2 the addresses, the banks' data (before the crossbar) and the
    crossbar's outputs are registered too, with 3 the outputs twice (on the die of the
    largest core the banks and the rows are far apart). The
    configuration of a pass is held in one of :data:`~sps_hw.indexing.SLOTS` slots, pass
    ``n`` in slot ``n mod SLOTS``.
    """

    def __init__(self, *, rows, banks, addr_bits, hw_bits, read_latency=READ_LATENCY):
        for name, value in (("rows", rows), ("banks", banks), ("addr_bits", addr_bits),
                            ("hw_bits", hw_bits)):
            check_int(name, value, minimum=1)
        check_read_latency(read_latency)
        if banks < rows:
            raise ValueError(f"banks ({banks}) must be at least rows ({rows})")
        self.rows, self.banks = rows, banks
        self.registered = read_latency > 1
        self.outputs = self._outputs(read_latency)
        self.latency = self.latency_of(read_latency)
        super().__init__({
            "restart": In(1),
            "issue": In(1),
            "layer": In(FeederLayer(hw_bits)),
            "bases": In(BaseConfig(banks, addr_bits, hw_bits)),
            "routes": In(RouteConfig(rows, banks)),
            "reads": In(memory.ReadPort.Signature(addr_width=addr_bits,
                                                  shape=signed(8))).array(banks),
            "pixels": Out(data.ArrayLayout(signed(8), rows)),
        })

    @staticmethod
    def _outputs(read_latency):
        """Registers behind the crossbar: one with reads of 2, two with reads of 3."""
        return (read_latency > 1) + (read_latency > 2)

    @staticmethod
    def latency_of(read_latency):
        """Cycles from ``issue`` to ``pixels`` with reads of ``read_latency``: the address
        register and the banks' data register (with reads of 2 or more), the read, the
        crossbar's output registers."""
        return 2 * (read_latency > 1) + read_latency + Feeder._outputs(read_latency)

    def elaborate(self, platform):
        m = Module()
        rows, banks = self.rows, self.banks
        addr_bits = len(self.reads[0].addr)
        # Per slot: the word of the pass's first pixel in its first channel's bank, the same
        # in the next channel block, and which banks hold the next block (b < first bank).
        base = Array(Signal(addr_bits, name=f"base_{s}") for s in range(SLOTS))
        base_next = Array(Signal(addr_bits, name=f"base_next_{s}") for s in range(SLOTS))
        ahead = Array(Signal(banks, name=f"ahead_{s}") for s in range(SLOTS))
        route = [Array(Signal(range(banks), name=f"route_{r}_{s}") for s in range(SLOTS))
                 for r in range(rows)]
        bases = self.bases
        with m.If(bases.en):
            m.d.sync += [base[bases.slot].eq(bases.block + bases.pixel),
                         base_next[bases.slot].eq(bases.block_next + bases.pixel),
                         ahead[bases.slot].eq(Cat(b < bases.first_bank for b in range(banks - 1)))]
        # With reads of 2 or more a route is written a cycle late, from registers: it is
        # looked up at least two cycles after its pass's first pixel is issued, by rows
        # spread over the die.
        routes = {name: delayed(m, getattr(self.routes, name), self.registered, f"routes_{name}",
                                reset_less=name != "en") for name in ("en", "row", "slot", "bank")}
        for r in range(rows):
            with m.If(routes["en"] & (routes["row"] == r)):
                m.d.sync += route[r][routes["slot"]].eq(routes["bank"])

        # The pixel counter j with its flag j == hw - 1, and the pass's slot.
        slot = Signal(range(SLOTS))
        j = Signal.like(self.layer.hw)
        j_last = Signal()
        with m.If(self.restart):
            m.d.sync += [slot.eq(0), j.eq(0), j_last.eq(self.layer.hw == 1)]
        with m.Elif(self.issue):
            with m.If(j_last):
                m.d.sync += [j.eq(0), j_last.eq(self.layer.hw == 1),
                             slot.eq(Mux(slot == SLOTS - 1, 0, slot + 1))]
            with m.Else():
                m.d.sync += [j.eq(j + 1), j_last.eq(j + 2 == self.layer.hw)]

        word, word_next = base[slot] + j, base_next[slot] + j
        mask = ahead[slot]
        addr = [delayed(m, Mux(mask[b], word_next, word), self.registered, f"addr_{b}",
                        reset_less=True) for b in range(banks)]
        read = delayed(m, self.issue, self.registered, "read")
        for b in range(banks):
            m.d.comb += [self.reads[b].addr.eq(addr[b]), self.reads[b].en.eq(read)]
        # The pass's slot when its pixels leave the banks: the routes of that slot pick the
        # banks, looked up a cycle ahead so that each row's crossbar select is a register.
        arrive = delayed(m, slot, self.latency - 1 - self.outputs, "slot")
        bank_data = Array(delayed(m, self.reads[b].data, self.registered, f"bank_{b}",
                                  reset_less=True) for b in range(banks))
        for r in range(rows):
            select = Signal(range(banks), name=f"select_{r}")
            m.d.sync += select.eq(route[r][arrive])
            m.d.comb += self.pixels[r].eq(delayed(m, bank_data[select], self.outputs,
                                                  f"pixel_{r}", reset_less=True))
        return m
