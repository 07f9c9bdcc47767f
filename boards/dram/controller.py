"""The generated LiteDRAM controller (:mod:`.litedram_gen`) as an Amaranth component.

:class:`SDRAMController` instantiates the ULX3S controller with its AXI port on the ``sync``
clock (``axi_clock``: an asynchronous FIFO per channel) and the controller on the ``dram``
clock, both domains defined by the board top. On a platform it adds the generated Verilog to
the build and wires the SDRAM pins: ``dq`` as one tristate buffer, the other outputs straight
out (GENSDRPHY registers them inside), and the SDRAM clock as a DDR output of the
``dram_ps`` clock (``dram`` shifted by 90 degrees). Without a platform (simulation) it is the
variant with LiteDRAM's ``SDRAMPHYModel`` behind the same controller (:meth:`sources`).
"""

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from sps_hw.axi.signature import AXI4Signature

__all__ = ["DRAM_ID_WIDTH", "SDRAMController"]

#: AXI ID width of the generated controller's port.
DRAM_ID_WIDTH = 4


class SDRAMController(wiring.Component):
    """The ULX3S's 32 MiB SDR SDRAM behind an AXI4 subordinate port.

    Members
    -------
    axi : ``In(AXI4Signature(addr_width=32, data_width=64))``
        From the core; requests before ``init_done`` wait.
    init_done : ``Out(1)``
        The SDRAM's init sequence has played (``sync`` domain).
    """

    axi: In(AXI4Signature(addr_width=32, data_width=64))
    init_done: Out(1)

    def __init__(self, clk_hz):
        if not isinstance(clk_hz, int) or not 10_000_000 <= clk_hz <= 100_000_000:
            raise ValueError(f"clk_hz must be an int in 10..100 MHz, not {clk_hz!r}")
        self.clk_hz = clk_hz
        super().__init__()

    def description(self):
        """What the controller is, for ``report.json``."""
        from importlib import metadata
        return (f"LiteDRAM {metadata.version('litedram')}: GENSDRPHY, MT48LC16M16 (32 MiB SDR, "
                f"16 bits), 64-bit AXI4 port across an asynchronous FIFO per channel")

    def sources(self, sim=True):
        """The controller's Verilog file (generated once and cached), with timings for the
        ``dram`` clock ``clk_hz``."""
        from . import litedram_gen  # deferred: Migen and LiteDRAM are the dram extra
        return litedram_gen.generate(sim=sim, axi_clock=True, clk_freq=float(self.clk_hz))

    def elaborate(self, platform):
        m = Module()
        sim = platform is None
        path = self.sources(sim)
        name = "litedram_ulx3s_sim" if sim else "litedram_ulx3s"
        if not sim:
            platform.add_file(path.name, path.read_text())
        axi = self.axi
        ports = {"i_sys_clk": ClockSignal("dram"), "i_sys_rst": ResetSignal("dram"),
                 "i_axi_clk": ClockSignal("sync"), "i_axi_rst": ResetSignal("sync"),
                 "o_init_done": self.init_done}
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
        if not sim:
            ports.update(self._pins(m, platform))
        m.submodules.litedram = Instance(name, **ports)
        return m

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
