"""The processing element and the weight-stationary systolic array."""

from amaranth.hdl import Array, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Activation", "ProcessingElement", "RowLoad", "SystolicArray", "WeightLoad"]


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


class ProcessingElement(wiring.Component):
    """``psum_out <= psum_in + weight[act.bank] * act.value``; the activation moves on.

    Two weight registers (banks): the next pass's weight is written into one while the
    current pass multiplies with the other; each activation names its bank, so a bank switch
    travels through the array with the data. Products are exact (int16), sums wrap at int32
    (the compiler bounds every accumulator to int32).
    """

    act_in: In(Activation)
    act_out: Out(Activation)
    psum_in: In(signed(32))
    psum_out: Out(signed(32))
    load: In(WeightLoad())

    def elaborate(self, platform):
        m = Module()
        weight = Array(Signal(signed(8), name=f"weight{b}") for b in range(2))
        with m.If(self.load.en):
            m.d.sync += weight[self.load.bank].eq(self.load.data)
        product = Signal(signed(16))
        m.d.comb += product.eq(weight[self.act_in.bank] * self.act_in.value)
        m.d.sync += [
            self.psum_out.eq(self.psum_in + product),
            self.act_out.eq(self.act_in),
        ]
        return m


class SystolicArray(wiring.Component):
    """``rows x cols`` weight-stationary array of :class:`ProcessingElement`.

    ``acts`` takes one activation per row, all of the same pixel (the array skews them:
    row ``r`` is delayed ``r`` cycles); activations move right, partial sums move down, and
    each column's sum is delayed so that ``sums`` shows the ``cols`` results of one pixel
    together, :meth:`latency` cycles after its activations were on ``acts``::

        sums[c] = sum over r of weight[r][c][acts[r].bank] * acts[r].value

    ``load`` writes a whole row of weights (one per column) into one bank.
    """

    def __init__(self, rows, cols):
        for name, value in (("rows", rows), ("cols", cols)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self.rows, self.cols = rows, cols
        super().__init__({
            "acts": In(data.ArrayLayout(Activation, rows)),
            "sums": Out(data.ArrayLayout(signed(32), cols)),
            "load": In(RowLoad(rows, cols)),
        })

    @staticmethod
    def latency(rows, cols):
        """Cycles from a pixel's activations on ``acts`` to its sums on ``sums``."""
        return rows + cols - 1

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        pes = [[ProcessingElement() for _ in range(cols)] for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]
                m.d.comb += [
                    pes[r][c].load.en.eq(self.load.en & (self.load.row == r)),
                    pes[r][c].load.bank.eq(self.load.bank),
                    pes[r][c].load.data.eq(self.load.data[c]),
                ]
        # Skew: row r enters r cycles late.
        for r in range(rows):
            act = self.acts[r]
            for i in range(r):
                delayed = Signal(Activation, name=f"skew_{r}_{i}")
                m.d.sync += delayed.eq(act)
                act = delayed
            m.d.comb += pes[r][0].act_in.eq(act)
            for c in range(1, cols):
                m.d.comb += pes[r][c].act_in.eq(pes[r][c - 1].act_out)
        for c in range(cols):
            m.d.comb += pes[0][c].psum_in.eq(0)
            for r in range(1, rows):
                m.d.comb += pes[r][c].psum_in.eq(pes[r - 1][c].psum_out)
        # Deskew: column c leaves cols - 1 - c cycles late.
        for c in range(cols):
            s = pes[rows - 1][c].psum_out
            for i in range(cols - 1 - c):
                delayed = Signal(signed(32), name=f"deskew_{c}_{i}")
                m.d.sync += delayed.eq(s)
                s = delayed
            m.d.comb += self.sums[c].eq(s)
        return m
