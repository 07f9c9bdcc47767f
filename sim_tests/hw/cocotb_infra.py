"""cocotb tests of the simulation infrastructure, run by test_sim_infra.py on ``AddPipe``.

``AddPipe`` adds ``k`` (wrapping) to each int8 lane of a stream, through one register stage
and a ``SyncFIFOBuffered`` of ``depth``; the job gives ``lanes``, ``k``, ``depth``.
"""

import os

import cocotb
import numpy as np
from cocotb.triggers import Timer

from sps_hw.sim.job import read_job
from sps_hw.sim.streams import TB, pack, unpack


def _model(x, k):
    return ((np.asarray(x, np.int64) + k + 128) % 256) - 128


def _setup(dut):
    job = read_job()
    rng = np.random.default_rng(job.get("seed", 0))
    return job, TB(dut), rng


@cocotb.test()
async def environment(dut):
    """What the simulator process got: the job, its environment, seed and plusargs."""
    job = read_job()
    job.put(verilator_root=os.environ.get("VERILATOR_ROOT"),
            path0=os.environ["PATH"].split(os.pathsep)[0],
            pythonpath=os.environ.get("PYTHONPATH", "").split(os.pathsep),
            rewrite=os.environ.get("COCOTB_REWRITE_ASSERTION_FILES"),
            probe=os.environ.get("SPS_INFRA_PROBE"), objcache=os.environ.get("OBJCACHE"),
            seed=os.environ.get("COCOTB_RANDOM_SEED"), plusarg=cocotb.plusargs.get("sps_probe"))


@cocotb.test()
async def backpressure(dut):
    """With ``o`` never ready the pipe takes exactly 1 + depth items, then releases all."""
    job, tb, rng = _setup(dut)
    lanes, k, depth = job["lanes"], job["k"], job["depth"]
    x = rng.integers(-128, 128, size=(3 * depth, lanes))
    src = tb.source("i")
    dut.o__ready.value = 0
    await tb.reset()
    src.send(pack(x, 8))
    await tb.cycles(4 * depth + 10)
    assert src.sent == 1 + depth, f"took {src.sent} items with o stalled, expected {1 + depth}"
    sink = tb.sink("o")
    words = await sink.wait(len(x), timeout_cycles=10 * len(x))
    np.testing.assert_array_equal(unpack(words, lanes, 8), _model(x, k))


@cocotb.test()
async def full_throughput(dut):
    """Without stalls one item per cycle comes out, ``latency`` cycles after it went in."""
    job, tb, rng = _setup(dut)
    lanes, k = job["lanes"], job["k"]
    x = rng.integers(-128, 128, size=(50, lanes))
    src, sink = tb.source("i"), tb.sink("o")
    await tb.reset()
    src.send(pack(x, 8))
    words = await sink.wait(len(x), timeout_cycles=200)
    np.testing.assert_array_equal(unpack(words, lanes, 8), _model(x, k))
    t_in = np.array([tb.cycle_at(t) for t in src.times])
    t_out = np.array([tb.cycle_at(t) for t in sink.times])
    assert np.all(np.diff(t_in) == 1) and np.all(np.diff(t_out) == 1), "not 1 item/cycle"
    latency = set((t_out - t_in).tolist())
    assert latency == {job["latency"]}, f"latency {latency}, expected {job['latency']}"
    job.put(first_in=int(t_in[0]), first_out=int(t_out[0]))


@cocotb.test()
async def sink_timeout(dut):
    """Waiting for more items than will come raises TimeoutError after the given cycles."""
    job, tb, rng = _setup(dut)
    src, sink = tb.source("i"), tb.sink("o")
    await tb.reset()
    src.send(pack(rng.integers(-128, 128, size=(3, job["lanes"])), 8))
    start = tb.cycle
    try:
        await sink.wait(4, timeout_cycles=25)
    except TimeoutError as e:
        assert "3 of 4" in str(e), str(e)
    else:
        raise AssertionError("sink.wait(4) returned with 3 items sent")
    assert tb.cycle - start == 25, f"timed out after {tb.cycle - start} cycles, expected 25"


@cocotb.test()
async def cycle_counting(dut):
    """``tb.cycles(n)`` ends exactly n rising edges later, from an edge or from mid-cycle."""
    tb = TB(dut)
    await tb.reset()
    assert tb.cycle == 0
    for n in (1, 2, 3, 37, 1000):
        c = tb.cycle
        await tb.cycles(n)
        assert tb.cycle == c + n, f"cycles({n}) from an edge: {tb.cycle - c} edges"
        await Timer(3, "ns")                    # now mid-cycle
        c = tb.cycle
        await tb.cycles(n)
        assert tb.cycle == c + n, f"cycles({n}) from mid-cycle: {tb.cycle - c} edges"


@cocotb.test()
async def hang(dut):
    """Never finishes when $SPS_INFRA_HANG is set (to test simulate's timeout)."""
    if os.environ.get("SPS_INFRA_HANG") != "1":
        return
    tb = TB(dut)
    await tb.reset()
    while True:
        await tb.cycles(1000)
