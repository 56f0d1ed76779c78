"""Convex-relaxation lower bounds for the per-row problems of section 4, without an SDP solver.

Quantization (eq. 6): the integer constraint is relaxed to y_i (y_i - 1) >= 0 after shifting x = k + y with
k = floor(w0 / scale), which puts the continuous optimum inside [0, 1]^n as in Park and Boyd; the range
constraint is kept as (y_i - l_i)(h_i - y_i) >= 0. The Lagrange dual of this relaxation is the SDP dual of
eq. 6; by the Schur complement, for fixed multipliers it has the closed form

    g(lam, mu) = f(k) + sum mu_i l_i h_i - b^T A^-1 b,  A = P - diag(lam) + diag(mu),
    b = q - lam / 2 + mu (l + h) / 2,

which is concave. Any multipliers with A positive definite give a valid lower bound, so it is maximised by
projected gradient ascent and whatever point is reached is a bound.

Pruning: for any d >= 0 with G - diag(d) positive semidefinite, f(w) >= sum_i d_i (w_i - w0_i)^2, and a
pruned w has w_i = 0 on at least n - keep entries; so the n - keep smallest d_i w0_i^2 bound the error.
"""
from __future__ import annotations

import numpy as np


def quant_dual_bound(gram: np.ndarray, w0: np.ndarray, scale: float, lo: int, hi: int,
                     iterations: int = 300) -> float:
    """Lower bound on min ||X (scale x - w0)||^2 over integer x in [lo, hi]^n."""
    n = w0.size
    k = np.clip(np.floor(w0 / scale), lo, hi - 1)
    r = w0 - scale * k
    p = scale ** 2 * gram
    q = scale * gram @ r
    f_k = float(r @ gram @ r)
    ly, hy = lo - k, hi - k
    diag = np.maximum(np.diag(p), 1e-300)
    lam = np.zeros(n)
    mu = np.full(n, 1e-9) * diag
    best, state = _dual_value(p, q, f_k, ly, hy, lam, mu)
    if state is None:
        return 0.0
    step = 1.0
    for _ in range(iterations):
        v = state
        g_lam = v * (1.0 - v)
        g_mu = (v - ly) * (v - hy)
        improved = False
        while step > 1e-12:
            lam_new = np.maximum(lam + step * diag * g_lam, 0.0)
            mu_new = np.maximum(mu + step * diag * g_mu, 0.0)
            value, new_state = _dual_value(p, q, f_k, ly, hy, lam_new, mu_new)
            if new_state is not None and value > best:
                lam, mu, best, state = lam_new, mu_new, value, new_state
                step *= 1.5
                improved = True
                break
            step *= 0.5
        if not improved or np.max(np.abs(np.concatenate([g_lam, g_mu]))) < 1e-9:
            break
    return max(best, 0.0)


def _dual_value(p, q, f_k, ly, hy, lam, mu):
    """g(lam, mu) and the inner minimiser v = A^-1 b, or (-inf, None) when A is not positive definite."""
    a = p - np.diag(lam) + np.diag(mu)
    b = q - lam / 2.0 + mu * (ly + hy) / 2.0
    try:
        chol = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return -np.inf, None
    v = np.linalg.solve(chol.T, np.linalg.solve(chol, b))
    return float(f_k + np.sum(mu * ly * hy) - b @ v), v


def prune_diagonal_bound(gram: np.ndarray, w0: np.ndarray, keep: int) -> float:
    """Lower bound on min ||X (w - w0)||^2 with at most `keep` non-zeros, from two diagonal minorants of G."""
    n = w0.size
    drop = n - keep
    if drop <= 0:
        return 0.0
    sym = (gram + gram.T) / 2.0
    diag = np.diag(sym).copy()
    candidates = [np.full(n, max(np.linalg.eigvalsh(sym)[0], 0.0))]
    if np.all(diag > 0):
        inv_sqrt = 1.0 / np.sqrt(diag)
        t = np.linalg.eigvalsh(sym * inv_sqrt[:, None] * inv_sqrt[None, :])[0]
        candidates.append(max(t, 0.0) * diag)
    best = 0.0
    for d in candidates:
        d = d * (1.0 - 1e-9)
        best = max(best, float(np.sum(np.sort(d * w0 ** 2)[:drop])))
    return best
