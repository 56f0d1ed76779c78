"""Per-tensor SNR and sample kurtosis of real weights (section 3.4, Figure 3).

Every weight tensor is quantized with the MSE-optimal scale on the chosen grid and magnitude-pruned to the
same size (ratio 1 - b/16), for b = 2..8. The kurtosis regions where pruning wins follow the paper: a
Gaussian kernel density over log-kurtosis for the tensors where pruning wins, against the one where
quantization wins, each weighted by its count; pruning is preferred where its density is the larger.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from quant.analysis.grids import BITS, DEFAULT_GRID, best_scale, magnitude_prune, prune_ratio, quantize, snr_db


def sample_kurtosis(w: np.ndarray) -> float:
    """k = mean((x - mean)^4) / mean((x - mean)^2)^2 over all entries of the tensor."""
    x = np.asarray(w, dtype=np.float64).ravel()
    x = x - x.mean()
    m2 = float(np.mean(x ** 2))
    return float(np.mean(x ** 4) / m2 ** 2) if m2 > 0 else float("nan")


def tensor_snr(w: np.ndarray, bits: int, grid: str = DEFAULT_GRID) -> dict:
    """Quantization and pruning SNR of one tensor at b bits against pruning ratio 1 - b/16."""
    w = np.asarray(w, dtype=np.float64).ravel()
    power = float(np.mean(w ** 2))
    scale = best_scale(w, bits, grid)
    q_err = float(np.mean((quantize(w, scale, bits, grid) - w) ** 2))
    ratio = prune_ratio(bits)
    p_err = float(np.mean((magnitude_prune(w, ratio) - w) ** 2))
    return {"bits": bits, "prune_ratio": ratio, "scale": scale,
            "snr_quant_db": snr_db(power, q_err), "snr_prune_db": snr_db(power, p_err)}


def analyze_tensors(weights: dict[str, np.ndarray], bits: Iterable[int] = BITS, grid: str = DEFAULT_GRID,
                    advance: Callable[[], None] | None = None) -> list[dict]:
    """One record per tensor: name, shape, size, kurtosis and the SNR pair for every bit width."""
    records = []
    for name, w in weights.items():
        rows = [tensor_snr(w, b, grid) for b in bits]
        records.append({"name": name, "shape": list(np.shape(w)), "numel": int(np.size(w)),
                        "kurtosis": sample_kurtosis(w), "snr": rows})
        if advance is not None:
            advance()
    return records


def pruning_regions(records: list[dict], bits: Iterable[int] = BITS, points: int = 200) -> list[dict]:
    """Per bit width: the kurtosis intervals where pruning is preferred (Figure 3, right)."""
    kurt = np.array([r["kurtosis"] for r in records], dtype=np.float64)
    ok = np.isfinite(kurt) & (kurt > 0)
    logk = np.log10(kurt[ok])
    out = []
    if logk.size == 0:
        return out
    spread = float(np.std(logk)) if logk.size > 1 else 0.0
    bandwidth = max(1.06 * spread * logk.size ** (-0.2), 0.05)
    grid = np.linspace(logk.min() - 2 * bandwidth, logk.max() + 2 * bandwidth, points)
    for b in bits:
        wins = np.array([_row(r, b)["snr_prune_db"] > _row(r, b)["snr_quant_db"] for r in records])[ok]
        dens_p = _kernel_sum(grid, logk[wins], bandwidth)
        dens_q = _kernel_sum(grid, logk[~wins], bandwidth)
        prune_better = dens_p > dens_q
        out.append({"bits": b, "prune_ratio": prune_ratio(b), "tensors_prune_wins": int(wins.sum()),
                    "tensors_quant_wins": int((~wins).sum()), "bandwidth_log10": bandwidth,
                    "prune_preferred_kurtosis": _intervals(10 ** grid, prune_better)})
    return out


def _row(record: dict, bits: int) -> dict:
    return next(r for r in record["snr"] if r["bits"] == bits)


def _kernel_sum(grid: np.ndarray, centers: np.ndarray, bandwidth: float) -> np.ndarray:
    if centers.size == 0:
        return np.zeros_like(grid)
    z = (grid[:, None] - centers[None, :]) / bandwidth
    return np.exp(-0.5 * z ** 2).sum(axis=1)


def _intervals(x: np.ndarray, mask: np.ndarray) -> list[list[float]]:
    """Contiguous runs of True in mask as [x_start, x_end] pairs."""
    runs, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        if not m and start is not None:
            runs.append([float(x[start]), float(x[i - 1])])
            start = None
    if start is not None:
        runs.append([float(x[start]), float(x[-1])])
    return runs
