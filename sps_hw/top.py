"""The SPS accelerator: every block of ``docs/hardware.md`` joined together."""

from dataclasses import dataclass
from types import SimpleNamespace

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ROM_NAMES, Config
from .controller import Controller, Descriptor, Stats
from .counters import ActionCounters, Actions
from .feeder import Feeder
from .indexing import TAP_LIST_BITS, IndexingUnit, PassWalker
from .memories import ROM, FeatureBuffer, StagedImages, image_write_layout
from .output import Accumulator, ChannelParams, MaxPool2, OutputSequencer, OutputWriter, Requantizer
from .pe import SystolicArray
from .registers import delayed
from .tensor_io import OutputWord, TensorIO
from .vendor import PRIMITIVES, crosses, replica
from .window import WindowGenerator

__all__ = ["Accelerator", "Stages", "descriptor_layout", "rom_bits", "rom_shapes",
           "rom_widths"]


def _addr_bits(depth):
    return max(1, (depth - 1).bit_length())


def rom_bits(shape):
    """Bits of one word of a ROM of ``shape`` (a shape or a data layout)."""
    return shape.size if isinstance(shape, data.Layout) else Shape.cast(shape).width


def descriptor_layout(cfg):
    """The layout of a layer descriptor of accelerator ``cfg``."""
    return Descriptor(cfg, _addr_bits(cfg.weight_depth), _addr_bits(cfg.index_depth),
                      _addr_bits(cfg.library_depth), _addr_bits(cfg.param_depth))


def rom_shapes(cfg):
    """``{name: (shape, depth)}`` of the ROMs of accelerator ``cfg``. The descriptor ROM holds
    one descriptor per word, or with ``cfg.layer_words = n`` each in ``n`` narrow words (the
    low bits first)."""
    descriptor = descriptor_layout(cfg)
    if cfg.layer_words > 1:
        words = cfg.layer_words
        layers = (unsigned(-(-descriptor.size // words)), cfg.layer_depth * words)
    else:
        layers = (descriptor, cfg.layer_depth)
    return {
        "weights": (data.ArrayLayout(signed(8), cfg.cols), cfg.weight_depth),
        # The library address of each channel phase's pattern, and each pattern's taps.
        "index": (unsigned(_addr_bits(cfg.library_depth)), cfg.index_depth),
        "library": (unsigned(TAP_LIST_BITS), cfg.library_depth),
        "params": (ChannelParams(cfg.cols, cfg.mult_bits), cfg.param_depth),
        "layers": layers,
    }


def rom_widths(cfg):
    """``{name: (bits, depth)}`` of the ROMs of accelerator ``cfg``, in ``ROM_NAMES`` order."""
    return {name: (rom_bits(shape), depth) for name, (shape, depth) in rom_shapes(cfg).items()}


#: Stages after the column sums leave the array (A): accumulate, requantize, pool, write.
POST_STAGES = 1 + Requantizer.latency + MaxPool2.latency + OutputWriter.latency


@dataclass(frozen=True)
class Stages:
    """The pipeline of accelerator ``cfg``, counted from a pixel's issue (F0): its pixels
    arrive from the feature buffers (``pixel``), its 3x3 windows are complete (``window``),
    its activations are on the array's input (``array_input``), its column sums leave the
    array (``sums``)."""

    pixel: int
    window: int
    array_input: int
    sums: int
    #: Cycles from a row of weights on the array's ``load`` to its PEs (``load_latency`` of
    #: :class:`~sps_hw.pe.SystolicArray`): each cycle of a block-RAM read beyond the first
    #: buys a register on the way, as on the way of the activations.
    load: int
    #: Cycles from the feeder's slot ``r`` of a pass to the weight-ROM read of that pass's
    #: row ``r``: the row is written two cycles before the pass's first activation reaches
    #: its first PE (one cycle after the array's input), as the PEs require.
    weight_lead: int
    #: Cycles from issuing a layer's last pixel to writing its result (the layer's end).
    latency: int

    @classmethod
    def of(cls, cfg):
        pixel = Feeder.latency_of(cfg.read_latency)
        array_input = pixel + 2
        sums = array_input + SystolicArray.latency(cfg.rows, cfg.cols)
        load = cfg.read_latency - 1
        return cls(pixel=pixel, window=pixel + 1, array_input=array_input, sums=sums,
                   load=load, weight_lead=array_input + 1 - 2 - cfg.read_latency - load,
                   latency=sums + POST_STAGES)


class Accelerator(wiring.Component):
    """An SPS accelerator of size ``cfg`` (a :class:`~sps_hw.config.Config`).

    ``images`` maps ROM names (:data:`~sps_hw.config.ROM_NAMES`) to their packed contents
    (integer arrays, from :func:`sps_hw.program.build`) for simulation in Amaranth; in the
    emitted Verilog the ROMs are filled by ``$readmemh`` from ``<name>.hex`` instead.

    Ports: ``act_in`` takes each segment's input tensor (int8, C, H, W order), ``act_out``
    gives each segment's output tensor (``last`` on its final byte), ``stats`` reports every
    finished layer's index and cycle count and, with ``cfg.counters``, ``actions`` its
    index and action counts (:mod:`sps_hw.counters`) a cycle later.

    With ``writable=True`` (the accelerator behind a board's host link) the ROMs are
    :class:`~sps_hw.memories.StagedImages` (``images`` fill their active banks) and three
    more ports appear: ``image_write`` (a stream of
    :func:`~sps_hw.memories.image_write_layout` bytes into the staging banks),
    ``image_commit`` (a strobe that makes all staged images active at once) and ``segment``
    (the segment to start with after a reset: layers before it are passed over). The cycle
    behaviour is the same as with ROMs.

    With ``jobs=True`` (the core of :class:`~sps_hw.engine.TileEngine`, writable) the
    accelerator runs its program once per pulse of ``go`` and waits at its end with ``idle``
    high; ``image_commit_regions`` commits only the staged images whose bit is set (one per
    ROM, :data:`~sps_hw.config.ROM_NAMES` order).

    ``multiplier`` builds the multipliers (:data:`sps_hw.vendor.PRIMITIVES`); "auto" uses
    the DSP blocks of the platform being built for (ECP5 MULT18X18D, iCE40 SB_MAC16) and
    fabric elsewhere (simulation, Verilog). Every choice has the same cycle behaviour.
    """

    def __init__(self, cfg, images=None, *, writable=False, jobs=False, multiplier="auto"):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
        for name, value in (("writable", writable), ("jobs", jobs)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, not {value!r}")
        if jobs and not writable:
            raise ValueError("jobs=True needs writable=True (a job's images are staged)")
        if multiplier != "auto" and multiplier not in PRIMITIVES:
            raise ValueError(f"multiplier must be 'auto' or one of {PRIMITIVES}, not "
                             f"{multiplier!r}")
        images = dict(images or {})
        unknown = set(images) - set(ROM_NAMES)
        if unknown:
            raise ValueError(f"images has unknown ROMs {sorted(unknown)}; expected names "
                             f"from {ROM_NAMES}")
        self.cfg, self.images = cfg, images
        self.writable, self.jobs, self.multiplier = writable, jobs, multiplier
        ports = {
            "act_in": In(stream.Signature(signed(8))),
            "act_out": Out(stream.Signature(OutputWord)),
            "stats": Out(stream.Signature(Stats, always_ready=True)),
        }
        if cfg.counters:
            ports["actions"] = Out(stream.Signature(Actions, always_ready=True))
        if writable:
            ports.update(image_write=In(stream.Signature(image_write_layout(rom_widths(cfg)))),
                         image_commit=In(1), segment=In(8))
        if jobs:
            ports.update(image_commit_regions=In(len(ROM_NAMES)), go=In(1), idle=Out(1))
        super().__init__(ports)

    def _memories(self, m):
        """The read port of each ROM by name: of a ROM filled by ``$readmemh``, or (writable)
        of the staged images fed by ``image_write``."""
        shapes = rom_shapes(self.cfg)
        if not self.writable:
            roms = {name: ROM(shape=shape, depth=depth, init=self.images.get(name),
                              image=f"{name}.hex", read_latency=self.cfg.read_latency)
                    for name, (shape, depth) in shapes.items()}
            for name, rom in roms.items():
                m.submodules[f"rom_{name}"] = rom
            return {name: rom.read for name, rom in roms.items()}
        # The weights are the largest image: single-port banks (iCE40: SPRAM).
        # The host link reads no image right after a commit; the tile engine starts a job in
        # the cycle of its commit.
        m.submodules.images = images = StagedImages(shapes, self.images, single_port={"weights"},
                                                    read_latency=self.cfg.read_latency,
                                                    registered_writes=not self.jobs)
        wiring.connect(m, wiring.flipped(self.image_write), images.write)
        m.d.comb += images.commit.eq(self.image_commit)
        if self.jobs:
            m.d.comb += images.commit_regions.eq(self.image_commit_regions)
        return {name: getattr(images, f"read_{name}") for name in shapes}

    def _blocks(self):
        """The datapath blocks by name, and for those that take layer fields, which
        descriptor field drives each member of their ``layer`` port that is named otherwise."""
        cfg = self.cfg
        rows, cols, banks, hw_bits, fmap_bits = (cfg.rows, cfg.cols, cfg.banks, cfg.hw_bits,
                                                 cfg.fmap_bits)
        tensor = {"banks": banks, "addr_bits": fmap_bits, "hw_bits": hw_bits,
                  "channel_bits": cfg.channel_bits}
        latency = {"read_latency": cfg.read_latency}
        shapes = rom_shapes(cfg)
        index_rom, library_rom = (memory.ReadPort.Signature(
            addr_width=_addr_bits(shapes[name][1]), shape=shapes[name][0])
            for name in ("index", "library"))
        walker = PassWalker(rows=rows, banks=banks, addr_bits=fmap_bits, hw_bits=hw_bits,
                            index_rom=index_rom, library_rom=library_rom,
                            count_bits=cfg.count_bits, **latency)
        blocks = {
            "tensors": TensorIO(**tensor, **latency),
            "walker": walker,
            "feeder": Feeder(rows=rows, banks=banks, addr_bits=fmap_bits, hw_bits=hw_bits,
                             **latency),
            # Taps arriving a cycle before their pass's first pick need no bypass (with
            # reads of 2 or more); with reads of 1 they arrive in that very cycle.
            "indexing": IndexingUnit(rows, used=cfg.counters,
                                     bypass=walker.tap_latency > Stages.of(cfg).pixel),
            "array": SystolicArray(rows, cols, multiplier=self.multiplier,
                                   load_latency=Stages.of(cfg).load),
            "sequencer": OutputSequencer(hw_bits=hw_bits, count_bits=cfg.count_bits),
            "accumulator": Accumulator(cols=cols, depth=cfg.max_hw, **latency),
            "requantizer": Requantizer(cols=cols, mult_bits=cfg.mult_bits,
                                       multiplier=self.multiplier),
            "pool": MaxPool2(cols=cols, max_width=cfg.max_width, hw_bits=hw_bits),
            "writer": OutputWriter(cols=cols, banks=banks, addr_bits=fmap_bits,
                                   channel_bits=cfg.channel_bits),
            **{f"window_{r}": WindowGenerator(max_width=cfg.max_width) for r in range(rows)},
        }
        fields = {"tensors": {}, "walker": {"hw": "in_hw"}, "feeder": {},
                  "window_0": {"length": "ring"}, "sequencer": {"hw": "acc_hw"},
                  "pool": {"hw": "acc_hw"},
                  "writer": {"channels": "out_channels"}}
        return blocks, fields

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        roms = self._memories(m)
        blocks, fields = self._blocks()
        for name, block in blocks.items():
            m.submodules[name] = block
        b = SimpleNamespace(**blocks)
        shape, depth = rom_shapes(cfg)["layers"]
        m.submodules.controller = ctrl = Controller(
            cfg, descriptor_layout(cfg), layer_bits=_addr_bits(depth),
            weight_bits=_addr_bits(cfg.weight_depth), word=shape,
            weight_lead=Stages.of(cfg).weight_lead, wait_at_reset=self.jobs,
            consumers={name: (blocks[name].layer.signature.flip(), f)
                       for name, f in fields.items()})
        windows = [blocks[f"window_{r}"] for r in range(cfg.rows)]
        for name in fields:
            targets = [w.layer for w in windows] if name == "window_0" else [blocks[name].layer]
            wiring.connect(m, getattr(ctrl.layer, name), *targets)
        if self.writable:
            m.d.comb += ctrl.segment.eq(self.segment)
        if self.jobs:
            m.d.comb += [ctrl.go.eq(self.go), self.idle.eq(ctrl.idle)]
        else:
            m.d.comb += ctrl.go.eq(1)
        wiring.connect(m, ctrl.descriptors, roms["layers"])
        wiring.connect(m, ctrl.weights, roms["weights"])
        wiring.connect(m, ctrl.row_load, b.array.load)
        wiring.connect(m, wiring.flipped(self.stats), ctrl.stats)
        wiring.connect(m, wiring.flipped(self.act_in), b.tensors.act_in)
        wiring.connect(m, wiring.flipped(self.act_out), b.tensors.act_out)
        m.d.comb += [
            b.tensors.loading.eq(ctrl.loading),
            b.tensors.load_start.eq(ctrl.load_start), ctrl.load_done.eq(b.tensors.load_done),
            b.tensors.drain_start.eq(ctrl.drain_start),
            ctrl.drain_done.eq(b.tensors.drain_done),
        ]
        self._input_side(m, platform, ctrl, b, windows, roms)
        self._output_side(m, platform, ctrl, b, roms)
        self._feature_buffers(m, platform, ctrl, b)
        if cfg.counters:
            self._counters(m, ctrl, b, roms)
        return m

    def _late_restart(self, m, platform, ctrl, name):
        """The run's ``restart`` a cycle late from a register of its own for a block that
        sees no data within two cycles of it (with reads of 2 or more; with reads of 1, the
        small core's, ``restart`` itself): the blocks spread over the die."""
        if self.cfg.read_latency < 2:
            return ctrl.run.restart
        return replica(m, platform, ctrl.run.restart, f"restart_{name}")

    def _input_side(self, m, platform, ctrl, b, windows, roms):
        """Walker, feeder, window generators and indexing unit, stages F0 to the array."""
        wiring.connect(m, b.walker.index_rom, roms["index"])
        wiring.connect(m, b.walker.library_rom, roms["library"])
        wiring.connect(m, b.walker.bases, b.feeder.bases)
        wiring.connect(m, b.walker.routes, b.feeder.routes)
        wiring.connect(m, b.walker.taps, b.indexing.config)
        restart = ctrl.run.restart
        m.d.comb += [
            b.walker.restart.eq(restart), b.walker.start.eq(ctrl.walk_start),
            b.walker.first.eq(ctrl.walk_first), b.walker.pixel.eq(ctrl.walk_pixel),
            b.feeder.restart.eq(restart), b.feeder.issue.eq(ctrl.issue_in),
        ]
        stages = Stages.of(self.cfg)
        # A window reads its ring a cycle before its pixel arrives.
        advance = delayed(m, ctrl.issue_in, stages.pixel - 1, "advance")
        for r, window in enumerate(windows):
            # A window's first advance is at least `stages.pixel` cycles after restart.
            m.d.comb += [window.restart.eq(self._late_restart(m, platform, ctrl, f"window_{r}")),
                         window.advance.eq(advance),
                         window.pixel.eq(b.feeder.pixels[r]), window.ky.eq(b.indexing.ky[r]),
                         b.indexing.windows[r].eq(window.window)]
        m.d.comb += [
            # The slot and the inside mask a cycle ahead of the windows (IndexingUnit).
            b.indexing.slot.eq(delayed(m, ctrl.slot, stages.window - 1, "slot",
                                       reset_less=True)),
            b.indexing.bank.eq(delayed(m, ctrl.bank, stages.window, "bank", reset_less=True)),
            b.indexing.inside.eq(delayed(m, ctrl.inside, stages.window - 1, "inside",
                                         reset_less=True)),
            b.array.acts.eq(b.indexing.acts),
        ]

    def _output_side(self, m, platform, ctrl, b, roms):
        """Accumulator, requantizer, pool and writer, from the array's sums (stage A) on."""
        cfg, layer = self.cfg, ctrl.descriptor
        # The sums of a pixel issued at F0 leave the array at A; the accumulator's and the
        # parameters' reads are issued read_latency cycles ahead, by the output sequencer.
        ahead = Stages.of(cfg).sums - cfg.read_latency
        valid = delayed(m, ctrl.issue_out, ahead, "valid")
        seq, acc, rq, pool, writer = b.sequencer, b.accumulator, b.requantizer, b.pool, b.writer
        params = roms["params"]
        # A reduction chunk's job continues the sums the job before left in the accumulator
        # (acc_continue: no bias) and/or leaves its own there (acc_partial: no requantize,
        # no output).
        first = seq.first & ~layer.acc_continue
        last = seq.last & ~layer.acc_partial
        m.d.comb += [
            seq.restart.eq(ctrl.run.restart), seq.valid.eq(valid),
            # Bias in a group's first pass, mult and shift in its last: the ROM's output
            # holds them in between.
            params.addr.eq(layer.param_base + seq.group),
            params.en.eq(valid & (first | last)),
            acc.valid.eq(valid), acc.pixel.eq(seq.pixel), acc.first.eq(first),
            acc.last.eq(last), acc.sums.eq(b.array.sums), acc.bias.eq(params.data.bias),
            rq.valid.eq(acc.result_valid), rq.acc.eq(acc.result), rq.relu.eq(layer.relu),
        ]
        # The requantizer takes mult and shift with the total, a cycle after the bias.
        m.d.comb += [rq.mult.eq(delayed(m, params.data.mult, 1, "mult", reset_less=True)),
                     rq.shift.eq(delayed(m, params.data.shift, 1, "shift", reset_less=True))]
        m.d.comb += [
            # The pool's and the writer's first results come long after restart.
            pool.restart.eq(self._late_restart(m, platform, ctrl, "pool")),
            pool.valid.eq(rq.out_valid),
            pool.values.eq(rq.out),
            writer.restart.eq(self._late_restart(m, platform, ctrl, "writer")),
            writer.valid.eq(pool.out_valid),
            writer.first.eq(pool.out_first), writer.values.eq(pool.out),
            ctrl.done.eq(delayed(m, seq.end, cfg.read_latency + POST_STAGES, "end")),
        ]

    def _feature_buffers(self, m, platform, ctrl, b):
        """Two feature buffers: the layer reads ``ctrl.buffer`` and writes the other; the
        loader writes buffer 0, the drainer reads the layer's output. Bank ``b`` of both is
        one memory (the buffer is the address's top bit): a layer reads one buffer and
        writes the other, a load only writes, a drain only reads, so one read and one write
        port serve both, and on an iCE40 one block RAM holds a bank of each buffer. Each
        bank takes the buffer choice from a register of its own (a cycle late: it changes a
        few cycles before a layer, or a load or drain, uses it), not from one net across the
        die, and takes its writes a cycle late, from registers behind the choice between
        the loader and the writer (on the fast parts, registers of the loader's and the
        writer's outputs in front of the choice; nothing reads a word within a cycle of its
        write)."""
        cfg = self.cfg
        words = 1 << cfg.fmap_bits
        m.submodules.fmap = fmap = FeatureBuffer(banks=cfg.banks, depth=2 * words,
                                                 read_latency=cfg.read_latency)
        fast = crosses(platform)
        for bank in range(cfg.banks):
            def flag(value, name, bank=bank):
                """``value`` from a register of this bank's own on the fast parts (a cycle
                late), else itself."""
                return replica(m, platform, value, f"{name}_{bank}") if fast else value
            chosen = replica(m, platform, ctrl.buffer, f"buffer_{bank}")
            feeder, drainer = b.feeder.reads[bank], b.tensors.reads[bank]
            read = fmap.read[bank]
            # The drainer's first read follows drain_start, a cycle after `draining` rises.
            draining = flag(ctrl.draining, "draining")
            m.d.comb += [read.addr.eq(Cat(Mux(draining, drainer.addr, feeder.addr), chosen)),
                         feeder.data.eq(read.data), drainer.data.eq(read.data)]
            if cfg.read_latency < 3:
                # With reads of 3 (the largest core) every bank reads in every cycle: its
                # readers take the data only when they asked for it, and the enable (from
                # the drainer's queue through the issue) would cross the die.
                m.d.comb += read.en.eq(drainer.en | feeder.en)
            self._bank_writes(m, fast, bank, fmap.write[bank], chosen,
                              (b.tensors.write[bank], flag(ctrl.loading, "loading")),
                              (b.writer.write[bank], flag(ctrl.run.running, "running")))

    @staticmethod
    def _bank_writes(m, fast, bank, write, chosen, load, result):
        """Bank ``bank``'s writes, one register after the loader's (``load``: its port and
        the loading flag) or the writer's (``result``: its port and the running flag): with
        ``fast`` the ports cross into registers of the bank's (and the flags are the bank's
        own copies, a cycle late alike), and are chosen beside it; else the choice is
        registered. A load goes to the chosen buffer, a result to the other."""
        (loader, loading), (writer, running) = load, result

        def early(value, name, *, data=True):
            return delayed(m, value, fast, f"{name}_{bank}", reset_less=data)
        load_en, write_en = (early(port.en, f"{name}_en", data=False)
                             for port, name in ((loader, "load"), (writer, "write")))
        load_addr = early(Cat(loader.addr, chosen), "load_addr")
        write_addr = early(Cat(writer.addr, ~chosen), "write_addr")
        load_data, write_data = (early(port.data, f"{name}_data")
                                 for port, name in ((loader, "load"), (writer, "write")))
        addr = Signal.like(write.addr, name=f"waddr_{bank}", reset_less=True)
        data = Signal.like(write.data, name=f"wdata_{bank}", reset_less=True)
        en = Signal(name=f"wen_{bank}")
        choose = m.d.comb if fast else m.d.sync
        with m.If(load_en & loading):               # into the layer's input buffer
            choose += [addr.eq(load_addr), data.eq(load_data), en.eq(1)]
        with m.Else():                              # into its output buffer
            choose += [addr.eq(write_addr), data.eq(write_data), en.eq(write_en & running)]
        m.d.comb += [write.addr.eq(addr), write.data.eq(data), write.en.eq(en)]

    def _counters(self, m, ctrl, b, roms):
        """The action counters, fed with the strobes of the blocks."""
        cfg, stages = self.cfg, Stages.of(self.cfg)
        m.submodules.counters = counters = ActionCounters(
            cfg, lag=stages.sums - cfg.read_latency - stages.array_input,
            weight_bits=rom_widths(cfg)["weights"][0])
        wiring.connect(m, ctrl.stats, counters.stats)
        wiring.connect(m, wiring.flipped(self.actions), counters.actions)
        ev, acc = counters.events, b.accumulator
        m.d.comb += [
            ev.array_in.eq(delayed(m, ctrl.issue_out, stages.array_input, "array_in")),
            ev.rows_used.eq(b.indexing.used),
            ev.acc_read.eq(acc.valid), ev.acc_last.eq(acc.last),
            ev.group.eq(b.sequencer.group), ev.out_channels.eq(ctrl.descriptor.out_channels),
            ev.weight_read.eq(roms["weights"].en), ev.index_read.eq(ctrl.walk_start),
            ev.library_read.eq(b.walker.taps.en), ev.param_read.eq(roms["params"].en),
            ev.feature_reads.eq(Cat(read.en for read in b.feeder.reads)),
            ev.feature_writes.eq(Cat(write.en for write in b.writer.write) &
                                 ctrl.run.running.replicate(cfg.banks)),
            ev.requant.eq(b.requantizer.valid),
        ]
