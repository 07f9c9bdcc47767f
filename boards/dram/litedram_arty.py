"""The Arty A7-35T's DDR3L behind an AXI4 slave port: a CPU-less LiteDRAM core as Verilog.

:func:`generate` builds with Migen what LiteX's own Arty target (litex-boards
``litex_boards/targets/digilent_arty.py``) builds for its main RAM, less the CPU: the CRG (an
``S7PLL``, speed grade -1, from the board's 100 MHz ``clk100``: ``sys`` at ``clk_freq``,
100 MHz by default, the controller's clock; ``sys4x`` and ``sys4x_dqs`` at 4 x ``clk_freq``,
the latter at 90 degrees; ``idelay`` at 200 MHz, and an ``IDELAYCTRL`` on it: LiteX's
``S7IDELAYCTRL``; the target's 25 MHz Ethernet output is left out, the PLL's VCO stays at
1600 MHz), LiteDRAM's Artix-7 PHY (``A7DDRPHY``, DDR3, 4 phases), ``LiteDRAMCore`` with the
timings of the board's 256 MiB chip (``MT41K128M16``: 8 banks x 16384 rows x 1024 columns x
16 bits, 1:4), a 64-bit AXI4 slave port on its own clock, a DDR3 init sequencer and a
hardware read-leveling sequencer. :func:`generate` writes it with
``migen.fhdl.verilog.convert`` (LiteX's Xilinx lowering of ``MultiReg`` and
``AsyncResetSynchronizer`` and Vivado's attribute names, as LiteX's Vivado flow does) to
``<cache>/<key>/litedram_arty.v`` (module ``litedram_arty``); :func:`constraints` gives the
XDC and :func:`vivado_tcl` the Tcl lines that add both to a Vivado project.

``sim=True`` builds module ``litedram_arty_sim`` instead: the same controller, init and
leveling sequencers and AXI port, with LiteDRAM's ``SDRAMPHYModel`` (DDR3 on the DFI, the
chip's timings, ``sim_rows`` rows instead of 16384 so the model's memories stay small) in place
of the PHY, behind :class:`ReadEye`, which imitates the A7 PHY's read path: per byte lane an
IDELAY tap counter and an ISERDES ``BitSlip`` driven by the leveling sequencer exactly as the
PHY's CSRs drive them, read data arriving ``skew`` serial bits late (one more past tap
``shift``) and garbled at taps outside an eye mask (``sim_eye``). Reads are right only at the
bitslip and taps that leveling must find. No CRG: ``sys_clk``/``sys_rst`` are ports.

Ports (``litedram_arty``)

- ``clk100`` (input, E3): the board oscillator; ``rst`` (input, active high, asynchronous):
  resets the PLL (LiteX: ``~cpu_reset_n``), so the whole controller and the init replay.
- ``pll_locked`` (output): the PLL's lock; the ``sys*`` domains are held in reset without it.
- ``axi_clk``, ``axi_rst`` (inputs; reset synchronous, active high): the AXI port's clock
  (any frequency: an asynchronous FIFO per AXI channel, LiteX ``stream.ClockDomainCrossing``,
  crosses to ``sys``, as ``litedram_gen``'s ``axi_clock=True``).
- ``init_done`` (output, ``axi_clk`` domain): high once init and read leveling are done; AXI
  requests before it are held (``awready``/``wready``/``arready`` low), not lost.
- ``init_error`` (output, ``axi_clk`` domain): with ``init_done``, high if leveling found no
  window for some byte lane or the check at the chosen settings failed (the port still opens).
- ``level_bitslip[3*2]``, ``level_delay[5*2]`` (outputs, ``sys`` domain, static once
  ``init_done``): the bitslip and IDELAY tap chosen per byte lane (lane 0 in the low bits).
- ``s_axi_*``: AXI4 slave, 64-bit data (``data_width``), 32-bit byte addresses, 4-bit IDs
  (``id_width``), named as ``litedram_ulx3s``'s: ``aw{id,addr,len,size,burst,valid,ready}``,
  ``w{data,strb,last,valid,ready}``, ``b{id,resp,valid,ready}``,
  ``ar{id,addr,len,size,burst,valid,ready}``, ``r{id,data,resp,last,valid,ready}``.
  Addresses wrap at 256 MiB. The native port is 128 bits (16 pins x 2 edges x 4 phases); a
  64-bit AXI port goes through :class:`NarrowPort` (a 128-bit access per 64-bit beat, the
  other half's byte enables off), ``data_width=128`` uses the native port as it is.
- ``ddram_*``: the DDR3 pins, to be top-level ports of the same names (the XDC names them):
  outputs ``a[14]``, ``ba[3]``, ``ras_n``, ``cas_n``, ``we_n``, ``cs_n``, ``dm[2]``,
  ``clk_p``/``clk_n`` (``OBUFDS``), ``cke``, ``odt``, ``reset_n``; inouts ``dq[16]``
  (``IOBUF``), ``dqs_p[2]``/``dqs_n[2]`` (``IOBUFDS``). Every pin goes through an
  ``OSERDESE2``/``ISERDESE2`` (and ``IDELAYE2`` on ``dq``) inside: the top adds nothing.

``litedram_arty_sim`` has ``sys_clk``, ``sys_rst`` (synchronous), ``axi_clk``, ``axi_rst``,
``init_done``, ``init_error``, ``level_bitslip``, ``level_delay`` and ``s_axi_*``.

Init (no CPU): ``litedram_gen.InitSequencer`` plays ``get_sdram_phy_init_sequence`` for DDR3
on the DFI injector's external port, after :data:`RESET_HOLD_S` with ``RESET#`` and CKE low
(JEDEC: 200 us; LiteX's BIOS gets it from the time the CPU takes to boot): ``RESET#`` high
and 500 us (the sequence's 50,000 cycles at 100 MHz), CKE high and
``litedram_gen.POWER_UP_S``, then MR2 (CWL 5), MR3, MR1 (RZQ/6 drive, RZQ/4 ODT), MR0 (CL 7 --
the A7 PHY's CL + 1 -- BL 8, DLL reset) and ZQCL, each followed by at least 16 cycles (200
after MR0 and ZQCL: above tDLLK and tZQinit).

Read leveling: in hardware (:class:`ReadLeveler`), chosen over fixed settings because the
right bitslip and tap depend on the board's trace lengths, the chip and the temperature and
LiteX documents no defaults for them (the BIOS always scans). It does what LiteX's BIOS
``sdram_leveling`` does for this PHY (``liblitedram/sdram.c``; the A7 PHY has no write
leveling, write DQ-DQS training or write latency calibration, so read leveling is all):
for each of the 8 bitslips and each of the 32 IDELAY taps (``rdly_dq_bitslip_rst``/
``rdly_dq_bitslip``, ``rdly_dq_rst``/``rdly_dq_inc`` with ``dly_sel``), it activates row 0 of
bank 0, writes a 128-bit pseudo-random burst on ``wrphase``, reads it back on ``rdphase``,
precharges, for each of :data:`PATTERNS` patterns (the BIOS uses three seeds too), and a tap
works for a byte lane when all its bits read back right. Per lane it keeps the bitslip with
the most working taps (the first on ties) and, for it, the longest run of consecutive working
taps, of at least two (the first on ties; the BIOS's "delay on edges can be spotty" rule),
then sets that bitslip and the run's middle tap, ``(min + max) // 2``, and checks once more.
Both lanes scan together (``dly_sel`` = both; each lane is judged on its own bits), then each
is set on its own. Differences from the BIOS: its score adds the bit-error count of failing
taps, which only breaks ties between bitslips with equally many working taps (here the lower
bitslip wins); it retries the final check up to 8 times (here ``init_error`` is raised); it
scans one lane at a time. No refresh runs during leveling (as under the BIOS): 256 positions
x 3 patterns, about 54,000 cycles (0.54 ms at 100 MHz).

What the user still does in Vivado (nothing here was run through Vivado; it is not
installed): add the Verilog and :func:`constraints` (``vivado_tcl``), make ``ddram_*``,
``clk100`` top-level ports of those names, drive ``rst`` from ``~cpu_reset_n`` (C2) or tie it
low, feed ``axi_clk`` from a clock of the user's (e.g. a second ``MMCME2`` on ``clk100``) and
declare it asynchronous to the controller's clocks (``constraints(axi_clock=...)``), then
check timing (LiteX builds this PHY at 100 MHz on the -1L part) and the leveling result on the
board (``level_*``, ``init_error``).
"""

import copy
import hashlib
import json
import os
import random
from pathlib import Path
from types import SimpleNamespace

from litedram import modules as litedram_modules
from litedram.common import BitSlip
from litedram.core import LiteDRAMCore
from litedram.frontend.axi import LiteDRAMAXI2Native
from litedram.phy import dfi as litedram_dfi
from litedram.phy.model import SDRAMPHYModel, get_sdram_phy_settings
from litedram.phy.s7ddrphy import A7DDRPHY
from litex.build.xilinx.common import xilinx_special_overrides
from litex.build.xilinx.vivado import XilinxVivadoToolchain
from litex.soc.cores.clock import S7IDELAYCTRL, S7PLL
from litex.soc.interconnect import stream
from litex.soc.interconnect.axi import AXIInterface
from litex.soc.interconnect.csr import CSR, CSRStatus, CSRStorage
from migen import (
    Array,
    Case,
    Cat,
    ClockDomain,
    Constant,
    If,
    Module,
    Mux,
    Replicate,
    ResetInserter,
    Signal,
)
from migen.fhdl import verilog
from migen.genlib.cdc import MultiReg
from migen.genlib.fsm import FSM, NextState, NextValue
from migen.genlib.record import DIR_M_TO_S

from boards.dram.arty_pins import DDRAM_PINS, DIFF, IN_TERM
from boards.dram.litedram_gen import (
    AXI_CDC_DEPTHS,
    AXI_FIELDS,
    VERILATOR_WAIVERS,
    InitSequencer,
    _cache_root,
    versions,
)

__all__ = ["ARTY", "DDRAM_PINS", "PATTERNS", "RESET_HOLD_S", "SIM", "VERILATOR_WAIVERS",
           "LiteDRAMArty", "NarrowPort", "ReadEye", "ReadLeveler", "WindowPicker", "bios_pick",
           "constraints", "generate", "versions", "vivado_tcl"]

#: Default parameters: the Arty A7-35T's MT41K128M16 at LiteX's 100 MHz.
ARTY = {"module": "MT41K128M16", "clk_freq": 100e6, "data_width": 64, "id_width": 4}
#: Extra parameters of the simulation variant: the model's rows, and per byte lane the read
#: eye :class:`ReadEye` imitates: ``[skew, mask, shift]`` -- data ``skew`` (1-7) serial bits
#: late, one bit later from tap ``shift`` on, right only at the taps set in ``mask``. Lane 0:
#: bitslip 3 works at taps 1, 4-9, 11-19 (16), bitslip 4 at 20-27 (8): leveling must pick
#: bitslip 3, tap 15 (the run 11-19, not 4-9 nor the lone 1). Lane 1: bitslip 7 at 0-12,
#: bitslip 0 at 22-31: bitslip 7, tap 6.
SIM = {"sim_rows": 512,
       "sim_eye": [[3, sum(1 << t for t in (1, *range(4, 10), *range(11, 28))), 20],
                   [7, sum(1 << t for t in (*range(0, 13), *range(22, 32))), 16]]}
#: RESET# and CKE held low this long after reset before the init sequence starts (JEDEC).
RESET_HOLD_S = 200e-6
#: Test patterns per leveling position (128 bits each: 4 phases x 2 edges x 16 pins).
PATTERNS = 3
#: Cycles between the leveling sequencer's commands (above tRCD, WL + BL/2 + tWR, tRP at any
#: ``clk_freq`` up to 200 MHz) and after each tap or bitslip change.
LEVEL_GAP = 16


def _tie_csrs(module, csrs, driven=()):
    """No CPU: every CSR in ``csrs`` not in ``driven`` at its reset value, never written."""
    for csr in csrs:
        if csr in driven:
            continue
        if isinstance(csr, CSRStorage):
            module.comb += csr.re.eq(0)
            if not hasattr(csr, "dat_w"):
                module.comb += csr.storage.eq(csr.storage.reset)
        elif isinstance(csr, CSRStatus):
            module.comb += [csr.we.eq(0), csr.re.eq(0)]
        elif isinstance(csr, CSR):
            module.comb += [csr.re.eq(0), csr.r.eq(0), csr.we.eq(0)]


def _axi_port(module, port, data_width, id_width, ready_sys):
    """A ``s_axi_*`` AXI4 slave in domain ``axi`` on LiteDRAM native ``port`` (domain ``sys``)
    through an asynchronous FIFO per channel, held until ``ready_sys`` (crossed to ``axi``),
    as ``litedram_gen.LiteDRAMULX3S`` with ``axi_clock=True``. Returns the port signals."""
    axi = AXIInterface(data_width=data_width, address_width=32, id_width=id_width)
    module.submodules.axi2native = LiteDRAMAXI2Native(axi, port)
    outer = AXIInterface(data_width=data_width, address_width=32, id_width=id_width)
    for name, depth in AXI_CDC_DEPTHS.items():
        inward = name in ("aw", "w", "ar")
        cdc = stream.ClockDomainCrossing(getattr(axi, name).description,
                                         cd_from="axi" if inward else "sys",
                                         cd_to="sys" if inward else "axi", depth=depth)
        src, dst = (outer, axi) if inward else (axi, outer)
        module.submodules += cdc
        module.comb += [getattr(src, name).connect(cdc.sink),
                        cdc.source.connect(getattr(dst, name))]
    ready = Signal()
    module.specials += MultiReg(ready_sys, ready, odomain="axi")
    signals = {}
    for channel, fields in AXI_FIELDS.items():
        ch = getattr(outer, channel)
        inward = channel in ("aw", "w", "ar")
        for field in (*fields, "valid", "ready"):
            sig = Signal(len(getattr(ch, field)), name=f"s_axi_{channel}{field}")
            signals[channel + field] = sig
            if field == "valid" and inward:
                module.comb += ch.valid.eq(sig & ready)
            elif field == "ready" and inward:
                module.comb += sig.eq(ch.ready & ready)
            elif (field == "ready") != inward:
                module.comb += getattr(ch, field).eq(sig)
            else:
                module.comb += sig.eq(getattr(ch, field))
    for ch in (outer.aw, outer.ar):           # AXI4 signals LiteDRAM ignores, not ports
        module.comb += [ch.lock.eq(0), ch.prot.eq(0), ch.cache.eq(0), ch.qos.eq(0),
                        ch.region.eq(0)]
    return signals


class NarrowPort(Module):
    """A native port ``narrow`` of a fraction 1/``ratio`` of ``wide``'s data width: each
    command is one command of ``wide`` (address divided by ``ratio``), the data in its slice
    (writes: the data replicated, byte enables only in the slice; reads: the slice taken, in
    order, by a FIFO of the slices in flight). In place of LiteDRAM's
    ``LiteDRAMNativePortUpConverter`` (``get_port(data_width=64)``), with which the first AXI
    write of this file's simulation test never completed (not investigated). No merging of
    neighbouring beats: a beat a command, at the controller's command rate (one a ``sys``
    cycle at best)."""

    def __init__(self, wide, ratio, depth=32):
        from litedram.common import LiteDRAMNativePort
        from migen.genlib.fifo import SyncFIFO
        width = wide.data_width // ratio
        shift = (ratio - 1).bit_length()
        self.narrow = narrow = LiteDRAMNativePort("both", wide.address_width + shift, width)
        wsel, rsel = SyncFIFO(shift, depth), SyncFIFO(shift, depth)
        self.submodules += wsel, rsel
        room = Mux(narrow.cmd.we, wsel.writable, rsel.writable)
        self.comb += [
            wide.cmd.valid.eq(narrow.cmd.valid & room), wide.cmd.we.eq(narrow.cmd.we),
            wide.cmd.last.eq(narrow.cmd.last), wide.cmd.addr.eq(narrow.cmd.addr[shift:]),
            narrow.cmd.ready.eq(wide.cmd.ready & room),
            wsel.din.eq(narrow.cmd.addr[:shift]), rsel.din.eq(narrow.cmd.addr[:shift]),
            wsel.we.eq(narrow.cmd.valid & narrow.cmd.ready & narrow.cmd.we),
            rsel.we.eq(narrow.cmd.valid & narrow.cmd.ready & ~narrow.cmd.we),
            # writes: one data beat per command, in order
            wide.wdata.valid.eq(narrow.wdata.valid & wsel.readable),
            narrow.wdata.ready.eq(wide.wdata.ready & wsel.readable),
            wide.wdata.data.eq(Replicate(narrow.wdata.data, ratio)),
            wide.wdata.we.eq(Array(narrow.wdata.we << (k * width // 8)
                                   for k in range(ratio))[wsel.dout]),
            wsel.re.eq(narrow.wdata.valid & narrow.wdata.ready),
            # reads
            narrow.rdata.valid.eq(wide.rdata.valid),
            wide.rdata.ready.eq(narrow.rdata.ready),
            narrow.rdata.data.eq(Array(wide.rdata.data[k * width:(k + 1) * width]
                                       for k in range(ratio))[rsel.dout]),
            rsel.re.eq(wide.rdata.valid & wide.rdata.ready),
        ]


def level_patterns(nphases=4, dfi_databits=32, count=PATTERNS):
    """The leveling patterns: ``count`` pseudo-random ints of ``nphases * dfi_databits`` bits
    (phase 0 in the low bits), from the BIOS's seeds 42, 84 and 36 (Python's generator, not the
    BIOS's LFSR: any random burst tells the bitslips apart)."""
    seeds = (42, 84, 36, 7, 99, 1)
    return [random.Random(seeds[i]).getrandbits(nphases * dfi_databits) for i in range(count)]


class WindowPicker(Module):
    """The leveling decision for one byte lane, fed one (tap, works) sample at a time.

    ``clear`` forgets everything; ``sample`` with ``delay`` and ``working`` adds a tap (taps in
    increasing order within a bitslip); ``end`` with ``bitslip`` closes the bitslip's scan.
    ``best_bitslip`` is the first bitslip with the most working taps (``best_count``);
    ``best_min``/``best_max`` its longest run of consecutive working taps (the first on ties;
    ``found`` only if at least two taps long), ``mid`` its middle tap."""

    def __init__(self, delays=32, bitslips=8):
        self.clear, self.sample, self.end = Signal(), Signal(), Signal()
        self.delay, self.working = Signal(max=delays), Signal()
        self.bitslip = Signal(max=bitslips)
        self.best_bitslip = Signal(max=bitslips)
        self.best_count = Signal(max=delays + 1)
        self.best_min, self.best_max = Signal(max=delays), Signal(max=delays)
        self.found, self.mid = Signal(), Signal(max=delays)
        count, prev = Signal(max=delays + 1), Signal()
        cur_start, run_min, run_max = (Signal(max=delays) for _ in range(3))
        start, run_len, best_len = Signal(max=delays), Signal(max=delays), Signal(max=delays)
        best_sum = Signal(max=2 * delays)
        self.comb += [start.eq(Mux(prev, cur_start, self.delay)),
                      run_len.eq(self.delay - start), best_len.eq(run_max - run_min),
                      self.found.eq(self.best_max != self.best_min),
                      best_sum.eq(self.best_min + self.best_max), self.mid.eq(best_sum[1:])]
        per_bitslip = [count.eq(0), prev.eq(0), run_min.eq(0), run_max.eq(0)]
        self.sync += If(self.clear, *per_bitslip, self.best_count.eq(0),
                        self.best_bitslip.eq(0), self.best_min.eq(0), self.best_max.eq(0)
                        ).Elif(self.sample,
                               prev.eq(self.working),
                               If(self.working, count.eq(count + 1), cur_start.eq(start),
                                  If(run_len > best_len, run_min.eq(start),
                                     run_max.eq(self.delay)))
                               ).Elif(self.end,
                                      If(count > self.best_count, self.best_count.eq(count),
                                         self.best_bitslip.eq(self.bitslip),
                                         self.best_min.eq(run_min), self.best_max.eq(run_max)),
                                      *per_bitslip)


def bios_pick(working):
    """LiteX BIOS read leveling (``sdram_read_leveling`` and ``sdram_leveling_center_module``
    of ``liblitedram/sdram.c``, 2024.12) on ``working[bitslip][tap]`` (bools), with the score's
    error count left out: ``(bitslip, tap)`` it sets, tap ``None`` if it finds no window."""
    best_score, best_bitslip = 0, 0
    for bitslip, taps in enumerate(working):
        score = sum(taps)
        if score > best_score:
            best_bitslip, best_score = bitslip, score
    taps = working[best_bitslip]
    delays = len(taps)
    delay, ok, delay_min = 0, False, -1
    while True:                                 # the smallest delay of two working in a row
        last, ok = ok, taps[delay]
        if ok and last and delay_min < 0:
            delay_min = delay - 1
            break
        delay += 1
        if delay >= delays:
            break
    delay_max = cur_min = delay_min
    while delay < delays:                       # the largest working range
        if taps[delay]:
            if delay - cur_min > delay_max - delay_min:
                delay_min, delay_max = cur_min, delay
        else:
            cur_min = delay + 1
        delay += 1
    if delay_min < 0:
        return best_bitslip, None
    return best_bitslip, (delay_min + delay_max) // 2 % delays


class ReadLeveler(Module):
    """Hardware read leveling (the BIOS's, see the module docstring) on its own DFI ``dfi``
    (to be selected on the PHY while ``done`` is low), driving the PHY's ``sel`` (``dly_sel``)
    and the pulses ``rst_delay``/``inc_delay``/``rst_bitslip``/``inc_bitslip`` (the ``.re`` of
    ``rdly_dq_rst``/``rdly_dq_inc``/``rdly_dq_bitslip_rst``/``rdly_dq_bitslip``). ``start``
    high begins it; ``done`` rises at the end with ``error``, ``bitslip``/``delay`` (3 and 5
    bits per lane) the settings applied."""

    def __init__(self, geom, settings, rdphase, wrphase, patterns=PATTERNS, gap=LEVEL_GAP):
        nphases, databits, strobes = settings.nphases, settings.databits, settings.strobes
        delays, bitslips = settings.delays, settings.bitslips
        lane_bits = databits // strobes
        self.dfi = dfi = litedram_dfi.Interface(geom.addressbits, geom.bankbits, settings.nranks,
                                                settings.dfi_databits, nphases)
        self.start, self.done, self.error = Signal(), Signal(), Signal()
        self.sel = Signal(strobes)
        self.rst_delay, self.inc_delay = Signal(), Signal()
        self.rst_bitslip, self.inc_bitslip = Signal(), Signal()
        self.pickers = pickers = [WindowPicker(delays, bitslips) for _ in range(strobes)]
        self.submodules += pickers
        self.bitslip = Signal(3 * strobes)
        self.delay = Signal(5 * strobes)
        self.patterns = level_patterns(nphases, settings.dfi_databits, patterns)

        bits = nphases * settings.dfi_databits
        pat = Signal(max=max(patterns, 2))
        pattern = Signal(bits)
        self.comb += pattern.eq(Array(Constant(p, bits) for p in self.patterns)[pat])
        captured = [Signal(settings.dfi_databits) for _ in range(nphases)]
        valid = Signal()                        # (the DRAM model raises phase 0's only)
        self.comb += valid.eq(Cat(*[phase.rddata_valid for phase in dfi.phases]) != 0)
        for p, phase in enumerate(dfi.phases):
            self.sync += If(valid, captured[p].eq(phase.rddata))
            self.comb += [phase.cke.eq(Replicate(1, len(phase.cke))),
                          phase.odt.eq(Replicate(1, len(phase.odt))), phase.reset_n.eq(1),
                          phase.wrdata.eq(pattern[p * settings.dfi_databits:
                                                  (p + 1) * settings.dfi_databits]),
                          phase.wrdata_mask.eq(0)]
        lane_ok = Signal(strobes)               # this read: each lane's bits all right
        for m in range(strobes):
            pairs = []
            for p in range(nphases):
                for edge in range(2):
                    lo = p * settings.dfi_databits + edge * databits + m * lane_bits
                    got = captured[p][edge * databits + m * lane_bits:][:lane_bits]
                    pairs.append(got == pattern[lo:lo + lane_bits])
            ok = pairs[0]
            for term in pairs[1:]:
                ok = ok & term
            self.comb += lane_ok[m].eq(ok)
        passed = Signal(strobes)                # all patterns so far at this position

        def command(phase, ras, cas, we, address=0, **extra):
            ph = dfi.phases[phase]
            return [ph.cs_n.eq(0), ph.ras_n.eq(not ras), ph.cas_n.eq(not cas),
                    ph.we_n.eq(not we), ph.address.eq(address), ph.bank.eq(0),
                    *[getattr(ph, k).eq(v) for k, v in extra.items()]]

        read_wait = settings.read_latency + 8   # the PHY's latency and the capture register
        timer = Signal(max=max(gap, read_wait) + 1)
        bs, d = Signal(max=bitslips), Signal(max=delays)
        lane = Signal(max=max(strobes, 2))
        count = Signal(max=max(delays, bitslips))
        verify = Signal()
        everyone = 2**strobes - 1
        lane_sel = Signal(strobes)
        self.comb += lane_sel.eq(Array(Constant(1 << m, strobes) for m in range(strobes))[lane])
        chosen_bs = Array(pk.best_bitslip for pk in pickers)[lane]
        chosen_d = Array(pk.mid for pk in pickers)[lane]
        for pk in pickers:
            self.comb += [pk.delay.eq(d), pk.bitslip.eq(bs)]
        for m, pk in enumerate(pickers):
            self.comb += [self.bitslip[3 * m:3 * m + 3].eq(pk.best_bitslip),
                          self.delay[5 * m:5 * m + 5].eq(pk.mid), pk.working.eq(passed[m])]
        self.sync += If(timer != 0, timer.eq(timer - 1))
        waited = timer == 0

        def wait_then(state, cycles=gap):
            return [NextValue(timer, cycles - 1), NextState(state)]

        self.submodules.fsm = fsm = FSM(reset_state="IDLE")
        fsm.act("IDLE", If(self.start,
                           self.sel.eq(everyone), self.rst_bitslip.eq(1), self.rst_delay.eq(1),
                           *[pk.clear.eq(1) for pk in pickers],
                           NextValue(bs, 0), NextValue(d, 0), NextValue(verify, 0),
                           NextValue(self.error, 0), *wait_then("SETTLE")))
        fsm.act("SETTLE", If(waited, NextValue(pat, 0), NextValue(passed, everyone),
                             NextState("ACT")))
        fsm.act("ACT", If(waited, *command(0, ras=1, cas=0, we=0), *wait_then("WRITE")))
        fsm.act("WRITE", If(waited, *command(wrphase, ras=0, cas=1, we=1, wrdata_en=1),
                            *wait_then("READ")))
        fsm.act("READ", If(waited, *command(rdphase, ras=0, cas=1, we=0, rddata_en=1),
                           *wait_then("PRECHARGE", read_wait)))
        fsm.act("PRECHARGE", If(waited, *command(0, ras=1, cas=0, we=1, address=1 << 10),
                                NextValue(passed, passed & lane_ok),
                                *wait_then("NEXT")))
        fsm.act("NEXT", If(waited,
                           If(pat == patterns - 1,
                              If(verify, NextValue(self.error, self.error | (passed != everyone)),
                                 NextState("DONE")).Else(NextState("SAMPLE"))
                              ).Else(NextValue(pat, pat + 1), NextState("ACT"))))
        fsm.act("SAMPLE", *[pk.sample.eq(1) for pk in pickers],
                If(d == delays - 1, NextState("END_BITSLIP")).Else(
                    self.sel.eq(everyone), self.inc_delay.eq(1), NextValue(d, d + 1),
                    *wait_then("SETTLE")))
        fsm.act("END_BITSLIP", *[pk.end.eq(1) for pk in pickers],
                If(bs == bitslips - 1, NextValue(lane, 0), NextState("APPLY")).Else(
                    self.sel.eq(everyone), self.inc_bitslip.eq(1), self.rst_delay.eq(1),
                    NextValue(bs, bs + 1), NextValue(d, 0), *wait_then("SETTLE")))
        fsm.act("APPLY", self.sel.eq(lane_sel), self.rst_bitslip.eq(1), self.rst_delay.eq(1),
                NextValue(count, 0), NextState("APPLY_BITSLIP"))
        fsm.act("APPLY_BITSLIP", If(count == chosen_bs, NextValue(count, 0),
                                    NextState("APPLY_DELAY")).Else(
            self.sel.eq(lane_sel), self.inc_bitslip.eq(1), NextValue(count, count + 1)))
        fsm.act("APPLY_DELAY", If(count == chosen_d,
                                  If(lane == strobes - 1, NextValue(verify, 1),
                                     NextValue(self.error, self.error | (Cat(
                                         *[~pk.found for pk in pickers]) != 0)),
                                     *wait_then("SETTLE")).Else(
                                      NextValue(lane, lane + 1), NextState("APPLY"))).Else(
            self.sel.eq(lane_sel), self.inc_delay.eq(1), NextValue(count, count + 1)))
        fsm.act("DONE", self.done.eq(1))


class ReadEye(Module):
    """The A7 PHY's read path as leveling sees it, around ``model`` (a ``SDRAMPHYModel``):
    ``dfi`` is the controller's side (commands and writes pass through; reads come two cycles
    after the model's, hence ``settings.read_latency`` + 2). Per byte lane, a tap counter
    (``rst_delay``/``inc_delay`` with ``sel``, wrapping at 32 as an IDELAYE2) and, per pin, the
    model's 8 serial bits a cycle arriving ``skew`` bits late (``skew + 1`` from tap ``shift``
    on), inverted in alternate bits when the tap is not in ``mask``, then LiteDRAM's own
    ``BitSlip`` (``rst_bitslip``/``inc_bitslip`` with ``sel``) as in ``S7DDRPHY``."""

    def __init__(self, model, eye, sel, rst_delay, inc_delay, rst_bitslip, inc_bitslip):
        s = model.settings
        self.settings = copy.copy(s)
        self.settings.read_latency = s.read_latency + 2
        self.dfi = dfi = litedram_dfi.Interface(len(model.dfi.p0.address),
                                                len(model.dfi.p0.bank), s.nranks,
                                                s.dfi_databits, s.nphases)
        for outer, inner in zip(dfi.phases, model.dfi.phases):
            for name, _, direction in outer.layout:
                if direction == DIR_M_TO_S:
                    self.comb += getattr(inner, name).eq(getattr(outer, name))
            valid = [Signal(), Signal()]
            self.sync += [valid[0].eq(inner.rddata_valid), valid[1].eq(valid[0])]
            self.comb += outer.rddata_valid.eq(valid[1])
        databits, lanes = s.databits, len(eye)
        lane_bits = databits // lanes
        self.taps = []
        for m, (skew, mask, shift) in enumerate(eye):
            assert 1 <= skew <= 7 and 0 <= shift <= 32
            tap = Signal(5, name=f"eye_tap{m}")
            self.taps.append(tap)
            self.sync += If(sel[m] & rst_delay, tap.eq(0)).Elif(sel[m] & inc_delay,
                                                               tap.eq(tap + 1))
            late = Signal(4)
            clean = Signal()
            self.comb += [late.eq(skew + (tap >= shift)),
                          clean.eq(Array(Constant((mask >> t) & 1, 1) for t in range(32))[tap])]
            for i in range(m * lane_bits, (m + 1) * lane_bits):
                word = Cat(*[model.dfi.phases[n // 2].rddata[n % 2 * databits + i]
                             for n in range(8)])
                prev, shifted = Signal(8), Signal(8)
                self.sync += prev.eq(word)
                window = Cat(prev, word)
                self.comb += Case(late, {k: shifted.eq(window[8 - k:16 - k]) for k in range(1, 9)})
                slip = BitSlip(8, i=Mux(clean, shifted, shifted ^ 0x55),
                               rst=sel[m] & rst_bitslip, slp=sel[m] & inc_bitslip, cycles=1)
                self.submodules += slip
                for n in range(8):
                    self.comb += dfi.phases[n // 2].rddata[n % 2 * databits + i].eq(slip.o[n])


def _phy_pads():
    return SimpleNamespace(**{name: Signal(len(pins), name=f"ddram_{name}")
                              for name, pins in DDRAM_PINS.items()})


class LiteDRAMArty(Module):
    """CRG, A7DDRPHY (or :class:`ReadEye` on the DRAM model), controller, init and leveling
    sequencers and the AXI port; ``ios`` are the Verilog ports."""

    def __init__(self, sim=False, module="MT41K128M16", clk_freq=100e6, data_width=64,
                 id_width=4, sim_rows=SIM["sim_rows"], sim_eye=SIM["sim_eye"]):
        chip_cls = getattr(litedram_modules, module)
        pads = _phy_pads()
        self.ios = set()
        if sim:
            chip_cls = type(f"{module}Sim", (chip_cls,), {"nrows": sim_rows})
        chip = chip_cls(clk_freq, "1:4")
        geom = chip.geom_settings
        geom.addressbits = len(pads.a)          # (sim: fewer rows, the same 14 address pins)
        # The A7 PHY: the board's PHY, or (sim) only for its settings (the init sequence's CL).
        a7 = A7DDRPHY(pads, memtype="DDR3", nphases=4, sys_clk_freq=clk_freq)
        rdphase = a7._rdphase.storage.reset.value
        wrphase = a7._wrphase.storage.reset.value
        self.submodules.level = level = ReadLeveler(geom, a7.settings, rdphase, wrphase)
        if sim:
            model = SDRAMPHYModel(chip, settings=get_sdram_phy_settings("DDR3", 16, clk_freq),
                                  clk_freq=clk_freq)
            assert (model.settings.rdphase, model.settings.wrphase) == (rdphase, wrphase)
            self.submodules.model = model
            phy = ReadEye(model, sim_eye, level.sel, level.rst_delay, level.inc_delay,
                          level.rst_bitslip, level.inc_bitslip)
        else:
            phy = a7
            self._crg(clk_freq)
            self.ios |= set(vars(pads).values())
            self.comb += [a7._dly_sel.storage.eq(level.sel),
                          a7._rdly_dq_rst.re.eq(level.rst_delay),
                          a7._rdly_dq_inc.re.eq(level.inc_delay),
                          a7._rdly_dq_bitslip_rst.re.eq(level.rst_bitslip),
                          a7._rdly_dq_bitslip.re.eq(level.inc_bitslip)]
            _tie_csrs(self, a7.get_csrs(), driven={a7._dly_sel, a7._rdly_dq_rst, a7._rdly_dq_inc,
                                                   a7._rdly_dq_bitslip_rst,
                                                   a7._rdly_dq_bitslip})
        self.submodules.phy = phy
        self.submodules.core = core = LiteDRAMCore(phy, geom, chip.timing_settings, clk_freq)
        _tie_csrs(self, core.get_csrs())

        # Init, then leveling, on the injector's external DFI; then the controller.
        dfii = core.dfii
        init_dfi = litedram_dfi.Interface(geom.addressbits, geom.bankbits, a7.settings.nranks,
                                          a7.settings.dfi_databits, 4)
        init = InitSequencer(SimpleNamespace(ext_dfi=init_dfi, ext_dfi_sel=Signal()),
                             a7.settings, chip.timing_settings, clk_freq)
        self.submodules.init = ResetInserter()(init)
        hold = Signal(max=int(RESET_HOLD_S * clk_freq) + 1, reset=int(RESET_HOLD_S * clk_freq))
        self.sync += If(hold != 0, hold.eq(hold - 1))
        self.comb += [self.init.reset.eq(hold != 0), level.start.eq(init.done),
                      dfii.ext_dfi_sel.eq(~level.done),
                      If(init.done, level.dfi.connect(dfii.ext_dfi)).Else(
                          init_dfi.connect(dfii.ext_dfi))]

        self.init_done = Signal(name="init_done")
        self.init_error = Signal(name="init_error")
        self.level_bitslip = Signal(len(level.bitslip), name="level_bitslip")
        self.level_delay = Signal(len(level.delay), name="level_delay")
        self.specials += MultiReg(level.error, self.init_error, odomain="axi")
        self.comb += [self.level_bitslip.eq(level.bitslip), self.level_delay.eq(level.delay)]
        port = core.crossbar.get_port()
        if data_width < port.data_width:
            self.submodules.narrow = narrow = NarrowPort(port, port.data_width // data_width)
            port = narrow.narrow
        self.s_axi = _axi_port(self, port, data_width, id_width, level.done)
        self.specials += MultiReg(level.done, self.init_done, odomain="axi")
        self.ios |= {self.init_done, self.init_error, self.level_bitslip, self.level_delay,
                     *self.s_axi.values()}

    def _crg(self, clk_freq):
        """LiteX's Arty CRG (``_CRG`` of the target) with ``clk100`` and ``rst`` as ports."""
        self.clk100 = Signal(name="clk100")
        self.rst = Signal(name="rst")
        self.pll_locked = Signal(name="pll_locked")
        self.clock_domains.cd_sys = ClockDomain("sys")
        self.clock_domains.cd_sys4x = ClockDomain("sys4x")
        self.clock_domains.cd_sys4x_dqs = ClockDomain("sys4x_dqs")
        self.clock_domains.cd_idelay = ClockDomain("idelay")
        self.submodules.pll = pll = S7PLL(speedgrade=-1)
        self.comb += [pll.reset.eq(self.rst), self.pll_locked.eq(pll.locked)]
        pll.register_clkin(self.clk100, 100e6)
        pll.create_clkout(self.cd_sys, clk_freq)
        pll.create_clkout(self.cd_sys4x, 4 * clk_freq)
        pll.create_clkout(self.cd_sys4x_dqs, 4 * clk_freq, phase=90)
        pll.create_clkout(self.cd_idelay, 200e6)
        self.submodules.idelayctrl = S7IDELAYCTRL(self.cd_idelay)
        self.ios |= {self.clk100, self.rst, self.pll_locked}


def constraints(axi_clock=None, pins=True):
    """XDC for the ``ddram_*`` pins, ``clk100`` and the core's false paths, as LiteX's Vivado
    flow writes them for the Arty target (pins and IO standards from litex-boards'
    ``digilent_arty.py``, :mod:`.arty_pins`; ``INTERNAL_VREF 0.675`` on bank 34; the
    ``mr_ff``/``ars_ff`` false paths of ``litex/build/xilinx/vivado.py``). ``axi_clock``: a
    Tcl expression for the AXI port's clock object (e.g. ``[get_clocks clk_out1_clk_wiz_0]``)
    to declare asynchronous to the controller's PLL clocks. ``pins=False`` leaves out the pins
    and ``clk100`` (a top whose platform constrains them: ``boards.dram.arty_controller``).
    Text only: not run through Vivado."""
    lines = ["# litedram_arty: DDR3 pins of the Arty A7 (litex-boards digilent_arty.py)" if pins
             else "# litedram_arty: DDR3 bank and timing (the pins are in the top's XDC)"]
    if pins:
        for name, package_pins in DDRAM_PINS.items():
            std = "DIFF_SSTL135" if name in DIFF else "SSTL135"
            for i, pin in enumerate(package_pins):
                port = f"{{ddram_{name}[{i}]}}" if len(package_pins) > 1 else f"ddram_{name}"
                lines.append(f"set_property -dict {{PACKAGE_PIN {pin} IOSTANDARD {std} "
                             f"SLEW FAST}} [get_ports {port}]")
                if name in IN_TERM:
                    lines.append(f"set_property IN_TERM UNTUNED_SPLIT_40 [get_ports {port}]")
    lines.append("set_property INTERNAL_VREF 0.675 [get_iobanks 34]")
    if pins:
        lines += ["",
                  "# The board clock (100 MHz) and the reset button (active low: "
                  "rst = ~cpu_reset_n)",
                  "set_property -dict {PACKAGE_PIN E3 IOSTANDARD LVCMOS33} [get_ports clk100]",
                  "create_clock -name clk100 -period 10.0 [get_ports clk100]",
                  "# with the reset button as a top port (rst = ~cpu_reset_n), uncomment:",
                  "# set_property -dict {PACKAGE_PIN C2 IOSTANDARD LVCMOS33} "
                  "[get_ports cpu_reset_n]"]
    lines += ["",
              "# False paths (LiteX vivado.py): MultiReg inputs, AsyncResetSynchronizer presets",
              "set_false_path -quiet -through [get_nets -hierarchical -filter {mr_ff == TRUE}]",
              "set_false_path -quiet -to [get_pins -filter {REF_PIN_NAME == PRE} -of_objects "
              "[get_cells -hierarchical -filter {ars_ff1 == TRUE || ars_ff2 == TRUE}]]",
              "set_max_delay 2 -quiet -from [get_pins -filter {REF_PIN_NAME == C} -of_objects "
              "[get_cells -hierarchical -filter {ars_ff1 == TRUE}]] -to [get_pins -filter "
              "{REF_PIN_NAME == D} -of_objects [get_cells -hierarchical -filter "
              "{ars_ff2 == TRUE}]]"]
    if axi_clock:
        lines += ["", "# The AXI port's clock is asynchronous to the controller's PLL clocks",
                  "set_clock_groups -asynchronous -group [get_clocks -of_objects [get_pins "
                  "-hierarchical -filter {NAME =~ *PLLE2_ADV/CLKOUT*}]] -group " + axi_clock]
    return "\n".join(lines) + "\n"


def vivado_tcl(verilog_path, xdc_path):
    """Tcl lines adding the generated Verilog and the XDC to an open Vivado project."""
    return (f"add_files -norecurse {{{verilog_path}}}\n"
            f"add_files -fileset constrs_1 -norecurse {{{xdc_path}}}\n")


def generate(sim=False, cache_dir=None, **params):
    """Path of the Verilog of the Arty core (``sim``: on the DRAM model) for ``params``
    (:data:`ARTY`, with ``sim``: :data:`SIM` too), generated into ``cache_dir`` (default
    ``~/.cache/sps/litedram``) under a key of versions, parameters and this file's and
    ``litedram_gen``'s sources. Writes ``litedram_arty.xdc`` (:func:`constraints`) beside it."""
    defaults = {**ARTY, **(SIM if sim else {})}
    unknown = set(params) - set(defaults)
    if unknown:
        raise TypeError(f"unknown parameters {sorted(unknown)}; expected {sorted(defaults)}")
    params = {**defaults, **params}
    name = "litedram_arty_sim" if sim else "litedram_arty"
    here = Path(__file__)
    source = hashlib.sha256(here.read_bytes() + here.with_name("litedram_gen.py").read_bytes())
    key_text = json.dumps({"versions": versions(), "params": params, "sim": sim,
                           "source": source.hexdigest()}, sort_keys=True)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    out = Path(cache_dir or _cache_root()) / key / f"{name}.v"
    if out.is_file():
        return out
    top = LiteDRAMArty(sim=sim, **params)
    if sim:
        text = str(verilog.convert(top, ios=top.ios, name=name))
    else:
        text = str(verilog.convert(top, ios=top.ios, name=name,
                                   special_overrides=xilinx_special_overrides,
                                   attr_translate=XilinxVivadoToolchain.attr_translate))
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / "key.json").write_text(key_text + "\n")
    if not sim:
        (out.parent / "litedram_arty.xdc").write_text(constraints())
    tmp = out.with_suffix(f".v.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(out)                           # atomic: concurrent callers see all or nothing
    return out


if __name__ == "__main__":
    import sys
    print(generate(sim="--sim" in sys.argv[1:]))
