"""Top levels: the host link joined to a core, and that on a board with its UART and LEDs
(and its DRAM controller, for a core that runs models from DRAM).

:class:`LinkedCore` is the board-independent part (used as is in simulation);
:class:`BoardTop` adds what a platform provides: the clock and reset (the platform's default
``sync`` domain, with its reset button), the UART pins and the status LEDs.
"""

from amaranth.build import ResourceError
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io, wiring

from sps_hw.axi.slice import AXI4RegisterSlice

from .clocks import ClockGenerator
from .link import HostLink

__all__ = ["LED_SIGNALS", "BoardTop", "LinkedCore"]

#: Status signals a board can show on its LEDs (``BoardSpec.leds`` picks and orders them).
LED_SIGNALS = ("heartbeat", "model_valid", "busy", "done", "loading", "error", "activity")


class LinkedCore(Elaboratable):
    """:class:`~boards.link.HostLink` driving ``core`` (which has ``link`` and ``memory_map``).

    ``link_args`` go to :class:`~boards.link.HostLink`; ``rx``/``tx`` are the UART lines.
    """

    def __init__(self, core, **link_args):
        if not hasattr(core, "memory_map") or "link" not in core.signature.members:
            raise TypeError(f"core must be a component with a memory_map and a 'link' port, "
                            f"not {core!r}")
        self.core = core
        self.link = HostLink(core.memory_map, **link_args)
        self.rx, self.tx, self.status = self.link.rx, self.link.tx, self.link.status

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self.link
        m.submodules.core = self.core
        wiring.connect(m, self.link.core, self.core.link)
        return m


class _Blinker(Elaboratable):
    """LED timing from one prescaler: ``tick`` about every millisecond, ``heartbeat`` toggling
    every 512 ticks, and for each pulse input an output held high for ``hold`` ticks.

    Counting milliseconds keeps every counter short, so the LEDs never limit Fmax.
    """

    def __init__(self, clk_hz, holds):
        self.prescale = max(clk_hz // 1000, 1)
        self.holds = holds
        self.heartbeat = Signal()
        self.i = [Signal(name=f"pulse{n}") for n in range(len(holds))]
        self.o = [Signal(name=f"held{n}") for n in range(len(holds))]

    def elaborate(self, platform):
        m = Module()
        pre = Signal(range(self.prescale))
        tick = Signal()
        ticks = Signal(10)
        with m.If(pre == self.prescale - 1):
            m.d.sync += [pre.eq(0), ticks.eq(ticks + 1)]
            m.d.comb += tick.eq(1)
        with m.Else():
            m.d.sync += pre.eq(pre + 1)
        m.d.comb += self.heartbeat.eq(ticks[-1])
        for i, o, hold in zip(self.i, self.o, self.holds):
            count = Signal(range(hold + 1))
            with m.If(i):
                m.d.sync += count.eq(hold)
            with m.Elif(tick & (count != 0)):
                m.d.sync += count.eq(count - 1)
            m.d.comb += o.eq(count != 0)
        return m


class BoardTop(Elaboratable):
    """A board's top level: UART ``uart`` 0 to the link, LEDs per ``spec.leds``, the core
clock from the board's PLL when ``spec.pll`` is set (:class:`~boards.clocks.ClockGenerator`),
and for a core with an ``m_axi`` port the board's DRAM controller (``spec.dram_controller``)
behind an AXI4 register slice.

    Parameters
    ----------
    spec : boards.platforms.BoardSpec
        Clock, baud rate, link buffers and LED assignment of the board.
    core : Component
        The core behind the link.
    model_valid, model_tag :
        A model baked into the core's memories at build time.
    """

    def __init__(self, spec, core, *, model_valid=False, model_tag=0):
        self.spec = spec
        self.linked = LinkedCore(core, **spec.link_args(model_valid=model_valid,
                                                         model_tag=model_tag))
        # A core with an AXI4 manager port (boards.dram.core) runs from the board's DRAM.
        self.dram = None
        if "m_axi" in core.signature.members:
            if spec.dram_controller is None:
                raise ValueError(f"{spec.name}'s top has no DRAM controller for core {core!r}")
            self.dram = spec.dram_controller.for_board(spec)

    def elaborate(self, platform):
        m = Module()
        m.submodules.linked = linked = self.linked
        clk_hz = self.spec.clk_hz
        if self.dram is not None:
            m.submodules.dram = self.dram
            # Registered on every channel: the core and the controller's clock-domain
            # crossing sit far apart on the die.
            axi_slice = AXI4RegisterSlice(self.dram.axi.signature.flip())
            m.submodules.axi_slice = axi_slice
            wiring.connect(m, linked.core.m_axi, axi_slice.s_axi)
            wiring.connect(m, axi_slice.m_axi, self.dram.axi)
            if platform is not None:        # simulated, the controller runs on sync
                for name in self.dram.domains:
                    m.domains += ClockDomain(name)
        if platform is not None and self.spec.pll is not None:
            m.domains.sync = ClockDomain("sync")
            m.submodules.clocks = ClockGenerator(self.spec.pll)
        if platform is not None:
            uart = platform.request("uart", 0, dir="-")
            m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
            m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
            m.d.comb += [linked.rx.eq(rx.i), tx.o.eq(linked.tx)]

        status = linked.status
        m.submodules.blinker = blink = _Blinker(clk_hz, holds=(250, 20))
        m.d.comb += [blink.i[0].eq(status.error), blink.i[1].eq(status.rx | status.tx)]
        signals = {"heartbeat": blink.heartbeat, "model_valid": status.model_valid,
                   "busy": status.busy, "done": status.done, "loading": status.loading,
                   "error": blink.o[0], "activity": blink.o[1]}
        self.leds = signals
        if platform is not None:
            for index, name in enumerate(self.spec.leds):
                try:
                    led = platform.request("led", index, dir="-")
                except ResourceError:
                    break
                m.submodules[f"led{index}"] = buf = io.Buffer("o", led)
                m.d.comb += buf.o.eq(signals[name])
        return m
