"""Integer grids, round-to-nearest, magnitude pruning and the MSE scale search shared by every analysis.

Two symmetric uniform grids are offered because the paper's INT4 figure depends on the choice:
"full" uses all 2**b codes {-2**(b-1) .. 2**(b-1)-1} (what INT-b hardware stores, eq. 1 of the paper);
"symmetric" drops the most negative code and keeps 2**b - 1 levels {-(2**(b-1)-1) .. 2**(b-1)-1}
(what Brevitas' narrow-range weight quantizers use). "full" is the default everywhere.
"""
from __future__ import annotations

import numpy as np

from common.errors import UserError

GRIDS = ("full", "symmetric")
DEFAULT_GRID = "full"
BITS = tuple(range(2, 9))
BASELINE_BITS = 16


def int_range(bits: int, grid: str = DEFAULT_GRID) -> tuple[int, int]:
    """Smallest and largest integer code of a b-bit grid."""
    check_bits(bits)
    check_grid(grid)
    half = 2 ** (bits - 1)
    return (-half if grid == "full" else -(half - 1)), half - 1


def check_bits(bits: int) -> None:
    if int(bits) != bits or not 2 <= bits <= 8:
        raise UserError(f"bit width {bits!r} is not supported; accepted: integers 2 to 8")


def check_grid(grid: str) -> None:
    if grid not in GRIDS:
        raise UserError(f"unknown quantization grid {grid!r}; accepted: {', '.join(GRIDS)}")


def prune_ratio(bits: int) -> float:
    """Pruning ratio with the same size as b-bit weights, from a 16-bit baseline (paper section 2)."""
    return 1.0 - bits / BASELINE_BITS


def quantize(w: np.ndarray, scale: float, bits: int, grid: str = DEFAULT_GRID) -> np.ndarray:
    """Round-to-nearest onto scale * {lo..hi}, clipping outside (eq. 1)."""
    lo, hi = int_range(bits, grid)
    return scale * np.clip(np.rint(w / scale), lo, hi)


def magnitude_prune(w: np.ndarray, ratio: float) -> np.ndarray:
    """Zero the round(ratio * n) smallest-magnitude entries; ties are broken by position."""
    flat = np.asarray(w, dtype=np.float64).ravel()
    k = int(round(ratio * flat.size))
    out = flat.copy()
    if k > 0:
        out[np.argpartition(np.abs(flat), k - 1)[:k]] = 0.0
    return out.reshape(np.shape(w))


def snr_db(signal_power: float, noise_power: float) -> float:
    """10 log10(E[W^2] / E[(W - F(W))^2]); an exact reconstruction is reported as +inf."""
    if noise_power <= 0.0:
        return float("inf")
    return float(10.0 * np.log10(signal_power / noise_power))


def best_scale(w: np.ndarray, bits: int, grid: str = DEFAULT_GRID, points: int = 100) -> float:
    """MSE-optimal scale by grid search over clipping ranges, then a finer search around the best.

    This is the range estimator the paper uses for weights; it is what makes quantization SNR comparable
    with pruning SNR on real tensors.
    """
    w = np.asarray(w, dtype=np.float64).ravel()
    _, hi = int_range(bits, grid)
    amax = float(np.max(np.abs(w))) if w.size else 0.0
    if amax == 0.0:
        return 1.0

    def mse(scale: float) -> float:
        return float(np.mean((quantize(w, scale, bits, grid) - w) ** 2))

    coarse = amax * np.linspace(1.0 / points, 1.0, points) / hi
    errs = [mse(s) for s in coarse]
    i = int(np.argmin(errs))
    left = coarse[max(i - 1, 0)]
    right = coarse[i + 1] if i + 1 < points else coarse[i] * 1.05
    fine = np.linspace(left, right, 41)
    ferrs = [mse(s) for s in fine]
    j = int(np.argmin(ferrs))
    return float(fine[j]) if ferrs[j] <= errs[i] else float(coarse[i])
