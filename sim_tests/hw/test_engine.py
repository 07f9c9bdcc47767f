"""The tile engine (``sps_hw.engine``) on its Verilog under cocotbext-axi's AxiRam: random
layer chains much larger than the core run job by job from external memory, bit-exact with
the golden model; every job's computation and bytes read and written equal to the model
(``sps_hw.tiling``), and with a steady memory its cycles too, to the cycle, but for a job
whose end waits for the RAM's last write response, which cocotbext-axi's AxiRam sends up to
one cycle sooner when short bursts follow each other (docs/tiling.md)."""

import numpy as np
import pytest

from compiler import golden
from sim_tests.support.layers import layer, random_model, sample_input
from sim_tests.support.simulators import require_simulator
from sps_hw import dram, engine_sim, tiling
from sps_hw.config import Config

#: Cores far smaller than the layers below: many tiles, channel chunks, halos, resident
#: inputs; two array shapes.
CORES = {
    "4x3": Config(rows=4, cols=3, max_hw=64, max_width=12, fmap_depth=128, weight_depth=2048,
                  param_depth=2, layer_depth=2, counters=False),
    "2x5": Config(rows=2, cols=5, max_hw=48, max_width=10, fmap_depth=96, weight_depth=1024,
                  param_depth=1, layer_depth=2, counters=False),
}

#: Layer chains: 3x3 with pool and keeps 4/2/9, stride 2 (3x3 and 1x1), channel counts that
#: are not multiples of the arrays, an FC at the end.
CHAINS = {
    "pool": [layer("conv3", ci=5, h=14, w=10, co=7, pool=True, period=3, keep=4),
             layer("conv1", co=8, stride=2), layer("fc", co=5, relu=False)],
    "stride": [layer("conv3", ci=3, h=13, w=11, co=6, keep=9),
               layer("conv3", co=7, stride=2, keep=2, period=2),
               layer("conv3", co=4, keep=4), layer("conv1", co=3, relu=False)],
    # A residual network: every layer on the engine (the vector unit: max-pool, add,
    # global average pool).
    "residual": [layer("conv3", ci=3, h=12, w=11, co=6, keep=9, name="stem"),
                 layer("maxpool", name="pool"),
                 layer("conv3", co=6, keep=4, period=2, name="c1"),
                 layer("conv3", co=6, keep=4, relu=False, name="c2"),
                 layer("add", other="pool", name="add"),
                 layer("conv3", co=8, stride=2, keep=4, name="down"),
                 layer("avgpool", name="gap"),
                 layer("fc", co=5, relu=False, name="fc")],
}


def golden_tensors(model, x):
    acts = {"input": x}
    for entry in model.layers:
        acts[entry["name"]] = golden.run_layer(entry, model.weights.get(entry["name"]),
                                               [acts[s] for s in entry["inputs"]])
    return acts


def check(run, model, x, latency, steady):
    """Every tensor equals the golden model's; every job's figures the model's."""
    want = golden_tensors(model, x)
    for name, value in want.items():
        assert np.array_equal(run.tensors[name], value), f"tensor {name} differs"
    image = run.image
    costs = image.costs()
    assert len(run.jobs) == len(costs) > len(model.layers)
    assert not image.host, f"host layers {image.host}"
    assert [j[0] for j in run.jobs] == list(range(len(costs)))
    assert [j[2] for j in run.jobs] == [c.compute for c in costs], "compute cycles"
    assert [j[3] for j in run.jobs] == [c.read_bytes for c in costs], "bytes read"
    assert [j[4] for j in run.jobs] == [c.written for c in costs], "bytes written"
    assert any(e.resident for e in image.jobs)
    (regs,) = run.runs
    assert regs["status"] == 0 and regs["jobs_done"] == len(costs)
    assert regs["cycles"] == sum(j[1] for j in run.jobs)
    assert regs["compute"] == sum(c.compute for c in costs)
    assert regs["read_bytes"] == sum(c.read_bytes for c in costs)
    assert regs["write_bytes"] == sum(c.written for c in costs)
    if steady:
        model_cycles = tiling.engine_cycles(costs, tiling.Memory(1, latency))
        got = [j[1] for j in run.jobs]
        off = [g - w for g, w in zip(got, model_cycles)]
        assert set(off) <= {0, -1}, f"job cycles {got}, model {model_cycles}"
        assert latency or not any(off), "without latency every job is exact"


@pytest.mark.parametrize("core, chain, latency", [
    ("4x3", "pool", 0), ("4x3", "stride", 13), ("4x3", "residual", 5),
    ("2x5", "pool", 20), ("2x5", "stride", 1), ("2x5", "residual", 0)])
def test_chains_from_memory(core, chain, latency, tmp_path):
    """Steady memory with ``latency``: bit-exact, and every figure equal to the model."""
    require_simulator("verilator")
    model = random_model(CHAINS[chain], seed=len(chain) + latency)
    x = sample_input(model, latency)
    run = engine_sim.run(model, x, cfg=CORES[core], latency=latency)
    check(run, model, x, latency, steady=True)


def test_backpressure():
    """Random pauses on every AXI channel and latency: bit-exact, the bytes and computation
    still equal to the model, and the engine took longer than with a steady memory."""
    require_simulator("verilator")
    model = random_model(CHAINS["residual"], seed=11)
    x = sample_input(model, 5)
    pause = {"ar": 0.3, "r": 0.4, "aw": 0.3, "w": 0.4, "b": 0.3}
    run = engine_sim.run(model, x, cfg=CORES["4x3"], latency=7, pause=pause, seed=3)
    check(run, model, x, 7, steady=False)
    steady = tiling.engine_cycles(run.image.costs(), tiling.Memory(1, 7))
    assert sum(j[1] for j in run.jobs) > sum(steady)


def test_model_costs_equal_the_packed_image():
    """The arithmetic costs the reports use (tiling.job_costs) equal the packed image's."""
    for chain in CHAINS.values():
        for cfg in CORES.values():
            model = random_model(chain, seed=2)
            image = dram.pack(model, cfg)
            active, previous, costs = {}, None, []
            shapes = {"input": tuple(model.manifest["input"]["shape"])}
            for entry in model.layers:
                jobs = [e.job for e in image.jobs if e.layer == entry["name"]]
                more, previous = tiling.job_costs(entry, jobs, cfg, active, previous)
                costs += more
                shapes[entry["name"]] = tuple(entry["out_shape"])
            assert costs == image.costs()


@pytest.mark.slow
def test_resnet18_from_memory(tmp_path):
    """The whole of ResNet-18 (224 x 224) through the tile engine of the ULX3S core (8 x 8,
    its block-RAM buffers) from external memory with a latency of 10 cycles: every layer
    but the 7x7 stem on the engine (3x3 and 1x1 at strides 1 and 2, max-pool, the residual
    adds, average pool, FC), bit-exact with the golden model, every job's computation and
    bytes equal to the model, the cycles within the one-cycle write-response bound but for
    the run's last job."""
    from boards.platforms import BOARDS
    from compiler import images
    from sps import cli

    require_simulator("verilator")
    out = tmp_path / "resnet18"
    assert cli.main(["compile", "resnet18", "-o", str(out)]) == 0
    model = images.load(out)
    x = sample_input(model, 1)
    run = engine_sim.run(model, x, cfg=BOARDS["ulx3s-85f"].dram_config, latency=10)
    assert set(run.image.host) == {"conv1"}, run.image.host
    want = golden_tensors(model, x)
    for name, value in want.items():
        assert np.array_equal(run.tensors[name], value), f"tensor {name} differs"
    costs = [c for kind, *args in run.image.steps if kind == "jobs"
             for c in run.image.costs(*args)]
    assert [j[2] for j in run.jobs] == [c.compute for c in costs]
    assert [j[3] for j in run.jobs] == [c.read_bytes for c in costs]
    assert [j[4] for j in run.jobs] == [c.written for c in costs]
    model_cycles = []
    for kind, *args in run.image.steps:
        if kind == "jobs":
            model_cycles += tiling.engine_cycles(run.image.costs(*args), tiling.Memory(1, 10))
    off = [g[1] - w for g, w in zip(run.jobs, model_cycles)]
    # Every job to the cycle (or the one cycle of AxiRam's write response) but the last,
    # whose end after a 40-output FC store the model puts 19 cycles early (measured; open).
    assert all(d in (0, -1) for d in off[:-1]), [i for i, d in enumerate(off) if d not in (0, -1)]
    assert 0 <= off[-1] <= 32


@pytest.mark.parametrize("argv, message", [
    (["--dram-bytes-per-cycle", "0.5"], "--dram-bytes-per-cycle must be at least 1"),
    (["--dram-latency", "-3"], "--dram-latency must be in 0..1000"),
    (["--board", "ulx3s-85f", "--simulator", "icarus"], "verilator only"),
])
def test_sim_refusals(tmp_path, capsys, argv, message):
    """Bad engine options: one line naming the option, exit 2, no output file."""
    from sps import cli
    model = tmp_path / "m"
    assert cli.main(["compile", "demo", "-o", str(model)]) == 0
    x = tmp_path / "x.npy"
    np.save(x, sample_input(__import__("compiler").images.load(model), 0))
    capsys.readouterr()
    y = tmp_path / "y.npy"
    assert cli.main(["sim", str(model), "--input", str(x), "-o", str(y), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not y.exists()


def test_resnet_with_batchnorm_from_onnx(tmp_path):
    """A residual network with BatchNorm and stride-2 downsampling, from an ONNX file through
    `sps compile`: every layer on the engine (no host layer), bit-exact with the golden
    model; every job's figures equal the model's."""
    from compiler import images
    from sim_tests.compiler.test_frontends import Onnx
    from sps import cli

    require_simulator("verilator")
    m = Onnx((3, 16, 16), seed=4)
    m.conv(3, 8, name="stem")
    m.bn(8)
    stem = m.relu()
    pool = m.node("MaxPool", [stem], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    m.conv(8, 8, name="b1.conv1", bias=False)
    m.bn(8)
    m.relu()
    m.conv(8, 8, name="b1.conv2", bias=False)
    m.bn(8)
    m.node("Add", [m.last, pool])
    b1 = m.relu()
    m.conv(8, 16, name="b2.conv1", bias=False, strides=[2, 2])
    m.bn(16)
    m.relu()
    m.conv(16, 16, name="b2.conv2", bias=False)
    main = m.bn(16)
    m.conv(8, 16, k=1, src=b1, name="b2.down", bias=False, strides=[2, 2], pads=[0, 0, 0, 0])
    m.bn(16)
    m.node("Add", [main, m.last])
    m.relu()
    m.node("GlobalAveragePool", [m.last])
    m.node("Flatten", [m.last], axis=1)
    m.gemm(16, 10, name="fc")
    onnx = m.save(tmp_path / "resnet.onnx")
    out = tmp_path / "model"
    assert cli.main(["compile", str(onnx), "-o", str(out)]) == 0
    model = images.load(out)
    ops = [entry["op"] for entry in model.layers]
    assert ops.count("add") == 2 and "maxpool" in ops and "avgpool" in ops
    assert any(e["op"] == "conv" and e["stride"] == 2 for e in model.layers)
    x = sample_input(model, 2)
    run = engine_sim.run(model, x, cfg=CORES["4x3"], latency=3)
    check(run, model, x, 3, steady=True)
    assert np.array_equal(run.output, golden.infer(model, x))
