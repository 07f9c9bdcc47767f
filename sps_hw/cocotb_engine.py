"""cocotb test that runs a compiled network on the emitted Verilog of the tile engine
(:mod:`sps_hw.engine`) with cocotbext-axi's ``AxiRam`` as its external memory.

Started by :func:`sps_hw.engine_sim.run`; the job (see :mod:`sps_hw.sim.job`) holds:

    model       path of the compiled model (host steps run through compiler.golden)
    dram        path of the packed image directory (dram.bin, dram.json: sps_hw.dram)
    latency     cycles the RAM adds to every read burst and write response
    pause       {channel: probability} of random pauses on the RAM's AXI channels
    timeout_cycles

The host writes the network input into the RAM, then for each step either starts the engine
on the step's jobs over AXI4-Lite and waits for its interrupt, or runs a host layer on the
tensors in the RAM. Outputs: ``tensors`` (every tensor of the image, read back from the RAM,
as ``t_<name>`` arrays), ``jobs`` (``[job, cycles, compute, read_bytes, write_bytes]`` per
job), ``runs`` (the registers after each run), ``actions`` (per job, with counters).
"""

import json
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from compiler import golden, images
from sps_hw.counters import Actions
from sps_hw.engine import RECORD_BYTES, REGISTERS, JobStats
from sps_hw.sim.axi_memory import delay_reads, delay_responses, set_pauses
from sps_hw.sim.job import read_job
from sps_hw.sim.streams import TB, unpack_payload

OFFSET = {reg.name: 4 * i for i, reg in enumerate(REGISTERS)}
#: Addresses the RAM takes ahead of the burst it serves (on AR and on AW).
QUEUE = 16


async def _watch(dut, port, record):
    """Record the payload of every cycle ``port`` is valid (always ready)."""
    valid, payload = getattr(dut, f"{port}__valid"), getattr(dut, f"{port}__payload")
    while True:
        await RisingEdge(valid)
        await ReadOnly()
        record(int(payload.value))


def _tensor(ram, entry):
    raw = ram.read(entry["offset"], entry["bytes"])
    return np.frombuffer(raw, np.int8).reshape(entry["shape"])


@cocotb.test()
async def run_table(dut):
    """Run the job's network: host steps in Python, job steps on the engine."""
    job = read_job()
    model = images.load(job["model"], verify=False)
    dram = Path(job["dram"])
    data = (dram / "dram.bin").read_bytes()
    dmap = json.loads((dram / "dram.json").read_text())
    tb = TB(dut)
    size = 1 << max(16, (len(data) - 1).bit_length())
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=size)
    # Like a DRAM controller, the RAM takes addresses ahead of the bursts it serves.
    ram.read_if.ar_channel.queue_occupancy_limit = QUEUE
    ram.write_if.aw_channel.queue_occupancy_limit = QUEUE
    rng = random.Random(job.get("seed", 0))
    set_pauses(ram, job.get("pause") or {}, rng)
    if job.get("latency"):
        delay_reads(ram, job["latency"], tb.period_steps)
        delay_responses(ram, job["latency"], dut.clk)
    lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), dut.clk, dut.rst)
    jobs, actions = [], []
    cocotb.start_soon(_watch(dut, "jobs", lambda w: jobs.append(
        [unpack_payload(JobStats, w)[k] for k in ("job", "cycles", "compute", "read_bytes",
                                                  "write_bytes")])))
    if hasattr(dut, "actions__valid"):
        cocotb.start_soon(_watch(dut, "actions", lambda w: actions.append(
            {k: v for k, v in unpack_payload(Actions, w).items() if k != "layer"})))
    await tb.reset()
    ram.write(0, data)
    x = np.asarray(job["x"], np.int8)
    t = dmap["tensors"]
    ram.write(t["input"]["offset"], x.tobytes())
    by_name = {layer["name"]: layer for layer in model.layers}
    timeout = int(job.get("timeout_cycles", 10_000_000))
    await lite.write_dword(OFFSET["irq_enable"], 1)
    runs = []
    for kind, *args in dmap["steps"]:
        if kind == "host":
            layer = by_name[args[0]]
            inputs = [_tensor(ram, t[src]) for src in layer["inputs"]]
            y = golden.run_layer(layer, model.weights.get(layer["name"]), inputs)
            ram.write(t[layer["name"]]["offset"], np.asarray(y, np.int8).tobytes())
            continue
        first, count = args
        await lite.write_dword(OFFSET["table"], dmap["table"] + first * RECORD_BYTES)
        await lite.write_dword(OFFSET["count"], count)
        await lite.write_dword(OFFSET["start"], 1)
        for _ in range(timeout):
            await RisingEdge(dut.clk)
            if int(dut.irq.value):
                break
        else:
            raise TimeoutError(f"the engine did not finish jobs {first}..{first + count - 1} "
                               f"in {timeout} cycles")
        regs = {name: await lite.read_dword(OFFSET[name]) for name in (
            "status", "jobs_done", "cycles", "compute", "read_bytes", "write_bytes")}
        await lite.write_dword(OFFSET["done"], 1)
        regs.update(first=first, count=count)
        runs.append(regs)
    await RisingEdge(dut.clk)
    names = list(t)
    out = {f"t{i}": _tensor(ram, t[name]) for i, name in enumerate(names)}
    job.put(**out, tensor_names=names, jobs=jobs, runs=runs, actions=actions)
