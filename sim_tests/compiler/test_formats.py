"""Storage of sparse weight formats (compiler/formats.py) and the storage report."""

import json
import math

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import formats, pps, storage_report
from compiler.errors import SPSError
from compiler.graph import Layer, Network

TAPS_0134 = 0b000011011        # taps 0, 1, 3, 4
TAPS_4578 = 0b110110000        # taps 4, 5, 7, 8


def bits_of(entry):
    return entry["value_bits"], entry["index_bits"], entry["total_bits"]


# --- reference implementations: explicit encoders, counted field by field ---------------------

def ref_width(count):
    return 0 if count <= 1 else math.ceil(math.log2(count))


def ref_rlc_entries(flat, run_bits):
    """EIE encoder: (value, run) entries, a filler zero whenever the run field is full and
    another zero follows; trailing zeros are implied by the layer size."""
    entries, run = [], 0
    for v in flat:
        if v:
            entries.append((1, run))
            run = 0
        elif run == (1 << run_bits) - 1:
            entries.append((0, run))        # filler: a stored zero with a full run field
            run = 0
        else:
            run += 1
    while entries and not entries[-1][0]:
        entries.pop()                       # zeros after the last weight need no entry
    return entries


def reference(mask, run_bits=4, vb=8):
    rows = mask.shape[0]
    mat = mask.reshape(rows, -1)
    cols = mat.shape[1]
    csr, csc = scipy.sparse.csr_matrix(mat), scipy.sparse.csc_matrix(mat)
    nnz = csr.nnz
    ptr = ref_width(nnz + 1)
    entries = ref_rlc_entries(mask.reshape(-1), run_bits)
    fillers = sum(1 for v, _ in entries if not v)
    return {
        "dense": (mat.size * vb, 0),
        "csr": (nnz * vb, csr.indices.size * ref_width(cols) + csr.indptr.size * ptr),
        "csc": (nnz * vb, csc.indices.size * ref_width(rows) + csc.indptr.size * ptr),
        "coo": (nnz * vb, nnz * (ref_width(rows) + ref_width(cols))),
        "bitmap": (nnz * vb, mat.size),
        "rlc": (nnz * vb, len(entries) * run_bits + fillers * vb),
    }


# --- hand-computed cases ----------------------------------------------------------------------

def test_small_mask_every_format():
    # matrix view [2, 4]: row 0 = 1 0 0 1, row 1 = 0 1 0 0; nnz 3
    mask = np.array([[1, 0, 0, 1], [0, 1, 0, 0]], bool).reshape(2, 1, 2, 2)
    got = formats.layer_storage(mask)
    assert set(got) == set(formats.FORMATS)
    assert bits_of(got["dense"]) == (64, 0, 64)
    assert bits_of(got["csr"]) == (24, 3 * 2 + 3 * 2, 36)     # 2-bit cols, 3 ptrs of 2 bits
    assert bits_of(got["csc"]) == (24, 3 * 1 + 5 * 2, 37)     # 1-bit rows, 5 ptrs of 2 bits
    assert bits_of(got["coo"]) == (24, 3 * 3, 33)
    assert bits_of(got["bitmap"]) == (24, 8, 32)
    assert bits_of(got["rlc"]) == (24, 3 * 4, 36)             # runs 0, 2, 1: no filler
    assert bits_of(got["sps"]) == (64, 0, 64)                 # no PPS library: stored dense


def test_int16_convention():
    mask = np.array([[1, 0, 0, 1], [0, 1, 0, 0]], bool).reshape(2, 1, 2, 2)
    got = formats.layer_storage(mask, convention="int16")
    assert got["csr"]["index_bits"] == 3 * 16 + 3 * 32
    assert got["csc"]["index_bits"] == 3 * 16 + 5 * 32
    assert got["coo"]["index_bits"] == 3 * 32
    custom = formats.layer_storage(mask, convention={"value_bits": 16, "run_bits": 2})
    assert custom["coo"]["value_bits"] == 48 and custom["rlc"]["index_bits"] == 3 * 2


@pytest.mark.parametrize("gap, fillers", [(15, 0), (16, 1), (31, 1), (32, 2), (47, 2), (48, 3)])
def test_rlc_filler_boundaries(gap, fillers):
    mask = np.zeros((1, gap + 1, 1, 1), bool)
    mask[0, gap] = True
    assert formats.rlc_fillers(mask, 4) == fillers
    got = formats.layer_storage(mask)["rlc"]
    assert bits_of(got) == (8, 4 + fillers * 12, 8 + 4 + fillers * 12)


def test_rlc_overflowing_runs():
    mask = np.zeros((1, 40, 1, 1), bool)
    mask[0, [0, 17, 39], 0, 0] = True                          # gaps 0, 16, 21
    assert formats.rlc_fillers(mask, 4) == 2
    assert formats.rlc_fillers(mask, 2) == 0 + 4 + 5
    assert formats.layer_storage(mask)["rlc"]["index_bits"] == 3 * 4 + 2 * (8 + 4)
    assert formats.layer_storage(mask, convention={"run_bits": 2})["rlc"]["index_bits"] == \
        3 * 2 + 9 * (8 + 2)


def test_rlc_runs_cross_chunks(monkeypatch):
    rng = np.random.default_rng(1)
    mask = rng.random((3, 50, 3, 3)) < 0.02
    whole = formats.rlc_fillers(mask, 3)
    monkeypatch.setattr(formats, "_CHUNK", 7)
    assert formats.rlc_fillers(mask, 3) == whole
    assert whole == sum(1 for v, _ in ref_rlc_entries(mask.reshape(-1), 3) if not v)


def test_all_zero_and_all_one_masks():
    zero = formats.layer_storage(np.zeros((4, 8, 3, 3), bool))
    for name in formats.SPARSE_FORMATS:
        assert zero[name]["value_bits"] == 0
    assert zero["csr"]["index_bits"] == 0 and zero["coo"]["index_bits"] == 0
    assert zero["bitmap"]["index_bits"] == 4 * 8 * 9 and zero["rlc"]["index_bits"] == 0
    ones = formats.layer_storage(np.ones((4, 8, 3, 3), bool))
    shape = formats.layer_storage((4, 8, 3, 3))
    assert ones == shape
    assert bits_of(ones["dense"]) == (2304, 0, 2304)
    assert ones["csr"]["index_bits"] == 288 * 7 + 5 * 9         # 72 columns, nnz 288
    assert ones["csc"]["index_bits"] == 288 * 2 + 73 * 9
    assert ones["rlc"]["index_bits"] == 288 * 4
    assert bits_of(ones["sps"]) == (2304, 0, 2304)


def test_sps_layer_by_hand():
    shape = (4, 16, 3, 3)
    lib, table = [TAPS_0134, TAPS_4578], [0, 1, 1, 0]
    mask = np.ascontiguousarray(pps.layer_mask(lib, table, *shape[:3]))
    assert mask[2, 5].reshape(-1).tolist() == [0, 0, 0, 0, 1, 1, 0, 1, 1]   # 5 % 4 = 1
    assert mask[0, 4].reshape(-1).tolist() == [1, 1, 0, 1, 1, 0, 0, 0, 0]
    got = formats.layer_storage(mask, library=lib, assignment=table)
    assert bits_of(got["sps"]) == (4 * 16 * 4 * 8, 4 * 1 + 2 * 9, 2048 + 22)
    assert got == formats.layer_storage(shape, library=lib, assignment=table)
    assert got["bitmap"]["index_bits"] == 576
    assert formats.sps_index_bits(4, 2) == 22


def test_sps_dense_library_has_no_index():
    got = formats.layer_storage((8, 8, 3, 3), library=[511], assignment=[0])
    assert bits_of(got["sps"]) == (8 * 8 * 9 * 8, 0, 8 * 8 * 9 * 8)
    one = formats.layer_storage((8, 8, 1, 1), library=[1], assignment=[0])
    assert one["sps"]["index_bits"] == 0


def test_bad_inputs():
    shape = (2, 8, 3, 3)
    bad = np.ones(shape, bool)
    with pytest.raises(SPSError, match="does not keep the taps"):
        formats.layer_storage(bad, library=[TAPS_0134], assignment=[0])
    with pytest.raises(SPSError, match="pattern ids"):
        formats.layer_storage(shape, library=[TAPS_0134], assignment=[1])
    with pytest.raises(SPSError, match="9-bit masks"):
        formats.layer_storage(shape, library=[512], assignment=[0])
    with pytest.raises(SPSError, match="both"):
        formats.layer_storage(shape, library=[TAPS_0134])
    with pytest.raises(SPSError, match="unknown storage convention"):
        formats.layer_storage(shape, convention="nope")
    with pytest.raises(TypeError, match="bool"):
        formats.layer_storage(np.ones(shape, np.int8))
    with pytest.raises(ValueError, match="Co, Ci, k, k"):
        formats.layer_storage((2, 8, 3))
    with pytest.raises(TypeError):
        formats.layer_storage("mask")
    with pytest.raises(ValueError, match="run_bits"):
        formats.get_convention({"run_bits": 0})


# --- properties -------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 12), st.sampled_from([1, 2, 3]),
       st.floats(0.0, 1.0), st.integers(2, 5), st.integers(0, 2**32 - 1))
def test_formats_match_reference_encoders(co, ci, k, density, run_bits, seed):
    mask = np.random.default_rng(seed).random((co, ci, k, k)) < density
    got = formats.layer_storage(mask, convention={"run_bits": run_bits})
    nnz = int(mask.sum())
    for name, (value, index) in reference(mask, run_bits).items():
        assert (got[name]["value_bits"], got[name]["index_bits"]) == (value, index), name
    for name in formats.SPARSE_FORMATS:
        assert got[name]["value_bits"] == nnz * 8
    for entry in got.values():
        assert entry["total_bits"] == entry["value_bits"] + entry["index_bits"]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 16), st.integers(1, 8), st.integers(1, 40),
       st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_sps_index_is_period_times_id_bits_plus_library(keep, period, patterns, ci, co, seed):
    rng = np.random.default_rng(seed)
    from compiler.pps import candidate_masks
    cands = candidate_masks(keep)
    lib = [int(m) for m in rng.choice(cands, min(patterns, len(cands)), replace=False)]
    table = [int(a) for a in rng.integers(0, len(lib), period)]
    shape = (co, ci, 3, 3)
    mask = np.ascontiguousarray(pps.layer_mask(lib, table, *shape[:3]))
    got = formats.layer_storage(mask, library=lib, assignment=table)
    k_bits = math.ceil(math.log2(len(lib))) if len(lib) > 1 else 0
    assert got["sps"]["index_bits"] == period * k_bits + 9 * len(lib)
    assert got["sps"]["value_bits"] == int(mask.sum()) * 8 == got["csr"]["value_bits"]
    assert got["bitmap"]["index_bits"] == co * ci * 9


# --- the report -------------------------------------------------------------------------------

def hand_net():
    """conv (PPS, K=2, P=4) -> conv (dense 1x1) -> fc, masks built from library/assignment."""
    net = Network("hand", (4, 4, 4))
    lib, table = [TAPS_0134, TAPS_4578], [0, 1, 1, 0]
    a = Layer("a", "conv", ["input"], (4, 4, 4), (8, 4, 4), kernel=3, pad=1)
    a.pps = {"keep": 4, "period": 4, "library": lib, "assignment": table}
    a.mask = np.array(pps.layer_mask(lib, table, 8, 4))
    b = Layer("b", "conv", ["a"], (8, 4, 4), (8, 4, 4), kernel=1)
    b.pps = {"keep": 1, "period": 1, "library": [1], "assignment": [0]}
    c = Layer("c", "conv", ["b"], (128, 1, 1), (10, 1, 1), kernel=1)
    net.layers += [a, b, c]
    return net


def test_report_keys_totals_and_ratios():
    rep = storage_report.storage_report(hand_net())
    assert json.loads(json.dumps(rep)) == rep
    assert rep["model"] == "hand"
    assert {"formats", "ratios", "whole_model", "layers", "assumptions"} <= set(rep)
    assert set(rep["whole_model"]) >= {"formats", "ratios"}
    assert [(e["name"], e["kind"], e["shape"], e["nnz"]) for e in rep["layers"]] == [
        ("a", "conv", [8, 4, 3, 3], 8 * 4 * 4), ("b", "conv", [8, 8, 1, 1], 64),
        ("c", "fc", [10, 128, 1, 1], 1280)]
    for part, kinds in ((rep, {"conv"}), (rep["whole_model"], {"conv", "fc"})):
        assert set(part["formats"]) == set(part["ratios"]) == set(formats.FORMATS)
        sps = part["formats"]["sps"]
        assert sps["index_bits"] == 4 * 1 + 2 * 9
        for name in formats.FORMATS:
            bits = part["formats"][name]
            for key in ("value_bits", "index_bits", "total_bits"):
                assert bits[key] == sum(e["formats"][name][key] for e in rep["layers"]
                                        if e["kind"] in kinds)
            assert part["ratios"][name]["total"] == pytest.approx(
                bits["total_bits"] / sps["total_bits"])
            index = part["ratios"][name]["index"]
            if name == "dense":
                assert index is None
            else:
                assert index == pytest.approx(bits["index_bits"] / sps["index_bits"])
        assert part["ratios"]["sps"] == {"total": 1.0, "index": 1.0}
    assert rep["whole_model"]["formats"]["dense"]["total_bits"] == (288 + 64 + 1280) * 8
    spread = rep["versus_sparse"]
    totals = [rep["ratios"][f]["total"] for f in formats.SPARSE_FORMATS]
    assert spread["min"]["total"] == min(totals) and spread["max"]["total"] == max(totals)
    assert spread["mean"]["total"] == pytest.approx(np.mean(totals))
    assert rep["assumptions"]["value_bits"] == 8 and rep["assumptions"]["rlc_run_bits"] == 4


def test_report_all_dense_has_null_index_ratios(tmp_path):
    net = hand_net()
    layer = net["a"]
    layer.mask, layer.pps = None, {"keep": 9, "period": 1, "library": [511], "assignment": [0]}
    rep = storage_report.storage_report(net)
    assert all(r["index"] is None for r in rep["ratios"].values())
    assert rep["ratios"]["dense"]["total"] == 1.0
    assert rep["versus_sparse"]["mean"]["index"] is None
    storage_report.plot(rep, tmp_path / "dense.png")       # no index bars at all: still a plot
    assert (tmp_path / "dense.png").read_bytes()[:4] == b"\x89PNG"


def test_report_errors():
    net = hand_net()
    net["a"].mask = np.ones((8, 4, 3, 3), bool)
    with pytest.raises(SPSError, match=r"layer 'a'.*does not keep"):
        storage_report.storage_report(net)
    net["a"].mask = np.ones((8, 4, 2, 2), bool)
    with pytest.raises(SPSError, match="layer 'a': mask has shape"):
        storage_report.storage_report(net)
    with pytest.raises(TypeError):
        storage_report.storage_report({"layers": []})


def test_table_and_plot(tmp_path):
    rep = storage_report.storage_report(hand_net())
    text = storage_report.format_table(rep)
    for word in formats.FORMATS + ("hand", "Assumptions", "Whole model", "value_bits: 8"):
        assert word in text
    assert "22 bit" in text and "kbit" in text
    assert storage_report.human_bits(14_710_464) == "14.71 Mbit"
    assert storage_report.human_bits(676) == "676 bit"
    path = tmp_path / "s.png"
    storage_report.plot(rep, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    import matplotlib.image
    assert matplotlib.image.imread(path).shape[2] in (3, 4)


def test_demo_pruned_and_compiled_agree(tmp_path):
    from compiler import images, models, pipeline
    net = storage_report.prune_for_report("demo")
    rep = storage_report.storage_report(net)
    # first conv dense (1 input channel), conv2/conv3 PPS K=4 P=8, fc dense
    assert [e["formats"]["sps"]["index_bits"] for e in rep["layers"]] == [0, 52, 52, 0]
    assert [e["nnz"] for e in rep["layers"]] == [72, 16 * 8 * 4, 16 * 16 * 4, 2560]
    model, _ = pipeline.compile_network(models.builtin("demo"), permute=False)
    out = images.write(model, tmp_path / "m").path
    again = storage_report.storage_report(storage_report.load_pruned(out))
    assert again["formats"] == rep["formats"] and again["layers"] == rep["layers"]
    assert again["model"] == "demo"


@pytest.mark.slow
def test_vgg16_conv_storage():
    net = storage_report.prune_for_report("vgg16")
    rep = storage_report.storage_report(net)
    conv = rep["formats"]
    assert conv["bitmap"]["index_bits"] == 14_710_464
    assert conv["sps"]["index_bits"] == 12 * (8 * 2 + 4 * 9)      # conv1_1 stays dense
    assert conv["sps"]["value_bits"] == (1728 + (14_710_464 - 1728) * 4 // 9) * 8
    assert rep["ratios"]["coo"]["total"] == pytest.approx(3.70, abs=0.005)
    int16 = storage_report.storage_report(net, convention="int16")
    mean3 = np.mean([int16["ratios"][f]["total"] for f in ("csr", "csc", "coo")])
    assert mean3 == pytest.approx(11 / 3, abs=0.01)
