"""cocotb tests that run a compiled network on the emitted Verilog of the accelerator.

Started by :func:`sps_hw.simulation.run`; the job (see :mod:`sps_hw.sim.job`) holds:

    model       path of the compiled model (host layers run through compiler.golden)
    order       every layer name, in execution order
    segments    [{"layers": [...], "source": tensor name}] run by the hardware
    hw_layers   hardware layer names in descriptor-ROM order
    x           array: the network input
    valid_prob, ready_prob, seed    random stalls of act_in / act_out
    reset_after     optional: cycles after the first layer starts to pulse reset, then rerun
    timeout_cycles

Outputs: ``segment<i>``, the output tensor of the ``i``-th segment (named in
``segment_outputs``), ``stats`` = ``[[layer name, cycles], ...]``, ``io_cycles`` and, when
the accelerator has an ``actions`` port, ``actions`` = ``[[layer name, {kind: count}],
...]``.
"""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from compiler import golden, images
from sps_hw.counters import Actions
from sps_hw.sim.job import read_job
from sps_hw.sim.streams import TB, unpack_payload


class AcceleratorTB(TB):
    """Clock, reset, the two activation streams and the stats (and actions) monitors of
    ``sps_top``."""

    def __init__(self, dut, *, valid_prob=1.0, ready_prob=1.0, seed=None):
        super().__init__(dut)
        self.act_in = self.source("act_in", valid_prob=valid_prob, seed=seed)
        self.act_out = self.sink("act_out", ready_prob=ready_prob,
                              seed=None if seed is None else seed + 1)
        self.stats, self.actions = [], []
        self._monitors = [cocotb.start_soon(self._watch("stats", self._stats))]
        if hasattr(dut, "actions__valid"):
            self._monitors.append(cocotb.start_soon(self._watch("actions", self._actions)))

    def _stats(self, word):
        self.stats.append((word & 0xFFFF, word >> 16))

    def _actions(self, word):
        counts = unpack_payload(Actions, word)
        self.actions.append((counts.pop("layer"), counts))

    async def _watch(self, port, record):
        """Record the payload of every cycle ``port`` is valid (always ready)."""
        valid, payload = getattr(self.dut, f"{port}__valid"), getattr(self.dut, f"{port}__payload")
        while True:
            await RisingEdge(valid)
            await ReadOnly()
            record(int(payload.value))

    async def run_segment(self, tensor, count, timeout_cycles):
        """Send one segment's input, return its ``count`` output bytes (and last flags)."""
        already = len(self.act_out.items)
        self.act_in.send(int(v) & 0xFF for v in np.asarray(tensor).reshape(-1))
        words = await self.act_out.wait(already + count, timeout_cycles=timeout_cycles)
        words = np.array(words[already:], dtype=np.int64)
        data = ((words & 0xFF) ^ 0x80) - 0x80
        return data.astype(np.int8), words >> 8


def _host(model, layer, acts):
    return golden.run_layer(layer, model.weights.get(layer["name"]),
                            [acts[src] for src in layer["inputs"]])


@cocotb.test()
async def run_network(dut):
    """Run the job's network: host layers in Python, segments on the RTL."""
    job = read_job()
    model = images.load(job["model"], verify=False)
    by_name = {layer["name"]: layer for layer in model.layers}
    segments = job["segments"]
    first_layer = {seg["layers"][0]: seg for seg in segments}
    hw_layers = job["hw_layers"]
    timeout = int(job.get("timeout_cycles", 1_000_000))
    tb = AcceleratorTB(dut, valid_prob=job.get("valid_prob", 1.0),
                       ready_prob=job.get("ready_prob", 1.0), seed=job.get("seed"))
    await tb.reset()

    if job.get("reset_after") is not None:
        # Start the first segment, pulse reset in the middle of its first layer, then run
        # everything again from the start: the result must be as if nothing had happened.
        seg = segments[0]
        x = np.asarray(job["x"])
        source = x if seg["source"] == "input" else None
        if source is not None:
            tb.act_in.send(int(v) & 0xFF for v in source.reshape(-1))
            await tb.act_in.wait_idle(timeout_cycles=timeout)
            await ClockCycles(tb.clk, int(job["reset_after"]))
            assert not tb.stats, "reset_after is past the end of the first layer"
            assert not tb.act_out.items, "output arrived before the reset"
            await tb.reset(3)
            tb.stats.clear()
            tb.actions.clear()

    acts = {"input": np.asarray(job["x"]).astype(np.int8)}
    outputs, start = {}, tb.cycle
    for name in job["order"]:
        layer = by_name[name]
        if name in first_layer:
            seg = first_layer[name]
            last = by_name[seg["layers"][-1]]
            count = int(np.prod(last["out_shape"]))
            data, flags = await tb.run_segment(acts[seg["source"]], count, timeout)
            assert list(flags) == [0] * (count - 1) + [1], "act_out: bad last flags"
            acts[last["name"]] = data.reshape(last["out_shape"])
            outputs[f"segment{len(outputs)}"] = acts[last["name"]]
        elif name not in hw_layers:
            acts[name] = _host(model, layer, acts)
    await ClockCycles(tb.clk, 2)
    assert len(tb.act_out.items) == sum(int(np.prod(by_name[s["layers"][-1]]["out_shape"]))
                                     for s in segments), "act_out: extra bytes"
    stats = [[hw_layers[i], int(c)] for i, c in tb.stats]
    actions = [[hw_layers[i], counts] for i, counts in tb.actions]
    job.put(**outputs, stats=stats, actions=actions, io_cycles=int(tb.cycle - start),
            segment_outputs=[seg["layers"][-1] for seg in segments])
