"""Analytic SNR of quantization (eq. 1-2, appendix A) and magnitude pruning (eq. 3) for a distribution.

All expectations are numerical integrals of (w - F(w))^2 p(w): the real line is cut at every grid node,
every rounding midpoint, the support limits and the pdf's kinks, so the integrand is smooth on each piece
and a fixed Gauss-Legendre rule is exact to machine precision there. Infinite supports are cut at
the TAIL_PROB quantile, where the neglected mass is far below double precision. The quantization scale is the one
that maximises SNR (coarse log-spaced search, then bounded scalar refinement).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from quant.analysis.distributions import Distribution
from quant.analysis.grids import DEFAULT_GRID, int_range, prune_ratio, snr_db

_GL_X, _GL_W = np.polynomial.legendre.leggauss(32)
# Infinite supports are cut at the quantile of this probability; what lies beyond is below double precision.
TAIL_PROB = 1e-300


@dataclass(frozen=True)
class QuantResult:
    bits: int
    grid: str
    scale: float
    mse: float
    snr_db: float


@dataclass(frozen=True)
class PruneResult:
    ratio: float
    threshold: float
    mse: float
    snr_db: float


def _gauss_legendre(dist: Distribution, a: np.ndarray, b: np.ndarray, center: np.ndarray, power: int = 2):
    """Sum over pieces [a_k, b_k] of the integral of (w - center_k)^power p(w); all bounds finite."""
    half = (b - a) / 2.0
    mid = (a + b) / 2.0
    x = mid[:, None] + half[:, None] * _GL_X[None, :]
    vals = (x - center[:, None]) ** power * dist.pdf(x)
    return float(np.sum(half * (vals @ _GL_W)))


def _split(dist: Distribution, a: np.ndarray, b: np.ndarray, center: np.ndarray, pieces: int = 1):
    """Clip pieces to the support, split them at the pdf's kinks and subdivide each `pieces` times."""
    lo, hi = dist.support
    a, b = np.maximum(a, lo), np.minimum(b, hi)
    keep = b > a
    a, b, center = a[keep], b[keep], center[keep]
    for k in dist.kinks:
        inside = (a < k) & (k < b)
        if inside.any():
            a = np.concatenate([a, np.full(int(inside.sum()), k)])
            b = np.concatenate([np.where(inside, k, b), b[inside]])
            center = np.concatenate([center, center[inside]])
    if pieces > 1:
        t = np.linspace(0.0, 1.0, pieces + 1)
        starts = (a[:, None] + (b - a)[:, None] * t[None, :-1]).ravel()
        ends = (a[:, None] + (b - a)[:, None] * t[None, 1:]).ravel()
        return starts, ends, np.repeat(center, pieces)
    return a, b, center


def _tail(dist: Distribution, start: float, end: float, center: float) -> float:
    """Integral of (w - center)^2 p(w) over a clipping region (infinite ends cut, see TAIL_PROB)."""
    lo, hi = _finite_support(dist)
    start, end = max(start, lo), min(end, hi)
    if not end > start:
        return 0.0
    return _gauss_legendre(dist, *_split(dist, np.array([start]), np.array([end]), np.array([center]), 96))


def _finite_support(dist: Distribution) -> tuple[float, float]:
    """The support with infinite ends replaced by the quantile of probability TAIL_PROB (symmetric laws)."""
    lo, hi = dist.support
    cut = float(-dist.ppf(TAIL_PROB))
    return (lo if np.isfinite(lo) else -cut), (hi if np.isfinite(hi) else cut)


def moment(dist: Distribution, power: int) -> float:
    """E[W^power] by Gauss-Legendre over the (cut) support, split at the kinks."""
    lo, hi = _finite_support(dist)
    edges = sorted({lo, hi, 0.0, *[k for k in dist.kinks if lo < k < hi]})
    a, b = np.array(edges[:-1]), np.array(edges[1:])
    return _gauss_legendre(dist, *_split(dist, a, b, np.zeros_like(a), 256), power)


def kurtosis(dist: Distribution) -> float:
    """E[W^4] / E[W^2]^2 (the mean is zero for every distribution here)."""
    return moment(dist, 4) / moment(dist, 2) ** 2


def quant_mse(dist: Distribution, scale: float, bits: int, grid: str = DEFAULT_GRID) -> float:
    """Eq. 2: rounding error inside [q_min, q_max] plus both clipping terms (appendix A, eq. 9-15)."""
    lo, hi = int_range(bits, grid)
    nodes = scale * np.arange(lo, hi + 1, dtype=np.float64)
    mids = (nodes[:-1] + nodes[1:]) / 2.0
    a = np.concatenate([nodes[:-1], mids])
    b = np.concatenate([mids, nodes[1:]])
    c = np.concatenate([nodes[:-1], nodes[1:]])
    rounding = _gauss_legendre(dist, *_split(dist, a, b, c))
    clip = _tail(dist, -np.inf, nodes[0], nodes[0]) + _tail(dist, nodes[-1], np.inf, nodes[-1])
    return rounding + clip


def best_quant(dist: Distribution, bits: int, grid: str = DEFAULT_GRID) -> QuantResult:
    """Scale maximising SNR: log-spaced search of the clipping range, then bounded scalar refinement."""
    _, hi = int_range(bits, grid)
    sigma = np.sqrt(moment(dist, 2))
    top = min(_finite_support(dist)[1], 40.0 * sigma)
    scales = np.geomspace(0.05 * sigma, 1.2 * top, 60) / hi
    errs = np.array([quant_mse(dist, s, bits, grid) for s in scales])
    i = int(np.argmin(errs))
    left, right = scales[max(i - 1, 0)], scales[min(i + 1, scales.size - 1)]
    res = optimize.minimize_scalar(lambda s: quant_mse(dist, s, bits, grid), bounds=(left, right),
                                   method="bounded", options={"xatol": 1e-10 * right})
    scale, mse = (float(res.x), float(res.fun)) if res.fun <= errs[i] else (float(scales[i]), float(errs[i]))
    return QuantResult(bits, grid, scale, mse, snr_db(sigma ** 2, mse))


def prune(dist: Distribution, ratio: float) -> PruneResult:
    """Eq. 3 with threshold t = F^-1(1/2 + c/2): the error is the mass of w^2 inside [-t, t]."""
    t = float(dist.ppf(0.5 + ratio / 2.0))
    mse = _gauss_legendre(dist, *_split(dist, np.array([-t, 0.0]), np.array([0.0, t]), np.zeros(2), 64))
    return PruneResult(ratio, t, mse, snr_db(moment(dist, 2), mse))


def compare(dist: Distribution, bits: int, grid: str = DEFAULT_GRID) -> dict:
    """One row of distributions.json: b-bit quantization against pruning of the same size."""
    q = best_quant(dist, bits, grid)
    p = prune(dist, prune_ratio(bits))
    return {"dist": dist.name, "params": dict(dist.params), "kurtosis": kurtosis(dist), "bits": bits,
            "grid": grid, "prune_ratio": p.ratio, "snr_quant_db": q.snr_db, "snr_prune_db": p.snr_db,
            "quant_scale": q.scale, "prune_threshold": p.threshold,
            "quant_mse": q.mse, "prune_mse": p.mse}


def monte_carlo(dist: Distribution, bits: int, grid: str = DEFAULT_GRID, n: int = 1_000_000,
                seed: int = 0, scale: float | None = None) -> dict:
    """Sample estimate of both SNRs with the same definitions, to check the integrals."""
    from quant.analysis.grids import magnitude_prune, quantize

    w = dist.sample(n, seed)
    if scale is None:
        scale = best_quant(dist, bits, grid).scale
    power = float(np.mean(w ** 2))
    q_err = float(np.mean((quantize(w, scale, bits, grid) - w) ** 2))
    p_err = float(np.mean((magnitude_prune(w, prune_ratio(bits)) - w) ** 2))
    return {"snr_quant_db": snr_db(power, q_err), "snr_prune_db": snr_db(power, p_err), "samples": n}
