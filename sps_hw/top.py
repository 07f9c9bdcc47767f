"""The SPS accelerator: every block of ``docs/hardware.md`` joined together."""

from amaranth.hdl import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ROM_NAMES, Config
from .controller import Controller, Descriptor, Stats
from .feeder import Feeder
from .indexing import TAP_LIST_BITS, IndexingUnit, PassWalker
from .memories import ROM, FeatureBuffer, StagedImages, image_write_layout
from .output import Accumulator, ChannelParams, MaxPool2, OutputSequencer, OutputWriter, Requantizer
from .pe import MULTIPLIERS, SystolicArray, dsp_primitive
from .tensor_io import OutputWord, TensorDrainer, TensorLoader
from .window import WindowGenerator

__all__ = ["Accelerator", "descriptor_layout", "pipeline_latency", "rom_bits", "rom_shapes",
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





#: Stages from a pixel's issue (F0) to its 3x3 windows (F2) and to the array's input (F3).
WINDOW_STAGES = 2
ARRAY_INPUT_STAGE = 3
#: Stages after the column sums leave the array (A): accumulate (1), requantize, pool.
POST_STAGES = 1 + Requantizer.latency + MaxPool2.latency


def pipeline_latency(rows, cols):
    """Cycles from issuing a layer's last pixel to writing its result (the layer's end)."""
    return ARRAY_INPUT_STAGE + SystolicArray.latency(rows, cols) + POST_STAGES


def _delay(m, value, cycles, name):
    for i in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{i + 1}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


class Accelerator(wiring.Component):
    """An SPS accelerator of size ``cfg`` (a :class:`~sps_hw.config.Config`).

    ``images`` maps ROM names (:data:`ROM_NAMES`) to their packed contents (integer arrays,
    from :func:`sps_hw.program.build`) for simulation in Amaranth; in the emitted Verilog the
    ROMs are filled by ``$readmemh`` from ``<name>.hex`` instead.

    Ports: ``act_in`` takes each segment's input tensor (int8, C, H, W order), ``act_out``
    gives each segment's output tensor (``last`` on its final byte), ``stats`` reports every
    finished layer's index and cycle count.

    With ``writable=True`` (the accelerator behind a board's host link) every ROM is a
    :class:`~sps_hw.memories.StagedMemory` (``images`` fill its active bank) and three more
    ports appear: ``image_write`` (a stream of :func:`~sps_hw.memories.image_write_layout`
    bytes into the
    staging banks), ``image_commit`` (a strobe that makes all staged images active at once)
    and ``segment`` (the segment to start with after a reset: layers before it are passed
    over). The cycle behaviour is the same as with ROMs.

    ``multiplier`` builds the array's multipliers (:data:`sps_hw.pe.MULTIPLIERS`); "auto"
    instantiates the registered DSP primitive of the platform being built for (ECP5
    MULT18X18D, iCE40 SB_MAC16 pairs) and infers ``*`` elsewhere (simulation, Verilog).
    """

    def __init__(self, cfg, images=None, *, writable=False, multiplier="auto"):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a sps_hw.config.Config, not {cfg!r}")
        if not isinstance(writable, bool):
            raise TypeError(f"writable must be a bool, not {writable!r}")
        if multiplier != "auto" and multiplier not in MULTIPLIERS:
            raise ValueError(f"multiplier must be 'auto' or one of {MULTIPLIERS}, not "
                             f"{multiplier!r}")
        self.multiplier = multiplier
        images = dict(images or {})
        unknown = set(images) - set(ROM_NAMES)
        if unknown:
            raise ValueError(f"images has unknown ROMs {sorted(unknown)}; expected names "
                             f"from {ROM_NAMES}")
        self.cfg = cfg
        self.images = images
        self.writable = writable
        ports = {
            "act_in": In(stream.Signature(signed(8))),
            "act_out": Out(stream.Signature(OutputWord)),
            "stats": Out(stream.Signature(Stats, always_ready=True)),
        }
        if writable:
            ports.update(image_write=In(stream.Signature(image_write_layout(rom_widths(cfg)))),
                         image_commit=In(1), segment=In(8))
        super().__init__(ports)

    def _memories(self, m):
        """The read port of each ROM by name: of a ROM filled by ``$readmemh``, or (writable)
        of the staged images fed by ``image_write``."""
        shapes = rom_shapes(self.cfg)
        if not self.writable:
            roms = {name: ROM(shape=shape, depth=depth, init=self.images.get(name),
                              image=f"{name}.hex") for name, (shape, depth) in shapes.items()}
            for name, rom in roms.items():
                m.submodules[f"rom_{name}"] = rom
            return {name: rom.read for name, rom in roms.items()}
        # The weights are the largest image: single-port banks (iCE40: SPRAM).
        m.submodules.images = images = StagedImages(shapes, self.images, single_port={"weights"})
        wiring.connect(m, wiring.flipped(self.image_write), images.write)
        m.d.comb += images.commit.eq(self.image_commit)
        return {name: getattr(images, f"read_{name}") for name in shapes}

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        rows, cols, banks = cfg.rows, cfg.cols, cfg.banks
        hw_bits, fmap_bits = cfg.hw_bits, cfg.fmap_bits

        roms = self._memories(m)
        shape, depth = rom_shapes(cfg)["layers"]
        m.submodules.controller = ctrl = Controller(
            cfg, descriptor_layout(cfg), layer_bits=_addr_bits(depth),
            weight_bits=_addr_bits(cfg.weight_depth), word=shape)
        if self.writable:
            m.d.comb += ctrl.segment.eq(self.segment)
        wiring.connect(m, ctrl.descriptors, roms["layers"])
        wiring.connect(m, ctrl.weights, roms["weights"])
        wiring.connect(m, wiring.flipped(self.stats), ctrl.stats)
        layer = ctrl.layer

        # --- feature buffers, tensors in and out ---------------------------------------
        buffers = [FeatureBuffer(banks=banks, depth=cfg.fmap_depth) for _ in range(2)]
        m.submodules.fmap0, m.submodules.fmap1 = buffers
        m.submodules.loader = loader = TensorLoader(banks=banks, addr_bits=fmap_bits,
                                                    hw_bits=hw_bits,
                                                    channel_bits=cfg.channel_bits)
        m.submodules.drainer = drainer = TensorDrainer(banks=banks, addr_bits=fmap_bits,
                                                       hw_bits=hw_bits,
                                                       channel_bits=cfg.channel_bits)
        wiring.connect(m, wiring.flipped(self.act_in), loader.stream)
        wiring.connect(m, wiring.flipped(self.act_out), drainer.stream)
        m.d.comb += [
            loader.start.eq(ctrl.load_start), loader.channels.eq(layer.in_channels),
            loader.hw.eq(layer.in_hw), ctrl.load_done.eq(loader.done),
            drainer.start.eq(ctrl.drain_start), drainer.channels.eq(layer.out_channels),
            drainer.hw.eq(layer.out_hw), ctrl.drain_done.eq(drainer.done),
        ]

        # --- input side: feeder, windows, indexing ---------------------------------------
        m.submodules.walker = walker = PassWalker(
            rows=rows, banks=banks, addr_bits=fmap_bits, hw_bits=hw_bits,
            index_rom=roms["index"].signature, library_rom=roms["library"].signature,
            count_bits=cfg.count_bits)
        wiring.connect(m, walker.index_rom, roms["index"])
        wiring.connect(m, walker.library_rom, roms["library"])
        m.d.comb += [
            walker.restart.eq(ctrl.restart), walker.start.eq(ctrl.walk_start),
            walker.first.eq(ctrl.walk_first), walker.pixel.eq(ctrl.walk_pixel),
            walker.keep.eq(layer.keep), walker.period.eq(layer.period),
            walker.index_base.eq(layer.index_base),
            walker.reduction.eq(layer.reduction), walker.hw.eq(layer.in_hw),
        ]
        m.submodules.feeder = feeder = Feeder(rows=rows, banks=banks, addr_bits=fmap_bits,
                                              hw_bits=hw_bits)
        wiring.connect(m, walker.bases, feeder.bases)
        wiring.connect(m, walker.routes, feeder.routes)
        m.d.comb += [feeder.restart.eq(ctrl.restart), feeder.issue.eq(ctrl.issue_in),
                     feeder.hw.eq(layer.hw), feeder.stride.eq(layer.in_hw)]

        m.submodules.indexing = indexing = IndexingUnit(rows)
        wiring.connect(m, walker.taps, indexing.config)
        for r in range(rows):
            win = WindowGenerator(max_width=cfg.max_width)
            m.submodules[f"window_{r}"] = win
            m.d.comb += [
                win.restart.eq(ctrl.restart), win.length.eq(layer.ring),
                win.advance.eq(ctrl.issue_in), win.pixel.eq(feeder.pixels[r]),
                indexing.windows[r].eq(win.window),
            ]
        m.d.comb += [
            indexing.slot.eq(_delay(m, ctrl.slot, WINDOW_STAGES, "slot")),
            indexing.bank.eq(_delay(m, ctrl.bank, WINDOW_STAGES, "bank")),
            indexing.inside.eq(_delay(m, ctrl.inside, WINDOW_STAGES, "inside")),
        ]

        # --- the array -----------------------------------------------------------------
        multiplier = dsp_primitive(platform) if self.multiplier == "auto" else self.multiplier
        m.submodules.array = array = SystolicArray(rows, cols, multiplier=multiplier)
        wiring.connect(m, ctrl.row_load, array.load)
        m.d.comb += array.acts.eq(indexing.acts)
        if multiplier is not None:
            m.d.comb += array.acts_next.eq(indexing.acts_next)

        # --- output side -----------------------------------------------------------------
        # The array's sums of a pixel issued at F0 arrive at stage A; control runs a cycle
        # ahead (A - 1) so that the accumulator and parameter reads land with them.
        ahead = ARRAY_INPUT_STAGE + SystolicArray.latency(rows, cols) - 1
        valid = _delay(m, ctrl.issue_out, ahead, "valid")
        m.submodules.sequencer = seq = OutputSequencer(hw_bits=hw_bits,
                                                       count_bits=cfg.count_bits)
        m.d.comb += [
            seq.restart.eq(ctrl.restart), seq.valid.eq(valid),
            seq.hw.eq(layer.hw), seq.width.eq(layer.width), seq.passes.eq(layer.passes),
            seq.subs.eq(layer.subs), seq.groups.eq(layer.groups),
        ]
        params = roms["params"]
        m.d.comb += [params.addr.eq(layer.param_base + seq.group), params.en.eq(valid)]

        m.submodules.accumulator = acc = Accumulator(cols=cols, depth=cfg.max_hw)
        m.d.comb += [
            acc.valid.eq(valid), acc.pixel.eq(seq.pixel), acc.first.eq(seq.first),
            acc.last.eq(seq.last), acc.sums.eq(array.sums), acc.bias.eq(params.data.bias),
        ]
        m.submodules.requantizer = rq = Requantizer(cols=cols, mult_bits=cfg.mult_bits)
        mult, shift = Signal.like(params.data.mult), Signal.like(params.data.shift)
        m.d.sync += [mult.eq(params.data.mult), shift.eq(params.data.shift)]
        m.d.comb += [rq.valid.eq(acc.result_valid), rq.acc.eq(acc.result), rq.mult.eq(mult),
                     rq.shift.eq(shift), rq.relu.eq(layer.relu)]

        m.submodules.pool = pool = MaxPool2(cols=cols, max_width=cfg.max_width,
                                            hw_bits=hw_bits)
        to_pool = 1 + 1 + Requantizer.latency          # A - 1 -> the pool's input
        m.d.comb += [
            pool.enable.eq(layer.pool), pool.valid.eq(rq.out_valid), pool.values.eq(rq.out),
            pool.x.eq(_delay(m, seq.x, to_pool, "x")),
            pool.y_odd.eq(_delay(m, seq.y_odd, to_pool, "y_odd")),
            pool.first.eq(_delay(m, seq.pixel == 0, to_pool, "first")),
        ]
        m.submodules.writer = writer = OutputWriter(cols=cols, banks=banks, addr_bits=fmap_bits,
                                                    hw_bits=hw_bits,
                                                    channel_bits=cfg.channel_bits)
        m.d.comb += [
            writer.restart.eq(ctrl.restart), writer.out_hw.eq(layer.out_hw),
            writer.channels.eq(layer.out_channels), writer.valid.eq(pool.out_valid),
            writer.index.eq(pool.index), writer.values.eq(pool.out),
            ctrl.done.eq(_delay(m, seq.end, 1 + POST_STAGES, "end")),
        ]

        # --- feature-buffer ports: the layer reads `buffer`, writes the other one ---------
        for i, buf in enumerate(buffers):
            reading = ctrl.buffer == i
            for b in range(banks):
                rd, wr = buf.read[b], buf.write[b]
                with m.If(reading):
                    with m.If(ctrl.draining):
                        m.d.comb += [rd.addr.eq(drainer.reads[b].addr),
                                     rd.en.eq(drainer.reads[b].en)]
                    with m.Else():
                        m.d.comb += [rd.addr.eq(feeder.reads[b].addr),
                                     rd.en.eq(feeder.reads[b].en)]
                    with m.If(ctrl.loading):
                        m.d.comb += [wr.addr.eq(loader.write[b].addr),
                                     wr.data.eq(loader.write[b].data),
                                     wr.en.eq(loader.write[b].en)]
                with m.Else():
                    m.d.comb += [wr.addr.eq(writer.write[b].addr),
                                 wr.data.eq(writer.write[b].data),
                                 wr.en.eq(writer.write[b].en & ctrl.running)]
        for b in range(banks):
            m.d.comb += [
                feeder.reads[b].data.eq(Mux(ctrl.buffer, buffers[1].read[b].data,
                                            buffers[0].read[b].data)),
                drainer.reads[b].data.eq(Mux(ctrl.buffer, buffers[1].read[b].data,
                                             buffers[0].read[b].data)),
            ]
        return m
