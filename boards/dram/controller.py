"""The generated LiteDRAM controllers (:mod:`.litedram_gen`, :mod:`.litedram_arty`) as Amaranth
components.

:class:`LiteDRAMController` is what they share: the generated Verilog added to the build, its
instance, and the AXI4 subordinate port on the ``sync`` clock (the Verilog crosses to the
controller's clock with an asynchronous FIFO per channel). A subclass names the module and
gives its clocks, pins and the board's way of making one (:meth:`~LiteDRAMController.for_board`);
a board names its class in ``BoardSpec.dram_controller``.

:class:`SDRAMController` instantiates the ULX3S controller on the ``dram`` clock, a domain the
board top defines (its PLL's secondary output). On a platform it wires the SDRAM pins: ``dq``
as one tristate buffer, the other outputs straight out (GENSDRPHY registers them inside), and
the SDRAM clock as a DDR output of the ``dram_ps`` clock (``dram`` shifted by 90 degrees).
Without a platform (simulation) it is the variant with LiteDRAM's ``SDRAMPHYModel`` behind the
same controller (:meth:`~LiteDRAMController.sources`), on the ``sync`` clock.
"""

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.axi.signature import AXI4Signature

__all__ = ["DRAM_ID_WIDTH", "LiteDRAMController", "SDRAMController", "axi_ports"]

#: AXI ID width of the generated controllers' ports.
DRAM_ID_WIDTH = 4


def axi_ports(m, axi):
    """The ``s_axi_*`` ports of a generated controller's instance, on ``axi`` (its IDs
    :data:`DRAM_ID_WIDTH` bits wide)."""
    ports = {}
    bid, rid = Signal(DRAM_ID_WIDTH), Signal(DRAM_ID_WIDTH)
    m.d.comb += [axi.bid.eq(bid), axi.rid.eq(rid)]
    for ch in ("aw", "ar"):
        ports.update({f"i_s_axi_{ch}{f}": getattr(axi, ch + f)
                      for f in ("addr", "len", "size", "burst", "valid")})
        ports[f"i_s_axi_{ch}id"] = ident = Signal(DRAM_ID_WIDTH, name=f"{ch}id")
        m.d.comb += ident.eq(getattr(axi, ch + "id"))
        ports[f"o_s_axi_{ch}ready"] = getattr(axi, ch + "ready")
    ports.update({f"i_s_axi_w{f}": getattr(axi, "w" + f)
                  for f in ("data", "strb", "last", "valid")})
    ports.update({"o_s_axi_wready": axi.wready, "o_s_axi_bid": bid,
                  "o_s_axi_bresp": axi.bresp, "o_s_axi_bvalid": axi.bvalid,
                  "i_s_axi_bready": axi.bready, "o_s_axi_rid": rid,
                  "o_s_axi_rdata": axi.rdata, "o_s_axi_rresp": axi.rresp,
                  "o_s_axi_rlast": axi.rlast, "o_s_axi_rvalid": axi.rvalid,
                  "i_s_axi_rready": axi.rready})
    return ports


class LiteDRAMController(wiring.Component):
    """A generated LiteDRAM controller behind an AXI4 subordinate port (``sync`` domain).

    Members
    -------
    axi : ``In(AXI4Signature(addr_width=32, data_width=64))``
        From the core; requests before ``init_done`` wait.
    init_done : ``Out(1)``
        The DRAM is ready (``sync`` domain).
    """

    axi: In(AXI4Signature(addr_width=32, data_width=64))
    init_done: Out(1)

    #: The Verilog module on a board; in simulation ``<module>_sim``.
    module = None
    #: ``(lowest, highest)`` controller clock in Hz.
    clk_range = (10_000_000, 100_000_000)
    #: Clock domains the board top defines for the controller (its PLL drives them).
    domains = ()
    #: What the controller is, after the LiteDRAM version (:meth:`description`).
    summary = None

    def __init__(self, clk_hz):
        lo, hi = self.clk_range
        if not isinstance(clk_hz, int) or not lo <= clk_hz <= hi:
            raise ValueError(f"clk_hz must be an int in {lo // 10**6}..{hi // 10**6} MHz, "
                             f"not {clk_hz!r}")
        self.clk_hz = clk_hz
        super().__init__()

    @classmethod
    def for_board(cls, spec):
        """The controller of ``spec``'s DRAM build (``BoardSpec.dram_build()``)."""
        raise NotImplementedError

    def description(self):
        """What the controller is, for ``report.json``."""
        from importlib import metadata
        return f"LiteDRAM {metadata.version('litedram')}: {self.summary}"

    def sources(self, sim=True):
        """The controller's Verilog file (generated once and cached) at ``clk_hz``."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        sim = platform is None
        path = self.sources(sim)
        if not sim:
            platform.add_file(path.name, path.read_text())
        ports = {**self._clocks(sim), **axi_ports(m, self.axi), **self._outputs()}
        if not sim:
            ports.update(self._pins(m, platform))
        m.submodules.litedram = Instance(f"{self.module}_sim" if sim else self.module, **ports)
        return m

    def _clocks(self, sim):
        """The instance's clock and reset ports."""
        raise NotImplementedError

    def _outputs(self):
        """The instance's status outputs."""
        return {"o_init_done": self.init_done}

    def _pins(self, m, platform):
        """The instance's ports for the DRAM pins."""
        raise NotImplementedError


class SDRAMController(LiteDRAMController):
    """The ULX3S's 32 MiB SDR SDRAM behind an AXI4 subordinate port, on the ``dram`` clock."""

    module = "litedram_ulx3s"
    domains = ("dram", "dram_ps")
    summary = ("GENSDRPHY, MT48LC16M16 (32 MiB SDR, 16 bits), 64-bit AXI4 port across an "
               "asynchronous FIFO per channel")

    @classmethod
    def for_board(cls, spec):
        if not any(domain == "dram" for domain, *_ in getattr(spec.pll, "secondary", ())):
            raise ValueError(f"spec must be a DRAM build's (BoardSpec.dram_build()) with a "
                             f"'dram' PLL output, not {spec.name}'s")
        return cls(round(spec.pll.secondary_hz("dram")))

    def sources(self, sim=True):
        """The controller's Verilog file (generated once and cached), with timings for the
        ``dram`` clock ``clk_hz``."""
        from . import litedram_gen  # deferred: Migen and LiteDRAM are the dram extra
        return litedram_gen.generate(sim=sim, axi_clock=True, clk_freq=float(self.clk_hz))

    def _clocks(self, sim):
        domain = "sync" if sim else "dram"      # simulated: one clock, one reset
        return {"i_sys_clk": ClockSignal(domain), "i_sys_rst": ResetSignal(domain),
                "i_axi_clk": ClockSignal("sync"), "i_axi_rst": ResetSignal("sync")}

    @staticmethod
    def _pins(m, platform):
        """The SDRAM pins: the instance's ports for them."""
        pins = platform.request("sdram", 0, dir="-")
        out = {}
        for pin, port, width in (("a", "a", 13), ("ba", "ba", 2), ("cs", "cs_n", 1),
                                 ("clk_en", "cke", 1), ("ras", "ras_n", 1),
                                 ("cas", "cas_n", 1), ("we", "we_n", 1), ("dqm", "dm", 2)):
            m.submodules[f"sdram_{pin}"] = buf = io.Buffer("o", getattr(pins, pin))
            value = Signal(width, name=f"sdram_{port}")
            # cs, ras, cas and we are active-low pins that the resource inverts already.
            m.d.comb += buf.o.eq(~value if port.endswith("_n") else value)
            out[f"o_sdram_{port}"] = value
        m.submodules.sdram_dq = dq = io.Buffer("io", pins.dq)
        out.update({"o_sdram_dq_o": dq.o, "o_sdram_dq_oe": dq.oe, "i_sdram_dq_i": dq.i})
        # The chip's clock: dram_ps, as a DDR output (high, then low) like LiteX's target.
        m.submodules.sdram_clk = clk = io.DDRBuffer("o", pins.clk, o_domain="dram_ps")
        m.d.comb += [clk.o[0].eq(1), clk.o[1].eq(0)]
        return out
