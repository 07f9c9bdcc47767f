"""Periodic pattern-based sparsity (PPS): choosing pattern libraries, assignments and channel
permutations that keep as much weight energy as possible (``docs/spec.md`` section 2,
``docs/pps.md``).

A 3x3 PPS layer keeps, in kernel ``(o, j)``, the taps of ``library[assignment[j % period]]``
where ``j`` is the *stored* input-channel position. Since the pattern does not depend on ``o``,
only the per-channel tap energies ``E[i, t] = sum_o W[o, i, t]**2`` matter. Without a
permutation the choice is a facility-location problem over the ``C(9, keep)`` candidate masks
with the ``period`` residue classes as clients, solved exactly (a subset dynamic programme up
to :data:`EXACT_CLASSES` classes, a MILP up to :data:`MILP_CLASSES`, greedy + swap local search
beyond). With a permutation, the channel-to-class assignment (a capacitated assignment) and the
class-level choice alternate from several starts; the identity is one of them, so permuting
never loses energy.
"""

from dataclasses import dataclass
from functools import cache
from itertools import combinations

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, milp

from .errors import SPSError
from .graph import permutable_feeder, permute_input_channels

TAPS = 9
DENSE_MASK = (1 << TAPS) - 1
EXACT_CLASSES = 12      # the subset DP handles up to this many non-empty classes (3**n pairs)
MILP_CLASSES = 32       # beyond the DP, a MILP proves the optimum up to this many classes
RANDOM_STARTS = 1024    # seeded random channel orders tried when permuting: this / Ci, in 1..32
MAX_ROUNDS = 20         # alternation rounds per start (each round never loses energy)


# --- masks ------------------------------------------------------------------------------------

@cache
def _candidates(keep):
    masks = [sum(1 << t for t in taps) for taps in combinations(range(TAPS), keep)]
    masks = np.array(sorted(masks), dtype=np.int64)
    masks.flags.writeable = False
    return masks


def candidate_masks(keep):
    """All 9-bit masks with exactly ``keep`` ones (bit ``t`` = tap ``t``), ascending."""
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or not 1 <= keep <= 9:
        raise ValueError(f"keep must be an integer in 1..9, not {keep!r}")
    return _candidates(int(keep)).copy()


def mask_bits(masks):
    """Bit ``t`` of each mask as a bool array of shape ``masks.shape + (9,)``."""
    masks = np.asarray(masks, dtype=np.int64)
    return (masks[..., None] >> np.arange(TAPS)) & 1 == 1


def mask_taps(mask):
    """The taps (0..8, ascending) a 9-bit mask keeps."""
    mask = int(mask)
    if not 0 <= mask <= DENSE_MASK:
        raise ValueError(f"mask must be a 9-bit value in 0..{DENSE_MASK}, not {mask}")
    return [t for t in range(TAPS) if mask >> t & 1]


def layer_mask(library, assignment, co, ci, kernel=3):
    """Kept-tap mask ``bool[co, ci, k, k]`` of a layer: stored input channel ``j`` keeps the
    taps of ``library[assignment[j % len(assignment)]]`` in every filter (bit ``t`` of a
    mask is tap ``t = ky*k + kx``). A read-only broadcast view; ``np.array`` it to edit."""
    taps = kernel * kernel
    library = np.asarray(library, dtype=object if taps > 62 else np.int64)
    assignment = np.asarray(assignment, dtype=np.int64)
    if library.ndim != 1 or not library.size or any(not 0 <= m < 1 << taps for m in library):
        raise ValueError(f"library must be a non-empty list of {taps}-bit masks, "
                         f"not {library.tolist()}")
    if (assignment.ndim != 1 or not assignment.size
            or np.any((assignment < 0) | (assignment >= library.size))):
        raise ValueError(f"assignment must be a non-empty list of ids in [0, {library.size}), "
                         f"not {assignment.tolist()}")
    if co < 1 or ci < 1:
        raise ValueError(f"co and ci must be >= 1, not {co} and {ci}")
    bits = np.array([[(int(m) >> t) & 1 for t in range(taps)] for m in library], dtype=bool)
    per_channel = bits[assignment[np.arange(ci) % assignment.size]]             # [ci, k*k]
    return np.broadcast_to(per_channel.reshape(1, ci, kernel, kernel), (co, ci, kernel, kernel))


def tap_energy(weight):
    """``E[i, t] = sum_o W[o, i, t]**2`` (float64 ``[Ci, 9]``) of a ``[Co, Ci, 3, 3]`` weight."""
    w = np.asarray(weight, dtype=np.float64)
    w = w.reshape(w.shape[0], w.shape[1], -1)
    return np.einsum("oit,oit->it", w, w)


# --- the choice for one layer -----------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    """A PPS choice for one layer. ``perm[j]`` is the original channel at stored position
    ``j`` (identity when not permuted); ``retained`` is the kept energy ``sum W**2``."""

    keep: int
    period: int
    library: tuple
    assignment: tuple
    perm: np.ndarray
    retained: float

    @property
    def permuted(self):
        return bool(np.any(self.perm != np.arange(self.perm.size)))


def useful_patterns(patterns, keep, period, ci):
    """Library size actually used: ``patterns`` clamped to the number of candidate masks
    ``C(9, keep)``, to ``period`` and to ``ci`` (more entries could never be selected)."""
    return max(1, min(patterns, len(_candidates(keep)), period, ci))


def choose(energy, *, keep=4, patterns=4, period=8, permute=False, seed=0):
    """Choose library, assignment and (if ``permute``) a channel order for tap energies
    ``energy[Ci, 9]`` (see :func:`tap_energy`), maximizing the retained energy.

    The library holds ``useful_patterns(...)`` distinct masks in ascending order. Empty
    residue classes (``Ci < period``) get the library entry with the most total energy.
    The result is deterministic for a given ``seed``.
    """
    _check_options(keep, patterns, period)
    energy = np.asarray(energy, dtype=np.float64)
    if energy.ndim != 2 or energy.shape[1] != TAPS or energy.shape[0] < 1:
        raise SPSError(f"tap energies must have shape [Ci, 9], not {list(energy.shape)}")
    if not np.all(np.isfinite(energy)) or np.any(energy < 0):
        raise SPSError("tap energies must be finite and non-negative")
    ci = energy.shape[0]
    cands = _candidates(keep)
    bits = mask_bits(cands).astype(np.float64)                        # [n_c, 9]
    k = useful_patterns(patterns, keep, period, ci)
    classes = np.arange(ci) % period
    lib, value = _class_choice(_class_energy(energy, classes, period), bits, k)
    best = (value, lib, classes)
    if permute and k > 1 and ci > period:
        best = _permuted(energy, bits, k, period, best, np.random.default_rng(seed))
    value, lib, classes = best
    sizes = np.bincount(classes, minlength=period)
    cls_energy = _class_energy(energy, classes, period)
    lib = _fill_library(lib, k, energy.sum(0) @ bits.T)
    assign = np.argmax(cls_energy @ bits[lib].T, axis=1)              # first best on ties
    assign[sizes == 0] = np.argmax(bits[lib] @ energy.sum(0))
    perm = np.argsort(classes, kind="stable")                         # channels by class
    order = np.argsort(np.arange(ci) % period, kind="stable")         # positions by class
    stored = np.empty(ci, dtype=np.int64)
    stored[order] = perm
    ranks = np.argsort(cands[lib], kind="stable")
    library = cands[lib][ranks]
    assignment = np.argsort(ranks)[assign]
    kept = mask_bits(library[assignment[np.arange(ci) % period]])       # [Ci, 9], stored
    retained = float(np.sum(energy[stored] * kept))
    return Choice(int(keep), int(period), tuple(int(m) for m in library),
                  tuple(int(a) for a in assignment), stored, retained)


def _check_options(keep, patterns, period):
    for name, value, low, high in (("keep", keep, 1, 9), ("patterns", patterns, 1, None),
                                   ("period", period, 1, None)):
        if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                or value < low or (high is not None and value > high)):
            expect = f"in {low}..{high}" if high else f">= {low}"
            raise SPSError(f"PPS option {name} must be an integer {expect}, not {value!r}")


def _class_energy(energy, classes, period):
    """Summed tap energies per residue class, ``[period, 9]``."""
    out = np.zeros((period, TAPS))
    np.add.at(out, classes, energy)
    return out


def _class_choice(cls_energy, bits, k, init=None, exact=True):
    """Best set of at most ``k`` candidate indices for the class energy vectors, and its
    value (facility location: classes are clients, candidate masks are facilities).

    Exact for ``k == 1``, for ``k >=`` the non-empty classes, by the subset DP up to
    :data:`EXACT_CLASSES` classes and, if ``exact``, by a MILP up to :data:`MILP_CLASSES`;
    otherwise greedy + swap local search, also from ``init`` (so never worse than ``init``).
    """
    active = cls_energy[np.any(cls_energy > 0, axis=1)]
    if not len(active):
        return np.zeros(1, dtype=np.int64), 0.0
    values = active @ bits.T                                          # [P', n_c]
    if k == 1:
        lib = np.array([np.argmax(values.sum(0))])
    elif k >= len(active):
        lib = np.unique(np.argmax(values, axis=1))
    elif len(active) <= EXACT_CLASSES:
        lib = _subset_dp(values, k)
    else:
        libs = [_local_search(values, k)]
        if init is not None:
            libs.append(_local_search(values, k, init))
        if exact and len(active) <= MILP_CLASSES:
            libs.append(_milp(values, k))
        lib = max(libs, key=lambda lib: values[:, lib].max(1).sum())
    return lib, float(values[:, lib].max(1).sum())


@cache
def _subset_pairs(n):
    """All pairs ``(S, T)`` of ``n``-bit sets with ``T`` a subset of ``S``, sorted by ``S``,
    and the start offset of each ``S`` (a ternary digit per bit: 0 out, 1 in S, 2 in both)."""
    codes = np.arange(3 ** n)
    s, t = np.zeros_like(codes), np.zeros_like(codes)
    for b in range(n):
        digit = codes // 3 ** b % 3
        s |= (digit > 0).astype(codes.dtype) << b
        t |= (digit == 2).astype(codes.dtype) << b
    order = np.lexsort((t, s))
    s, t = s[order], t[order]
    starts = np.searchsorted(s, np.arange(1 << n))
    return s, t, starts


def _subset_dp(values, k):
    """Exact facility location for few clients: the classes are partitioned into at most
    ``k`` groups, each served by the mask best for the group's summed energy. ``g[j][S]`` is
    the best value of set ``S`` with at most ``j`` groups; ``O(k * 3**P')`` time."""
    n = values.shape[0]
    member = (np.arange(1 << n)[:, None] >> np.arange(n)) & 1
    group = member @ values                                           # [2**n, n_c]
    f, f_arg = group.max(1), group.argmax(1)
    s, t, starts = _subset_pairs(n)
    g = [np.full(1 << n, -np.inf)]
    g[0][0] = 0.0
    for _ in range(k):
        g.append(np.maximum.reduceat(f[t] + g[-1][s ^ t], starts))
    lib, rest = [], (1 << n) - 1
    for j in range(k, 0, -1):
        lo, hi = starts[rest], starts[rest + 1] if rest + 1 < len(starts) else len(s)
        cand = f[t[lo:hi]] + g[j - 1][rest ^ t[lo:hi]]
        part = int(t[lo + np.argmax(cand == g[j][rest])])
        if part:
            lib.append(int(f_arg[part]))
            rest ^= part
        if not rest:
            break
    return np.unique(lib)


def _local_search(values, k, init=()):
    """Facility location by greedy additions (after the entries of ``init``), then
    best-improvement single swaps until none gains (a heuristic; never worse than ``init``)."""
    lib = list(dict.fromkeys(int(c) for c in init))[:k]
    cover = values[:, lib].max(1) if lib else np.zeros(values.shape[0])
    while len(lib) < k:
        gain = np.maximum(values, cover[:, None]).sum(0)
        gain[lib] = -np.inf
        lib.append(int(np.argmax(gain)))
        cover = np.maximum(cover, values[:, lib[-1]])
    lib = np.array(lib)
    total = cover.sum()
    for _ in range(100):
        picked = values[:, lib]                                       # [clients, k]
        without = np.stack([np.delete(picked, p, axis=1).max(1) for p in range(k)])  # [k, cl]
        swap = np.maximum(without[:, :, None], values[None]).sum(1)  # [k, n_c]
        swap[:, lib] = -np.inf
        p, c = np.unravel_index(np.argmax(swap), swap.shape)
        if swap[p, c] <= total * (1 + 1e-12):
            break
        lib[p], total = c, swap[p, c]
    return np.sort(lib)


def _milp(values, k):
    """Exact facility location as a mixed-integer programme (HiGHS through scipy): open
    ``y_c`` binary, serve ``x_rc`` in [0, 1], ``x_rc <= y_c``, ``sum_c x_rc = 1``,
    ``sum_c y_c <= k``; maximize ``sum V_rc x_rc``. Returns the opened candidates."""
    p, n = values.shape
    serve = sparse.kron(sparse.identity(p), np.ones((1, n)))
    constraints = [
        LinearConstraint(sparse.hstack([-sparse.kron(np.ones((p, 1)), sparse.identity(n)),
                                        sparse.identity(p * n)]), -np.inf, 0),
        LinearConstraint(sparse.hstack([sparse.csr_matrix((p, n)), serve]), 1, 1),
        LinearConstraint(sparse.hstack([np.ones((1, n)), sparse.csr_matrix((1, p * n))]), 0, k),
    ]
    result = milp(-np.concatenate([np.zeros(n), values.ravel()]), constraints=constraints,
                  integrality=np.concatenate([np.ones(n), np.zeros(p * n)]), bounds=Bounds(0, 1))
    if result.x is None:
        return _local_search(values, k)
    lib = np.flatnonzero(result.x[:n] > 0.5)[:k]
    return lib if lib.size else _local_search(values, k)


def _fill_library(lib, k, totals):
    """Pad ``lib`` (candidate indices) to ``k`` distinct entries with the candidates that
    keep the most total energy, so the library is full whenever enough masks exist."""
    lib = list(dict.fromkeys(int(c) for c in lib))
    for c in np.argsort(-totals, kind="stable"):
        if len(lib) >= k:
            break
        if int(c) not in lib:
            lib.append(int(c))
    return np.array(lib)


def _permuted(energy, bits, k, period, best, rng):
    """Alternate channel-to-class assignment and class-level choice from several starts;
    return the best ``(value, library, classes)`` found, never worse than ``best``.

    Starts: the unpermuted optimum, a channel-level facility location (each channel its own
    client; classes then allotted to its masks by demand) and seeded random channel orders.
    """
    ci = energy.shape[0]
    unpermuted = best[0]
    sizes = np.bincount(np.arange(ci) % period, minlength=period)
    slot_class = np.repeat(np.arange(period), sizes)
    chan_values = energy @ bits.T                                     # [Ci, n_c]

    def start_from(classes):
        cls_energy = _class_energy(energy, classes, period)
        lib, _ = _class_choice(cls_energy, bits, k, exact=False)
        return lib, np.argmax(cls_energy @ bits[lib].T, axis=1)

    starts = [start_from(best[2])]
    lib = _local_search(chan_values, k)
    demand = np.bincount(np.argmax(chan_values[:, lib], axis=1), minlength=len(lib))
    assign, filled = np.zeros(period, dtype=np.int64), np.zeros(len(lib))
    for r in np.argsort(-sizes, kind="stable"):
        assign[r] = np.argmax(demand - filled)
        filled[assign[r]] += sizes[r]
    starts.append((lib, assign))
    randoms = min(32, max(1, RANDOM_STARTS // ci))     # cheap and useful on small layers
    starts += [start_from(rng.permutation(ci) % period) for _ in range(randoms)]
    for lib, assign in starts:
        value = -np.inf
        for _ in range(MAX_ROUNDS):
            gain = chan_values[:, lib[assign]]                        # [Ci, period]
            rows, cols = linear_sum_assignment(gain[:, slot_class], maximize=True)
            classes = np.empty(ci, dtype=np.int64)
            classes[rows] = slot_class[cols]
            cls_energy = _class_energy(energy, classes, period)
            lib, new = _class_choice(cls_energy, bits, k, init=lib, exact=False)
            assign = np.argmax(cls_energy @ bits[lib].T, axis=1)
            if new > best[0] * (1 + 1e-12):
                best = (new, lib, classes)
            if new <= value * (1 + 1e-12):
                break
            value = new
    if best[0] > unpermuted:      # re-solve the class level of the winner exactly
        lib, value = _class_choice(_class_energy(energy, best[2], period), bits, k, init=best[1])
        best = max(best, (value, lib, best[2]), key=lambda b: b[0])
    return best


# --- the network ------------------------------------------------------------------------------

def _fractions(weight, library, keep, retained):
    """Energy references of one layer: total, and retained / upper bound / PatDNN fractions."""
    w2 = np.square(np.asarray(weight).reshape(-1, TAPS), dtype=np.float64)     # [Co*Ci, 9]
    total = float(w2.sum())
    if total == 0:
        return total, 1.0, 1.0, 1.0
    upper = float(np.partition(w2, TAPS - keep, axis=1)[:, TAPS - keep:].sum())
    patdnn = float((w2 @ mask_bits(library).T.astype(np.float64)).max(1).sum())
    return total, retained / total, upper / total, patdnn / total


def prune_network(net, *, keep=4, patterns=4, period=8, permute=True, prune_first=False,
                  progress=None, seed=0):
    """Prune every 3x3 conv of ``net`` to PPS in place; return one report per conv.

    The first conv reading the network input stays dense unless ``prune_first``; other
    kernel sizes and FC layers stay dense. With ``permute``, a layer whose feeding conv can
    take it (:func:`compiler.graph.permutable_feeder`) also gets an input-channel order;
    elsewhere permutation is off, so the network function never changes. Each PPS layer
    gets ``mask`` (stored order) and ``pps``; reports hold ``name``, ``pps``, ``permuted``,
    ``permutable``, ``energy_total`` (``sum W**2``) and the fractions ``retained``,
    ``upper_bound`` (each kernel its best ``keep`` taps) and ``patdnn`` (each kernel its
    best pattern of the same library). ``progress(i, n, name)`` is called after the i-th
    (1-based) of ``n`` convs.
    """
    _check_options(keep, patterns, period)
    convs = net.convs()
    first = next((c.name for c in convs if "input" in c.inputs), None)
    reports = []
    for i, layer in enumerate(convs, 1):
        k = layer.kernel
        pps = k == 3 and (prune_first or layer.name != first)
        if not pps:
            layer.mask = None
            layer.pps = {"keep": k * k, "period": 1, "library": [2 ** (k * k) - 1],
                         "assignment": [0]}
            w = layer.weight.reshape(layer.weight.shape[0], -1)
            total = float(np.einsum("ij,ij->", w, w, dtype=np.float64))  # no float64 copy
            reports.append({"name": layer.name, "pps": False, "permuted": False,
                            "permutable": False, "energy_total": total, "retained": 1.0,
                            "upper_bound": 1.0, "patdnn": 1.0})
        else:
            if not np.all(np.isfinite(layer.weight)):
                raise SPSError(f"layer {layer.name!r}: weight holds NaN or Inf values")
            permutable = permute and permutable_feeder(net, layer.name) is not None
            choice = choose(tap_energy(layer.weight), keep=keep, patterns=patterns,
                            period=period, permute=permutable, seed=seed)
            if choice.permuted:
                permute_input_channels(net, layer.name, choice.perm)
            co, ci = layer.weight.shape[:2]
            layer.mask = np.array(layer_mask(choice.library, choice.assignment, co, ci))
            layer.pps = {"keep": int(keep), "period": int(period),
                         "library": list(choice.library), "assignment": list(choice.assignment)}
            total, retained, upper, patdnn = _fractions(layer.weight, choice.library, keep,
                                                        choice.retained)
            reports.append({"name": layer.name, "pps": True, "permuted": choice.permuted,
                            "permutable": permutable, "energy_total": total,
                            "retained": retained, "upper_bound": upper, "patdnn": patdnn})
        if progress is not None:
            progress(i, len(convs), layer.name)
    return reports
