"""cocotb system tests: compiled networks on the emitted Verilog against ``compiler.golden``.

Every run compares each tensor the RTL produced, and the network output, with the golden
model, and every layer's RTL cycle and action counters with the analytical model. Accelerator
configurations are fixed so that a simulator build serves every network that fits; adding
one is one line in ``CONFIGS``.
"""

import numpy as np
import pytest

from compiler import golden
from sps_hw import simulation
from sps_hw.config import Config

from ..support.accelerator import check_run
from ..support.layers import layer, random_model, random_specs, sample_input
from ..support.simulators import require_simulator

_SIZES = {"max_hw": 64, "max_width": 8, "fmap_depth": 256, "weight_depth": 4096,
          "index_depth": 64, "library_depth": 64, "param_depth": 64, "layer_depth": 16,
          "max_patterns": 8}
CONFIGS = {
    "3x2": Config(rows=3, cols=2, **_SIZES),
    "4x5": Config(rows=4, cols=5, **_SIZES),
    "1x1": Config(rows=1, cols=1, **_SIZES),
    "8x8": Config(rows=8, cols=8, **_SIZES),
    # Block-RAM reads of 3 cycles, the feeder's crossbar registered (the 16 x 8 ULX3S core).
    "4x3, reads of 3": Config(rows=4, cols=3, read_latency=3, **_SIZES),
    # The ULX3S core's array and reads (boards.platforms), with small buffers.
    "16x8, reads of 3": Config(rows=16, cols=8, read_latency=3, **_SIZES),
}


@pytest.mark.parametrize("config, seed", [
    ("3x2", 0), ("3x2", 1), ("3x2", 2), ("4x5", 3), ("4x5", 4), ("1x1", 5),
    ("4x3, reads of 3", 6), ("4x3, reads of 3", 7),
    *(pytest.param("8x8", seed, marks=pytest.mark.slow) for seed in range(10, 14)),
    *(pytest.param("16x8, reads of 3", seed, marks=pytest.mark.slow) for seed in (30, 31)),
    *(pytest.param("3x2", seed, marks=pytest.mark.slow) for seed in range(20, 26))])
def test_random_layers_with_stalls(config, seed):
    rng = np.random.default_rng(seed)
    model = random_model(random_specs(rng), seed=seed)
    x = sample_input(model, seed)
    run = simulation.run(model, x, cfg=CONFIGS[config], valid_prob=0.6, ready_prob=0.5,
                         seed=seed)
    check_run(model, x, run)


def test_reset_in_the_middle_of_a_layer():
    """Reset pulsed while the first layer computes; the run after it is exact."""
    specs = [layer("conv3", ci=3, h=6, w=7, co=4, keep=4, pool=True),
             layer("conv1", co=3)]
    model = random_model(specs, seed=7)
    x = sample_input(model, 7)
    run = simulation.run(model, x, cfg=CONFIGS["3x2"], reset_after=150, valid_prob=0.8,
                         ready_prob=0.7, seed=7)
    check_run(model, x, run)


def test_saturation_corners():
    """Weights of +-127/-128, inputs of -128 and 127, biases at the int32 headroom,
    multipliers near 2**31 and shifts up to 63."""
    specs = [layer("conv3", ci=5, h=4, w=5, co=6, keep=9), layer("conv1", co=4),
             layer("fc", co=3)]
    model = random_model(specs, seed=11, extreme=True)
    x = np.where(sample_input(model, 11) < 0, -128, 127).astype(np.int8)
    run = simulation.run(model, x, cfg=CONFIGS["4x5"])
    check_run(model, x, run)


def test_network_with_host_layers():
    """Residual add, max-pool and average pool run on the host; four hardware segments (one
    ending in a stride-2 convolution that the add also reads) run on the RTL in between."""
    specs = [layer("conv3", ci=2, h=8, w=6, co=4, keep=9, name="a"),
             layer("conv3", co=4, stride=2, name="down"),
             layer("conv1", co=5, name="b"), layer("conv1", co=4, relu=False, name="c"),
             layer("add", other="down", name="add"), layer("maxpool", name="mp"),
             layer("conv3", co=3, keep=4, name="d"), layer("avgpool", name="gap"),
             layer("fc", co=3, name="fc")]
    model = random_model(specs, seed=4)
    x = sample_input(model, 4)
    run = simulation.run(model, x, cfg=CONFIGS["3x2"], valid_prob=0.7, ready_prob=0.7, seed=4)
    where = {layer["name"]: layer["ran"] for layer in run.stats["layers"]}
    assert where == {"a": "hardware", "down": "hardware", "b": "hardware", "c": "hardware",
                     "add": "host", "mp": "host", "d": "hardware", "gap": "host",
                     "fc": "hardware"}
    assert [s.layers for s in run.program.segments] == [["a", "down"], ["b", "c"], ["d"],
                                                        ["fc"]]
    check_run(model, x, run)


def test_demo_network_end_to_end_through_the_cli(tmp_path, capsys):
    """``sps compile demo`` then ``sps sim``: the built-in demo from one input stream to its
    output, equal to ``sps golden``; the stats file has the model's cycles for every layer."""
    import json

    from compiler import images
    from sps import cli
    out, x_path = tmp_path / "demo", tmp_path / "x.npy"
    assert cli.main(["compile", "demo", "-o", str(out)]) == 0
    model = images.load(out)
    x = sample_input(model, 0)
    np.save(x_path, x)
    assert cli.main(["sim", str(out), "--input", str(x_path), "-o", str(tmp_path / "y.npy"),
                     "--rows", "4", "--cols", "4", "--stats", str(tmp_path / "s.json")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), golden.infer(model, x))
    stats = json.loads((tmp_path / "s.json").read_text())
    assert [row["name"] for row in stats["layers"]] == ["conv1", "conv2", "conv3", "fc"]
    for row in stats["layers"]:
        assert row["ran"] == "hardware" and row["cycles"] == row["model_cycles"] > 0
        assert row["multipliers"] == 16 and 0 < row["utilization"] <= 1 and row["macs"] > 0
    assert stats["total_cycles"] == sum(row["cycles"] for row in stats["layers"])
    assert "conv2: hardware" in capsys.readouterr().err
    # A wrong input: one line, exit status 2, no output written.
    np.save(x_path, x.astype(np.int16))
    assert cli.main(["sim", str(out), "--input", str(x_path), "-o",
                     str(tmp_path / "z.npy")]) == 2
    assert "expected an int8 array" in capsys.readouterr().err
    assert not (tmp_path / "z.npy").exists()


def test_icarus():
    """The same Verilog under Icarus Verilog."""
    require_simulator("icarus")
    specs = [layer("conv3", ci=2, h=4, w=4, co=3, keep=4, pool=True), layer("fc", co=2)]
    model = random_model(specs, seed=3)
    x = sample_input(model, 3)
    run = simulation.run(model, x, cfg=CONFIGS["3x2"], simulator="icarus", valid_prob=0.7,
                         ready_prob=0.7, seed=3)
    check_run(model, x, run)


@pytest.mark.slow
def test_resnet18_with_host_layers(tmp_path):
    """The whole of ResNet-18 (224x224): its 3x3 and 1x1 layers (stride 1 and 2) and the FC
    on an 8x8 array, the 7x7 convolution, pools and residual adds on the host."""
    from compiler import images
    from sps import cli
    out = tmp_path / "resnet18"
    assert cli.main(["compile", "resnet18", "-o", str(out)]) == 0
    model = images.load(out)
    x = sample_input(model, 1)
    run = simulation.run(model, x, rows=8, cols=8)
    runs = {layer["name"]: layer["ran"] for layer in run.stats["layers"]}
    assert runs["conv1"] == runs["maxpool"] == runs["layer1.0.add"] == "host"
    assert runs["layer1.0.conv1"] == runs["layer4.1.conv2"] == runs["fc"] == "hardware"
    assert runs["layer2.0.conv1"] == runs["layer2.0.downsample"] == "hardware"    # stride 2
    check_run(model, x, run)
