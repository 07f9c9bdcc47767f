"""The reader and the writer against cocotbext-axi's AxiRam under Verilator (cocotb tests in
``cocotb_dma.py``): random traffic with pauses on every AXI channel and stalls on the
streams, error responses, and the cycle of every beat without stalls (docs/memory.md)."""

from pathlib import Path

import pytest

from sps_hw.axi import verilog_ports
from sps_hw.axi.timing import read_timing, write_timing
from sps_hw.sim import simulate, write_job, write_verilog

from .designs import ADDR_WIDTH, BEATS_WIDTH, DmaPair

COCOTB = Path(__file__).with_name("cocotb_dma.py")

#: name -> DmaPair parameters; max_beats is the longest random command of the traffic test.
DESIGNS = {
    "w64": {"data_width": 64, "max_burst": 256, "max_outstanding": 4},
    "w128": {"data_width": 128, "max_burst": 16, "max_outstanding": 2},
}
PAUSES = {"ar": 0.3, "r": 0.3, "aw": 0.3, "w": 0.3, "b": 0.3}

pytestmark = pytest.mark.parametrize("simulator", ["verilator"], indirect=True)


@pytest.fixture(params=DESIGNS)
def design(request, sim_build_root):
    """``(name, Verilog, build directory)`` of one DmaPair, shared by the xdist workers."""
    name = request.param
    build = sim_build_root / f"axi_dma_{name}"
    top = DmaPair(**DESIGNS[name])
    return name, write_verilog(top, build / "dma.v", ports=verilog_ports(top)), build


def run(design, simulator, tmp_path, test, seed=1, **conf):
    name, verilog, build = design
    job = write_job(tmp_path / "job", **DESIGNS[name], addr_width=ADDR_WIDTH,
                    beats_width=BEATS_WIDTH, seed=seed, **{test: conf})
    result = simulate([verilog], "dma", COCOTB, build_dir=build, simulator=simulator, job=job,
                      test_filter=rf"\.{test}$", timeout_s=300)
    assert [t.status for t in result.tests] == ["passed"]
    return result.outputs[test] if test in result.outputs else None


@pytest.mark.parametrize("seed", [1, 2])
def test_random_traffic(design, simulator, tmp_path, seed):
    params = DESIGNS[design[0]]
    max_beats = 5000 // (params["data_width"] // 8)      # longer than any burst
    out = run(design, simulator, tmp_path, "traffic", seed=seed, commands=20,
              max_beats=max_beats, pause=PAUSES, ready=0.7, valid=0.7, timeout_cycles=200_000)
    # The random commands did what they are there for: bursts cut by max_burst and by 4 KiB.
    assert out["read_bursts"] > 20 and out["write_bursts"] > 20
    assert out["read_bursts_max"] == out["write_bursts_max"] == params["max_burst"]
    assert out["read_4k_cut"] > 0
    assert out["stalls"]["rd"] > 0 and out["stalls"]["wr"] > 0


def test_error_responses(design, simulator, tmp_path):
    run(design, simulator, tmp_path, "errors")


@pytest.mark.parametrize("latency", [0, 20])
def test_cycle_model(design, simulator, tmp_path, latency):
    """Without pauses or stalls every beat moves at the cycle sps_hw.axi.timing predicts, with
    the RAM's own latencies (2 cycles AR to R and WLAST to B) and with ``latency`` more; a
    burst cut at 4 KiB in each command. The RAM takes up to 16 addresses ahead (AxiRam's
    default of 2 would hold back the fourth burst in flight)."""
    params = DESIGNS[design[0]]
    beats, read_addr, write_addr = 1200, 0x0F80, 0x8F80
    out = run(design, simulator, tmp_path, "throughput", beats=beats, read_addr=read_addr,
              write_addr=write_addr, latency={"r": latency, "b": latency}, queue=16)
    read, write = out["read"], out["write"]
    assert (read["latency"], write["latency"]) == ((2, 2) if not latency else
                                                   (latency + 1, latency + 2))
    model = {"data_width": params["data_width"], "max_burst": params["max_burst"],
             "max_outstanding": params["max_outstanding"]}
    want = read_timing(read_addr, beats, latency=read["latency"], **model)
    assert {k: read[k] for k in want} == want
    want = write_timing(write_addr, beats, latency=write["latency"], **model)
    assert {k: write[k] for k in want} == want
    if not latency:          # one beat per cycle from the first to the last
        assert read["data"] == list(range(4, 4 + beats))
        assert write["data"] == list(range(3, 3 + beats))
