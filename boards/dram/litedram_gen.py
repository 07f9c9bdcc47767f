"""The ULX3S's SDR SDRAM behind an AXI4 slave port: a LiteDRAM core generated as Verilog.

:func:`generate` builds, with Migen, LiteDRAM's generic SDR PHY (``GENSDRPHY``, the PHY
LiteX's own ULX3S target uses), ``LiteDRAMCore`` with the timings of the board's 32 MiB
chip (``MT48LC16M16``: 4 banks x 8192 rows x 512 columns x 16 bits, LiteX's default for
the board; the ISSI ``IS42S16160`` some boards carry has the same geometry), a 64-bit AXI4
user port and an init sequencer, and writes it with ``migen.fhdl.verilog.convert`` to
``<cache>/<key>/litedram_ulx3s.v`` (module ``litedram_ulx3s``). ``sim=True`` puts LiteDRAM's
``SDRAMPHYModel`` (the DRAM as memories, on the DFI) in place of the PHY and its pins: module
``litedram_ulx3s_sim``, the same controller and port, runnable under Verilator. The key hashes
the Migen/LiteX/LiteDRAM versions, the parameters and this file; a file already there is
reused.

Ports (one clock domain unless ``axi_clock``; resets synchronous, active high)

- ``sys_clk``, ``sys_rst``: the controller's clock (``clk_freq``, 50 MHz by default as in
  LiteX's target; the timings in cycles follow it) and reset. A reset replays the init.
- ``axi_clk``, ``axi_rst`` (``axi_clock=True`` only): the AXI port's clock; an asynchronous
  FIFO per AXI channel (LiteX ``stream.ClockDomainCrossing``) crosses to ``sys_clk``.
- ``init_done``: high once the init sequence has played; AXI requests before it are held
  (``awready``/``wready``/``arready`` low), not lost.
- ``s_axi_*``: AXI4 slave, 64-bit data (``data_width``), 32-bit byte addresses,
  ``id_width``-bit IDs: ``aw{id,addr,len,size,burst,valid,ready}``, ``w{data,strb,last,valid,
  ready}``, ``b{id,resp,valid,ready}``, ``ar{id,addr,len,size,burst,valid,ready}``,
  ``r{id,data,resp,last,valid,ready}``. INCR bursts of up to 256 beats, narrow ones too, any
  strobes (FIXED and WRAP are LiteDRAM's too, untested here); responses always OKAY, in order.
  Addresses wrap at 32 MiB. The native port of a 16-bit SDR PHY is 16 bits wide: LiteDRAM's
  port converter splits each 64-bit beat into four 16-bit accesses (strobes kept per byte),
  at 5 cycles a beat: 64 KiB in 256-beat bursts take 41,844 cycles to write and 41,352 to read
  (1.57 bytes a cycle of the 2 the pins carry; ``data_width=16``, the native port: 34,498 and
  34,052, 1.9 bytes a cycle; 32: 1.31).
- ``sdram_*`` (not in the simulation variant): ``a[13]``, ``ba[2]``, ``cs_n``, ``cke``,
  ``ras_n``, ``cas_n``, ``we_n``, ``dm[2]`` (outputs), and ``dq`` raw as ``dq_o[16]``,
  ``dq_oe`` (one enable for all 16 pins) and ``dq_i[16]``. GENSDRPHY's IO registers are inside
  (every output, ``dq_oe`` and ``dq_i`` registered on ``sys_clk``, as LiteX's generic
  ``SDROutput``/``SDRTristate``); the read latency LiteDRAM assumes (CL + 2 cycles from the
  command on DFI) counts on them, so the top adds no register of its own on these pins.

The init sequencer (no CPU): plays ``litedram.init.get_sdram_phy_init_sequence`` for the PHY's
settings (SDR: CKE high, precharge all, mode register with DLL-reset bit, precharge all, two
auto-refreshes, mode register: CL 2 below 100 MHz, burst length 1) through the DFI injector's
external DFI port (``ext_dfi``, selected while the sequence runs), one command a cycle on
phase 0 as LiteX's BIOS does with ``command_p0``; a control step (``DFII_CONTROL_*``) sets
CKE/ODT/RESET_N as ``sdram_dfii_control_write`` does. After each step it waits the step's
delay taken as cycles (the BIOS's ``cdelay`` loop count, a lower bound), at least
:data:`MIN_GAP` cycles (above tRP, tRFC and tMRD), and after CKE high at least
:data:`POWER_UP_S`. Then it deselects ``ext_dfi`` (the controller drives the DFI, refreshes
included) and raises ``init_done``: 20,473 cycles after reset at 50 MHz. The injector's
CSRs, which a CPU would write, are tied to their reset values (hardware control).

What the board top still does:

- the SDRAM clock pin (``sdram_clk``, F19 on the ULX3S): ``sys_clk`` phase-shifted by a PLL
  output (LiteX: 90 degrees, through a DDR output register ``DDROutput(1, 0, pin, clk_ps)``),
  so the chip samples commands and write data mid-cycle and read data arrives before the
  capturing edge;
- the pins: ``dq`` as a tristate buffer of ``dq_o``/``dq_oe``/``dq_i`` (IO type LVCMOS33,
  slew FAST, as both board files say), the other outputs straight to their pins;
- the clock-domain crossing when the tile engine's clock is not ``sys_clk``: either run the
  controller on the core clock (one domain; the timings follow ``clk_freq``), or
  ``axi_clock=True`` and feed ``axi_clk`` with the engine's clock;
- ``sys_rst`` from the PLL lock, and the engine waiting for ``init_done``.
"""

import hashlib
import json
import math
import os
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

from litedram import modules as litedram_modules
from litedram.core import LiteDRAMCore
from litedram.frontend.axi import LiteDRAMAXI2Native
from litedram.init import get_sdram_phy_init_sequence
from litedram.phy import GENSDRPHY
from litedram.phy.model import SDRAMPHYModel
from litex.build.io import SDRInput, SDROutput, SDRTristate
from litex.soc.interconnect import stream
from litex.soc.interconnect.axi import AXIInterface
from litex.soc.interconnect.csr import CSR, CSRStatus, CSRStorage
from migen import If, Module, Replicate, Signal
from migen.fhdl import verilog
from migen.genlib.cdc import MultiReg
from migen.genlib.record import DIR_M_TO_S

__all__ = ["MIN_GAP", "PACKAGES", "POWER_UP_S", "ULX3S", "VERILATOR_WAIVERS", "InitSequencer",
           "LiteDRAMULX3S", "generate", "versions"]

#: Packages whose versions key the cache.
PACKAGES = ("migen", "litex", "litedram")
#: Default parameters for the ULX3S-85F's 32 MiB SDRAM.
ULX3S = {"module": "MT48LC16M16", "clk_freq": 50e6, "data_width": 64, "id_width": 4,
         "dq_bits": 16, "axi_clock": False}
#: Minimum cycles after each init command: tRP, tRFC (<= 70 ns: 16 cycles up to 228 MHz), tMRD.
MIN_GAP = 16
#: Power-up wait after CKE goes high, before the first command (JEDEC SDR: 100-200 us).
POWER_UP_S = 200e-6
#: Verilator lint rules that fire on Migen's Verilog idioms (``<=`` in combinational blocks,
#: the ``dummy_s`` initial block, unsized widths, cases without default); no other is waived.
VERILATOR_WAIVERS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
                     "-Wno-COMBDLY", "-Wno-INITIALDLY")
#: Depths of the per-channel asynchronous FIFOs with ``axi_clock``.
AXI_CDC_DEPTHS = {"aw": 4, "w": 16, "b": 4, "ar": 4, "r": 16}
AXI_FIELDS = {"aw": ("id", "addr", "len", "size", "burst"), "w": ("data", "strb", "last"),
              "ar": ("id", "addr", "len", "size", "burst"), "b": ("id", "resp"),
              "r": ("id", "data", "resp", "last")}


class InitSequencer(Module):
    """Plays LiteDRAM's init sequence on ``dfii.ext_dfi``, then hands the DFI to the controller
    and raises ``done``. ``steps`` lists ``(comment, address, bank, flags, wait_cycles)``."""

    def __init__(self, dfii, phy_settings, timing_settings, clk_freq):
        self.done = Signal()
        self.steps = steps = []
        for comment, a, ba, cmd, delay in get_sdram_phy_init_sequence(phy_settings,
                                                                      timing_settings)[0]:
            flags = {f.strip().removeprefix("DFII_") for f in cmd.split("|")}
            wait = max(delay, MIN_GAP)
            if "CONTROL_CKE" in flags:
                wait = max(wait, math.ceil(POWER_UP_S * clk_freq))
            steps.append((comment, a, ba, flags, wait))
        step = Signal(max=len(steps) + 1)
        timer = Signal(max=max(s[4] for s in steps) + 1)
        control = {name: Signal() for name in ("cke", "odt", "reset_n")}
        issue = Signal()
        self.comb += [dfii.ext_dfi_sel.eq(~self.done),
                      issue.eq(~self.done & (timer == 0) & (step != len(steps)))]
        for phase in dfii.ext_dfi.phases:      # every field the injector reads: no undriven reg
            for name, _, direction in phase.layout:
                if direction == DIR_M_TO_S:
                    value = getattr(phase, name)
                    driver = (Replicate(control[name], len(value)) if name in control
                              else value.reset)
                    self.comb += value.eq(driver)
        p0 = dfii.ext_dfi.phases[0]
        for i, (_, a, ba, flags, wait) in enumerate(steps):
            now = issue & (step == i)
            if "CONTROL_CKE" in flags or "CONTROL_RESET_N" in flags:
                self.sync += If(now, *[control[n].eq(f"CONTROL_{n.upper()}" in flags)
                                       for n in control])
            else:
                self.comb += If(now, p0.address.eq(a), p0.bank.eq(ba),
                                p0.cs_n.eq(0 if "COMMAND_CS" in flags else 2**len(p0.cs_n) - 1),
                                p0.ras_n.eq("COMMAND_RAS" not in flags),
                                p0.cas_n.eq("COMMAND_CAS" not in flags),
                                p0.we_n.eq("COMMAND_WE" not in flags))
            self.sync += If(now, step.eq(i + 1), timer.eq(wait))
        self.sync += If(timer != 0, timer.eq(timer - 1)).Elif(
            ~self.done & (step == len(steps)), self.done.eq(1))


class _RawDQ:
    """Lowers GENSDRPHY's ``SDRTristate`` on ``dq[i]`` to registered ``dq_o[i]``, ``dq_oe`` and
    ``dq_i[i]`` ports (``convert(special_overrides=...)``), instead of an ``inout``."""

    def __init__(self, dq, dq_o, dq_oe, dq_i):
        self.dq, self.dq_o, self.dq_oe, self.dq_i = dq, dq_o, dq_oe, dq_i

    def lower(self, dr):
        assert dr.io.value is self.dq, "only the dq pins are tristate"
        assert getattr(dr.clk, "name_override", None) == "sys_clk", "GENSDRPHY registers on sys"
        i, m = dr.io.start, Module()
        m.sync += [self.dq_o[i].eq(dr.o), dr.i.eq(self.dq_i[i])]
        if i == 0:
            m.sync += self.dq_oe.eq(dr.oe)
        return m


class _SysRegister:
    """Lowers an ``SDRInput``/``SDROutput`` on ``sys_clk`` to a register of the ``sys`` domain
    (LiteX's generic lowering gives each a clock domain of its own, ``sdrio_clk_<n>``)."""

    @staticmethod
    def lower(dr):
        assert getattr(dr.clk, "name_override", None) == "sys_clk", "GENSDRPHY registers on sys"
        m = Module()
        m.sync += dr.o.eq(dr.i)
        return m


class LiteDRAMULX3S(Module):
    """The controller, its PHY (or the DRAM model), the AXI port and the init sequencer;
    ``ios`` are the Verilog ports, ``overrides`` the specials' lowering for ``convert``."""

    def __init__(self, sim=False, module="MT48LC16M16", clk_freq=50e6, data_width=64,
                 id_width=4, dq_bits=16, axi_clock=False):
        chip = getattr(litedram_modules, module)(clk_freq, "1:1")
        geom = chip.geom_settings
        pads = SimpleNamespace(**{name: Signal(width, name=f"sdram_{name}") for name, width in (
            ("a", geom.addressbits), ("ba", geom.bankbits), ("cs_n", 1), ("cke", 1),
            ("ras_n", 1), ("cas_n", 1), ("we_n", 1), ("dm", dq_bits // 8), ("dq", dq_bits))})
        phy = GENSDRPHY(pads, clk_freq)
        self.ios, self.overrides = set(), {}
        if sim:
            phy = SDRAMPHYModel(chip, settings=phy.settings, clk_freq=clk_freq)
        else:
            dq = {k: Signal(w, name=f"sdram_dq_{k}") for k, w in (("o", dq_bits), ("oe", 1),
                                                                   ("i", dq_bits))}
            self.overrides[SDRTristate] = _RawDQ(pads.dq, dq["o"], dq["oe"], dq["i"])
            self.overrides[SDRInput] = self.overrides[SDROutput] = _SysRegister
            self.ios |= {getattr(pads, n) for n in ("a", "ba", "cs_n", "cke", "ras_n", "cas_n",
                                                    "we_n", "dm")} | set(dq.values())
        self.submodules.phy = phy
        self.submodules.core = core = LiteDRAMCore(phy, geom, chip.timing_settings, clk_freq)
        for csr in core.get_csrs():            # no CPU: every CSR at its reset value
            if isinstance(csr, CSRStorage):
                self.comb += csr.re.eq(0)
                if not hasattr(csr, "dat_w"):
                    self.comb += csr.storage.eq(csr.storage.reset)
            elif isinstance(csr, CSRStatus):
                self.comb += [csr.we.eq(0), csr.re.eq(0)]
            elif isinstance(csr, CSR):
                self.comb += [csr.re.eq(0), csr.r.eq(0), csr.we.eq(0)]
        self.submodules.init = init = InitSequencer(core.dfii, phy.settings,
                                                    chip.timing_settings, clk_freq)
        self.init_done = Signal(name="init_done")
        self.comb += self.init_done.eq(init.done)
        self.ios.add(self.init_done)

        port = core.crossbar.get_port(data_width=data_width)
        axi = AXIInterface(data_width=data_width, address_width=32, id_width=id_width)
        self.submodules.axi2native = LiteDRAMAXI2Native(axi, port)
        ready = init.done                      # init_done in the AXI port's domain
        if axi_clock:
            # An asynchronous FIFO per AXI channel (not LiteDRAM's native-port CDC: under the
            # AXI frontend its write data runs ahead of the commands, the frontend's write
            # reservation counter wraps and the port hangs on the first long burst).
            outer = AXIInterface(data_width=data_width, address_width=32, id_width=id_width)
            for name, depth in AXI_CDC_DEPTHS.items():
                inward = name in ("aw", "w", "ar")
                cdc = stream.ClockDomainCrossing(getattr(axi, name).description,
                                                 cd_from="axi" if inward else "sys",
                                                 cd_to="sys" if inward else "axi", depth=depth)
                src, dst = (outer, axi) if inward else (axi, outer)
                self.submodules += cdc
                self.comb += [getattr(src, name).connect(cdc.sink),
                              cdc.source.connect(getattr(dst, name))]
            ready = Signal()
            self.specials += MultiReg(init.done, ready, odomain="axi")
            axi = outer
        self.s_axi = {}
        for channel, fields in AXI_FIELDS.items():
            ch = getattr(axi, channel)
            for field in (*fields, "valid", "ready"):
                sig = Signal(len(getattr(ch, field)), name=f"s_axi_{channel}{field}")
                self.s_axi[channel + field] = sig
                inward = channel in ("aw", "w", "ar")
                if field == "valid" and inward:
                    self.comb += ch.valid.eq(sig & ready)
                elif field == "ready" and inward:
                    self.comb += sig.eq(ch.ready & ready)
                elif (field == "ready") != inward:
                    self.comb += getattr(ch, field).eq(sig)
                else:
                    self.comb += sig.eq(getattr(ch, field))
        for ch in (axi.aw, axi.ar):            # AXI4 signals LiteDRAM ignores, not ports
            self.comb += [ch.lock.eq(0), ch.prot.eq(0), ch.cache.eq(0), ch.qos.eq(0),
                          ch.region.eq(0)]
        self.ios |= set(self.s_axi.values())


def versions():
    """``{package: version}`` of the packages the generated Verilog depends on."""
    return {name: metadata.version(name) for name in PACKAGES}


def _cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sps" / "litedram"


def generate(sim=False, cache_dir=None, **params):
    """Path of the Verilog of the ULX3S core (``sim``: with the DRAM model) for ``params``
    (:data:`ULX3S` and their defaults), generated into ``cache_dir`` (default
    ``~/.cache/sps/litedram``) under a key of versions, parameters and this file's source."""
    params = {**ULX3S, **params}
    unknown = set(params) - set(ULX3S)
    if unknown:
        raise TypeError(f"unknown parameters {sorted(unknown)}; expected {sorted(ULX3S)}")
    name = "litedram_ulx3s_sim" if sim else "litedram_ulx3s"
    source = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    key_text = json.dumps({"versions": versions(), "params": params, "sim": sim,
                           "source": source}, sort_keys=True)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    out = Path(cache_dir or _cache_root()) / key / f"{name}.v"
    if out.is_file():
        return out
    top = LiteDRAMULX3S(sim=sim, **params)
    text = str(verilog.convert(top, ios=top.ios, name=name, special_overrides=top.overrides))
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / "key.json").write_text(key_text + "\n")
    tmp = out.with_suffix(f".v.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(out)                           # atomic: concurrent callers see all or nothing
    return out


if __name__ == "__main__":
    import sys
    print(generate(sim="--sim" in sys.argv[1:]))
