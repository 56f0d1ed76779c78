"""Analytic SNR (eq. 1-3) against the paper's numbers and against Monte-Carlo estimates."""
import numpy as np
import pytest

from common.errors import UserError
from quant.analysis import distributions as dists
from quant.analysis import snr
from quant.analysis.grids import int_range


def test_paper_headline_normal_int4_vs_75_percent_pruning():
    normal = dists.normal()
    full = snr.best_quant(normal, 4, "full").snr_db
    symmetric = snr.best_quant(normal, 4, "symmetric").snr_db
    prune = snr.prune(normal, 0.75).snr_db
    # the paper quotes 19.1 dB vs 5.6 dB; the grid choice moves INT4 by a few tenths of a dB
    assert full == pytest.approx(19.26, abs=0.02)
    assert symmetric == pytest.approx(18.90, abs=0.02)
    assert abs(full - 19.1) < 0.25 and abs(symmetric - 19.1) < 0.25
    assert prune == pytest.approx(5.585, abs=0.005)
    # closed form of eq. 3 for the normal: c - 2 t phi(t) with t = Phi^-1(1/2 + c/2)
    from scipy import stats
    t = stats.norm.ppf(0.875)
    assert snr.prune(normal, 0.75).mse == pytest.approx(0.75 - 2 * t * stats.norm.pdf(t), rel=1e-10)


def test_grids():
    assert int_range(4, "full") == (-8, 7)
    assert int_range(4, "symmetric") == (-7, 7)
    with pytest.raises(UserError):
        int_range(9)


def test_kurtosis_of_the_distributions():
    assert snr.kurtosis(dists.normal()) == pytest.approx(3.0, rel=1e-9)
    assert snr.kurtosis(dists.laplace()) == pytest.approx(6.0, rel=1e-9)
    assert snr.kurtosis(dists.uniform()) == pytest.approx(1.8, rel=1e-9)
    # truncated Student-t: kurtosis grows with the range
    ks = [snr.kurtosis(dists.student_t(2.0, r)) for r in (2.0, 10.0, 50.0)]
    assert ks[0] < ks[1] < ks[2]


@pytest.mark.parametrize("dist,bits,grid", [
    (dists.normal(), 4, "full"), (dists.normal(), 4, "symmetric"), (dists.laplace(), 3, "full"),
    (dists.uniform(), 2, "full"), (dists.student_t(2.0, 10.0), 4, "full"), (dists.laplace(), 8, "full"),
])
def test_analytic_matches_monte_carlo_within_0_1_db(dist, bits, grid):
    row = snr.compare(dist, bits, grid)
    mc = snr.monte_carlo(dist, bits, grid, n=1_000_000, seed=1, scale=row["quant_scale"])
    assert abs(mc["snr_quant_db"] - row["snr_quant_db"]) < 0.1
    assert abs(mc["snr_prune_db"] - row["snr_prune_db"]) < 0.1


def test_optimal_scale_is_a_minimum():
    d = dists.laplace()
    best = snr.best_quant(d, 4)
    for factor in (0.9, 1.1):
        assert snr.quant_mse(d, best.scale * factor, 4) > best.mse


def test_student_t_shape_of_figure_2():
    """Quantization SNR falls with kurtosis, pruning error barely moves; pruning wins at 2 bits only in the tails."""
    rows = [snr.compare(dists.student_t(2.0, r), 2) for r in (2.0, 6.0, 20.0, 70.0)]
    quant = [r["snr_quant_db"] for r in rows]
    assert all(a > b for a, b in zip(quant, quant[1:]))
    prune_mse = [r["prune_mse"] for r in rows]
    assert max(prune_mse[1:]) / min(prune_mse[1:]) < 1.15
    assert rows[0]["snr_quant_db"] > rows[0]["snr_prune_db"]
    assert rows[-1]["snr_prune_db"] > rows[-1]["snr_quant_db"]
    # at 8 bits quantization wins over the whole range
    assert snr.compare(dists.student_t(2.0, 70.0), 8)["snr_quant_db"] > \
        snr.compare(dists.student_t(2.0, 70.0), 8)["snr_prune_db"]


def test_quantization_beats_pruning_on_normal_at_every_width():
    for b in range(2, 9):
        row = snr.compare(dists.normal(), b)
        assert row["snr_quant_db"] > row["snr_prune_db"] + 4.0
        assert np.isclose(row["prune_ratio"], 1 - b / 16)
