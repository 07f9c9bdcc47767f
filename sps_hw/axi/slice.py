"""A register slice: every AXI4 channel through a skid buffer, so no path crosses it.

Between a manager and a subordinate placed far apart (the board's core and its DRAM
controller), each of the five channels gets a two-entry skid buffer: ``valid``, the payload
and ``ready`` all leave a register on both sides, a transfer a cycle later than without it,
and the throughput stays one transfer per cycle.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .signature import AXI4Signature

__all__ = ["AXI4RegisterSlice", "skid_buffer"]

#: The channels, each with the side that drives its ``valid``.
_CHANNELS = {"aw": "manager", "w": "manager", "b": "subordinate", "ar": "manager",
             "r": "subordinate"}


def skid_buffer(m, *, i_valid, i_ready, i_data, o_valid, o_ready, o_data):
    """Add to ``m`` a skid buffer from ``i_*`` to ``o_*`` (``i_ready``, ``o_valid`` and
    ``o_data`` are driven): ``i_ready``, ``o_valid`` and ``o_data`` are registers; a beat
    accepted while the output stalls waits in the skid register."""
    skid, skid_valid, out_valid = Signal(len(i_data)), Signal(), Signal()
    m.d.comb += [i_ready.eq(~skid_valid), o_valid.eq(out_valid)]
    with m.If(o_ready | ~out_valid):                    # the output register frees up
        with m.If(skid_valid):
            m.d.sync += [o_data.eq(skid), out_valid.eq(1), skid_valid.eq(0)]
        with m.Else():
            m.d.sync += [o_data.eq(i_data), out_valid.eq(i_valid)]
    with m.Elif(i_valid & ~skid_valid):
        m.d.sync += [skid.eq(i_data), skid_valid.eq(1)]


class AXI4RegisterSlice(wiring.Component):
    """A register slice on every channel of an AXI4 interface of signature ``signature``.

    Members
    -------
    s_axi : ``In(signature)``
        From the manager.
    m_axi : ``Out(signature)``
        To the subordinate.
    """

    def __init__(self, signature):
        if not isinstance(signature, AXI4Signature) or \
                isinstance(signature, wiring.FlippedSignature):
            raise TypeError(f"signature must be an AXI4Signature (a manager's), not "
                            f"{signature!r}")
        super().__init__({"s_axi": In(signature), "m_axi": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        members = self.signature.members["m_axi"].signature.members
        for channel, driver in _CHANNELS.items():
            names = [n for n in members if n.startswith(channel)
                     and n[len(channel):] not in ("valid", "ready")]
            if not names:                               # a half the signature leaves out
                continue
            src, dst = (self.s_axi, self.m_axi) if driver == "manager" else \
                (self.m_axi, self.s_axi)
            data_in = Cat(getattr(src, n) for n in names)
            data_out = Signal(len(data_in), name=f"{channel}_data")
            m.d.comb += Cat(getattr(dst, n) for n in names).eq(data_out)
            skid_buffer(m, i_valid=getattr(src, channel + "valid"),
                        i_ready=getattr(src, channel + "ready"), i_data=data_in,
                        o_valid=getattr(dst, channel + "valid"),
                        o_ready=getattr(dst, channel + "ready"), o_data=data_out)
        return m
