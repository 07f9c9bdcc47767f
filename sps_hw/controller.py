"""The controller: runs the layers of the descriptor ROM, each on a static schedule.

Per layer (one descriptor word, written by :mod:`sps_hw.program`): fetch the descriptor; if it
starts a segment, load the segment's input tensor from the input stream; run the layer; if it
ends a segment, stream the result out. Running a layer starts three agents at the cycles the
descriptor gives (``t_feed``, ``t_walk``, counted from the start of the run; the loader
``S + 1`` cycles after the feeder), each doing one pass every ``S`` cycles:

- the *feeder* issues the pixels: a virtual pass -1 whose last ``lead`` slots only read input
  (the window lead-in), then ``passes`` passes of ``hw`` output pixels;
- the *walker* drives the :class:`~sps_hw.indexing.PassWalker` for ``rows`` cycles per pass;
- the *weight loader* reads ``rows`` weight-ROM words per pass into the array.

The schedule is hazard-free by construction (see :mod:`sps_hw.model`); the layer is done when
its last result has been written.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .pe import RowLoad

__all__ = ["Controller", "Descriptor", "Stats"]

#: Default width of pass, cycle and reduction counters (``Config.count_bits``).
COUNT_BITS = 24

#: One per finished layer: its index in the descriptor ROM and its cycle count.
Stats = data.StructLayout({"layer": unsigned(16), "cycles": unsigned(32)})


def Descriptor(cfg, weight_bits, index_bits, library_bits, param_bits):
    """The layout of one layer-descriptor word for the accelerator ``cfg``.

    The schedule fields are stored in the form the controller compares them in (written by
    :mod:`sps_hw.program` from the :class:`~sps_hw.model.LayerPlan`): ``last_slot = S - 1``,
    ``last_pass = N - 1``, ``lead_from = hw - D``; the weight loader starts from the feeder
    (``t_load = t_feed + S + 1``), so it has no offset of its own."""
    hw = cfg.hw_bits
    count = cfg.count_bits
    slot = cfg.slot_bits
    return data.StructLayout({
        "valid": 1,             # 0: end of the program (the controller starts over)
        "seg_first": 1,         # load the input tensor from act_in first
        "seg_last": 1,          # stream the output tensor to act_out afterwards
        "conv3": 1,             # 3x3 window (mask at the borders) rather than 1x1
        "relu": 1,
        "pool": 1,              # fused 2x2 stride-2 max-pool
        "height": hw, "width": hw,
        "hw": hw,               # output pixels per pass (pre-pool; 1 for FC)
        "in_hw": hw,            # pixels per channel of the input tensor
        "out_hw": hw,           # pixels per channel of the output tensor
        "in_channels": cfg.channel_bits, "out_channels": cfg.channel_bits,
        "keep": 4, "period": index_bits + 1,
        "reduction": count,     # Q: reduction indices per pass group
        "passes": count,        # NP: passes per (group, sub-pass)
        "subs": hw,             # NS: FC sub-passes (input pixels), else 1
        "groups": count,        # G: output groups of cols channels
        "last_pass": count,     # N - 1, N = G * NS * NP
        "lead_from": hw,        # hw - D: the virtual pass -1 issues slots lead_from..hw-1
        "ring": hw,             # line-buffer ring length (W for 3x3, 1 for 1x1)
        "last_slot": slot,      # S - 1, S: cycles per pass
        "t_feed": slot, "t_walk": slot,
        "weight_base": weight_bits, "index_base": index_bits, "param_base": param_bits,
    })


class Controller(wiring.Component):
    """Sequences layers and passes; see the module documentation."""

    def __init__(self, cfg, descriptor, *, layer_bits, weight_bits, word=None):
        self.cfg = cfg
        rows, cols = cfg.rows, cfg.cols
        self.descriptor = descriptor
        # The descriptor ROM's word: the descriptor, or a part of it (cfg.layer_words).
        word = descriptor if word is None else word
        super().__init__({
            "descriptors": In(memory.ReadPort.Signature(addr_width=layer_bits, shape=word)),
            "weights": In(memory.ReadPort.Signature(addr_width=weight_bits,
                                                    shape=data.ArrayLayout(signed(8), cols))),
            "layer": Out(descriptor),
            "buffer": Out(1),               # the feature buffer the layer reads
            "loading": Out(1), "running": Out(1), "draining": Out(1),
            "restart": Out(1),              # a layer is about to run: rewind the datapath
            "load_start": Out(1), "load_done": In(1),
            "drain_start": Out(1), "drain_done": In(1),
            # Feeder (stage F0).
            "issue_in": Out(1), "issue_out": Out(1),
            "slot": Out(range(3)), "bank": Out(1), "inside": Out(9),
            # Walker.
            "walk_start": Out(1), "walk_first": Out(1), "walk_pixel": Out(cfg.hw_bits),
            # Weights.
            "row_load": Out(RowLoad(rows, cols)),
            "done": In(1),
            "stats": Out(stream.Signature(Stats, always_ready=True)),
            # The segment to start with after a reset (held steady); 0 normally.
            "segment": In(8),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        rows = cfg.rows
        layer = self.layer
        words = cfg.layer_words
        # The layer's descriptor (for stats): the ROM holds at most layer_depth of them.
        index = Signal(range(max(2, cfg.layer_depth)))
        ptr = Signal.like(self.descriptors.addr)    # the descriptor ROM word read next
        cycles = Signal(32)                 # the layer's cycles so far, plus one
        count_bits, slot_bits = cfg.count_bits, cfg.slot_bits
        tau = Signal(slot_bits)             # only compared with t_feed / t_walk (< 2**slot_bits)

        m.d.comb += [self.descriptors.addr.eq(ptr), self.descriptors.en.eq(1)]
        # Segments passed over since the reset, and whether the start segment was found.
        skipped, found = Signal(8), Signal()
        # The descriptor register. Several words are shifted straight into it as they arrive
        # (the last one in DECODE): nothing reads the descriptor between the end of a layer
        # (its last result written, its output drained) and the next layer's PREP.
        if words > 1:
            width = len(self.descriptors.data)
            raw = Signal(width * words)
            word_index = Signal(range(words))
            arriving = Signal()
            with m.If(arriving):
                m.d.sync += raw.eq(Cat(raw[width:], self.descriptors.data))
            shifted = Cat(raw[width:], self.descriptors.data)
            fetched = self.descriptor(shifted[:self.descriptor.size])
            m.d.comb += layer.eq(raw[:self.descriptor.size])
            decode = [raw.eq(shifted)]
        else:
            fetched = self.descriptors.data
            decode = [layer.eq(fetched)]

        with m.FSM():
            with m.State("FETCH"):
                m.d.sync += ptr.eq(ptr + 1)
                if words > 1:
                    m.d.sync += [word_index.eq(word_index + 1), arriving.eq(1),
                                 cycles.eq(Mux(word_index == 0, 2, cycles + 1))]
                    with m.If(word_index == words - 1):
                        m.d.sync += [word_index.eq(0), arriving.eq(0)]
                        m.next = "DECODE"
                else:
                    m.d.sync += cycles.eq(2)
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += [*decode, cycles.eq(cycles + 1)]
                with m.If(~fetched.valid):
                    m.d.sync += [index.eq(0), ptr.eq(0)]
                    m.next = "FETCH"
                with m.Elif(~found & ~(fetched.seg_first & (skipped == self.segment))):
                    # Until the first layer of segment `segment`, layers are passed over.
                    m.d.sync += [index.eq(index + 1), skipped.eq(skipped + fetched.seg_first)]
                    m.next = "FETCH"
                with m.Elif(fetched.seg_first):
                    m.d.sync += found.eq(1)
                    m.d.sync += self.buffer.eq(0)
                    m.next = "LOAD_START"
                with m.Else():
                    m.next = "PREP"
            with m.State("LOAD_START"):
                m.d.comb += [self.load_start.eq(1), self.loading.eq(1)]
                m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.loading.eq(1)
                with m.If(self.load_done):
                    m.next = "PREP"
            with m.State("PREP"):
                m.d.comb += self.restart.eq(1)
                m.d.sync += [cycles.eq(cycles + 1), tau.eq(0)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.running.eq(1)
                m.d.sync += [cycles.eq(cycles + 1), tau.eq(tau + 1)]
                with m.If(self.done):
                    m.d.comb += [self.stats.valid.eq(1),
                                 self.stats.payload.layer.eq(index),
                                 self.stats.payload.cycles.eq(cycles)]
                    m.d.sync += [self.buffer.eq(~self.buffer), index.eq(index + 1)]
                    with m.If(layer.seg_last):
                        m.next = "DRAIN_START"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("DRAIN_START"):
                m.d.comb += [self.drain_start.eq(1), self.draining.eq(1)]
                m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += self.draining.eq(1)
                with m.If(self.drain_done):
                    m.next = "FETCH"

        running = self.running
        restart = self.restart

        # --- feeder: passes -1 .. total-1 of `cycle` slots each --------------------------
        # Each agent starts once per layer (the offset counter `tau` may wrap). The feeder
        # issues while `f_active`; its slot and pass counters run on (`f_run`) until the
        # next layer, for the weight loader, which follows them one cycle behind.
        f_active, f_started, f_run = Signal(), Signal(), Signal()
        f_virtual = Signal(init=1)         # in pass -1 (the window lead-in)
        f_pass = Signal(count_bits)        # the pass (after pass -1)
        f_slot = Signal(slot_bits)         # slot within the pass
        f_wrap = f_slot == layer.last_slot
        x, y = Signal(cfg.hw_bits), Signal(cfg.hw_bits)
        in_pixel = f_slot < layer.hw
        m.d.comb += [
            self.issue_out.eq(f_active & in_pixel & ~f_virtual),
            self.issue_in.eq(f_active & in_pixel & (~f_virtual | (f_slot >= layer.lead_from))),
        ]
        slot3 = Signal(range(3))
        bank2 = Signal()
        m.d.comb += [self.slot.eq(slot3), self.bank.eq(bank2)]
        last_pass = f_pass == layer.last_pass
        last_issue = ~f_virtual & last_pass & (f_slot == layer.hw - 1)
        # The weight loader runs S + 1 cycles behind the feeder: it starts two cycles after the
        # end of pass -1 and stops one cycle after the end of pass N - 1.
        l_go, l_stop = Signal(), Signal()
        with m.If(restart):
            m.d.sync += [f_active.eq(0), f_started.eq(0), f_run.eq(0), f_virtual.eq(1),
                         f_pass.eq(0), f_slot.eq(0), x.eq(0), y.eq(0), slot3.eq(0), bank2.eq(0),
                         l_go.eq(0), l_stop.eq(0)]
        with m.Elif(running):
            m.d.sync += [l_go.eq(f_run & f_virtual & f_wrap),
                         l_stop.eq(f_run & ~f_virtual & f_wrap & last_pass)]
            with m.If((tau == layer.t_feed) & ~f_started):
                m.d.sync += [f_active.eq(1), f_started.eq(1), f_run.eq(1)]
            with m.If(f_active & last_issue):
                m.d.sync += f_active.eq(0)
            with m.If(f_run):
                with m.If(f_wrap):
                    m.d.sync += [f_slot.eq(0), f_virtual.eq(0)]
                    with m.If(~f_virtual):
                        m.d.sync += [f_pass.eq(f_pass + 1),
                                     slot3.eq(Mux(slot3 == 2, 0, slot3 + 1)), bank2.eq(~bank2)]
                with m.Else():
                    m.d.sync += f_slot.eq(f_slot + 1)
                with m.If(self.issue_out):
                    with m.If(x == layer.width - 1):
                        m.d.sync += [x.eq(0), y.eq(Mux(y == layer.height - 1, 0, y + 1))]
                    with m.Else():
                        m.d.sync += x.eq(x + 1)
        # Taps inside the image (3x3, padding 1); 1x1 layers use the newest pixel, tap 8.
        ok_row = [y != 0, Const(1), y != layer.height - 1]
        ok_col = [x != 0, Const(1), x != layer.width - 1]
        m.d.comb += self.inside.eq(Mux(layer.conv3, Cat(*(ok_row[t // 3] & ok_col[t % 3]
                                                          for t in range(9))), 0x1FF))

        # --- walker: `rows` cycles at the start of every pass ----------------------------
        w_active, w_started = Signal(), Signal()
        w_slot = Signal(slot_bits)
        w_count = Signal(count_bits)
        w_pass = Signal(count_bits)        # pass within the (group, sub-pass)
        w_sub = Signal(cfg.hw_bits)
        # Registered in step with the counters (no comparison on the way to the walker):
        w_low = Signal(init=1)             # w_slot < rows
        w_first = Signal(init=1)           # w_pass == 0
        m.d.comb += [
            self.walk_start.eq(w_active & w_low),
            self.walk_first.eq(w_first),
            self.walk_pixel.eq(w_sub),
        ]
        with m.If(restart):
            m.d.sync += [w_active.eq(0), w_started.eq(0), w_slot.eq(0), w_count.eq(0),
                         w_pass.eq(0), w_sub.eq(0), w_low.eq(1), w_first.eq(1)]
        with m.Elif(running):
            with m.If((tau == layer.t_walk) & ~w_started):
                m.d.sync += [w_active.eq(1), w_started.eq(1)]
            with m.If(w_active):
                with m.If(w_slot == layer.last_slot):
                    m.d.sync += [w_slot.eq(0), w_count.eq(w_count + 1), w_low.eq(1)]
                    with m.If(w_count == layer.last_pass):
                        m.d.sync += w_active.eq(0)
                    with m.If(w_pass == layer.passes - 1):
                        m.d.sync += [w_pass.eq(0), w_first.eq(1),
                                     w_sub.eq(Mux(w_sub == layer.subs - 1, 0, w_sub + 1))]
                    with m.Else():
                        m.d.sync += [w_pass.eq(w_pass + 1), w_first.eq(0)]
                with m.Else():
                    m.d.sync += [w_slot.eq(w_slot + 1), w_low.eq(w_slot + 1 < rows)]

        # --- weight loader: `rows` weight words at the start of every pass ---------------
        # Its slot and weight bank are the feeder's of the cycle before (it is S + 1 cycles
        # behind, and the feeder's counters run on after the last issue).
        l_active = Signal()
        l_rows = Signal()                  # the feeder's slot was < rows
        l_slot = Signal(range(rows))
        l_addr = Signal.like(self.weights.addr)
        l_bank = Signal()
        m.d.sync += [l_rows.eq(f_slot < rows), l_slot.eq(f_slot), l_bank.eq(bank2)]
        reading = l_active & l_rows
        m.d.comb += [self.weights.addr.eq(l_addr), self.weights.en.eq(reading)]
        with m.If(restart):
            m.d.sync += [l_active.eq(0), l_addr.eq(layer.weight_base)]
        with m.Elif(running):
            with m.If(l_go):
                m.d.sync += l_active.eq(1)
            with m.If(l_stop):
                m.d.sync += l_active.eq(0)
            with m.If(reading):
                m.d.sync += l_addr.eq(l_addr + 1)
        # The word arrives a cycle after its read: write it into its row then.
        load_row = Signal(range(rows))
        load_en, load_bank = Signal(), Signal()
        m.d.sync += [load_en.eq(reading), load_row.eq(l_slot), load_bank.eq(l_bank)]
        m.d.comb += [
            self.row_load.en.eq(load_en),
            self.row_load.row.eq(load_row),
            self.row_load.bank.eq(load_bank),
            self.row_load.data.eq(self.weights.data),
        ]
        return m
