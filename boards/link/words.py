"""The link's one 32-bit shift register, used in turn by the dispatcher and the sender."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from .ports import ArgumentShift, WordShift

__all__ = ["WordShifter"]


class WordShifter(wiring.Component):
    """Holds a request's arguments, then its response's words.

    The dispatcher shifts the payload bytes of a request in (``arguments``; little-endian, the
    newest byte on top) and its executor reads them; once the executor has answered, the
    arguments are dead and the sender loads each word of the response and shifts it out low
    byte first (``words``). One register instead of two: 32 flip-flops less on an iCE40.

    Members
    -------
    arguments : ``In(ArgumentShift())``
    words : ``In(WordShift())``
    """

    arguments: In(ArgumentShift())
    words: In(WordShift())

    def elaborate(self, platform):
        m = Module()
        value = Signal(32)
        m.d.comb += [self.arguments.value.eq(value), self.words.value.eq(value)]
        with m.If(self.words.load):
            m.d.sync += value.eq(self.words.word)
        with m.Elif(self.arguments.push | self.words.shift):
            m.d.sync += value.eq(Cat(value[8:], self.arguments.byte))
        return m
