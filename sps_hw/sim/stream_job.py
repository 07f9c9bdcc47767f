"""Generic cocotb test: feed stream inputs from a job, collect stream outputs, count cycles.

Run it with ``simulate(..., test_module="sps_hw.sim.stream_job", job=write_job(dir, ...))``.
Job items (see :mod:`sps_hw.sim.job`)::

    sources   {port: {"valid_prob": 1.0, "seed": None, "width": 8}}    stream inputs
    sinks     {port: {"count": N, "ready_prob": 1.0, "seed": None,
                      "lanes": None, "width": 8, "signed": True}}      stream outputs
    in_<port>      array: payload words [N], or lanes [N, L] packed ``width`` bits each
    expect_<port>  optional array: the test fails unless out_<port> equals it
    clock, reset, period_ns, reset_cycles    default "clk", "rst", 10, 2
    timeout_cycles     default 1000 + 50 x (items in + items out)
    idle_cycles        after the last expected item, run this many cycles and fail if any
                       sink received more than its count (default 0: no check)

Outputs (``read_outputs``): ``out_<port>`` (words [N], or [N, lanes] unpacked with
``width``/``signed``), ``cycles_<port>`` (the cycle of every transfer, counted from reset
release) for sources and sinks, and ``cycles`` = ``{"total": last output cycle}``.
"""

import cocotb
import numpy as np

from sps_hw.sim.job import read_job
from sps_hw.sim.streams import TB, pack, unpack


def _words(array, width):
    array = np.asarray(array)
    if array.ndim == 1:
        return [int(w) for w in array]
    if array.ndim == 2:
        return pack(array, width)
    raise ValueError(f"stream input must be words [N] or lanes [N, L], not shape {array.shape}")


def _first_mismatch(got, want):
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    bad = np.argwhere(got != want)
    i = tuple(int(k) for k in bad[0])
    return (f"{len(bad)} mismatches, first at index {i}: got {got[i]}, expected {want[i]}")


@cocotb.test()
async def run_stream_job(dut):
    """Drive every source, wait for every sink's count, store outputs and cycle counts."""
    job = read_job()
    sources, sinks = job.get("sources", {}), job.get("sinks", {})
    if not sinks:
        raise ValueError("stream job has no sinks: nothing to wait for")
    tb = TB(dut, period_ns=job.get("period_ns", 10), clk=job.get("clock", "clk"),
            rst=job.get("reset", "rst"))
    drivers_in = {p: tb.source(p, valid_prob=c.get("valid_prob", 1.0), seed=c.get("seed"))
                  for p, c in sources.items()}
    drivers_out = {p: tb.sink(p, ready_prob=c.get("ready_prob", 1.0), seed=c.get("seed"))
                   for p, c in sinks.items()}
    await tb.reset(job.get("reset_cycles", 2))

    n_in = 0
    for port, drv in drivers_in.items():
        words = _words(job[f"in_{port}"], sources[port].get("width", 8))
        n_in += len(words)
        drv.send(words)
    n_out = sum(c["count"] for c in sinks.values())
    timeout = job.get("timeout_cycles", 1000 + 50 * (n_in + n_out))
    start = tb.cycle
    for port, drv in drivers_out.items():
        await drv.wait(sinks[port]["count"], timeout_cycles=max(1, timeout - (tb.cycle - start)))
    total = max((tb.cycle_at(d.times[-1]) for d in drivers_out.values() if d.times), default=0)
    if job.get("idle_cycles", 0):
        await tb.cycles(job["idle_cycles"])

    outputs = {}
    for port, drv in drivers_out.items():
        conf, count = sinks[port], sinks[port]["count"]
        words = drv.items[:count]
        if conf.get("lanes"):
            out = unpack(words, conf["lanes"], conf.get("width", 8),
                         signed=conf.get("signed", True))
        else:
            out = np.array(words, dtype=np.uint64 if any(w >> 63 for w in words) else np.int64)
        outputs[f"out_{port}"] = out
        outputs[f"cycles_{port}"] = np.array([tb.cycle_at(t) for t in drv.times], np.int64)
    for port, drv in drivers_in.items():
        outputs[f"cycles_{port}"] = np.array([tb.cycle_at(t) for t in drv.times], np.int64)
    job.put(**outputs, cycles={"total": int(total)})

    for port, drv in drivers_out.items():
        count = sinks[port]["count"]
        assert len(drv.items) == count, (
            f"{port}: {len(drv.items)} items arrived, expected exactly {count}")
        if f"expect_{port}" in job:
            want = np.asarray(job[f"expect_{port}"])
            got = outputs[f"out_{port}"]
            assert got.shape == want.shape and np.array_equal(got, want), (
                f"{port}: {_first_mismatch(got, want)}")
