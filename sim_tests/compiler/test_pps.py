"""PPS pruning (compiler/pps.py): masks, the per-layer choice against brute force, and the
network pass (pattern consistency, energy references, function-preserving permutations)."""

import copy
import itertools
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import graph, models, pps
from compiler.errors import SPSError


def brute_force(energy, keep, patterns, period, classes=None):
    """Best retained energy over every library of the clamped size (no permutation)."""
    ci = energy.shape[0]
    classes = np.arange(ci) % period if classes is None else classes
    bits = pps.mask_bits(pps.candidate_masks(keep)).astype(float)
    values = pps._class_energy(energy, classes, period) @ bits.T           # [P, n_c]
    k = pps.useful_patterns(patterns, keep, period, ci)
    combos = np.array(list(itertools.combinations(range(bits.shape[0]), k)))
    return values[:, combos].max(2).sum(0).max()


def kept_energy(energy, choice):
    """Retained energy recomputed from the choice's library, assignment and channel order."""
    ci = energy.shape[0]
    masks = np.array(choice.library)[np.array(choice.assignment)[np.arange(ci) % choice.period]]
    return float(np.sum(energy[choice.perm] * pps.mask_bits(masks)))


def check_choice(energy, choice, keep, patterns, period):
    ci = energy.shape[0]
    lib = np.array(choice.library)
    assert list(lib) == sorted(set(lib.tolist())), "library must be distinct and ascending"
    assert len(lib) == pps.useful_patterns(patterns, keep, period, ci)
    assert all(m.bit_count() == keep for m in choice.library)
    assert len(choice.assignment) == period
    assert all(0 <= a < len(lib) for a in choice.assignment)
    assert sorted(choice.perm.tolist()) == list(range(ci))
    assert choice.retained == pytest.approx(kept_energy(energy, choice), rel=1e-12, abs=1e-12)


# --- masks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", range(1, 10))
def test_candidate_masks(keep):
    masks = pps.candidate_masks(keep)
    assert len(masks) == comb(9, keep)
    assert list(masks) == sorted(set(masks.tolist()))
    assert all(int(m).bit_count() == keep and 0 < m < 512 for m in masks)
    for m in masks:
        taps = pps.mask_taps(m)
        assert taps == sorted(taps) and sum(1 << t for t in taps) == m
        assert np.flatnonzero(pps.mask_bits(m)).tolist() == taps


def test_mask_helpers_reject_bad_values():
    for keep in (0, 10, 2.0, True):
        with pytest.raises(ValueError, match="keep"):
            pps.candidate_masks(keep)
    with pytest.raises(ValueError, match="9-bit"):
        pps.mask_taps(512)
    with pytest.raises(ValueError, match="library"):
        pps.layer_mask([600], [0], 2, 2)
    with pytest.raises(ValueError, match="assignment"):
        pps.layer_mask([15, 30], [0, 2], 2, 2)
    with pytest.raises(ValueError, match="co and ci"):
        pps.layer_mask([15], [0], 0, 2)
    assert pps.candidate_masks(9).tolist() == [0x1FF]


@given(st.integers(1, 6), st.integers(1, 20), st.lists(st.integers(0, 511), min_size=1,
                                                      max_size=5, unique=True),
       st.integers(1, 9), st.randoms(use_true_random=False))
def test_layer_mask(co, ci, library, period, rnd):
    assignment = [rnd.randrange(len(library)) for _ in range(period)]
    mask = pps.layer_mask(library, assignment, co, ci)
    assert mask.shape == (co, ci, 3, 3) and mask.dtype == bool
    for j in range(ci):
        taps = pps.mask_taps(library[assignment[j % period]])
        for o in range(co):
            assert np.flatnonzero(mask[o, j].ravel()).tolist() == taps


# --- the choice for one layer -----------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 9), st.integers(1, 10), st.integers(1, 12),
       st.integers(0, 2 ** 32 - 1), st.floats(0.5, 6))
def test_choice_properties(ci, keep, patterns, period, seed, power):
    """Library/assignment/permutation well formed; retained matches the masks; permuting is
    never worse than not; both stay below every channel keeping its own best mask."""
    energy = np.random.default_rng(seed).random((ci, 9)) ** power
    plain = pps.choose(energy, keep=keep, patterns=patterns, period=period)
    perm = pps.choose(energy, keep=keep, patterns=patterns, period=period, permute=True,
                      seed=seed)
    for choice in (plain, perm):
        check_choice(energy, choice, keep, patterns, period)
    assert not plain.permuted
    assert perm.retained >= plain.retained * (1 - 1e-12)
    bits = pps.mask_bits(pps.candidate_masks(keep))
    per_channel_best = (energy @ bits.T).max(1).sum()
    assert perm.retained <= per_channel_best * (1 + 1e-12)


@pytest.mark.parametrize("keep", [2, 3, 4])
@pytest.mark.parametrize("patterns", [1, 2])
def test_unpermuted_is_optimal_tiny(keep, patterns):
    rng = np.random.default_rng(keep * 10 + patterns)
    for _ in range(5):
        energy = rng.random((4, 9)) ** 3
        choice = pps.choose(energy, keep=keep, patterns=patterns, period=2)
        assert choice.retained == pytest.approx(brute_force(energy, keep, patterns, 2), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 9), st.integers(1, 3), st.integers(1, 6),
       st.integers(0, 2 ** 32 - 1))
def test_unpermuted_is_optimal_dp(ci, keep, patterns, period, seed):
    """The subset DP (and the trivial cases) match brute force over all libraries."""
    energy = np.random.default_rng(seed).random((ci, 9)) ** 4
    if comb(comb(9, keep), pps.useful_patterns(patterns, keep, period, ci)) > 20000:
        keep = 1
    choice = pps.choose(energy, keep=keep, patterns=patterns, period=period)
    assert choice.retained == pytest.approx(brute_force(energy, keep, patterns, period),
                                            rel=1e-12)


@pytest.mark.parametrize("period", [13, 20])
def test_unpermuted_is_optimal_milp(period):
    """Beyond the DP's class limit the MILP still proves the optimum."""
    rng = np.random.default_rng(period)
    for keep, patterns in ((2, 3), (7, 2), (1, 4)):
        energy = rng.random((period + 3, 9)) ** 5
        choice = pps.choose(energy, keep=keep, patterns=patterns, period=period)
        assert choice.retained == pytest.approx(
            brute_force(energy, keep, patterns, period), rel=1e-12)


def test_local_search_beyond_milp_is_feasible():
    energy = np.random.default_rng(3).random((80, 9)) ** 3
    choice = pps.choose(energy, keep=4, patterns=3, period=40)
    check_choice(energy, choice, 4, 3, 40)
    assert choice.retained >= pps.choose(energy, keep=4, patterns=1, period=40).retained


def test_permuted_matches_brute_force_tiny():
    """Tiny layers: the permuted choice equals the best over every channel-to-class split."""
    rng = np.random.default_rng(11)
    for ci, period, keep in ((5, 2, 2), (6, 3, 3), (6, 2, 3), (7, 3, 2)):
        energy = rng.random((ci, 9)) ** 4
        splits = {tuple(np.argsort(p) % period) for p in itertools.permutations(range(ci))}
        best = max(brute_force(energy, keep, 2, period, np.array(s)) for s in splits)
        choice = pps.choose(energy, keep=keep, patterns=2, period=period, permute=True)
        assert choice.retained == pytest.approx(best, rel=1e-9)


def test_permutation_groups_channels_by_pattern():
    """Channels alternating between two disjoint patterns every 4 positions: every class
    mixes them (half the energy at best), a permutation sorts them (all of it)."""
    a, b = 0b000001111, 0b111100000
    energy = np.array([pps.mask_bits(a if (i // 4) % 2 == 0 else b) for i in range(16)], float)
    plain = pps.choose(energy, keep=4, patterns=2, period=4)
    perm = pps.choose(energy, keep=4, patterns=2, period=4, permute=True)
    assert plain.retained == pytest.approx(32.0)
    assert perm.retained == pytest.approx(64.0) and perm.permuted
    assert perm.library == (a, b)
    for j, i in enumerate(perm.perm):
        assert pps.mask_bits(perm.library[perm.assignment[j % 4]]).tolist() == \
            energy[i].astype(bool).tolist()


def test_choice_edge_cases():
    rng = np.random.default_rng(0)
    energy = rng.random((5, 9))
    dense = pps.choose(energy, keep=9, patterns=4, period=8, permute=True)
    assert dense.library == (0x1FF,) and dense.assignment == (0,) * 8
    assert dense.retained == pytest.approx(energy.sum())
    many = pps.choose(energy, keep=8, patterns=50, period=3)    # K > C(9, 8) and > P
    assert len(many.library) == 3
    assert many.retained == pytest.approx(brute_force(energy, 8, 50, 3))
    short = pps.choose(energy[:2], keep=4, patterns=4, period=8)  # Ci < P
    assert len(short.library) == 2 and len(short.assignment) == 8
    best_total = np.argmax(pps.mask_bits(short.library) @ energy[:2].sum(0))
    assert short.assignment[2:] == (best_total,) * 6         # empty classes
    zero = pps.choose(np.zeros((6, 9)), keep=3, patterns=2, period=4, permute=True)
    check_choice(np.zeros((6, 9)), zero, 3, 2, 4)
    assert zero.retained == 0


def test_choice_is_deterministic():
    energy = np.random.default_rng(7).random((48, 9)) ** 3
    a = pps.choose(energy, keep=3, patterns=3, period=6, permute=True, seed=5)
    b = pps.choose(energy.copy(), keep=3, patterns=3, period=6, permute=True, seed=5)
    assert (a.library, a.assignment, a.retained) == (b.library, b.assignment, b.retained)
    assert np.array_equal(a.perm, b.perm)


@pytest.mark.parametrize("option, value", [("keep", 0), ("keep", 10), ("patterns", 0),
                                           ("period", 0), ("period", 2.5), ("keep", None)])
def test_bad_options_raise_spserror(option, value):
    with pytest.raises(SPSError, match=option):
        pps.prune_network(models.demo(), **{option: value})
    with pytest.raises(SPSError, match=option):
        pps.choose(np.ones((4, 9)), **{option: value})


def test_bad_energies_raise_spserror():
    for energy in (np.ones((4, 8)), np.full((4, 9), np.nan), -np.ones((4, 9))):
        with pytest.raises(SPSError, match="tap energies"):
            pps.choose(energy)
    net = models.demo()
    net["conv3"].weight[0, 0, 0, 0] = np.nan
    with pytest.raises(SPSError, match="conv3"):
        pps.prune_network(net)


# --- networks ---------------------------------------------------------------------------------

def residual_net(seed=0):
    """Small network with a residual fan-out, a max-pool pass-through and a 1x1 feeder."""
    b = models.Builder("res", (3, 12, 12), seed)
    b.conv("c1", 16)                      # reads the input
    b.conv("c2", 16)                      # c1 also feeds the add: not permutable
    b.conv("c3", 16, relu=False)          # fed by c2 alone: permutable
    b.add("add", "c3", "c1")
    b.conv("c4", 16)                      # reads the add: not permutable
    b.maxpool("mp", 2, 2)
    b.conv("c5", 24)                      # fed by c4 through the max-pool: permutable
    b.conv("c6", 8, kernel=1)             # dense 1x1
    b.conv("c7", 16)                      # fed by the 1x1: permutable
    b.avgpool("gap")
    b.fc("fc", 5, relu=False)
    return graph.validate(b.net)


NETS = {"demo": lambda: models.demo(seed=3), "res": residual_net}
OPTIONS = {"demo": {}, "res": {"patterns": 2, "period": 4}}


def feeder_rows(net):
    """Output-channel order each conv received from its consumer's permutation."""
    rows = {}
    for layer in net.convs():
        feeder = graph.permutable_feeder(net, layer.name)
        if feeder is not None and layer.permutation is not None:
            rows[feeder.name] = layer.permutation
    return rows


@pytest.mark.parametrize("name", NETS)
def test_network_masks_and_reports(name):
    net = NETS[name]()
    calls = []
    reports = pps.prune_network(net, progress=lambda *a: calls.append(a), **OPTIONS[name])
    convs = net.convs()
    assert [r["name"] for r in reports] == [c.name for c in convs]
    assert calls == [(i + 1, len(convs), c.name) for i, c in enumerate(convs)]
    for layer, rep in zip(convs, reports):
        assert rep["energy_total"] == pytest.approx(float(np.sum(layer.weight.astype(float) ** 2)))
        if not rep["pps"]:
            k2 = layer.kernel ** 2
            assert layer.mask is None and not rep["permuted"]
            assert layer.pps == {"keep": k2, "period": 1, "library": [2 ** k2 - 1],
                                 "assignment": [0]}
            assert rep["retained"] == rep["upper_bound"] == rep["patdnn"] == 1.0
            continue
        p = layer.pps
        assert set(p) == {"keep", "period", "library", "assignment"}
        assert all(type(v) is int for v in [p["keep"], p["period"], *p["library"],
                                            *p["assignment"]])
        co, ci = layer.weight.shape[:2]
        assert np.array_equal(layer.mask, pps.layer_mask(p["library"], p["assignment"], co, ci))
        assert np.all(layer.mask.reshape(co, ci, 9).sum(2) == p["keep"])
        kept = float(np.sum(layer.pruned_weight().astype(float) ** 2))
        assert rep["retained"] == pytest.approx(kept / rep["energy_total"], rel=1e-9)
        # PPS is one feasible per-kernel choice from the same library: PatDNN >= PPS;
        # a per-kernel free top-keep choice bounds both.
        assert rep["retained"] <= rep["patdnn"] * (1 + 1e-12)
        assert rep["patdnn"] <= rep["upper_bound"] * (1 + 1e-12) <= 1 + 1e-12
    assert reports[0]["pps"] is False                       # the first conv stays dense


def test_first_conv_and_kernel_sizes():
    net = models.demo()
    reports = pps.prune_network(net, prune_first=True)
    assert [r["pps"] for r in reports] == [True, True, True, False]  # fc is dense
    assert net["conv1"].pps["period"] == 8 and net["conv1"].permutation is None
    net = models.resnet18()
    reports = {r["name"]: r for r in pps.prune_network(net, prune_first=True)}
    assert not reports["conv1"]["pps"] and not reports["layer2.0.downsample"]["pps"]
    for name, rep in reports.items():
        layer = net[name]
        assert rep["pps"] == (layer.kernel == 3)
        # block inputs come from a residual add or the stem max-pool that also feeds the
        # shortcut: conv1 of every block keeps the identity order, conv2 can be permuted
        if name.endswith(".conv1"):
            assert not rep["permutable"] and layer.permutation is None
        if name.endswith(".conv2"):
            assert rep["permutable"]


@pytest.mark.parametrize("name", NETS)
def test_permutation_preserves_function(name):
    """The permuted, pruned network computes what the original network computes with the
    same kept taps mapped back to the original channel order."""
    net = NETS[name]()
    reports = pps.prune_network(net, permute=True, **OPTIONS[name])
    assert any(r["permuted"] for r in reports)
    ref = NETS[name]()
    rows = feeder_rows(net)
    for layer, orig in zip(net.convs(), ref.convs()):
        co, ci = layer.weight.shape[:2]
        r = rows.get(layer.name, np.arange(co))
        c = np.arange(ci) if layer.permutation is None else layer.permutation
        assert np.array_equal(layer.weight, orig.weight[r][:, c])
        assert np.array_equal(layer.bias, orig.bias[r])
        if layer.mask is not None:
            orig.mask = np.empty_like(layer.mask)
            orig.mask[np.ix_(r, c)] = layer.mask
    x = np.random.default_rng(1).standard_normal(net.input_shape).astype(np.float32)
    got, want = graph.forward(net, x)[net.output.name], graph.forward(ref, x)[ref.output.name]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NETS)
def test_random_permutations_preserve_function(name):
    net = NETS[name]()
    pps.prune_network(net, **OPTIONS[name])
    before = copy.deepcopy(net)
    rng = np.random.default_rng(2)
    for layer in net.convs():
        if graph.permutable_feeder(net, layer.name) is not None:
            graph.permute_input_channels(net, layer.name, rng.permutation(layer.weight.shape[1]))
    x = rng.standard_normal(net.input_shape).astype(np.float32)
    for pruned in (True, False):
        np.testing.assert_allclose(graph.forward(net, x, pruned)[net.output.name],
                                   graph.forward(before, x, pruned)[net.output.name],
                                   rtol=1e-5, atol=1e-5)


def test_unpermutable_layers_keep_identity():
    net = residual_net()
    reports = {r["name"]: r for r in pps.prune_network(net, patterns=2, period=4)}
    for name in ("c2", "c4"):            # residual fan-out, add output
        assert not reports[name]["permutable"] and not reports[name]["permuted"]
        assert net[name].permutation is None
    for name in ("c3", "c5", "c7"):
        assert reports[name]["permutable"]
    assert not reports["c1"]["pps"] and net["c1"].mask is None


@pytest.mark.parametrize("name", NETS)
def test_permuting_never_loses_energy(name):
    with_perm = pps.prune_network(NETS[name](), permute=True, **OPTIONS[name])
    without = pps.prune_network(NETS[name](), permute=False, **OPTIONS[name])
    for a, b in zip(with_perm, without):
        assert not b["permuted"]
        assert a["retained"] >= b["retained"] * (1 - 1e-12)
        assert a["upper_bound"] == pytest.approx(b["upper_bound"])
