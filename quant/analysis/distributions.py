"""Zero-mean symmetric weight distributions of section 3: normal, Laplace, uniform, truncated Student-t.

Each carries its pdf, cdf, inverse cdf, support and the points where the pdf is not smooth, so the
numerical integrals in snr.py can split there. The truncated Student-t (appendix B, eq. 16-18) models
weights with outliers: the wider its range r, the heavier the tails and the larger the kurtosis.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import stats

from common.errors import UserError

DIST_NAMES = ("normal", "laplace", "uniform", "student_t")


@dataclass(frozen=True)
class Distribution:
    name: str
    params: dict
    pdf: Callable[[np.ndarray], np.ndarray]
    cdf: Callable[[np.ndarray], np.ndarray]
    ppf: Callable[[np.ndarray], np.ndarray]
    support: tuple[float, float]
    kinks: tuple[float, ...] = field(default=())

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """Inverse-cdf sampling, so truncation is exact and the stream is reproducible."""
        rng = np.random.default_rng(seed)
        return self.ppf(rng.uniform(0.0, 1.0, size=n))


def _frozen(name: str, params: dict, dist, kinks=()) -> Distribution:
    lo, hi = dist.support()
    return Distribution(name, params, dist.pdf, dist.cdf, dist.ppf, (float(lo), float(hi)), tuple(kinks))


def normal() -> Distribution:
    return _frozen("normal", {}, stats.norm())


def laplace() -> Distribution:
    return _frozen("laplace", {}, stats.laplace(), kinks=(0.0,))


def uniform() -> Distribution:
    return _frozen("uniform", {"range": [-1.0, 1.0]}, stats.uniform(-1.0, 2.0))


def student_t(nu: float = 2.0, r: float = 10.0) -> Distribution:
    """Student-t with nu degrees of freedom truncated to [-r, r] (appendix B, eq. 16)."""
    if not nu > 0 or not r > 0:
        raise UserError(f"truncated Student-t needs nu > 0 and r > 0, got nu={nu}, r={r}")
    base = stats.t(nu)
    c_lo = float(base.cdf(-r))
    mass = float(base.cdf(r)) - c_lo

    def pdf(x):
        x = np.asarray(x, dtype=np.float64)
        return np.where(np.abs(x) <= r, base.pdf(x) / mass, 0.0)

    def cdf(x):
        return np.clip((base.cdf(np.asarray(x, dtype=np.float64)) - c_lo) / mass, 0.0, 1.0)

    def ppf(u):
        return np.clip(base.ppf(c_lo + np.asarray(u, dtype=np.float64) * mass), -r, r)

    return Distribution("student_t", {"nu": float(nu), "r": float(r)}, pdf, cdf, ppf, (-float(r), float(r)),
                        (-float(r), float(r)))


def by_name(name: str, **params) -> Distribution:
    makers = {"normal": normal, "laplace": laplace, "uniform": uniform, "student_t": student_t}
    if name not in makers:
        raise UserError(f"unknown distribution {name!r}; accepted: {', '.join(DIST_NAMES)}")
    return makers[name](**params)
