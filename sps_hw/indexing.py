"""The indexing unit: which tap of which channel each array row multiplies in a pass.

Row ``r`` of pass ``p`` carries reduction index ``q = p * rows + r`` of the layer's compacted
reduction dimension: channel ``c = q // keep``, slot ``s = q % keep``, and the tap is the
``s``-th set bit of the pattern ``library[A[c mod P]]`` (``docs/spec.md`` section 2.3). The
:class:`PassWalker` visits the rows of a pass once, one per cycle, reading the assignment
``A`` from the index ROM and the mask from the library ROM; the :class:`IndexingUnit` holds
the resulting tap of every row (three passes deep) and applies it to each pixel's windows.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .config import check_read_latency
from .memories import READ_LATENCY
from .pe import Activation
from .registers import delayed
from .window import Window

__all__ = [
    "SLOTS",
    "TAP_LIST_BITS",
    "ZERO_TAP",
    "BaseConfig",
    "IndexingUnit",
    "PassWalker",
    "RouteConfig",
    "TapConfig",
    "WalkerLayer",
    "nth_set_bit",
    "tap_list",
]

#: Tap code of a row that carries no reduction index (past the end): its activation is 0.
ZERO_TAP = 15
#: Passes whose configuration is held at once: the one being computed, the next one (its
#: input already streaming into the windows) and the one being written by the walker.
SLOTS = 3


class TapConfig(wiring.Signature):
    """Set the tap (0..8, or :data:`ZERO_TAP`) of ``row`` for the pass in ``slot``."""

    def __init__(self, rows):
        self.rows = rows
        super().__init__({"en": Out(1), "row": Out(range(rows)), "slot": Out(range(SLOTS)),
                          "tap": Out(4)})

    def __eq__(self, other):
        return type(other) is type(self) and other.rows == self.rows


class RouteConfig(wiring.Signature):
    """Route feature-buffer bank ``bank`` to ``row`` for the pass in ``slot``."""

    def __init__(self, rows, banks):
        self.rows, self.banks = rows, banks
        super().__init__({"en": Out(1), "row": Out(range(rows)), "slot": Out(range(SLOTS)),
                          "bank": Out(range(banks))})

    def __eq__(self, other):
        return type(other) is type(self) and (other.rows, other.banks) == (self.rows, self.banks)


class BaseConfig(wiring.Signature):
    """Where the channels of the pass in ``slot`` live: the first channel is in bank
    ``first_bank`` at word ``block`` (``(c // banks) * HW``), the channels after the last
    bank at ``block_next`` (``block + HW``); pixels start at ``pixel``."""

    def __init__(self, banks, addr_bits, hw_bits):
        self.banks, self.addr_bits, self.hw_bits = banks, addr_bits, hw_bits
        super().__init__({"en": Out(1), "slot": Out(range(SLOTS)),
                          "first_bank": Out(range(banks)), "block": Out(addr_bits),
                          "block_next": Out(addr_bits), "pixel": Out(hw_bits)})

    def __eq__(self, other):
        return type(other) is type(self) and (
            (other.banks, other.addr_bits, other.hw_bits)
            == (self.banks, self.addr_bits, self.hw_bits))


#: A library ROM word: the taps of a pattern, slot ``s`` in bits ``4s..4s+3``, ZERO_TAP after
#: the last. Slot 8 is not stored: only a pattern of all 9 taps has one, and it is tap 8.
TAP_LIST_BITS = 32


def tap_list(mask):
    """The library ROM word of pattern ``mask`` (9 bits): its set bits in ascending order,
    4 bits each, the slots beyond them :data:`ZERO_TAP`, up to slot 7."""
    taps = [t for t in range(9) if (mask >> t) & 1]
    taps += [ZERO_TAP] * (9 - len(taps))
    return sum(t << (4 * i) for i, t in enumerate(taps[:8]))


def nth_set_bit(mask, n):
    """The index (0..8) of the ``n``-th set bit (``n`` from 0) of a 9-bit ``mask`` Value,
    or :data:`ZERO_TAP` if it has fewer set bits."""
    result = Const(ZERO_TAP, 4)
    count = Const(0, 4)
    for t in range(9):
        result = Mux(mask[t] & (count == n) & (result == ZERO_TAP), t, result)
        count = count + mask[t]
    return result


class IndexingUnit(wiring.Component):
    """N-of-9 tap selection of every array row.

    Each row holds its tap for :data:`SLOTS` passes (written through ``config`` by the
    :class:`PassWalker`); for the pixel on ``windows`` (one :data:`~sps_hw.window.Window`
    per row) in pass slot ``slot`` it outputs, one cycle later on ``acts`` (a register), the
    window value at the row's tap, or 0 if the tap is outside the image (``inside`` bit
    clear) or the row is unused. ``slot`` and ``inside`` come a cycle ahead of the pixel's
    ``windows``, and with them ``ky`` goes out, the row of each row's tap (the window
    generators keep only that row of the older columns); each row registers its tap and the
    mask, so that only a 5-way multiplexer (beside the mask's) lies between the windows and
    ``acts``. ``bank``, the pixel's weight bank, travels along.
    With ``used``, an output ``used`` flags, with ``acts``, the rows whose activation is a
    tap (not a row past the reduction): the strobes of the action counters.

    With ``bypass`` a tap written through ``config`` in the cycle of its pass's first pick
    is picked (when the walker's taps arrive just in time); without, taps must be written a
    cycle earlier, and ``ky`` comes from the row's own tap registers alone (the walker and
    the window generators are far apart on the largest die).
    """

    def __init__(self, rows, *, used=False, bypass=True):
        check_int("rows", rows, minimum=1)
        for name, value in (("used", used), ("bypass", bypass)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, not {value!r}")
        self.rows, self.bypass = rows, bypass
        super().__init__({
            "windows": In(data.ArrayLayout(Window, rows)),
            "inside": In(9),
            "slot": In(range(SLOTS)),
            "bank": In(1),
            "config": In(TapConfig(rows)),
            "ky": Out(data.ArrayLayout(range(3), rows)),
            "acts": Out(data.ArrayLayout(Activation, rows)),
            **({"used": Out(rows)} if used else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        inside = Signal(9)                  # the mask of the pixel on `windows`
        m.d.sync += inside.eq(self.inside)
        for r in range(self.rows):
            taps = Array(Signal(4, init=ZERO_TAP, name=f"tap_{r}_{s}") for s in range(SLOTS))
            with m.If(cfg.en & (cfg.row == r)):
                m.d.sync += taps[cfg.slot].eq(cfg.tap)
            # The tap of the slot, or the one being written to it (the walker may write a
            # pass's last tap in the cycle its first pixel's pick is made).
            tap = Signal(4, name=f"tap_{r}")
            chosen = taps[self.slot]
            if self.bypass:
                writing = cfg.en & (cfg.row == r) & (cfg.slot == self.slot)
                chosen = Mux(writing, cfg.tap, chosen)
            m.d.comb += [tap.eq(chosen),
                         self.ky[r].eq(Mux(tap < 3, 0, Mux(tap < 6, 1, 2)))]
            pick = Signal(4, init=ZERO_TAP, name=f"pick_{r}")
            m.d.sync += pick.eq(tap)
            window, value = self.windows[r], Signal(signed(8), name=f"value_{r}")
            with m.Switch(pick):
                for t in range(9):
                    ky, kx = divmod(t, 3)
                    tap_value = window.column[ky] if kx == 2 else window.left[1 - kx]
                    with m.Case(t):
                        m.d.comb += value.eq(Mux(inside[t], tap_value, 0))
            act = Signal(Activation, name=f"act_{r}", reset_less=True)   # data: no reset
            m.d.sync += [act.value.eq(value), act.bank.eq(self.bank)]
            m.d.comb += self.acts[r].eq(act)
            if "used" in self.signature.members:
                m.d.sync += self.used[r].eq(pick != ZERO_TAP)
        return m


class WalkerLayer(wiring.Signature):
    """The layer fields the pass walker takes: ``keep`` taps per kernel, the assignment
    ``period``, the layer's first index-ROM word ``index_base``, the length ``reduction``
    of its compacted reduction and ``hw``, the pixels per input channel."""

    def __init__(self, index_bits, hw_bits, count_bits):
        super().__init__({
            "keep": Out(range(1, 10), init=1),
            "period": Out(range(1, 2 ** index_bits + 1), init=1),
            "index_base": Out(index_bits),
            "reduction": Out(count_bits),
            "hw": Out(hw_bits),
        })


class PassWalker(wiring.Component):
    """Computes the per-row configuration of one pass at a time, one row per cycle.

    ``start`` (for ``rows`` cycles) walks the rows of the next pass; with ``first`` the pass
    starts a new reduction (a new output group, or an FC sub-pass), from channel 0, reading
    its pixels from ``pixel``. The layer constants (``layer``, :class:`WalkerLayer`) hold
    while a layer runs; ``restart`` (at a layer's start) resets the slot counter and the
    walk.

    The index ROM holds, per channel phase ``c mod P``, the library ROM address of the
    channel's pattern; the library ROM holds each pattern as its list of taps
    (:func:`tap_list`), so the tap of slot ``s`` is a 4-bit field of the word read: no
    arithmetic between the two ROM reads or after them.

    Outputs: per pass one ``bases`` write (bank and word of its first channel), per row one
    ``routes`` write (the bank of its channel) in the cycle it is visited, and one ``taps``
    write :attr:`tap_latency` cycles after it is visited (after two ROM reads of
    ``read_latency`` cycles each, and with reads of 2 or more from a register: the rows it
    goes to are spread over the die).
    """

    def __init__(self, *, rows, banks, addr_bits, hw_bits, index_rom, library_rom,
                 count_bits=24, read_latency=READ_LATENCY):
        for name, value in (("rows", rows), ("banks", banks), ("addr_bits", addr_bits),
                            ("hw_bits", hw_bits), ("count_bits", count_bits)):
            check_int(name, value, minimum=1)
        self.read_latency = check_read_latency(read_latency)
        self.tap_latency = 2 * read_latency + (read_latency > 1)
        for name, sig in (("index_rom", index_rom), ("library_rom", library_rom)):
            if not isinstance(sig, memory.ReadPort.Signature):
                raise TypeError(f"{name} must be a memory.ReadPort.Signature, not {sig!r}")
        if sig.shape != unsigned(TAP_LIST_BITS):
            raise ValueError(f"library_rom must read {TAP_LIST_BITS}-bit tap lists, not "
                             f"{sig.shape!r}")
        if index_rom.shape.width < library_rom.addr_width:
            raise ValueError(f"index_rom must read library addresses "
                             f"({library_rom.addr_width} bits), not {index_rom.shape!r}")
        self.rows, self.banks = rows, banks
        super().__init__({
            "restart": In(1),
            "start": In(1),
            "first": In(1),
            "pixel": In(hw_bits),
            "layer": In(WalkerLayer(index_rom.addr_width, hw_bits, count_bits)),
            "index_rom": In(index_rom),     # the ROMs' ports, driven from here
            "library_rom": In(library_rom),
            "taps": Out(TapConfig(rows)),
            "routes": Out(RouteConfig(rows, banks)),
            "bases": Out(BaseConfig(banks, addr_bits, hw_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        rows, banks = self.rows, self.banks
        slot = Signal(range(SLOTS))
        row = Signal(range(rows))
        # row == 0, a flag kept in step with `row`: the first row's test starts the pixel and
        # base arithmetic of the feeder (two adders), so no comparator may precede it.
        row_zero = Signal(init=1)
        # Walk state: the channel c (as c mod banks, (c // banks) * hw, c mod P), slot s, q;
        # and the next block's word, block + hw (the feeder's two bases then take one adder
        # each, not two in a row).
        bank = Signal(range(banks))
        block = Signal(len(self.bases.block))
        block_next = Signal.like(block)
        phase = Signal(range(2 ** len(self.index_rom.addr)))
        s = Signal(range(9))
        q = Signal(len(self.layer.reduction))

        # Flags kept in step with s, bank and phase: s == keep - 1, bank == banks - 1 and
        # phase == period - 1 (no comparator between the walk's state and its next state).
        s_last, bank_last, phase_last = Signal(), Signal(), Signal()
        keep, period, hw = self.layer.keep, self.layer.period, self.layer.hw

        first_row = self.start & row_zero
        begin = first_row & self.first
        # The row being visited, with the walk reset for a new reduction.
        cur_bank = Mux(begin, 0, bank)
        cur_block = Mux(begin, 0, block)
        cur_block_next = Mux(begin, hw, block_next)
        cur_phase = Mux(begin, 0, phase)
        # The index ROM's word of the phase, index_base + phase, kept in step (no adder
        # before the ROM's address).
        index_word = Signal.like(self.index_rom.addr)
        cur_word = Mux(begin, self.layer.index_base, index_word)
        cur_s = Mux(begin, 0, s)
        cur_q = Mux(begin, 0, q)
        cur_s_last = Mux(begin, keep == 1, s_last)
        cur_bank_last = Mux(begin, banks == 1, bank_last)
        cur_phase_last = Mux(begin, period == 1, phase_last)
        pixel = Signal.like(self.pixel)
        with m.If(begin):
            m.d.sync += pixel.eq(self.pixel)

        with m.If(self.start):
            last_slot = Mux(row == rows - 1, 1, 0)
            m.d.sync += [
                row.eq(Mux(row == rows - 1, 0, row + 1)), row_zero.eq(row == rows - 1),
                slot.eq(Mux(last_slot, Mux(slot == SLOTS - 1, 0, slot + 1), slot)),
                q.eq(cur_q + 1),
            ]
            with m.If(cur_s_last):
                m.d.sync += [
                    s.eq(0), s_last.eq(keep == 1),
                    bank.eq(Mux(cur_bank_last, 0, cur_bank + 1)),
                    bank_last.eq(Mux(cur_bank_last, banks == 1, cur_bank == banks - 2)),
                    block.eq(Mux(cur_bank_last, cur_block_next, cur_block)),
                    block_next.eq(Mux(cur_bank_last, cur_block_next + hw, cur_block_next)),
                    phase.eq(Mux(cur_phase_last, 0, cur_phase + 1)),
                    index_word.eq(Mux(cur_phase_last, self.layer.index_base, cur_word + 1)),
                    phase_last.eq(Mux(cur_phase_last, period == 1, cur_phase + 2 == period)),
                ]
            with m.Else():
                m.d.sync += [s.eq(cur_s + 1), s_last.eq(cur_s + 2 == keep), bank.eq(cur_bank),
                             bank_last.eq(cur_bank_last), block.eq(cur_block),
                             block_next.eq(cur_block_next), phase.eq(cur_phase),
                             index_word.eq(cur_word),
                             phase_last.eq(cur_phase_last)]
        with m.If(self.restart):
            m.d.sync += [slot.eq(0), row.eq(0), row_zero.eq(1), s.eq(0), q.eq(0), bank.eq(0),
                         block.eq(0), block_next.eq(hw), phase.eq(0),
                         index_word.eq(self.layer.index_base), s_last.eq(keep == 1),
                         bank_last.eq(banks == 1), phase_last.eq(period == 1)]

        m.d.comb += [
            self.bases.en.eq(first_row),
            self.bases.slot.eq(slot),
            self.bases.first_bank.eq(cur_bank),
            self.bases.block.eq(cur_block),
            self.bases.block_next.eq(cur_block_next),
            self.bases.pixel.eq(Mux(begin, self.pixel, pixel)),
            self.routes.en.eq(self.start),
            self.routes.row.eq(row),
            self.routes.slot.eq(slot),
            self.routes.bank.eq(cur_bank),
            self.index_rom.addr.eq(cur_word),
            self.index_rom.en.eq(1),
            self.library_rom.en.eq(1),
        ]
        # Two ROM reads, then the tap: the visit travels along with them.
        lag = 2 * self.read_latency
        v, row_t, slot_t, s_t, used = (delayed(m, x, lag, n) for x, n in (
            (self.start, "v"), (row, "row"), (slot, "slot"), (cur_s, "s"),
            (cur_q < self.layer.reduction, "used")))
        m.d.comb += self.library_rom.addr.eq(self.index_rom.data)
        # Slot s_t's field of the tap list (a multiplexer, not a variable shift); slot 8
        # only a pattern of all 9 taps has, and it is tap 8.
        tap = Signal(4)
        with m.Switch(s_t):
            for i in range(8):
                with m.Case(i):
                    m.d.comb += tap.eq(self.library_rom.data[4 * i:4 * i + 4])
            with m.Default():
                m.d.comb += tap.eq(8)
        out = self.tap_latency - lag
        m.d.comb += [
            self.taps.en.eq(delayed(m, v, out, "taps_en")),
            self.taps.row.eq(delayed(m, row_t, out, "taps_row", reset_less=True)),
            self.taps.slot.eq(delayed(m, slot_t, out, "taps_slot", reset_less=True)),
            self.taps.tap.eq(delayed(m, Mux(used, tap, ZERO_TAP), out, "taps_tap",
                                     reset_less=True)),
        ]
        return m
