"""The line-buffer 3x3 window generator of one array row."""

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .vendor import replica

__all__ = ["Window", "WindowGenerator", "WindowLayer"]

#: A 3x3 window, tap ``t = ky * 3 + kx`` (0 = top left, 8 = the newest pixel).
Window = data.ArrayLayout(signed(8), 9)


class WindowLayer(wiring.Signature):
    """The layer field a window generator takes: the ring ``length`` (the image's width; 1
    for 1x1 layers)."""

    def __init__(self, max_width):
        super().__init__({"length": Out(range(1, max_width + 1), init=1)})


class WindowGenerator(wiring.Component):
    """3x3 windows over a row-major pixel stream of an image ``length`` pixels wide.

    A ring of ``length`` entries (at most ``max_width``) holds the two image rows above the
    incoming pixel. The stream is issued one cycle ahead of its data: ``advance`` says that a
    pixel is read this cycle (the ring is read with it) and ``pixel`` carries its value the
    next cycle. One cycle later ``window`` holds, for the ``i``-th pixel shifted in::

        window[ky * 3 + kx] = pixel[i - (2 - ky) * length - (2 - kx)]

    so the window is centred on pixel ``i - length - 1``. Values from before the image (or
    from the previous pass of a layer) are whatever was streamed then: the consumer masks
    taps outside the image. ``restart`` rewinds the ring (at the start of a layer).
    """

    def __init__(self, *, max_width):
        check_int("max_width", max_width, minimum=1)
        self.max_width = max_width
        super().__init__({
            "restart": In(1),
            "layer": In(WindowLayer(max_width)),
            "advance": In(1),
            "pixel": In(signed(8)),
            "window": Out(Window),
        })

    def elaborate(self, platform):
        m = Module()
        # Entry j: [pixel one row above, pixel two rows above] the pixel at ring position j.
        m.submodules.ring = ring = memory.Memory(
            shape=data.ArrayLayout(signed(8), 2), depth=self.max_width, init=[])
        wr = ring.write_port()
        rd = ring.read_port(transparent_for=(wr,))

        ptr = Signal(range(self.max_width))
        ptr_last = Signal()                 # ptr == length - 1, kept in step
        ptr_d = Signal.like(ptr)
        length = self.layer.length
        m.d.comb += [rd.addr.eq(ptr), rd.en.eq(self.advance)]
        with m.If(self.restart):
            m.d.sync += [ptr.eq(0), ptr_last.eq(length == 1)]
        with m.Elif(self.advance):
            with m.If(ptr_last):
                m.d.sync += [ptr.eq(0), ptr_last.eq(length == 1)]
            with m.Else():
                m.d.sync += [ptr.eq(ptr + 1), ptr_last.eq(ptr + 2 == length)]
        # Each window's own copy: the shift enables 72 window registers and the ring here.
        shift = replica(m, platform, self.advance & ~self.restart, "shift")
        m.d.sync += ptr_d.eq(ptr)

        above, above2 = rd.data[0], rd.data[1]
        m.d.comb += [
            wr.addr.eq(ptr_d),
            wr.en.eq(shift),
            wr.data.eq(Cat(self.pixel, above)),
        ]
        column = [above2, above, self.pixel]           # rows ky = 0, 1, 2 of the new column
        window = Signal(Window, reset_less=True)        # data: no reset logic
        with m.If(shift):
            for ky in range(3):
                m.d.sync += [
                    window[ky * 3 + 0].eq(window[ky * 3 + 1]),
                    window[ky * 3 + 1].eq(window[ky * 3 + 2]),
                    window[ky * 3 + 2].eq(column[ky]),
                ]
        m.d.comb += self.window.eq(window)
        return m
