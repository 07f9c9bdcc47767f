"""ROMs filled from the packed images, their writable (staged) variant, and the banked
feature buffers.

Every read port here has ``read_latency`` cycles (:data:`READ_LATENCY` by default): with
2, the word at ``addr`` (taken while ``en``) is on ``data`` two cycles later, from a
register behind the block RAM's own, so nothing but a register ever follows a block RAM
output (its clock-to-out is most of a cycle at 100 MHz on an ECP5); with 3, from a second
register behind that one (the first then sits beside the block RAM, the second near the
reader: an ECP5 DP16KD's output, 5.6 ns, leaves no time to cross the die); with 1, the
next cycle.
"""

import numpy as np
from amaranth.hdl import (
    Cat,
    Const,
    Module,
    Mux,
    Shape,
    Signal,
    signed,
    unsigned,
)
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .config import ROM_NAMES, check_read_latency, word_bytes
from .registers import delayed
from .vendor import crosses, crossing, ice40, spram_fits

__all__ = [
    "DROP_INIT",
    "NO_INIT",
    "NO_RW_CHECK",
    "READMEMH_ATTR",
    "READ_LATENCY",
    "ROM",
    "FeatureBuffer",
    "StagedImages",
    "StagedMemory",
    "image_words",
    "image_write_layout",
    "read_port",
]

#: Memory attribute naming the ``$readmemh`` image of a ROM in the emitted Verilog.
READMEMH_ATTR = "sps_readmemh"
#: Attributes of a memory never read and written at one word in the same cycle: Yosys adds
#: no read-during-write logic around its block RAM (with :func:`read_port`).
NO_RW_CHECK = {"no_rw_check": 1}
#: Attribute of a block RAM's read register whose power-up value nothing relies on: it is
#: reset-less, so after a reset it holds whatever was read last, and the design already
#: tolerates that. The board builds drop its ``init`` (:data:`DROP_INIT`): an iCE40 block RAM
#: has no initial output value, and Yosys emulates one with an AND per data bit.
NO_INIT = {"sps_no_init": 1}
#: The Yosys command (after reading the design) that drops those registers' ``init``.
DROP_INIT = "setattr -unset init a:sps_no_init"
#: Cycles from a read port's address to its data, by default.
READ_LATENCY = 2


class _ReadPort:
    """The ``addr``, ``en`` and ``data`` of a :func:`read_port`."""

    def __init__(self, addr, en, data):
        self.addr, self.en, self.data = addr, en, data


def read_port(m, mem, name, *, latency=1):
    """A read port of ``mem`` whose ``data`` is the word at ``addr`` (taken while ``en``,
    held otherwise) ``latency`` cycles later, as ``mem.read_port()`` with ``latency - 1``
    registers behind it; for a memory whose users never read a word while writing it
    (``no_rw_check``). It is an asynchronous port with a register behind it, which Yosys
    merges into the block RAM: Yosys honours ``no_rw_check`` only on a port it makes
    synchronous itself, and around a synchronous port it emulates the old data (a register
    per write address and data bit, a comparator, and a multiplexer per data bit after the
    block RAM's output)."""
    rd = mem.read_port(domain="comb")
    en = Signal(name=f"{name}_en", init=1)
    data = Signal.like(rd.data, name=f"{name}_data", reset_less=True, attrs=NO_INIT)
    with m.If(en):
        m.d.sync += data.eq(rd.data)
    return _ReadPort(rd.addr, en, delayed(m, data, latency - 1, f"{name}_out", reset_less=True))


def _read_data(m, value, read_latency, name):
    """A block RAM's read data ``value`` as a port of ``read_latency`` cycles gives it (the
    register is reset-less: nothing but the register is in front of it)."""
    return delayed(m, value, read_latency - 1, name, reset_less=True)


class ROM(wiring.Component):
    """A read-only memory of ``depth`` words of ``shape``, with one read port
    (``read_latency`` cycles).

    ``init`` (an integer array, or None for zeros) fills it for simulation in Amaranth;
    ``image`` names the ``$readmemh`` file that fills it in the emitted Verilog (see
    :mod:`sps_hw.verilog`), so the Verilog does not depend on the network.
    """

    def __init__(self, *, shape, depth, init=None, image=None, read_latency=READ_LATENCY):
        check_int("depth", depth, minimum=1)
        self.read_latency = check_read_latency(read_latency)
        if image is not None and (not isinstance(image, str) or "/" in image):
            raise ValueError(f"image must be a plain file name, not {image!r}")
        Shape.cast(shape)                  # a ShapeLike: a shape or a data layout
        self.shape = shape
        self.depth, self.image = depth, image
        if init is None:
            self.init = []
        else:
            init = np.asarray(init)
            if init.ndim != 1 or len(init) > depth:
                raise ValueError(f"init must be a list of at most {depth} words, not shape "
                                 f"{init.shape}")
            self.init = [int(v) for v in init]
            if isinstance(shape, data.Layout):       # words are given as raw bits
                self.init = [data.Const(shape, v) for v in self.init]
        super().__init__({
            "read": Out(memory.ReadPort.Signature(addr_width=max(1, (depth - 1).bit_length()),
                                                  shape=self.shape)),
        })

    def elaborate(self, platform):
        m = Module()
        attrs = {READMEMH_ATTR: self.image} if self.image else {}
        # At least 2 words, so that the address is at least 1 bit wide like the port's.
        m.submodules.mem = mem = memory.Memory(shape=self.shape, depth=max(2, self.depth),
                                               init=self.init, attrs=attrs)
        port = mem.read_port()
        m.d.comb += [port.addr.eq(self.read.addr), port.en.eq(self.read.en),
                     self.read.data.eq(_read_data(m, port.data, self.read_latency, "data"))]
        return m


def _addr_bits(depth):
    return max(1, (depth - 1).bit_length())


def image_write_layout(regions):
    """Payload of an image write stream into the memories ``regions`` (``{name: (width,
    depth)}``, names from :data:`~sps_hw.config.ROM_NAMES`): byte ``lane`` (0 = bits 0..7) of
    word ``addr`` of the staging bank of ``region`` (the index of its name in ``ROM_NAMES``).
    Image bytes arrive in order, lanes 0..n-1 of a word before the next word."""
    return data.StructLayout({
        "region": unsigned(3),
        "addr": unsigned(max(_addr_bits(depth) for _, depth in regions.values())),
        "lane": unsigned(max(_addr_bits(word_bytes(width)) for width, _ in regions.values())),
        "data": unsigned(8),
    })


def image_words(image, width):
    """Words of ``width`` bits of an uploaded image: little-endian, ``ceil(width / 8)`` bytes
    each (the format of ``sps build``'s ``.bin`` images and of the host link)."""
    nbytes = word_bytes(width)
    raw = bytes(image)
    if len(raw) % nbytes:
        raise ValueError(f"an image of {width}-bit words must be a multiple of {nbytes} bytes, "
                         f"not {len(raw)}")
    return [int.from_bytes(raw[i:i + nbytes], "little") & ((1 << width) - 1)
            for i in range(0, len(raw), nbytes)]


class StagedMemory(wiring.Component):
    """A writable ROM: ``depth`` words of ``width`` bits, twice (an active and a staging bank).

    The reader sees the *active* bank through ``read`` (``read_latency`` cycles, like
    :class:`ROM`);
    ``write`` (one byte ``lane`` of word ``addr``, always ready) goes to the *staging* bank;
    ``commit`` swaps the banks, so a new image becomes active at once and a half-written one
    never is. The bank bit is ``reset_less``: a reset keeps the committed image. ``init`` is
    the active bank's initial contents (an image baked in at build time). Words are stored in
    whole bytes (a 9-bit word takes 16 bits), both banks in one memory (bank 1 at ``depth``).

    Parameters
    ----------
    width, depth : int
        Word width in bits and words per bank.
    init : sequence of int
        Initial contents of the active bank (at most ``depth`` words).
    shape : ShapeLike
        Shape of ``read.data`` (a data layout of ``width`` bits for a structured ROM);
        ``unsigned(width)`` if omitted.
    single_port : bool
        Keep each bank in its own single-port memory (the active one is only read, the
        staging one only written). On an iCE40 a bank of at most 16-bit words and 16 Ki
        words is an SB_SPRAM256KA (which cannot be initialised: ``init`` must be empty).
    """

    def __init__(self, *, width, depth, init=(), shape=None, single_port=False,
                 read_latency=READ_LATENCY):
        for name, value in (("width", width), ("depth", depth)):
            check_int(name, value, minimum=1)
        self.read_latency = check_read_latency(read_latency)
        init = [int(v) for v in init]
        if len(init) > depth:
            raise ValueError(f"init has {len(init)} words, the memory holds {depth}")
        if any(not 0 <= v < 1 << width for v in init):
            raise ValueError(f"init words must fit in {width} unsigned bits")
        if shape is None:
            shape = unsigned(width)
        if Shape.cast(shape).width != width:
            raise ValueError(f"shape {shape!r} must be {width} bits wide")
        self.width, self.depth, self.init, self.shape = width, depth, init, shape
        self.single_port = bool(single_port)
        self.addr_width = _addr_bits(depth)
        self.word_bytes = word_bytes(width)
        self.lane_width = _addr_bits(self.word_bytes)
        #: The memory (both banks: bank 1 at ``depth``); exposed for inspection in simulation.
        #: (Single-port banks are two memories made in ``elaborate``.)
        self.memory = None if self.single_port else memory.Memory(
            shape=8 * self.word_bytes, depth=2 * depth, init=init, attrs=NO_RW_CHECK)
        super().__init__({
            "commit": In(1),
            "active": Out(1),
            "write": In(stream.Signature(data.StructLayout({
                "addr": unsigned(self.addr_width), "lane": unsigned(self.lane_width),
                "data": unsigned(8)}))),
            "read": Out(memory.ReadPort.Signature(addr_width=self.addr_width, shape=shape)),
        })

    def elaborate(self, platform):
        if self.single_port:
            return self._elaborate_single_port(platform)
        m = Module()
        m.submodules.mem = mem = self.memory
        # Reads (active bank) and writes (staging bank) never meet at one word.
        wp = mem.write_port(granularity=8)
        rp = read_port(m, mem, "data", latency=self.read_latency)
        active = Signal(reset_less=True)
        with m.If(self.commit):
            m.d.sync += active.eq(~active)
        w = self.write.payload
        m.d.comb += [
            self.active.eq(active),
            self.write.ready.eq(1),
            wp.en.eq(Mux(self.write.valid, Const(1, self.word_bytes) << w.lane, 0)),
            wp.addr.eq(Mux(active, w.addr, w.addr + self.depth)),
            wp.data.eq(w.data.replicate(self.word_bytes)),
            rp.en.eq(self.read.en),
            rp.addr.eq(Mux(active, self.read.addr + self.depth, self.read.addr)),
            self.read.data.eq(rp.data[:self.width]),
        ]
        return m

    def _elaborate_single_port(self, platform):
        m = Module()
        active = Signal(reset_less=True)
        with m.If(self.commit):
            m.d.sync += active.eq(~active)
        w = self.write.payload
        lanes = Signal(self.word_bytes)
        m.d.comb += [self.active.eq(active), self.write.ready.eq(1),
                     lanes.eq(Const(1, self.word_bytes) << w.lane)]
        data_out = []
        for bank in range(2):
            staging = active != bank       # bank 0 is active while `active` is 0
            addr = Mux(staging, w.addr, self.read.addr)
            wen = Signal(name=f"wen{bank}")
            m.d.comb += wen.eq(staging & self.write.valid)
            out = Signal(8 * self.word_bytes, name=f"out{bank}")
            if spram_fits(platform, self.width, self.depth):
                if self.init:
                    raise ValueError("an iCE40 SPRAM cannot be initialised; init must be empty")
                mask = Cat(*(lanes[lane // 2].replicate(1) for lane in range(4))) \
                    if self.word_bytes == 2 else Const(0b1111, 4)
                ice40.spram(m, f"spram{bank}", addr=addr, data_in=w.data.replicate(2),
                            mask=mask, wren=wen, data_out=out)
            else:
                mem = memory.Memory(shape=8 * self.word_bytes, depth=self.depth,
                                    init=self.init if bank == 0 else [], attrs=NO_RW_CHECK)
                m.submodules[f"bank{bank}"] = mem
                wp, rp = mem.write_port(granularity=8), read_port(m, mem, f"bank{bank}")
                m.d.comb += [wp.addr.eq(addr), rp.addr.eq(addr),
                             wp.en.eq(Mux(wen, lanes, 0)),
                             wp.data.eq(w.data.replicate(self.word_bytes)),
                             rp.en.eq(~staging & self.read.en), out.eq(rp.data)]
            data_out.append(out)
        # Each bank's data is registered before the choice of bank (the register can be the
        # block RAM's own output register), which follows with the bank a read was issued to.
        data_out = [_read_data(m, out[:self.width], self.read_latency, f"data{bank}")
                    for bank, out in enumerate(data_out)]
        read_bank = delayed(m, active, self.read_latency - 1, "read_bank", reset_less=True)
        m.d.comb += self.read.data.eq(Mux(read_bank, data_out[1], data_out[0]))
        return m


class StagedImages(wiring.Component):
    """Image memories as :class:`StagedMemory`, all fed by one image write stream.

    ``write`` (:func:`image_write_layout`, always ready) goes to the staging bank of the
    region it names, ``commit`` makes every staged image active at once, ``commit_regions``
    (one bit per memory, in :data:`~sps_hw.config.ROM_NAMES` order) only those whose bit is
    set; each memory is read through ``read_<name>`` (synchronous, active bank).

    Parameters
    ----------
    shapes : dict
        ``{name: (shape, depth)}`` of the memories, names from
        :data:`~sps_hw.config.ROM_NAMES` (a shape or a data layout per word).
    init : dict
        Optional ``{name: words}`` for the active banks (images baked in at build time).
    single_port : set of str
        Memories whose banks are single-port (see :class:`StagedMemory`).
    read_latency : int
        Of every read port (1 to 3).
    registered_writes : bool
        Each memory takes the writes and commits through registers of its own, beside its
        block RAMs, rather than from one register across the die: a cycle late, in order
        (on the fast parts: :func:`~sps_hw.vendor.crossing`). For a writer that reads no
        image in the cycle after a commit (the host link; not the tile engine).
    """

    def __init__(self, shapes, init=None, *, single_port=(), read_latency=READ_LATENCY,
                 registered_writes=False):
        init = dict(init or {})
        unknown = ((set(shapes) - set(ROM_NAMES)) | (set(init) - set(shapes))
                   | (set(single_port) - set(shapes)))
        if unknown:
            raise ValueError(f"unknown memories {sorted(unknown)}; expected names from "
                             f"{ROM_NAMES} given in shapes")
        widths = {name: (Shape.cast(shape).width, depth) for name, (shape, depth) in
                  shapes.items()}
        self.registered_writes = bool(registered_writes)
        self.banks = {name: StagedMemory(width=widths[name][0], depth=depth, shape=shape,
                                         init=init.get(name, ()),
                                         single_port=name in single_port,
                                         read_latency=read_latency)
                      for name, (shape, depth) in shapes.items()}
        ports = {"write": In(stream.Signature(image_write_layout(widths))), "commit": In(1),
                 "commit_regions": In(len(ROM_NAMES))}
        for name, bank in self.banks.items():
            ports[f"read_{name}"] = Out(bank.read.signature)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        w = self.write.payload
        m.d.comb += self.write.ready.eq(1)
        for name, bank in self.banks.items():
            m.submodules[name] = bank
            index = ROM_NAMES.index(name)
            valid = self.write.valid & (w.region == index)
            payload, commit = w, self.commit | self.commit_regions[index]
            if self.registered_writes and crosses(platform):
                # The payload is gated by the memory's own valid, so that each memory's
                # registers differ from the others' (Yosys merges equal registers into one).
                gated = data.View(w.shape(), Mux(valid, w.as_value(), 0))
                payload = crossing(m, platform, gated, f"{name}_write", reset_less=True)
                valid = crossing(m, platform, valid, f"{name}_write_valid")
                commit = crossing(m, platform, commit, f"{name}_commit")
            m.d.comb += [bank.write.valid.eq(valid),
                         bank.write.payload.addr.eq(payload.addr),
                         bank.write.payload.lane.eq(payload.lane),
                         bank.write.payload.data.eq(payload.data),
                         bank.commit.eq(commit)]
            wiring.connect(m, wiring.flipped(getattr(self, f"read_{name}")), bank.read)
        return m


class FeatureBuffer(wiring.Component):
    """``banks`` int8 memories of ``depth`` words, each with one read port (``read_latency``
    cycles) and one write port."""

    def __init__(self, *, banks, depth, read_latency=READ_LATENCY):
        for name, value in (("banks", banks), ("depth", depth)):
            check_int(name, value, minimum=1)
        self.read_latency = check_read_latency(read_latency)
        self.banks, self.depth = banks, depth
        addr_width = max(1, (depth - 1).bit_length())
        super().__init__({
            "read": Out(memory.ReadPort.Signature(addr_width=addr_width,
                                                  shape=signed(8))).array(banks),
            "write": Out(memory.WritePort.Signature(addr_width=addr_width,
                                                    shape=signed(8))).array(banks),
        })

    def elaborate(self, platform):
        m = Module()
        for b in range(self.banks):
            # A bank is never read and written at one address in the same cycle (a layer
            # reads one buffer and writes the other): no collision logic (yosys no_rw_check).
            bank = memory.Memory(shape=signed(8), depth=max(2, self.depth), init=[],
                                 attrs=NO_RW_CHECK)
            m.submodules[f"bank{b}"] = bank
            wiring.connect(m, wiring.flipped(self.write[b]), bank.write_port())
            port = read_port(m, bank, f"data{b}", latency=self.read_latency)
            m.d.comb += [port.addr.eq(self.read[b].addr), port.en.eq(self.read[b].en),
                         self.read[b].data.eq(port.data)]
        return m
