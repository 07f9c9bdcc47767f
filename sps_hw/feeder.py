"""The input side of the array: feature-buffer reads and the bank-to-row crossbar."""

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .indexing import SLOTS, BaseConfig, RouteConfig

__all__ = ["Feeder"]


class Feeder(wiring.Component):
    """Reads one pixel of every channel of the current pass and routes it to the rows.

    A pass needs at most ``banks`` consecutive channels, which live in distinct banks, so
    every bank is read once per pixel: bank ``b`` reads the pass's channel that lives there,
    at word ``block + (stride if b < first_bank) + pixel + j`` for the ``j``-th pixel of the
    pass (``stride`` = words per channel block, ``pixel`` the pass's first pixel; see
    :class:`~sps_hw.indexing.BaseConfig`). Row ``r`` takes the bank its channel is in
    (:class:`~sps_hw.indexing.RouteConfig`).

    ``issue`` reads the next pixel (``hw`` per pass, passes back to back); the pixels reach
    ``pixels`` one cycle later. The configuration of a pass is held in one of
    :data:`~sps_hw.indexing.SLOTS` slots, pass ``n`` in slot ``n mod SLOTS``.
    """

    def __init__(self, *, rows, banks, addr_bits, hw_bits):
        for name, value in (("rows", rows), ("banks", banks), ("addr_bits", addr_bits),
                            ("hw_bits", hw_bits)):
            check_int(name, value, minimum=1)
        if banks < rows:
            raise ValueError(f"banks ({banks}) must be at least rows ({rows})")
        self.rows, self.banks = rows, banks
        super().__init__({
            "restart": In(1),
            "issue": In(1),
            "hw": In(hw_bits),
            "stride": In(addr_bits),
            "bases": In(BaseConfig(banks, addr_bits, hw_bits)),
            "routes": In(RouteConfig(rows, banks)),
            "reads": In(memory.ReadPort.Signature(addr_width=addr_bits,
                                                  shape=signed(8))).array(banks),
            "pixels": Out(data.ArrayLayout(signed(8), rows)),
        })

    def elaborate(self, platform):
        m = Module()
        rows, banks = self.rows, self.banks
        first_bank = Array(Signal(range(banks), name=f"first_bank_{s}") for s in range(SLOTS))
        # Per slot, the word of the pass's first pixel in its first channel's bank.
        base = Array(Signal.like(self.reads[0].addr, name=f"base_{s}") for s in range(SLOTS))
        route = [Array(Signal(range(banks), name=f"route_{r}_{s}") for s in range(SLOTS))
                 for r in range(rows)]
        with m.If(self.bases.en):
            m.d.sync += [first_bank[self.bases.slot].eq(self.bases.first_bank),
                         base[self.bases.slot].eq(self.bases.block + self.bases.pixel)]
        for r in range(rows):
            with m.If(self.routes.en & (self.routes.row == r)):
                m.d.sync += route[r][self.routes.slot].eq(self.routes.bank)

        slot = Signal(range(SLOTS))
        j = Signal.like(self.hw)
        with m.If(self.restart):
            m.d.sync += [slot.eq(0), j.eq(0)]
        with m.Elif(self.issue):
            with m.If(j == self.hw - 1):
                m.d.sync += [j.eq(0), slot.eq(Mux(slot == SLOTS - 1, 0, slot + 1))]
            with m.Else():
                m.d.sync += j.eq(j + 1)

        word = Signal.like(self.reads[0].addr)
        m.d.comb += word.eq(base[slot] + j)
        for b in range(banks):
            m.d.comb += [
                # Banks before the pass's first bank hold the next block of channels.
                self.reads[b].addr.eq(word + (Mux(b < first_bank[slot], self.stride, 0)
                                              if b < banks - 1 else 0)),
                self.reads[b].en.eq(self.issue),
            ]
        slot_d = Signal.like(slot)
        m.d.sync += slot_d.eq(slot)
        bank_data = Array(self.reads[b].data for b in range(banks))
        for r in range(rows):
            m.d.comb += self.pixels[r].eq(bank_data[route[r][slot_d]])
        return m
