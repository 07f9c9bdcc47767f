"""Event counters: the actions of every layer (:mod:`sps_hw.actions`), counted in the RTL.

The accelerator (with ``Config.counters``) hands :class:`ActionCounters` the strobes its
blocks make in every cycle (:class:`ActionEvents`); at the end of each layer (its ``stats``
word) the counters report the layer's totals on ``actions`` and start again from zero.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .config import Config
from .controller import Stats
from .registers import delayed

__all__ = ["ACTION_KINDS", "COUNT_BITS", "ActionCounters", "ActionEvents", "Actions"]

#: The kinds of action counted per layer, in the order the counters report them
#: (:func:`sps_hw.actions.predict` predicts each; ``docs/hardware.md`` section 10).
ACTION_KINDS = (
    "mac_useful", "mac_padding",
    "weight_reads", "weight_read_bits", "index_reads", "library_reads", "param_reads",
    "feature_reads", "feature_writes", "acc_reads", "acc_writes", "requant_ops",
    "dram_read_bytes", "dram_write_bytes",
    "active_cycles", "idle_cycles",
)

#: Width of every count (VGG16's largest layers make some 10**10 multiplications).
COUNT_BITS = 48

#: One per finished layer: its index in the descriptor ROM and its count of every kind.
Actions = data.StructLayout({"layer": unsigned(16),
                             **{kind: unsigned(COUNT_BITS) for kind in ACTION_KINDS}})


class ActionEvents(wiring.Signature):
    """The strobes of one cycle of accelerator ``cfg``.

    ``array_in``: a pixel's activations enter the array, ``rows_used`` those of the rows
    that carry a tap; ``acc_read``: a pixel's accumulator word is read, in its group's last
    pass (``acc_last``, no write back), of output group ``group`` of a layer of
    ``out_channels``; ``weight_read``, ``index_read``, ``library_read``, ``param_read``: a
    ROM word read (the walker's index and tap-list reads); ``feature_reads`` and
    ``feature_writes``: per bank, a byte read for the array or written by the output writer;
    ``requant``: a pixel's ``cols`` totals enter the requantizer.
    """

    def __init__(self, cfg):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
        super().__init__({
            "array_in": Out(1), "rows_used": Out(cfg.rows),
            "acc_read": Out(1), "acc_last": Out(1), "group": Out(cfg.count_bits),
            "out_channels": Out(cfg.channel_bits),
            "weight_read": Out(1), "index_read": Out(1), "library_read": Out(1),
            "param_read": Out(1),
            "feature_reads": Out(cfg.banks), "feature_writes": Out(cfg.banks),
            "requant": Out(1),
        })


def _ones(value):
    """The number of set bits of ``value``, an adder tree."""
    bits = [value[i] for i in range(len(value))]
    while len(bits) > 1:
        bits = [a + b for a, b in zip(bits[::2], bits[1::2], strict=False)] + \
            ([bits[-1]] if len(bits) % 2 else [])
    return bits[0]


class ActionCounters(wiring.Component):
    """Counts the :class:`ActionEvents` of accelerator ``cfg`` per layer.

    A layer ends with its ``stats`` word; the cycle after it, ``actions`` carries its index
    and its count of every kind of :data:`ACTION_KINDS`, the events of its
    last cycle included. ``lag`` is the distance in cycles from a pixel's ``array_in`` to its
    ``acc_read``: a pixel's useful multiplications are its rows with a tap times its group's
    columns with an output channel. ``weight_bits`` is the width of a weight-ROM word.
    """

    def __init__(self, cfg, *, lag, weight_bits):
        self.cfg, self.lag = cfg, check_int("lag", lag, minimum=0)
        self.weight_bits = check_int("weight_bits", weight_bits, minimum=1)
        super().__init__({
            "events": In(ActionEvents(cfg)),
            "stats": In(stream.Signature(Stats, always_ready=True)),
            "actions": Out(stream.Signature(Actions, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, ev = self.cfg, self.events
        rows, cols = cfg.rows, cfg.cols
        # The pixel at the accumulator: its rows with a tap, its group's output channels.
        rows_used = delayed(m, _ones(ev.rows_used), self.lag, "rows_used")
        left = Signal(cfg.channel_bits + 1)
        m.d.comb += left.eq(ev.out_channels - ev.group * cols)
        cols_used = Signal(range(cols + 1))
        m.d.comb += cols_used.eq(Mux(left > cols, cols, left))
        useful = Signal(unsigned(len(rows_used) + len(cols_used)))
        m.d.comb += useful.eq(Mux(ev.acc_read, rows_used * cols_used, 0))
        events = {
            "mac_useful": useful,
            "mac_padding": Mux(ev.acc_read, rows * cols, 0) - useful,
            "weight_reads": ev.weight_read,
            "weight_read_bits": Mux(ev.weight_read, self.weight_bits, 0),
            "index_reads": ev.index_read,
            "library_reads": ev.library_read,
            "param_reads": ev.param_read,
            "feature_reads": _ones(ev.feature_reads),
            "feature_writes": _ones(ev.feature_writes),
            "acc_reads": ev.acc_read,
            "acc_writes": ev.acc_read & ~ev.acc_last,
            "requant_ops": Mux(ev.requant, cols, 0),
            "active_cycles": ev.array_in,
        }
        totals = {kind: Signal(COUNT_BITS, name=kind) for kind in events}
        report = Signal()
        layer, cycles = Signal(16), Signal(32)
        m.d.sync += report.eq(self.stats.valid)
        with m.If(self.stats.valid):
            m.d.sync += [layer.eq(self.stats.payload.layer),
                         cycles.eq(self.stats.payload.cycles)]
        for kind, value in events.items():
            # The cycle after a layer's end starts the next layer's count.
            m.d.sync += totals[kind].eq(Mux(report, 0, totals[kind]) + value)
        out = self.actions.payload
        m.d.comb += [self.actions.valid.eq(report), out.layer.eq(layer),
                     out.idle_cycles.eq(cycles - totals["active_cycles"])]
        for kind, total in totals.items():
            m.d.comb += out[kind].eq(total)
        return m
