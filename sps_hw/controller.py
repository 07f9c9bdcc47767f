"""The controller: runs the layers of the descriptor ROM, each on a static schedule.

Per layer (one descriptor word, written by :mod:`sps_hw.program`): fetch the descriptor; if it
starts a segment, load the segment's input tensor from the input stream; run the layer; if it
ends a segment, stream the result out. Running a layer starts three agents at the cycles the
descriptor gives (``t_feed``, ``t_walk``, ``t_load``, counted from the start of the run), each
doing one pass every ``period`` cycles:

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
    """The layout of one layer-descriptor word for the accelerator ``cfg``."""
    hw = cfg.hw_bits
    count = cfg.count_bits
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
        "total": count,         # N = G * NS * NP
        "lead": hw,             # D: input pixels issued ahead of the output
        "ring": hw,             # line-buffer ring length (W for 3x3, 1 for 1x1)
        "cycle": count,         # S: cycles per pass
        "t_feed": count, "t_walk": count, "t_load": count,
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
        index = Signal(16)                  # the layer's descriptor (for stats)
        ptr = Signal.like(self.descriptors.addr)    # the descriptor ROM word read next
        cycles = Signal(32)
        count_bits = cfg.count_bits
        tau = Signal(count_bits)

        m.d.comb += [self.descriptors.addr.eq(ptr), self.descriptors.en.eq(1)]
        # Segments passed over since the reset, and whether the start segment was found.
        skipped, found = Signal(8), Signal()
        # A descriptor of several words: the words read so far, then the last one.
        if words > 1:
            width = len(self.descriptors.data)
            head = Signal(width * (words - 1))
            word_index = Signal(range(words))
            arriving = Signal()
            with m.If(arriving):
                m.d.sync += head.eq(Cat(head[width:], self.descriptors.data))
            fetched = self.descriptor(Cat(head, self.descriptors.data)[:self.descriptor.size])
        else:
            fetched = self.descriptors.data

        with m.FSM():
            with m.State("FETCH"):
                m.d.sync += ptr.eq(ptr + 1)
                if words > 1:
                    m.d.sync += [word_index.eq(word_index + 1), arriving.eq(1),
                                 cycles.eq(Mux(word_index == 0, 1, cycles + 1))]
                    with m.If(word_index == words - 1):
                        m.d.sync += [word_index.eq(0), arriving.eq(0)]
                        m.next = "DECODE"
                else:
                    m.d.sync += cycles.eq(1)
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += [layer.eq(fetched), cycles.eq(cycles + 1)]
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
                                 self.stats.payload.cycles.eq(cycles + 1)]
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
        # Each agent starts once per layer (a long layer's cycle counter may wrap).
        f_active, f_started = Signal(), Signal()
        f_pass = Signal(count_bits)        # pass + 1
        f_slot = Signal(count_bits)        # slot within the pass
        x, y = Signal(cfg.hw_bits), Signal(cfg.hw_bits)
        in_pixel = f_slot < layer.hw
        m.d.comb += [
            self.issue_out.eq(f_active & in_pixel & (f_pass != 0)),
            self.issue_in.eq(f_active & in_pixel &
                             ((f_pass != 0) | (f_slot + layer.lead >= layer.hw))),
        ]
        slot3 = Signal(range(3))
        bank2 = Signal()
        m.d.comb += [self.slot.eq(slot3), self.bank.eq(bank2)]
        last_issue = (f_pass == layer.total) & (f_slot == layer.hw - 1)
        with m.If(restart):
            m.d.sync += [f_active.eq(0), f_started.eq(0), f_pass.eq(0), f_slot.eq(0),
                         x.eq(0), y.eq(0), slot3.eq(0), bank2.eq(0)]
        with m.Elif(running):
            with m.If((tau == layer.t_feed) & ~f_started):
                m.d.sync += [f_active.eq(1), f_started.eq(1)]
            with m.If(f_active):
                with m.If(last_issue):
                    m.d.sync += f_active.eq(0)
                with m.If(f_slot == layer.cycle - 1):
                    m.d.sync += [f_slot.eq(0), f_pass.eq(f_pass + 1)]
                    with m.If(f_pass != 0):
                        m.d.sync += [slot3.eq(Mux(slot3 == 2, 0, slot3 + 1)), bank2.eq(~bank2)]
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
        w_slot = Signal(count_bits)
        w_count = Signal(count_bits)
        w_pass = Signal(count_bits)        # pass within the (group, sub-pass)
        w_sub = Signal(cfg.hw_bits)
        m.d.comb += [
            self.walk_start.eq(w_active & (w_slot < rows)),
            self.walk_first.eq(w_pass == 0),
            self.walk_pixel.eq(w_sub),
        ]
        with m.If(restart):
            m.d.sync += [w_active.eq(0), w_started.eq(0), w_slot.eq(0), w_count.eq(0),
                         w_pass.eq(0), w_sub.eq(0)]
        with m.Elif(running):
            with m.If((tau == layer.t_walk) & ~w_started):
                m.d.sync += [w_active.eq(1), w_started.eq(1)]
            with m.If(w_active):
                with m.If(w_slot == layer.cycle - 1):
                    m.d.sync += [w_slot.eq(0), w_count.eq(w_count + 1)]
                    with m.If(w_count == layer.total - 1):
                        m.d.sync += w_active.eq(0)
                    with m.If(w_pass == layer.passes - 1):
                        m.d.sync += [w_pass.eq(0),
                                     w_sub.eq(Mux(w_sub == layer.subs - 1, 0, w_sub + 1))]
                    with m.Else():
                        m.d.sync += w_pass.eq(w_pass + 1)
                with m.Else():
                    m.d.sync += w_slot.eq(w_slot + 1)

        # --- weight loader: `rows` weight words at the start of every pass ---------------
        l_active, l_started = Signal(), Signal()
        l_slot = Signal(count_bits)
        l_count = Signal(count_bits)
        l_addr = Signal.like(self.weights.addr)
        l_bank = Signal()
        reading = l_active & (l_slot < rows)
        m.d.comb += [self.weights.addr.eq(l_addr), self.weights.en.eq(reading)]
        with m.If(restart):
            m.d.sync += [l_active.eq(0), l_started.eq(0), l_slot.eq(0), l_count.eq(0),
                         l_addr.eq(layer.weight_base), l_bank.eq(0)]
        with m.Elif(running):
            with m.If((tau == layer.t_load) & ~l_started):
                m.d.sync += [l_active.eq(1), l_started.eq(1)]
            with m.If(reading):
                m.d.sync += l_addr.eq(l_addr + 1)
            with m.If(l_active):
                with m.If(l_slot == layer.cycle - 1):
                    m.d.sync += [l_slot.eq(0), l_count.eq(l_count + 1), l_bank.eq(~l_bank)]
                    with m.If(l_count == layer.total - 1):
                        m.d.sync += l_active.eq(0)
                with m.Else():
                    m.d.sync += l_slot.eq(l_slot + 1)
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
