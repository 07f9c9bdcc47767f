"""The controller: runs the layers of the descriptor ROM, each on a static schedule.

The :class:`LayerSequencer` fetches a descriptor (written by :mod:`sps_hw.program`); if it
starts a segment, it loads the segment's input tensor from the input stream; it runs the
layer; if the layer ends a segment, it streams the result out. While a layer runs, the three
agents of :mod:`sps_hw.schedule` (feeder, walker, weight loader) do one pass every ``S``
cycles from the offsets the descriptor gives. The :class:`Controller` joins them and hands
every block the descriptor fields it takes, through that block's own ``layer`` signature.
The schedule is hazard-free by construction (:mod:`sps_hw.model`); a layer is done when its
last result has been written.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .pe import RowLoad
from .registers import delayed
from .schedule import FeedSchedule, LayerRun, WalkSchedule, WeightSchedule

__all__ = ["Controller", "Descriptor", "LayerSequencer", "Stats", "fetch_cycles"]



def fetch_cycles(cfg):
    """Cycles of a layer spent outside its schedule: the descriptor's requests (one per
    word, ``cfg.layer_words``), the read's latency, decode and prepare, plus the cycle in
    which the layer finishes."""
    return cfg.layer_words + cfg.read_latency + 2

#: One per finished layer: its index in the descriptor ROM and its cycle count.
Stats = data.StructLayout({"layer": unsigned(16), "cycles": unsigned(32)})


def Descriptor(cfg, weight_bits, index_bits, library_bits, param_bits):
    """The layout of one layer-descriptor word for the accelerator ``cfg``.

    The schedule fields are stored in the form the agents compare them in (written by
    :mod:`sps_hw.program` from the :class:`~sps_hw.model.LayerPlan`): ``last_slot = S - 1``,
    ``last_pass = N - 1``, ``lead_from = hw - D``; the weight loader follows the feeder, so
    it has no offset of its own."""
    hw = cfg.hw_bits
    count = cfg.count_bits
    slot = cfg.slot_bits
    return data.StructLayout({
        "valid": 1,             # 0: end of the program (the controller starts over)
        "seg_first": 1,         # load the input tensor from act_in first
        "resident": 1,          # with seg_first: the input is already in feature buffer 0
        "seg_last": 1,          # stream the output tensor to act_out afterwards
        "conv3": 1,             # 3x3 window (mask at the borders) rather than 1x1
        "relu": 1,
        "pool": 1,              # fused 2x2 stride-2 max-pool
        "stride2": 1,           # outputs at even rows and columns of the input only
        # Reduction chunks (one output group): the accumulator continues from the sums the
        # job before left (no bias), and/or leaves its sums for the next job (no requantize,
        # no output; such a descriptor has seg_last clear).
        "acc_continue": 1,
        "acc_partial": 1,
        "height": hw, "width": hw,
        "hw": hw,               # pixel slots per pass (pre-pool; 1 for FC)
        "acc_hw": hw,           # output pixels per pass: hw, or its stride-2 positions
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


class LayerSequencer(wiring.Component):
    """Fetches the descriptors one after the other and steps each layer through loading its
    segment's input, running, and draining its segment's output.

    ``layer`` holds the descriptor of the current layer. After a reset the layers before
    segment ``segment`` are passed over; after the last descriptor (``valid`` clear) it
    starts over when ``go`` is high, else it waits (``idle``) until it is: a tile engine
    holds ``go`` low and pulses it once per job, and (``wait_at_reset``) the sequencer
    waits for ``go`` after a reset too (the committed descriptors of the last job would
    otherwise start again). A segment's first layer with ``resident``
    set finds its input in feature buffer 0 (left there by the previous job) and loads
    nothing. A layer without ``seg_last`` goes on to the next descriptor when it is done: a
    job's partial reduction chunk (``acc_partial``: its sums stay in the accumulator, it
    writes no output) drains nothing, and fetches the terminator at once. ``stats`` reports
    each finished layer's index and its cycles: from its fetch to its last result
    (``done``), the tensor loads and drains excepted.
    """

    def __init__(self, cfg, descriptor, *, layer_bits, word, wait_at_reset=False):
        self.cfg, self.descriptor = cfg, descriptor
        self.wait_at_reset = wait_at_reset
        super().__init__({
            "descriptors": In(memory.ReadPort.Signature(addr_width=layer_bits, shape=word)),
            "layer": Out(descriptor),
            "run": Out(LayerRun()),
            "buffer": Out(1),               # the feature buffer the layer reads
            "loading": Out(1), "draining": Out(1),
            "load_start": Out(1), "load_done": In(1),
            "drain_start": Out(1), "drain_done": In(1),
            "done": In(1),
            "stats": Out(stream.Signature(Stats, always_ready=True)),
            # The segment to start with after a reset (held steady); 0 normally.
            "segment": In(8),
            "go": In(1), "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        words = self.cfg.layer_words
        # The layer's descriptor (for stats): the ROM holds at most layer_depth of them.
        index = Signal(range(max(2, self.cfg.layer_depth)))
        ptr = Signal.like(self.descriptors.addr)    # the descriptor ROM word read next
        cycles = Signal(32)                 # the layer's cycles so far, plus one
        m.d.comb += [self.descriptors.addr.eq(ptr), self.descriptors.en.eq(1)]
        # Segments passed over since the reset, and whether the start segment was found.
        skipped, found = Signal(8), Signal()
        # The descriptor's words are shifted into `raw` as they arrive, read_latency cycles
        # after their requests (the last one in DECODE): nothing reads the descriptor between
        # the end of a layer and the next layer's PREP.
        word = Value.cast(self.descriptors.data)
        width = len(word)
        raw = Signal(width * words)
        requests = Signal(range(words + 1))
        requested = Signal()
        arrives_next = delayed(m, requested, self.cfg.read_latency - 1, "requested")
        arriving = delayed(m, arrives_next, 1, "arriving")
        shifted = Cat(raw[width:], word) if words > 1 else word
        with m.If(arriving):
            m.d.sync += raw.eq(shifted)
        fetched = self.descriptor(shifted[:self.descriptor.size])
        m.d.comb += self.layer.eq(raw[:self.descriptor.size])

        # `restart` clears the run's control registers in PREP: a register set on the way
        # into PREP, so its fanout (some 1,500 flip-flops) hangs off no logic.
        restart = Signal()
        m.d.sync += restart.eq(0)
        m.d.comb += self.run.restart.eq(restart)
        # `running` is high in RUN: a register of its own (set in PREP, cleared with the
        # layer's end) rather than a decode of the state, for the agents' clock enables.
        running = Signal()
        m.d.comb += self.run.running.eq(running)
        with m.FSM(init="IDLE" if self.wait_at_reset else "FETCH"):
            with m.State("FETCH"):
                m.d.comb += requested.eq(1)
                m.d.sync += [ptr.eq(ptr + 1), requests.eq(requests + 1),
                             cycles.eq(Mux(requests == 0, 2, cycles + 1))]
                with m.If(requests == words - 1):
                    m.d.sync += requests.eq(0)
                    m.next = "WAIT" if self.cfg.read_latency > 1 else "DECODE"
            with m.State("WAIT"):
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(arrives_next):        # the last word arrives in DECODE
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(~fetched.valid):
                    m.d.sync += [index.eq(0), ptr.eq(0)]
                    with m.If(self.go):
                        m.next = "FETCH"
                    with m.Else():
                        m.next = "IDLE"
                with m.Elif(~found & ~(fetched.seg_first & (skipped == self.segment))):
                    # Until the first layer of segment `segment`, layers are passed over.
                    m.d.sync += [index.eq(index + 1), skipped.eq(skipped + fetched.seg_first)]
                    m.next = "FETCH"
                with m.Elif(fetched.seg_first):
                    m.d.sync += [found.eq(1), self.buffer.eq(0)]
                    with m.If(fetched.resident):
                        m.d.sync += restart.eq(1)
                        m.next = "PREP"
                    with m.Else():
                        m.next = "LOAD_START"
                with m.Else():
                    m.d.sync += restart.eq(1)
                    m.next = "PREP"
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(self.go):
                    m.next = "FETCH"
            with m.State("LOAD_START"):
                m.d.comb += [self.load_start.eq(1), self.loading.eq(1)]
                m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += self.loading.eq(1)
                with m.If(self.load_done):
                    m.d.sync += restart.eq(1)
                    m.next = "PREP"
            with m.State("PREP"):
                m.d.sync += [cycles.eq(cycles + 1), running.eq(1)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(self.done):
                    m.d.sync += running.eq(0)
                    m.d.comb += [self.stats.valid.eq(1),
                                 self.stats.payload.layer.eq(index),
                                 self.stats.payload.cycles.eq(cycles)]
                    m.d.sync += [self.buffer.eq(~self.buffer), index.eq(index + 1)]
                    with m.If(self.layer.seg_last):
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
        return m


def _drive_fields(m, descriptor, port, fields=None):
    """Drive each member of ``port`` from the descriptor field of its name (or of the name
    ``fields`` gives it)."""
    for member in port.signature.members:
        m.d.comb += getattr(port, member).eq(descriptor[(fields or {}).get(member, member)])


def layer_ports(consumers):
    """The signature of :class:`Controller`'s ``layer`` port: one member per block that takes
    descriptor fields, ``consumers`` mapping its name to ``(signature, fields)``, ``fields``
    naming the descriptor field of each member whose name differs from it."""
    return wiring.Signature({name: Out(sig) for name, (sig, _) in consumers.items()})


class Controller(wiring.Component):
    """The :class:`LayerSequencer` and the agents of :mod:`sps_hw.schedule`.

    ``layer.<name>`` gives block ``name`` the descriptor fields its ``layer`` signature asks
    for (``consumers``, see :func:`layer_ports`); the Accelerator joins them with
    ``wiring.connect``. ``weight_lead`` is the distance in cycles from the feeder's slot
    ``r`` of a pass to the read of that pass's row ``r`` of weights.
    """

    def __init__(self, cfg, descriptor, *, layer_bits, weight_bits, word, consumers,
                 weight_lead, wait_at_reset=False):
        self.cfg, self.consumers = cfg, dict(consumers)
        missing = {m for sig, fields in self.consumers.values() for m in sig.members
                   if fields.get(m, m) not in descriptor.members}
        if missing:
            raise ValueError(f"consumers take fields the descriptor lacks: {sorted(missing)}")
        self.sequencer = LayerSequencer(cfg, descriptor, layer_bits=layer_bits, word=word,
                                        wait_at_reset=wait_at_reset)
        self.feed = FeedSchedule(cfg)
        self.walk = WalkSchedule(cfg)
        self.load = WeightSchedule(cfg, weight_bits=weight_bits, lead=weight_lead)
        super().__init__({
            "descriptors": self.sequencer.signature.members["descriptors"],
            "weights": self.load.signature.members["weights"],
            "layer": Out(layer_ports(self.consumers)),
            "descriptor": Out(descriptor),
            "run": Out(LayerRun()),
            "buffer": Out(1), "loading": Out(1), "draining": Out(1),
            "load_start": Out(1), "load_done": In(1),
            "drain_start": Out(1), "drain_done": In(1),
            "issue_in": Out(1), "issue_out": Out(1),
            "slot": Out(range(3)), "bank": Out(1), "inside": Out(9),
            "walk_start": Out(1), "walk_first": Out(1), "walk_pixel": Out(cfg.hw_bits),
            "row_load": Out(RowLoad(cfg.rows, cfg.cols)),
            "done": In(1),
            "stats": Out(stream.Signature(Stats, always_ready=True)),
            "segment": In(8),
            "go": In(1), "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        seq, feed, walk, load = self.sequencer, self.feed, self.walk, self.load
        m.submodules.sequencer, m.submodules.feed = seq, feed
        m.submodules.walk, m.submodules.load = walk, load
        wiring.connect(m, wiring.flipped(self.descriptors), seq.descriptors)
        wiring.connect(m, wiring.flipped(self.weights), load.weights)
        wiring.connect(m, wiring.flipped(self.stats), seq.stats)
        wiring.connect(m, seq.run, feed.run, walk.run, load.run, wiring.flipped(self.run))
        m.d.comb += load.due.eq(feed.due)
        wiring.connect(m, load.row_load, wiring.flipped(self.row_load))
        layer = seq.layer
        for name, (_, fields) in self.consumers.items():
            _drive_fields(m, layer, getattr(self.layer, name), fields)
        _drive_fields(m, layer, feed.layer)
        _drive_fields(m, layer, walk.layer)
        m.d.comb += [
            load.weight_base.eq(layer.weight_base), self.descriptor.eq(layer),
            seq.segment.eq(self.segment), seq.done.eq(self.done),
            seq.go.eq(self.go), self.idle.eq(seq.idle),
            seq.load_done.eq(self.load_done), seq.drain_done.eq(self.drain_done),
            self.buffer.eq(seq.buffer), self.loading.eq(seq.loading),
            self.draining.eq(seq.draining), self.load_start.eq(seq.load_start),
            self.drain_start.eq(seq.drain_start),
            self.issue_in.eq(feed.issue_in), self.issue_out.eq(feed.issue_out),
            self.slot.eq(feed.slot), self.bank.eq(feed.bank), self.inside.eq(feed.inside),
            self.walk_start.eq(walk.start), self.walk_first.eq(walk.first),
            self.walk_pixel.eq(walk.pixel),
        ]
        return m
