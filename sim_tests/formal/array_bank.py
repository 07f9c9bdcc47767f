"""A datapath invariant of the systolic array (:class:`sps_hw.pe.SystolicArray`): every product
uses the weight bank its activation carries.

The harness keeps its own copy of both weight banks of every PE, written by the same row
loads, and its own delay line of each row's activations (PE ``(r, c)`` multiplies what entered
row ``r`` ``r + c`` cycles before). Asserted every cycle, for every PE:

- ``bank``: the multiplier's operands are that activation's value and the weight of the bank
  the activation names, whatever the loads and bank switches around it;
- what makes it inductive: the PE's two weight registers equal the copies.

Activations, loads (row, bank, data) and reset are free in every cycle.
"""

from amaranth.hdl import Assert, Elaboratable, Module, Mux, Signal, signed
from amaranth.hdl._ast import AnySeq

from sps_hw.pe import Activation, SystolicArray

from .sby import internals

__all__ = ["ArrayBankHarness"]


class ArrayBankHarness(Elaboratable):
    """On a ``rows x cols`` array; ``broken`` makes PE (0, 1) always use bank 0."""

    def __init__(self, rows=2, cols=3, broken=False):
        self.dut = SystolicArray(rows, cols, multiplier=None)
        self.rows, self.cols, self.broken = rows, cols, broken

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        array = internals(dut)
        load = dut.load
        m.d.comb += [dut.acts.eq(AnySeq(len(dut.acts.as_value()))), load.en.eq(AnySeq(1)),
                     load.row.eq(AnySeq(len(load.row))), load.bank.eq(AnySeq(1)),
                     load.data.eq(AnySeq(len(load.data.as_value())))]
        for r in range(self.rows):
            chain = [dut.acts[r]]                       # chain[d]: acts[r] delayed d cycles
            for d in range(r + self.cols - 1):
                chain.append(Signal(Activation, name=f"act_{r}_{d + 1}", reset_less=True))
                m.d.sync += chain[-1].eq(chain[-2])
            for c in range(self.cols):
                act = chain[r + c]
                pe = array.submodules[f"pe_{r}_{c}"]
                inside = internals(pe)
                weights = inside.signals
                if self.broken and (r, c) == (0, 1):
                    inside.module.d.comb += pe.operands.b.eq(weights["weight0"])
                copies = [Signal(signed(8), name=f"w_{r}_{c}_{b}", reset_less=True)
                          for b in range(2)]
                for b, copy in enumerate(copies):
                    with m.If(load.en & (load.row == r) & (load.bank == b)):
                        m.d.sync += copy.eq(load.data[c])
                    m.d.comb += Assert(weights[f"weight{b}"] == copy)
                i = r * self.cols + c
                m.d.comb += Assert((dut.multipliers.a[i] == act.value)
                                   & (dut.multipliers.b[i] == Mux(act.bank, copies[1],
                                                                  copies[0])))
        return m
