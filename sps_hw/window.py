"""The line-buffer 3x3 window generator of one array row."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_int
from .memories import NO_RW_CHECK, read_port
from .vendor import replica

__all__ = ["Window", "WindowGenerator", "WindowLayer"]

#: What a window generator keeps of a 3x3 window (tap ``t = ky * 3 + kx``, 0 = top left,
#: 8 = the newest pixel): the newest column whole (``column[ky]``, ``kx = 2``) and of the two
#: older columns only the row its consumer picks (``left[0]``: ``kx = 1``, ``left[1]``:
#: ``kx = 0``).
Window = data.StructLayout({"column": data.ArrayLayout(signed(8), 3),
                            "left": data.ArrayLayout(signed(8), 2)})


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
    next cycle, with ``ky``, the row of the tap the consumer will pick from the window the
    pixel completes. One cycle later ``window`` holds, for the ``i``-th pixel shifted in
    (with ``ky = k[i]``)::

        window.column[ky] = pixel[i - (2 - ky) * length]
        window.left[0]    = pixel[i - (2 - k[i]) * length - 1]
        window.left[1]    = pixel[i - (2 - k[i - 1]) * length - 2]

    for ``length`` of at least 2 (with ``length`` 1, a 1x1 layer's, only ``column[2]``, the
    newest pixel, is meaningful). So a consumer that picks tap ``(ky, kx)`` throughout a pass
    (``k`` constant) gets ``pixel[i - (2 - ky) * length - (2 - kx)]``, of the window centred
    on pixel ``i - length - 1``. Where ``k`` changes (a new pass), ``left[1]`` still holds the
    old row: its consumer is the pass's first window, at ``x = 0``, where ``kx = 0`` lies
    outside the image. Values from before the image (or from the previous pass of a layer)
    are whatever was streamed then: the consumer masks taps outside the image. ``restart``
    rewinds the ring (at the start of a layer). A column and two pixels instead of nine
    taps: 40 registers, not 72.
    """

    def __init__(self, *, max_width):
        check_int("max_width", max_width, minimum=1)
        self.max_width = max_width
        super().__init__({
            "restart": In(1),
            "layer": In(WindowLayer(max_width)),
            "advance": In(1),
            "pixel": In(signed(8)),
            "ky": In(range(3)),
            "window": Out(Window),
        })

    def elaborate(self, platform):
        m = Module()
        # Entry j: [pixel one row above, pixel two rows above] the pixel at ring position j.
        # A ring entry is written (in the cycle after its read) before it is read again,
        # unless the ring has one entry (length 1: only the newest pixel is used). In block
        # RAM: as distributed RAM (ECP5) a 64-entry ring took 93 LUT4, 30 PFUMX and 16
        # TRELLIS_DPR16X4; in a DP16KD, 39 LUT4 and 12 PFUMX.
        m.submodules.ring = ring = memory.Memory(
            shape=data.ArrayLayout(signed(8), 2), depth=self.max_width, init=[],
            attrs={**NO_RW_CHECK, "ram_style": "block"})
        wr = ring.write_port()
        rd = read_port(m, ring, "ring")

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
        # Each window's own copy: the shift enables 40 window registers and the ring here.
        shift = replica(m, platform, self.advance & ~self.restart, "shift")
        m.d.sync += ptr_d.eq(ptr)

        above, above2 = rd.data[0], rd.data[1]
        m.d.comb += [
            wr.addr.eq(ptr_d),
            wr.en.eq(shift),
            wr.data.eq(Cat(self.pixel, above)),
        ]
        window = Signal(Window, reset_less=True)        # data: no reset logic
        with m.If(shift):
            m.d.sync += [
                window.column.eq(Cat(above2, above, self.pixel)),   # rows ky = 0, 1, 2
                window.left[0].eq(Mux(self.ky == 0, window.column[0],
                                      Mux(self.ky == 1, window.column[1], window.column[2]))),
                window.left[1].eq(window.left[0]),
            ]
        m.d.comb += self.window.eq(window)
        return m
