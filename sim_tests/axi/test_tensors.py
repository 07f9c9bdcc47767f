"""The tensor movers against cocotbext-axi's AxiRam under Verilator (cocotb tests in
``cocotb_tensors.py``): random sub-rectangles read and random crops written at once with
pauses on every AXI channel and stalls on the byte streams, and the throughput without
stalls (docs/memory.md)."""

from pathlib import Path

import pytest

from sps_hw.axi import verilog_ports
from sps_hw.sim import simulate, write_job, write_verilog

from .designs import ADDR_WIDTH, SIZE_WIDTH, TensorPair

COCOTB = Path(__file__).with_name("cocotb_tensors.py")

#: name -> TensorPair parameters.
DESIGNS = {
    "w64": {"data_width": 64, "max_burst": 256, "max_outstanding": 4},
    "w128": {"data_width": 128, "max_burst": 16, "max_outstanding": 2},
}
PAUSES = {"ar": 0.3, "r": 0.3, "aw": 0.3, "w": 0.3, "b": 0.3}
#: (run length, rows) of the throughput test.
RUNS = [(8, 64), (32, 32), (224, 8)]

pytestmark = pytest.mark.parametrize("simulator", ["verilator"], indirect=True)


@pytest.fixture(params=DESIGNS)
def design(request, sim_build_root):
    """``(name, Verilog, build directory)`` of one TensorPair, shared by the xdist workers."""
    name = request.param
    build = sim_build_root / f"axi_tensors_{name}"
    top = TensorPair(**DESIGNS[name])
    return name, write_verilog(top, build / "tensors.v", ports=verilog_ports(top)), build


def run(design, simulator, tmp_path, test, seed=1, **conf):
    name, verilog, build = design
    job = write_job(tmp_path / "job", **DESIGNS[name], addr_width=ADDR_WIDTH,
                    size_width=SIZE_WIDTH, strobes=True, seed=seed, **{test: conf})
    result = simulate([verilog], "tensors", COCOTB, build_dir=build, simulator=simulator,
                      job=job, test_filter=rf"\.{test}$", timeout_s=300)
    assert [t.status for t in result.tests] == ["passed"]
    return result.outputs[test]


@pytest.mark.parametrize("seed, stalls", [(1, True), (2, True), (3, False)])
def test_random_tensors(design, simulator, tmp_path, seed, stalls):
    """40 random sub-rectangles read and 40 random crops written at once; with pauses on
    every channel and 30 % stalls on the byte streams, or none (back to back)."""
    conf = {"pause": PAUSES, "ready": 0.7, "valid": 0.7} if stalls else {}
    out = run(design, simulator, tmp_path, "traffic", seed=seed, commands=40, max_cols=70,
              timeout_cycles=200_000, **conf)
    # The random commands did what they are there for.
    for kind in ("read", "write"):
        assert out[f"{kind}_runs"] > 100
        assert out[f"{kind}_4k_runs"] > 0, f"no {kind} run crosses 4 KiB"
        assert out[f"{kind}_short_runs"] > 10, f"few {kind} runs within one word"
    assert out["empty_crops"] > 0
    if stalls:
        assert out["stalls"]["rd"] > 0 and out["stalls"]["wr"] > 0


@pytest.mark.parametrize("latency", [0, 20])
def test_throughput(design, simulator, tmp_path, latency):
    """Without pauses or stalls each mover moves one byte per cycle from its first byte to its
    last, whatever the run length and alignment, when its bursts in flight cover the
    memory's latency; the cycles docs/memory.md gives. The RAM answers 2 cycles after AR
    and after WLAST, and ``latency`` more (L = 3 + latency, Lb = 2 + latency)."""
    params = DESIGNS[design[0]]
    out = run(design, simulator, tmp_path, "throughput", runs=RUNS, read_addr=0x1003,
              write_addr=0x9005, latency={"r": latency, "b": latency}, queue=16)
    lat_r, lat_b = (2, 2) if not latency else (latency + 1, latency + 2)
    for r in out:
        n = r["cols"] * r["rows"]
        # Short runs: the bursts in flight cover (L + 3) cycles of a round trip.
        rate = min(1, params["max_outstanding"] * r["cols"] / (lat_r + 3))
        for kind in ("read", "write"):
            span = r[kind]["last"] - r[kind]["first"] + 1
            assert n / span >= 0.98 * rate, \
                f"{kind}, runs of {r['cols']}: {n} bytes in {span} cycles"
            if rate == 1:
                assert span == n
        read, write = r["read"], r["write"]
        assert (read["first"], read["done"]) == (5 + lat_r, read["last"])
        assert write["first"] == 4
        assert (write["last_w"], write["last_b"], write["done"]) == \
            (write["last"] + 1, write["last"] + 1 + lat_b, write["last"] + 1 + lat_b)
