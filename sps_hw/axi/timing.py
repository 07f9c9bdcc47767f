"""Cycle model of :class:`~sps_hw.axi.reader.BurstReader` and
:class:`~sps_hw.axi.writer.BurstWriter` for one command, checked against the RTL under
cocotbext-axi's ``AxiRam`` (``sim_tests/axi/test_dma.py``; ``docs/memory.md``).

Cycles count rising edges from the one at which the command is taken (0); a transfer "at
cycle k" happens at edge k. The model assumes what a steady memory system gives: the
subordinate always takes addresses and W beats, answers each read burst ``latency`` cycles
after its address (``AR`` edge to first ``R`` edge) or right after the previous burst's last
beat if that is later, sends a burst's beats on consecutive cycles, and answers each write
burst ``latency`` cycles after its last W beat (``WLAST`` edge to ``B`` edge); the consumer
of ``data`` is always ready, the producer always valid.
"""

from .bursts import PAGE_BYTES

__all__ = ["burst_beats", "read_timing", "write_timing"]


def burst_beats(addr, beats, *, data_width, max_burst):
    """The beats of each burst a command of ``beats`` words from byte ``addr`` is split
    into (as :class:`~sps_hw.axi.bursts.BurstSplitter` does; no address wrap)."""
    beat_bytes = data_width // 8
    addr -= addr % beat_bytes
    out = []
    while beats:
        n = min(beats, max_burst, (PAGE_BYTES - addr % PAGE_BYTES) // beat_bytes)
        out.append(n)
        addr, beats = addr + n * beat_bytes, beats - n
    return out


def read_timing(addr, beats, *, data_width, max_burst, max_outstanding, latency):
    """``{"ar": [cycle of each burst's address], "data": [cycle of each word on data],
    "done": last cycle busy is high}`` of a read command (``done`` is None for 0 beats)."""
    ar, data, last = [], [], []
    for i, n in enumerate(burst_beats(addr, beats, data_width=data_width,
                                      max_burst=max_burst)):
        # The splitter holds burst i from the edge after burst i - 1 left (the first two
        # edges after the command); a burst in flight ends at its last beat.
        t = max(ar[-1] + 1 if ar else 2,
                last[i - max_outstanding] + 1 if i >= max_outstanding else 0)
        ar.append(t)
        first = max(t + latency, last[-1] + 1 if last else 0)
        data.extend(range(first, first + n))
        last.append(first + n - 1)
    return {"ar": ar, "data": data, "done": data[-1] if data else None}


def write_timing(addr, beats, *, data_width, max_burst, max_outstanding, latency):
    """``{"aw": [cycle of each burst's address], "data": [cycle of each word taken from
    data], "b": [cycle of each response], "done": last cycle busy is high}`` of a write
    command (``done`` is None for 0 beats)."""
    aw, data, b, wlast = [], [], [], []
    for i, n in enumerate(burst_beats(addr, beats, data_width=data_width,
                                      max_burst=max_burst)):
        # Presented (and its length queued for W) once fewer than max_outstanding responses
        # are awaited; its W beats start the edge after the length was queued.
        t = max(aw[-1] + 1 if aw else 2,
                b[i - max_outstanding] + 1 if i >= max_outstanding else 0)
        aw.append(t)
        first = max(t + 1, wlast[-1] + 1 if wlast else 0)
        data.extend(range(first, first + n))
        wlast.append(first + n - 1)
        b.append(max(wlast[-1] + latency, b[-1] + 1 if b else 0))
    return {"aw": aw, "data": data, "b": b, "done": b[-1] if b else None}
