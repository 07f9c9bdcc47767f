"""The processing element and the weight-stationary systolic array."""

import math

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .registers import delayed
from .vendor import Multipliers

__all__ = ["Activation", "Operands", "ProcessingElement", "RowLoad", "SystolicArray",
           "WeightLoad", "psum_bits"]


#: An int8 activation and the weight bank (pass parity) it is to be multiplied with.
Activation = data.StructLayout({"value": signed(8), "bank": unsigned(1)})


class WeightLoad(wiring.Signature):
    """Write ``data`` into weight bank ``bank`` of one PE when ``en``."""

    def __init__(self):
        super().__init__({"en": Out(1), "bank": Out(1), "data": Out(signed(8))})


class RowLoad(wiring.Signature):
    """Write one array row's ``cols`` weights (column 0 first) into bank ``bank`` when ``en``."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        super().__init__({
            "en": Out(1),
            "row": Out(range(rows)),
            "bank": Out(1),
            "data": Out(data.ArrayLayout(signed(8), cols)),
        })

    def __eq__(self, other):
        return type(other) is type(self) and (other.rows, other.cols) == (self.rows, self.cols)

    def __repr__(self):
        return f"RowLoad({self.rows}, {self.cols})"


#: The two factors of one multiplication.
Operands = data.StructLayout({"a": signed(8), "b": signed(8)})


def psum_bits(rows):
    """Width of the partial sums of a column of ``rows`` PEs: ``rows`` products of at most
    ``2**14`` in magnitude fit in ``15 + rows.bit_length()`` signed bits (at most 32)."""
    return min(32, 15 + rows.bit_length())


class ProcessingElement(wiring.Component):
    """One PE: two weights (banks), the operands of its multiplication, its partial sum.

    The multiplier is outside (a :class:`~sps_hw.vendor.Multipliers` of the array, a DSP
    block's registers): ``operands`` are the factors of the activation ``act_in`` will carry
    in the next cycle (``act_next``) and its bank's weight, and ``product`` returns their
    product :data:`~sps_hw.vendor.PRODUCT_LATENCY` cycles later, so each activation's
    product reaches ``psum_out <= psum_in + product`` one cycle after the activation was on
    ``act_in``. The activation moves on (``act_out <= act_in``; with ``passes_on=False``,
    in the last two columns, whose successors only read ``act_in``, there is no ``act_out``).
    The next pass's weight is
    written into one bank while the current pass multiplies with the other; each activation
    names its bank, so a bank switch travels through the array with the data. Sums wrap at
    ``psum_bits`` (the array uses :func:`psum_bits`, which never wraps).
    """

    def __init__(self, *, psum_bits=32, passes_on=True):
        check_int("psum_bits", psum_bits, minimum=16, maximum=32)
        self.passes_on = bool(passes_on)
        super().__init__({
            "act_in": In(Activation), "act_next": In(Activation),
            **({"act_out": Out(Activation)} if passes_on else {}),
            "psum_in": In(signed(psum_bits)), "psum_out": Out(signed(psum_bits)),
            "load": In(WeightLoad()),
            "operands": Out(Operands), "product": In(signed(16)),
        })

    def elaborate(self, platform):
        m = Module()
        # Data registers are reset-less: only the control restarts with a run.
        weight = [Signal(signed(8), name=f"weight{b}", reset_less=True) for b in range(2)]
        for b in range(2):
            with m.If(self.load.en & (self.load.bank == b)):
                m.d.sync += weight[b].eq(self.load.data)
        m.d.comb += [self.operands.a.eq(self.act_next.value),
                     self.operands.b.eq(Mux(self.act_next.bank, weight[1], weight[0]))]
        psum = Signal.like(self.psum_out, reset_less=True)
        m.d.sync += psum.eq(self.psum_in + self.product)
        m.d.comb += self.psum_out.eq(psum)
        if self.passes_on:
            act = Signal.like(self.act_out, reset_less=True)
            m.d.sync += act.eq(self.act_in)
            m.d.comb += self.act_out.eq(act)
        return m


class SystolicArray(wiring.Component):
    """``rows x cols`` weight-stationary array of :class:`ProcessingElement`.

    ``acts`` takes one activation per row, all of the same pixel; after an input register
    the array skews them (row ``r`` is delayed ``r`` more cycles); activations move right,
    partial sums move down, and each column's sum is delayed so that ``sums`` shows the
    ``cols`` results of one pixel together, :meth:`latency` cycles after its activations
    were on ``acts``::

        sums[c] = sum over r of weight[r][c][acts[r].bank] * acts[r].value

    ``load`` writes a whole row of weights (one per column) into one bank
    ``load_latency`` cycles later; a weight must be written at least two cycles before the
    first activation that uses it reaches its PE's ``act_in``. With ``load_latency`` 1 or
    more each array row takes its loads through a register of its own (enabled only by
    loads of that row), with 2 or more after a register of its group of about
    ``sqrt(rows)`` rows, and before them ``load_latency - 2`` registers of the whole bus:
    on the largest die the rows are far apart. ``multiplier`` builds the multipliers
    (:data:`sps_hw.vendor.PRIMITIVES`, or ``"auto"``: the platform's DSP blocks); every
    choice behaves the same.
    """

    def __init__(self, rows, cols, *, multiplier="auto", load_latency=0):
        for name, value in (("rows", rows), ("cols", cols)):
            check_int(name, value, minimum=1)
        check_int("load_latency", load_latency, minimum=0)
        self.rows, self.cols, self.load_latency = rows, cols, load_latency
        self.multipliers = Multipliers(rows * cols, primitive=multiplier, grid=(rows, cols))
        super().__init__({
            "acts": In(data.ArrayLayout(Activation, rows)),
            "sums": Out(data.ArrayLayout(signed(32), cols)),
            "load": In(RowLoad(rows, cols)),
        })

    @staticmethod
    def latency(rows, cols):
        """Cycles from a pixel's activations on ``acts`` to its sums on ``sums``: the input
        register, the skew, the multiplier's product register and the deskew."""
        return 1 + rows + cols

    def _row_loads(self, m):
        """``(en, bank, data)`` of each row's weight writes, ``load_latency`` cycles after
        ``load``: through registers of the whole bus, then (with 2 or more) of each group of
        about ``sqrt(rows)`` rows, then of each row. Which row a load is for travels one-hot,
        and a group's or a row's register takes only the loads for its rows, so that each is
        enabled by a flip-flop (not by a comparator across the die) and no two are equal."""
        rows, load = self.rows, self.load
        hits = {r: load.en & (load.row == r) for r in range(rows)}
        if self.load_latency == 0:
            return [(hits[r], load.bank, load.data) for r in range(rows)]
        bus = max(0, self.load_latency - 2)
        hits = dict(zip(hits, delayed(m, Cat(hits.values()), bus, "load_hits")))
        loads = [(hits, delayed(m, load.bank, bus, "load_bank", reset_less=True),
                  delayed(m, load.data, bus, "load_data", reset_less=True))] * rows
        if self.load_latency >= 2:
            size = -(-rows // (math.isqrt(rows - 1) + 1))      # rows / ceil(sqrt(rows))
            groups = [self._take(m, loads[0], range(g, min(g + size, rows)), f"group_{g}")
                      for g in range(0, rows, size)]
            loads = [groups[r // size] for r in range(rows)]
        return [(hits[r], bank, data) for r, (hits, bank, data) in
                enumerate(self._take(m, loads[r], [r], f"row_{r}") for r in range(rows))]

    @staticmethod
    def _take(m, source, rows, name):
        """Registers of ``source`` (``(hits, bank, data)``, ``hits`` by row) that take the
        loads for ``rows``."""
        hits, bank, data = source
        mine = Signal(len(rows), name=f"{name}_hits")
        own = Signal.like(bank, name=f"{name}_bank", reset_less=True)
        weights = Signal.like(data, name=f"{name}_data", reset_less=True)
        taken = Cat(hits[r] for r in rows)
        m.d.sync += mine.eq(taken)
        with m.If(taken.any()):
            m.d.sync += [own.eq(bank), weights.eq(data)]
        return dict(zip(rows, mine)), own, weights

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        m.submodules.multipliers = mults = self.multipliers
        # Row r's partial sums hold r + 1 products: psum_bits(r + 1) bits (sign-extended on).
        # PE c + 1 multiplies PE c's input (its act_next): the last two columns pass nothing on.
        pes = [[ProcessingElement(psum_bits=psum_bits(r + 1), passes_on=c < cols - 2)
                for c in range(cols)] for r in range(rows)]
        row_loads = self._row_loads(m)
        for r in range(rows):
            en, bank, weights = row_loads[r]
            for c in range(cols):
                pe, i = pes[r][c], r * cols + c
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.load.en.eq(en),
                    pe.load.bank.eq(bank),
                    pe.load.data.eq(weights[c]),
                    mults.a[i].eq(pe.operands.a), mults.b[i].eq(pe.operands.b),
                    pe.product.eq(mults.p[i]),
                ]
        # Skew: row r enters r + 1 cycles late (chain[k]: acts delayed by k cycles), and
        # its multipliers take what its input will be in the next cycle (a single column
        # passes no activation on, so it needs no input of its own).
        for r in range(rows):
            chain = [self.acts[r]]
            for i in range(r + (cols > 1)):
                delayed = Signal(Activation, name=f"skew_{r}_{i}", reset_less=True)
                m.d.sync += delayed.eq(chain[-1])
                chain.append(delayed)
            m.d.comb += pes[r][0].act_next.eq(chain[r])
            if cols > 1:
                m.d.comb += pes[r][0].act_in.eq(chain[r + 1])
            for c in range(1, cols):
                if pes[r][c - 1].passes_on:
                    m.d.comb += pes[r][c].act_in.eq(pes[r][c - 1].act_out)
                m.d.comb += pes[r][c].act_next.eq(pes[r][c - 1].act_in)
        for c in range(cols):
            m.d.comb += pes[0][c].psum_in.eq(0)
            for r in range(1, rows):
                m.d.comb += pes[r][c].psum_in.eq(pes[r - 1][c].psum_out)
        # Deskew: column c leaves cols - 1 - c cycles late.
        width = psum_bits(rows)
        for c in range(cols):
            s = pes[rows - 1][c].psum_out            # psum_bits(rows) == width
            for i in range(cols - 1 - c):
                delayed = Signal(signed(width), name=f"deskew_{c}_{i}", reset_less=True)
                m.d.sync += delayed.eq(s)
                s = delayed
            m.d.comb += self.sums[c].eq(s)
        return m
