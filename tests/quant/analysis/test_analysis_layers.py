"""Per-layer bounds (section 4): the MIP optimum equals brute force; bounds bracket the optimum."""
import itertools

import numpy as np
import pytest

from quant.analysis import layer_bounds, miqp
from quant.analysis.relaxation import prune_diagonal_bound, quant_dual_bound


def _problem(seed, n=5, samples=40):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, n)) @ rng.normal(size=(n, n)) * 0.5 + rng.normal(size=(samples, n))
    return x.T @ x, rng.normal(size=n) * 0.3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantization_mip_equals_brute_force(seed):
    gram, w0 = _problem(seed)
    scale, lo, hi = 0.12, -4, 3
    start = np.clip(np.rint(w0 / scale), lo, hi)
    sol = miqp.quantize_exact(gram, w0, scale, lo, hi, start)
    brute = min(itertools.product(range(lo, hi + 1), repeat=w0.size),
                key=lambda c: miqp.objective(gram, scale * np.array(c), w0))
    best = miqp.objective(gram, scale * np.array(brute), w0)
    assert sol.optimal
    assert np.array_equal(np.rint(sol.w / scale), np.array(brute))
    assert sol.value == pytest.approx(best, rel=1e-9)
    assert sol.lower <= best * (1 + 1e-7)
    # the relaxation bound is a bound, and round-to-nearest is not better than the optimum
    assert quant_dual_bound(gram, w0, scale, lo, hi) <= best * (1 + 1e-9)
    assert miqp.objective(gram, scale * start, w0) >= best


@pytest.mark.parametrize("seed,keep", [(0, 2), (1, 3), (2, 1)])
def test_pruning_mip_equals_brute_force(seed, keep):
    gram, w0 = _problem(seed, n=6)
    mask = np.zeros(w0.size, dtype=bool)
    mask[np.argsort(-np.abs(w0))[:keep]] = True
    start = miqp.refit(gram, w0, mask)
    heuristic = miqp.objective(gram, start, w0)
    bound = np.abs(w0) + np.sqrt(heuristic / np.linalg.eigvalsh(gram)[0])
    sol = miqp.prune_exact(gram, w0, keep, bound, start)
    brute_value, brute_support = min(
        (miqp.objective(gram, miqp.refit(gram, w0, np.isin(np.arange(w0.size), s)), w0), s)
        for s in itertools.combinations(range(w0.size), keep))
    assert sol.optimal
    assert sol.value == pytest.approx(brute_value, rel=1e-9)
    assert set(np.nonzero(sol.w)[0]) == set(brute_support)
    assert sol.lower <= brute_value * (1 + 1e-6)
    assert prune_diagonal_bound(gram, w0, keep) <= brute_value * (1 + 1e-9)
    assert heuristic >= brute_value * (1 - 1e-12)


def test_layer_ranges_are_ordered_and_exact_on_small_chunks():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 8)) * 0.2
    x = rng.normal(size=(64, 8))
    x[:, 5] = 0.0  # a dead input is pruned for free
    res = layer_bounds.analyze_layer("fc", w, x, bits=(2, 4), chunk=4, exact_max=4)
    assert res["dead_inputs"] == 1
    for row in res["bits"]:
        assert row["quant_chunks_exact"] == row["chunks"] == 6
        assert row["prune_chunks_exact"] == row["chunks"]
        assert row["snr_quant_best_db"] >= row["snr_quant_heuristic_db"] - 1e-9
        assert row["snr_prune_best_db"] >= row["snr_prune_heuristic_db"] - 1e-9
    # without exact solves, the relaxation bounds can only be looser (higher SNR)
    loose = layer_bounds.analyze_layer("fc", w, x, bits=(2, 4), chunk=4, exact_max=0)
    for exact_row, bound_row in zip(res["bits"], loose["bits"]):
        assert bound_row["snr_quant_best_db"] >= exact_row["snr_quant_best_db"] - 1e-6
        assert bound_row["snr_prune_best_db"] >= exact_row["snr_prune_best_db"] - 1e-6


def test_coordinate_descent_never_worse_than_rounding():
    gram, w0 = _problem(4, n=8)
    start = np.clip(np.rint(w0 / 0.1), -8, 7)
    cd = layer_bounds.coordinate_descent(gram, w0, 0.1, -8, 7, start)
    assert miqp.objective(gram, 0.1 * cd, w0) <= miqp.objective(gram, 0.1 * start, w0)
    assert np.all(cd == np.rint(cd)) and cd.min() >= -8 and cd.max() <= 7
