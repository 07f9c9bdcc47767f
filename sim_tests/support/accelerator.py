"""Runs of the whole accelerator and their checks: one segment in amaranth.sim
(:func:`run_accelerator`), and a :func:`sps_hw.simulation.run` on the emitted Verilog against
the golden model and the analytical model (:func:`check_run`)."""

import numpy as np
from amaranth.sim import Simulator

from compiler import golden
from sps_hw.top import Accelerator

from .layers import actions_monitor, stats_monitor

__all__ = ["check_run", "run_accelerator"]


def run_accelerator(cfg, program, x, *, seed=0, valid_prob=1.0, ready_prob=1.0,
                    max_cycles=200_000):
    """Feed ``x`` (one segment) with random gaps and stalls on the streams; returns the
    output bytes, their last flags, ``stats`` and (``cfg.counters``) ``actions``."""
    dut = Accelerator(cfg, program.images)
    rng = np.random.default_rng(seed)
    seg = program.segments[0]
    n_out = int(np.prod(seg.out_shape))
    out, last, stats, actions = [], [], [], []

    async def source(ctx):
        for v in x.reshape(-1):
            while rng.random() >= valid_prob:
                ctx.set(dut.act_in.valid, 0)
                await ctx.tick()
            ctx.set(dut.act_in.valid, 1)
            ctx.set(dut.act_in.payload, int(v))
            await ctx.tick().until(dut.act_in.ready)
        ctx.set(dut.act_in.valid, 0)

    async def sink(ctx):
        cycles = 0
        while len(out) < n_out and cycles < max_cycles:
            ready = rng.random() < ready_prob
            ctx.set(dut.act_out.ready, ready)
            if ready and ctx.get(dut.act_out.valid):       # a transfer at this edge
                out.append(ctx.get(dut.act_out.payload.data))
                last.append(ctx.get(dut.act_out.payload.last))
            await ctx.tick()
            cycles += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.add_process(stats_monitor(dut, stats))
    if cfg.counters:
        sim.add_process(actions_monitor(dut, actions))
    sim.run()
    assert len(out) == n_out, f"{len(out)} of {n_out} outputs arrived; stats {stats}"
    return np.array(out, np.int8).reshape(seg.out_shape), last, stats, actions


def check_run(model, x, run):
    """The RTL's tensors and output equal golden's; its cycle and action counts equal the
    model's (``run`` from :func:`sps_hw.simulation.run`)."""
    acts = golden.run(model, x)
    for name, tensor in run.tensors.items():
        np.testing.assert_array_equal(tensor, acts[name], err_msg=f"tensor {name}")
    np.testing.assert_array_equal(run.output, acts[model.manifest["output"]["name"]])
    hardware = [layer for layer in run.stats["layers"] if layer["ran"] == "hardware"]
    assert hardware and all(layer["cycles"] == layer["model_cycles"] for layer in hardware), \
        run.stats["layers"]
    assert run.stats["total_cycles"] == run.stats["model_total_cycles"]
    for layer in hardware:
        assert layer["actions"] == layer["model_actions"], layer
