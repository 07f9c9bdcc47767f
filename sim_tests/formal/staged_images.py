"""The staged image memories (:class:`sps_hw.memories.StagedImages`): nothing the core reads
changes before COMMIT, and COMMIT makes every staged image active at once.

For each memory the harness watches one word (an arbitrary constant address ``a``) in both
banks through a read port of its own on the memory, and asserts, every cycle:

- ``all_at_once``: every memory's ``active`` bank bit is the same;
- ``active_holds``: without a COMMIT the active word keeps its value, whatever is written;
- ``staging_takes_writes``: without a COMMIT the staging word is the previous one with the
  written byte lane (if the write named this memory and address) replaced;
- ``commit_swaps``: after a COMMIT the active word is what was staged (including a write in
  the COMMIT's own cycle) and the staging word the old active one;
- ``core_reads_active``: a core read of ``a`` returns, ``read_latency`` cycles later, the word
  that was active when the address was given.

Every input (writes, COMMIT, the core's reads, reset) is free in every cycle, but for one
contract of the single-port variant (each bank a memory of its own, the accelerator's weights):
there a read issued in COMMIT's own cycle returns the other bank's word, so the core must not
read in that cycle (the link commits only while no run is active). With ``registered_writes``
the writes and COMMITs reach the memories a cycle late: the same properties hold with both
taken a cycle late.
"""

from amaranth.hdl import Assert, Assume, Cat, Const, Elaboratable, Module, Mux, Signal, unsigned
from amaranth.hdl._ast import AnyConst, AnySeq

from sps_hw.config import ROM_NAMES
from sps_hw.memories import StagedImages

from .sby import internals

__all__ = ["SHAPES", "PartialCommit", "StagedImagesHarness", "WriteCommits"]

#: Small memories of 1- and 2-byte words, two words a bank (the logic does not depend on the
#: depth; the proof's run time does).
SHAPES = {"weights": (unsigned(12), 2), "index": (unsigned(4), 2), "library": (unsigned(9), 2)}


class PartialCommit(StagedImages):
    """Broken on purpose: COMMIT does not reach the last memory."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += list(self.banks.values())[-1].commit.eq(0)
        return m


class WriteCommits(StagedImages):
    """Broken on purpose: a write swaps the banks of the memory it goes to."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        for name, bank in self.banks.items():
            hit = self.write.valid & (self.write.payload.region == ROM_NAMES.index(name))
            m.d.comb += bank.commit.eq(self.commit | hit)
        return m


def _register(m, value, name):
    reg = Signal(name=name)
    m.d.sync += reg.eq(value)
    return reg


def _past(m, value, name, cycles=1):
    for i in range(cycles):
        reg = Signal.like(value, name=f"{name}_p{i + 1}", reset_less=True)
        m.d.sync += reg.eq(value)
        value = reg
    return value


class StagedImagesHarness(Elaboratable):
    """The properties above on ``dut_class(SHAPES, read_latency=..., single_port=...)``
    (single-port memories keep each bank in a memory of its own)."""

    def __init__(self, dut_class=StagedImages, read_latency=2, single_port=(),
                 registered_writes=False):
        self.dut = dut_class(SHAPES, read_latency=read_latency, single_port=single_port,
                             registered_writes=registered_writes)
        self.read_latency = read_latency
        self.delay = int(registered_writes)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        w = dut.write.payload
        m.d.comb += [dut.write.valid.eq(AnySeq(1)), w.eq(AnySeq(len(w.as_value()))),
                     dut.commit.eq(AnySeq(1))]
        # The writes and COMMITs as the memories take them, and a flag: enough cycles have
        # passed for the _p values to be real.
        valid, payload = dut.write.valid, dut.write.payload
        commit, started = dut.commit, Const(1)
        for i in range(self.delay):     # cleared by a reset, as the memories' registers are
            valid, commit, started = (_register(m, v, f"{n}_d{i + 1}") for v, n in (
                (valid, "valid"), (commit, "commit"), (started, "started")))
            payload = _past(m, payload, f"payload_d{i + 1}")
        started = _register(m, started, "started")
        commit_p = _past(m, commit, "commit")
        actives = [bank.active for bank in dut.banks.values()]
        m.d.comb += Assert(Cat(actives).all() | ~Cat(actives).any())
        for name, bank in dut.banks.items():
            self._memory(m, name, bank, dut, (valid, payload), commit, started, commit_p)
        return m

    def _memory(self, m, name, bank, dut, write, commit, started, commit_p):
        depth, lanes = bank.depth, bank.word_bytes
        a = AnyConst(bank.addr_width)
        m.d.comb += [bank_read.eq(AnySeq(len(bank_read))) for bank_read in
                     (getattr(dut, f"read_{name}").addr, getattr(dut, f"read_{name}").en)]
        if bank.single_port:            # word a of each bank's own memory
            mems = [internals(bank).submodules[f"bank{b}"] for b in range(2)]
            words = [mem.read_port(domain="comb") for mem in mems]
            m.d.comb += [port.addr.eq(a) for port in words]
            active_word = Mux(bank.active, words[1].data, words[0].data)
            staging_word = Mux(bank.active, words[0].data, words[1].data)
        else:                           # word a and word a + depth of the one memory
            ports = [bank.memory.read_port(domain="comb") for _ in range(2)]
            active_word, staging_word = (p.data for p in ports)
            m.d.comb += [ports[0].addr.eq(Mux(bank.active, a + depth, a)),
                         ports[1].addr.eq(Mux(bank.active, a, a + depth))]
        # The staging word after this cycle's write.
        valid, w = write
        hit = valid & (w.region == ROM_NAMES.index(name)) & (w.addr == a)
        staged = Signal.like(staging_word, name=f"{name}_staged")
        m.d.comb += staged.eq(staging_word)
        for lane in range(lanes):
            with m.If(hit & (w.lane == lane)):
                m.d.comb += staged.word_select(lane, 8).eq(w.data)
        staged_p = _past(m, staged, f"{name}_staged")
        active_p = _past(m, active_word, f"{name}_active")
        with m.If(started & ~commit_p):
            m.d.comb += [Assert(active_word == active_p), Assert(staging_word == staged_p)]
        with m.If(started & commit_p):
            m.d.comb += [Assert(active_word == staged_p), Assert(staging_word == active_p)]
        # The core's read: data now is the word that was active read_latency cycles ago.
        read = getattr(dut, f"read_{name}")
        if bank.single_port:            # its bank multiplexer follows the bank bit a cycle late
            m.d.comb += Assume(~(read.en & commit))
        lat = self.read_latency
        asked = _past(m, read.en & (read.addr == a), f"{name}_asked", lat)
        word = _past(m, active_word[:bank.width], f"{name}_word", lat)
        waited = _past(m, Const(1), f"{name}_waited", lat)
        with m.If(waited & asked):
            m.d.comb += Assert(read.data == word)
