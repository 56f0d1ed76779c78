"""Per-layer post-training bounds (section 4, eq. 4-8, Figure 4): an SNR range for quantization and pruning.

For one layer W (out x n) and a batch X (samples x n) of its inputs, every output row is its own problem
(the paper's remark under eq. 4); like the paper, rows are split into chunks of `chunk` inputs so the exact
solvers stay affordable. Each method gets two numbers:

- heuristic: quantization = round-to-nearest on the MSE-optimal per-tensor grid, improved by integer
  coordinate descent; pruning = magnitude mask with a least-squares refit of the kept weights (4.3).
- best: the global optimum (MIP, miqp.py) when the chunk has at most `exact_max` live inputs and the solver
  proves it in time, otherwise a lower bound on the error (the solver's bound, or relaxation.py).

Output SNR is 10 log10(sum ||X w0||^2 / sum error) over the analysed chunks. If the quantization interval
and the pruning interval do not overlap, the ranking holds for every algorithm (Figure 4's diagonal).
Pruning keeps round(n_chunk * b / 16) weights per chunk; inputs that are always zero are pruned for free.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from quant.analysis import miqp
from quant.analysis.grids import BITS, DEFAULT_GRID, best_scale, int_range, prune_ratio, snr_db
from quant.analysis.relaxation import prune_diagonal_bound, quant_dual_bound


def coordinate_descent(gram: np.ndarray, w0: np.ndarray, scale: float, lo: int, hi: int,
                       codes: np.ndarray, passes: int = 50) -> np.ndarray:
    """Integer coordinate descent on ||X (scale x - w0)||^2 from `codes`; never increases the error."""
    p = scale ** 2 * gram
    u = w0 / scale
    x = codes.astype(np.float64).copy()
    grad = p @ (x - u)
    for _ in range(passes):
        changed = False
        for i in range(x.size):
            if p[i, i] <= 0:
                continue
            new = float(np.clip(np.rint(x[i] - grad[i] / p[i, i]), lo, hi))
            delta = new - x[i]
            if delta != 0 and delta * (2 * grad[i] + delta * p[i, i]) < 0:
                x[i] = new
                grad += p[:, i] * delta
                changed = True
        if not changed:
            break
    return x


def _quant_chunk(gram, w0, scale, lo, hi, exact_max, time_limit) -> tuple[float, float, str]:
    """(heuristic error, best error or lower bound, how the best was obtained)."""
    rtn = np.clip(np.rint(w0 / scale), lo, hi)
    codes = coordinate_descent(gram, w0, scale, lo, hi, rtn)
    heuristic = miqp.objective(gram, scale * codes, w0)
    if heuristic <= 0.0:
        return 0.0, 0.0, "exact"
    if w0.size <= exact_max:
        sol = miqp.quantize_exact(gram, w0, scale, lo, hi, codes, time_limit=time_limit)
        if sol.optimal:
            return heuristic, sol.value, "exact"
        return heuristic, max(sol.lower, quant_dual_bound(gram, w0, scale, lo, hi)), "bound"
    return heuristic, quant_dual_bound(gram, w0, scale, lo, hi), "bound"


def _prune_chunk(gram, w0, keep, exact_max, time_limit) -> tuple[float, float, str]:
    mask = np.zeros(w0.size, dtype=bool)
    mask[np.argsort(-np.abs(w0), kind="stable")[:keep]] = True
    fitted = miqp.refit(gram, w0, mask)
    heuristic = miqp.objective(gram, fitted, w0)
    if heuristic <= 0.0:
        return 0.0, 0.0, "exact"
    if w0.size <= exact_max:
        lam_min = float(np.linalg.eigvalsh(gram)[0])
        if lam_min > 1e-10 * float(np.trace(gram)) / w0.size:
            bound = np.abs(w0) + np.sqrt(heuristic / lam_min) * (1.0 + 1e-6)
            sol = miqp.prune_exact(gram, w0, keep, bound, fitted, time_limit=time_limit)
            if sol.optimal:
                return heuristic, sol.value, "exact"
            return heuristic, max(sol.lower, prune_diagonal_bound(gram, w0, keep)), "bound"
    return heuristic, prune_diagonal_bound(gram, w0, keep), "bound"


def chunks(n: int, chunk: int) -> list[np.ndarray]:
    return [np.arange(s, min(s + chunk, n)) for s in range(0, n, chunk)]


def pick_rows(out: int, rows: int | None) -> np.ndarray:
    """All rows, or `rows` of them evenly spread (deterministic, so runs are comparable)."""
    if rows is None or rows >= out:
        return np.arange(out)
    return np.unique(np.linspace(0, out - 1, rows).round().astype(int))


def analyze_layer(name: str, weight: np.ndarray, inputs: np.ndarray, bits: Iterable[int] = BITS,
                  grid: str = DEFAULT_GRID, chunk: int = 8, rows: int | None = None, exact_max: int = 8,
                  time_limit: float = 5.0, advance: Callable[[], None] | None = None) -> dict:
    """SNR ranges of quantization and pruning for one layer at every bit width (one row of Table 1)."""
    w = np.asarray(weight, dtype=np.float64).reshape(np.shape(weight)[0], -1)
    x = np.asarray(inputs, dtype=np.float64).reshape(-1, w.shape[1])
    gram = x.T @ x
    live = np.diag(gram) > 1e-12 * max(float(np.max(np.diag(gram))), 1e-300)
    row_ids = pick_rows(w.shape[0], rows)
    result = {"name": name, "shape": list(np.shape(weight)), "samples": int(x.shape[0]), "rows": row_ids.tolist(),
              "chunk": chunk, "dead_inputs": int((~live).sum()), "bits": []}
    for b in bits:
        lo, hi = int_range(b, grid)
        scale = best_scale(w, b, grid)
        sums = dict.fromkeys(("signal", "q_heur", "q_best", "p_heur", "p_best"), 0.0)
        counts = {"q_exact": 0, "p_exact": 0, "chunks": 0}
        for r in row_ids:
            for cols in chunks(w.shape[1], chunk):
                alive = cols[live[cols]]
                keep = len(cols) - int(round(prune_ratio(b) * len(cols)))
                w0 = w[r, alive]
                g = gram[np.ix_(alive, alive)]
                sums["signal"] += float(w0 @ g @ w0)
                counts["chunks"] += 1
                if alive.size == 0:
                    counts["q_exact"] += 1
                    counts["p_exact"] += 1
                    continue
                qh, qb, qhow = _quant_chunk(g, w0, scale, lo, hi, exact_max, time_limit)
                ph, pb, phow = _prune_chunk(g, w0, min(keep, alive.size), exact_max, time_limit)
                sums["q_heur"] += qh
                sums["q_best"] += qb
                sums["p_heur"] += ph
                sums["p_best"] += pb
                counts["q_exact"] += qhow == "exact"
                counts["p_exact"] += phow == "exact"
        result["bits"].append(_summary(b, scale, sums, counts))
        if advance is not None:
            advance()
    return result


def _summary(bits: int, scale: float, sums: dict, counts: dict) -> dict:
    s = sums["signal"]
    row = {"bits": bits, "prune_ratio": prune_ratio(bits), "scale": scale,
           "snr_quant_heuristic_db": snr_db(s, sums["q_heur"]), "snr_quant_best_db": snr_db(s, sums["q_best"]),
           "snr_prune_heuristic_db": snr_db(s, sums["p_heur"]), "snr_prune_best_db": snr_db(s, sums["p_best"]),
           "quant_chunks_exact": counts["q_exact"], "prune_chunks_exact": counts["p_exact"],
           "chunks": counts["chunks"]}
    if row["snr_quant_heuristic_db"] > row["snr_prune_best_db"]:
        row["winner"] = "quantization"
    elif row["snr_prune_heuristic_db"] > row["snr_quant_best_db"]:
        row["winner"] = "pruning"
    else:
        row["winner"] = "depends on the algorithm"
    return row
