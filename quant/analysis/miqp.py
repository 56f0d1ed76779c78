"""Global solutions of the per-row problems of section 4 with a linear MIP solver (python-mip, CBC).

CBC has no quadratic objective, so the convex objective f(w) = (w - w0)^T G (w - w0) = ||R (w - w0)||^2 is
handled by outer approximation: with z = R (w - w0), each z_k^2 is replaced by a variable t_k bounded below
by tangent lines, the MILP is solved, tangents are added where z_k^2 exceeds t_k, and the loop repeats.
Tangents under-estimate a convex function, so every MILP bound is a valid lower bound on the true optimum,
and the best true objective seen is an upper bound; the loop stops when the two meet (within `rel_gap` of
the objective or 1e-10 of the signal power, whichever is larger).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import mip
import numpy as np


@dataclass
class Solution:
    w: np.ndarray          # best solution found (real-valued weights)
    value: float           # its true objective f(w)
    lower: float           # proven lower bound on the optimum
    optimal: bool          # value - lower within the requested gap
    iterations: int


def sqrt_factor(gram: np.ndarray) -> np.ndarray:
    """R with R^T R = gram (rows for zero eigenvalues dropped)."""
    vals, vecs = np.linalg.eigh((gram + gram.T) / 2.0)
    keep = vals > vals.max() * 1e-13 if vals.size and vals.max() > 0 else np.zeros_like(vals, dtype=bool)
    return np.sqrt(vals[keep])[:, None] * vecs[:, keep].T


def objective(gram: np.ndarray, w: np.ndarray, w0: np.ndarray) -> float:
    d = w - w0
    return float(max(d @ gram @ d, 0.0))


class _OuterApproximation:
    """The shared loop: z = R (w - w0), t_k >= tangents of z_k^2, minimise sum t_k."""

    def __init__(self, gram: np.ndarray, w0: np.ndarray, time_limit: float):
        self.gram, self.w0 = gram, w0
        self.r = sqrt_factor(gram)
        self.model = mip.Model(sense=mip.MINIMIZE, solver_name=mip.CBC)
        self.model.verbose = 0
        self.model.threads = 1
        self.model.max_mip_gap = 1e-9
        self.model.max_mip_gap_abs = 1e-12
        self.deadline = time.monotonic() + time_limit
        # gaps below this are solver round-off: 1e-10 of the signal power (an error at -100 dB)
        self.abs_gap = 1e-10 * float(w0 @ gram @ w0)

    def finish_setup(self, w_vars, start: np.ndarray, extra_start=lambda w: []):
        """Adds z, t and the first tangents; extra_start(w) gives start values of any other variables."""
        m, r = self.model, self.r
        self.w_vars = w_vars
        self.extra_start = extra_start
        self.z = [m.add_var(lb=-mip.INF) for _ in range(r.shape[0])]
        self.t = [m.add_var(lb=0.0) for _ in range(r.shape[0])]
        for k in range(r.shape[0]):
            m += self.z[k] == mip.xsum(float(r[k, j]) * w_vars[j] for j in range(len(w_vars))) - float(r[k] @ self.w0)
        m.objective = mip.xsum(self.t)
        z0 = r @ (start - self.w0)
        spread = np.abs(z0) + np.sqrt(np.abs(np.diag(r @ r.T))) * 1e-3
        for k in range(r.shape[0]):
            for a in (z0[k], -z0[k], 0.5 * spread[k], -0.5 * spread[k], 2 * spread[k], -2 * spread[k]):
                self._cut(k, a)

    def _cut(self, k: int, a: float):
        self.model += self.t[k] >= 2.0 * float(a) * self.z[k] - float(a) ** 2

    def solve(self, evaluate, best_w: np.ndarray, rel_gap: float, max_iter: int) -> Solution:
        """evaluate(w_milp) -> (w_true, f_true): the true solution the MILP point stands for."""
        best_value = objective(self.gram, best_w, self.w0)
        lower, it = 0.0, 0
        tol = max(best_value * rel_gap, self.abs_gap)
        for it in range(1, max_iter + 1):
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                break
            self.model.start = [(v, float(x)) for v, x in zip(self.w_vars, best_w)] + self.extra_start(best_w)
            status = self.model.optimize(max_seconds=remaining)
            if status not in (mip.OptimizationStatus.OPTIMAL, mip.OptimizationStatus.FEASIBLE):
                break
            bound = float(self.model.objective_bound)
            if status == mip.OptimizationStatus.OPTIMAL:
                # CBC leaves objective_bound at 0 when presolve alone closes the problem
                value = float(self.model.objective_value)
                bound = max(bound, value - self.model.max_mip_gap * abs(value) - self.model.max_mip_gap_abs)
            lower = max(lower, bound)
            w_milp = np.array([v.x for v in self.w_vars], dtype=np.float64)
            w_true, f_true = evaluate(w_milp)
            if f_true < best_value:
                best_w, best_value = w_true, f_true
            tol = max(best_value * rel_gap, self.abs_gap)
            if best_value - lower <= tol or status != mip.OptimizationStatus.OPTIMAL:
                break
            added = False
            for point in (w_milp, w_true):
                zs = self.r @ (point - self.w0)
                ts = np.array([t.x for t in self.t])
                for k in np.nonzero(zs ** 2 > ts + tol / max(len(zs), 1))[0]:
                    self._cut(int(k), zs[k])
                    added = True
            if not added:
                break
        lower = min(lower, best_value)
        return Solution(best_w, best_value, lower, best_value - lower <= tol, it)


def quantize_exact(gram: np.ndarray, w0: np.ndarray, scale: float, lo: int, hi: int, start: np.ndarray,
                   time_limit: float = 10.0, rel_gap: float = 1e-7, max_iter: int = 200) -> Solution:
    """min ||X (scale * x - w0)||^2 over integer x in [lo, hi]^n (eq. 4-5); `start` is integer codes."""
    oa = _OuterApproximation(gram * scale ** 2, w0 / scale, time_limit)
    x = [oa.model.add_var(var_type=mip.INTEGER, lb=lo, ub=hi) for _ in range(w0.size)]
    oa.finish_setup(x, np.asarray(start, dtype=np.float64))

    def evaluate(codes):
        codes = np.clip(np.rint(codes), lo, hi)
        return codes, objective(oa.gram, codes, oa.w0)

    sol = oa.solve(evaluate, np.asarray(start, dtype=np.float64), rel_gap, max_iter)
    sol.w = sol.w * scale
    return sol


def prune_exact(gram: np.ndarray, w0: np.ndarray, keep: int, bound: np.ndarray, start: np.ndarray,
                time_limit: float = 10.0, rel_gap: float = 1e-5, max_iter: int = 200) -> Solution:
    """min ||X (w - w0)||^2 with at most `keep` non-zeros (eq. 7-8); |w_i| <= bound_i must hold at the optimum.

    Each MILP point's support is refitted by least squares, which is the true optimum for that support.
    The default gap (1e-5 relative, 4e-5 dB) sits above CBC's integrality tolerance on the big-M rows.
    """
    if keep <= 0:
        zero = np.zeros_like(w0)
        value = objective(gram, zero, w0)
        return Solution(zero, value, value, True, 0)
    oa = _OuterApproximation(gram, w0, time_limit)
    n = w0.size
    w = [oa.model.add_var(lb=-float(bound[i]), ub=float(bound[i])) for i in range(n)]
    m = [oa.model.add_var(var_type=mip.BINARY) for _ in range(n)]
    oa.model += mip.xsum(m) <= keep
    for i in range(n):
        oa.model += w[i] <= float(bound[i]) * m[i]
        oa.model += w[i] >= -float(bound[i]) * m[i]
    oa.finish_setup(w, np.asarray(start, dtype=np.float64),
                    lambda best: [(m[i], 1.0 if best[i] != 0 else 0.0) for i in range(n)])

    def evaluate(w_milp):
        mask = np.array([v.x > 0.5 for v in m])
        fitted = refit(gram, w0, mask)
        return fitted, objective(gram, fitted, w0)

    return oa.solve(evaluate, np.asarray(start, dtype=np.float64), rel_gap, max_iter)


def refit(gram: np.ndarray, w0: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Least-squares weights on a fixed support: G_SS w_S = G_S: w0 (the convex sub-problem of section 4.3)."""
    w = np.zeros_like(w0)
    s = np.nonzero(mask)[0]
    if s.size:
        rhs = gram[s] @ w0
        w[s] = np.linalg.lstsq(gram[np.ix_(s, s)], rhs, rcond=None)[0]
    return w
