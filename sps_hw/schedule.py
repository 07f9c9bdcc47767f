"""The three schedule agents of a running layer, each doing one pass every ``S`` cycles.

A layer runs on a static, hazard-free schedule (``docs/hardware.md`` section 4; the offsets
come from :mod:`sps_hw.model` through the layer descriptor):

- :class:`FeedSchedule` issues the pixels from ``t_feed`` on: a virtual pass -1 whose last
  ``D`` slots only read input (the window lead-in), then passes ``0..N-1`` of ``hw`` output
  pixels; it also says, per cycle, which array row's weights of which pass are due;
- :class:`WalkSchedule` drives the :class:`~sps_hw.indexing.PassWalker` for ``rows`` cycles
  per pass, from ``t_walk`` on;
- :class:`WeightSchedule` follows the feeder's rows at a fixed distance, reading one
  weight-ROM word per row into the array.

Every comparison of a counter with a descriptor field is a flag register kept in step with
the counter (set from the comparison of the counter's *next* value), so no comparator lies
between a counter and the enables it drives.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .logic import gt_const
from .pe import RowLoad
from .registers import delayed

__all__ = ["FeedLayer", "FeedSchedule", "LayerRun", "RowDue", "WalkLayer", "WalkSchedule",
           "WeightSchedule"]


class LayerRun(wiring.Signature):
    """From the layer sequencer: ``restart`` (one cycle before a layer runs: rewind) and
    ``running`` (high while it runs)."""

    def __init__(self):
        super().__init__({"restart": Out(1), "running": Out(1)})


class FeedLayer(wiring.Signature):
    """The descriptor fields the feeder's schedule takes (``controller.Descriptor``)."""

    def __init__(self, cfg):
        hw, count, slot = cfg.hw_bits, cfg.count_bits, cfg.slot_bits
        super().__init__({
            "t_feed": Out(slot), "last_slot": Out(slot), "hw": Out(hw), "lead_from": Out(hw),
            "last_pass": Out(count), "width": Out(hw), "height": Out(hw), "conv3": Out(1),
            "stride2": Out(1),
        })


class WalkLayer(wiring.Signature):
    """The descriptor fields the walker's schedule takes."""

    def __init__(self, cfg):
        count, slot = cfg.count_bits, cfg.slot_bits
        super().__init__({
            "t_walk": Out(slot), "last_slot": Out(slot), "last_pass": Out(count),
            "passes": Out(count), "subs": Out(cfg.hw_bits),
        })


def RowDue(rows):
    """Row ``row`` of the pass with weight bank ``bank`` is due this cycle (``en``)."""
    return data.StructLayout({"en": 1, "row": range(rows), "bank": 1})


class _Countdown:
    """``zero`` in RUN cycle ``value`` (counted from 0) of a layer: a down counter loaded on
    ``restart``, its zero test a register kept in step."""

    def __init__(self, m, run, value, name):
        self.count = Signal.like(value, name=f"{name}_count")
        self.zero = Signal(name=f"{name}_zero")
        with m.If(run.restart):
            m.d.sync += [self.count.eq(value), self.zero.eq(value == 0)]
        with m.Elif(run.running & ~self.zero):
            m.d.sync += [self.count.eq(self.count - 1), self.zero.eq(self.count == 1)]


class FeedSchedule(wiring.Component):
    """Issues the pixels of a layer (stage F0 of ``docs/hardware.md``) and the weight rows.

    ``issue_in`` reads an input pixel, ``issue_out`` issues an output pixel (with its pass's
    ``slot`` = pass mod 3, weight ``bank`` = pass mod 2, and the 3x3 taps ``inside`` the
    image): every pixel position of a pass, or with ``stride2`` those at even rows and
    columns; ``due`` names row ``r`` of pass ``n`` in slot ``r`` of pass ``n``.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "run": In(LayerRun()), "layer": In(FeedLayer(cfg)),
            "issue_in": Out(1), "issue_out": Out(1),
            "slot": Out(range(3)), "bank": Out(1), "inside": Out(9),
            "due": Out(RowDue(cfg.rows)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, layer, run = self.cfg, self.layer, self.run
        start = _Countdown(m, run, layer.t_feed, "feed")
        # The slot counter `slot` with its flags: `wrap` (slot == S - 1), `pixel` (slot < hw),
        # `lead` (slot >= hw - D), `low` (slot < rows).
        active, started, counting = Signal(), Signal(), Signal()
        virtual = Signal(init=1)            # in pass -1 (the window lead-in)
        real = Signal()                     # in passes 0..N-1
        slot = Signal(cfg.slot_bits)
        wrap, pixel, lead, low = (Signal(name=n) for n in ("wrap", "pixel", "lead", "low"))
        passes_left = Signal(cfg.count_bits)    # N - 1 - the pass
        last = Signal()                         # passes_left == 0
        slot3, bank2 = Signal(range(3)), Signal()
        position = Signal()                 # a pixel position of passes 0..N-1
        even = Signal()                     # at an even row and column (_inside)
        final = Signal()                    # at the pass's last output position (_inside)
        m.d.comb += [
            position.eq(active & pixel & ~virtual),
            self.issue_out.eq(position & (~layer.stride2 | even)),
            self.issue_in.eq(active & pixel & (~virtual | lead)),
            self.slot.eq(slot3), self.bank.eq(bank2),
            self.due.en.eq(real & low), self.due.row.eq(slot), self.due.bank.eq(bank2),
        ]
        first_slot = [slot.eq(0), wrap.eq(layer.last_slot == 0), pixel.eq(1),
                      lead.eq(layer.lead_from == 0), low.eq(1)]
        with m.If(run.restart):
            m.d.sync += [active.eq(0), started.eq(0), counting.eq(0), virtual.eq(1),
                         real.eq(0), passes_left.eq(layer.last_pass),
                         last.eq(layer.last_pass == 0), slot3.eq(0), bank2.eq(0), *first_slot]
        with m.Elif(run.running):
            with m.If(start.zero & ~started):
                m.d.sync += [active.eq(1), started.eq(1), counting.eq(1)]
            # Nothing is issued after the last output: the input a stride-2 layer would
            # still stream to the end of its pass belongs to no window of this layer.
            with m.If(self.issue_out & last & final):
                m.d.sync += active.eq(0)
            with m.If(counting & wrap):
                m.d.sync += [*first_slot, virtual.eq(0)]
                with m.If(virtual):
                    m.d.sync += real.eq(1)
                with m.Else():
                    m.d.sync += [passes_left.eq(passes_left - 1), last.eq(passes_left == 1),
                                 slot3.eq(Mux(slot3 == 2, 0, slot3 + 1)), bank2.eq(~bank2)]
                    with m.If(last):
                        m.d.sync += real.eq(0)
            with m.Elif(counting):
                m.d.sync += [slot.eq(slot + 1), wrap.eq(slot + 1 == layer.last_slot),
                             low.eq(~gt_const(slot, cfg.rows - 2))]
                with m.If(slot + 1 == layer.hw):
                    m.d.sync += pixel.eq(0)
                with m.If(slot + 1 == layer.lead_from):
                    m.d.sync += lead.eq(1)
        self._inside(m, run, position, even, final)
        return m

    def _inside(self, m, run, position, even, final):
        """The 3x3 taps inside the image (padding 1) at the pixel ``position``, from its
        column and row flags; whether it is ``even`` (row and column) and the ``final``
        output position of a pass (the last pixel, or with stride 2 the last even one); 1x1
        layers use the newest pixel, tap 8. The columns and rows left (``width - x``,
        ``height - y``) count down, so every flag is a comparison with a constant."""
        layer, hw_bits = self.layer, self.cfg.hw_bits
        x_left, y_left = Signal(hw_bits), Signal(hw_bits)
        x_odd, y_odd = Signal(), Signal()
        x_first, x_last, y_first, y_last = (Signal(name=n) for n in (
            "x_first", "x_last", "y_first", "y_last"))
        # x >= width - 2 and y >= height - 2: at an even position, the last even column/row.
        x_near, y_near = Signal(name="x_near"), Signal(name="y_near")
        m.d.comb += [even.eq(~x_odd & ~y_odd),
                     final.eq(Mux(layer.stride2, x_near & y_near, x_last & y_last))]
        row = [x_left.eq(layer.width), x_odd.eq(0), x_first.eq(1),
               x_last.eq(layer.width == 1), x_near.eq(layer.width <= 2)]
        image = [y_left.eq(layer.height), y_odd.eq(0), y_first.eq(1),
                 y_last.eq(layer.height == 1), y_near.eq(layer.height <= 2)]
        with m.If(run.restart):
            m.d.sync += [*row, *image]
        with m.Elif(run.running & position):
            with m.If(x_last):
                m.d.sync += row
                with m.If(y_last):
                    m.d.sync += image
                with m.Else():
                    m.d.sync += [y_left.eq(y_left - 1), y_odd.eq(~y_odd), y_first.eq(0),
                                 y_last.eq(y_left == 2), y_near.eq(y_left[2:] == 0)]
            with m.Else():
                m.d.sync += [x_left.eq(x_left - 1), x_odd.eq(~x_odd), x_first.eq(0),
                             x_last.eq(x_left == 2), x_near.eq(x_left[2:] == 0)]
        ok_row = [~y_first, Const(1), ~y_last]
        ok_col = [~x_first, Const(1), ~x_last]
        m.d.comb += self.inside.eq(Mux(layer.conv3, Cat(*(ok_row[t // 3] & ok_col[t % 3]
                                                          for t in range(9))), 0x1FF))


class WalkSchedule(wiring.Component):
    """Starts the pass walker for ``rows`` cycles at the start of every pass period, from
    ``t_walk`` on: ``start`` (walk a row), ``first`` (the pass starts a reduction) and
    ``pixel`` (its FC sub-pass: the input pixel it reads)."""

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "run": In(LayerRun()), "layer": In(WalkLayer(cfg)),
            "start": Out(1), "first": Out(1), "pixel": Out(cfg.hw_bits),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, layer, run = self.cfg, self.layer, self.run
        begin = _Countdown(m, run, layer.t_walk, "walk")
        active, started = Signal(), Signal()
        slot = Signal(cfg.slot_bits)
        count_left = Signal(cfg.count_bits)     # N - 1 - the passes walked
        passes_left = Signal(cfg.count_bits)    # NP - the pass within the (group, sub-pass)
        sub = Signal(cfg.hw_bits)
        # Flags in step: slot == S - 1, slot < rows, count_left == 0, passes_left == 1 (the
        # last pass of the group), the first pass, sub == NS - 1.
        wrap, low, last, pass_end, first, sub_end = (Signal(name=n) for n in (
            "wrap", "low", "last", "pass_end", "first", "sub_end"))
        m.d.comb += [self.start.eq(active & low), self.first.eq(first), self.pixel.eq(sub)]
        with m.If(run.restart):
            m.d.sync += [active.eq(0), started.eq(0), slot.eq(0),
                         count_left.eq(layer.last_pass), passes_left.eq(layer.passes),
                         sub.eq(0), wrap.eq(layer.last_slot == 0), low.eq(1),
                         last.eq(layer.last_pass == 0), pass_end.eq(layer.passes == 1),
                         first.eq(1), sub_end.eq(layer.subs == 1)]
        with m.Elif(run.running):
            with m.If(begin.zero & ~started):
                m.d.sync += [active.eq(1), started.eq(1)]
            with m.If(active & wrap):
                m.d.sync += [slot.eq(0), wrap.eq(layer.last_slot == 0), low.eq(1),
                             count_left.eq(count_left - 1), last.eq(count_left == 1)]
                with m.If(last):
                    m.d.sync += active.eq(0)
                with m.If(pass_end):
                    m.d.sync += [passes_left.eq(layer.passes), first.eq(1),
                                 pass_end.eq(layer.passes == 1)]
                    with m.If(sub_end):
                        m.d.sync += [sub.eq(0), sub_end.eq(layer.subs == 1)]
                    with m.Else():
                        m.d.sync += [sub.eq(sub + 1), sub_end.eq(sub + 2 == layer.subs)]
                with m.Else():
                    m.d.sync += [passes_left.eq(passes_left - 1), first.eq(0),
                                 pass_end.eq(passes_left == 2)]
            with m.Elif(active):
                m.d.sync += [slot.eq(slot + 1), wrap.eq(slot + 1 == layer.last_slot),
                             low.eq(~gt_const(slot, cfg.rows - 2))]
        return m


class WeightSchedule(wiring.Component):
    """Loads the array's weights, one weight-ROM word (an array row) per due row.

    A row named by ``due`` is read ``lead`` cycles later from the next word of the layer's
    weights (from ``weight_base`` on); the word is written into its row's bank on
    ``row_load`` ``cfg.read_latency`` cycles after the read.
    """

    def __init__(self, cfg, *, weight_bits, lead):
        check_int("lead", lead, minimum=0)
        self.cfg, self.lead = cfg, lead
        rows, cols = cfg.rows, cfg.cols
        super().__init__({
            "run": In(LayerRun()), "weight_base": In(weight_bits), "due": In(RowDue(rows)),
            "weights": In(memory.ReadPort.Signature(addr_width=weight_bits,
                                                    shape=data.ArrayLayout(signed(8), cols))),
            "row_load": Out(RowLoad(rows, cols)),
        })

    def elaborate(self, platform):
        m = Module()
        due = delayed(m, self.due, self.lead, "due")
        loaded = delayed(m, due, self.cfg.read_latency, "loaded")
        addr = Signal.like(self.weights.addr)
        m.d.comb += [self.weights.addr.eq(addr), self.weights.en.eq(due.en)]
        with m.If(self.run.restart):
            m.d.sync += addr.eq(self.weight_base)
        with m.Elif(due.en):
            m.d.sync += addr.eq(addr + 1)
        m.d.comb += [
            self.row_load.en.eq(loaded.en),
            self.row_load.row.eq(loaded.row),
            self.row_load.bank.eq(loaded.bank),
            self.row_load.data.eq(self.weights.data),
        ]
        return m
