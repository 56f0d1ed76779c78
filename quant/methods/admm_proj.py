"""The Euclidean projections of ADMM (paper 002, eq. 4), the dual update and the rho schedule.

Pruning (S_i = {W : at most alpha_i nonzeros}): keep the largest magnitudes, zero the rest. Structured
variants project onto "at most k nonzero groups" the same way with the group's L2 norm as its magnitude:
  filter   one output neuron / conv filter: W[o, ...]
  channel  one input channel (conv: W[:, c, :, :]; linear: one input feature, W[:, c])
  column   one column of the GEMM view W.reshape(out, -1) (conv: one (c, kh, kw) position across all filters;
           linear: the same as channel)
Quantization (S_i = {alpha * q : q in the layer's integer levels}): each element goes to the nearest level.
The paper fixes the levels q_ij; it does not say how their spacing alpha is chosen, so here alpha is fitted
with the levels (alternating nearest-level assignment and least-squares alpha = <v, q> / <q, q>, from several
starts, keeping the closest), and for that alpha the mapping is exactly the nearest level. Once a layer is
pruned its kept weights are quantized onto the nonzero levels only (the paper quantizes "the remaining,
non-zero weights"), so quantization never changes the pruning rate.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from common.errors import UserError
from quant.quantizers import _parse, parse_pow2, pow2_levels

STRUCTURES = ("unstructured", "filter", "channel", "column")


@dataclass(frozen=True)
class Levels:
    """The integer levels of a weight spec (sorted) and how they export: bit width and narrow range."""

    spec: str
    ints: tuple[int, ...]
    bits: int
    narrow: bool
    pow2: int = 0  # K of pow2:K, else 0

    def kept(self) -> tuple[int, ...]:
        """The levels of unpruned weights: all but 0."""
        return tuple(i for i in self.ints if i != 0)


def levels_for(spec: str) -> Levels:
    """Levels of 'binary', 'ternary', 'intN' (int2: -2..1 as quant.quantizers; wider: narrow symmetric) or
    'pow2:K' ({0, +-2^k, k < K})."""
    k = parse_pow2(spec)
    if k:
        mags = pow2_levels(k)
        return Levels(spec, tuple(sorted({-m for m in mags} | set(mags))), k + 1, True, k)
    kind, bits = _parse(spec)
    if kind == "binary":
        return Levels(spec, (-1, 1), 1, False)
    if kind == "ternary":
        return Levels(spec, (-1, 0, 1), 2, True)
    if kind == "int" and bits == 2:
        return Levels(spec, (-2, -1, 0, 1), 2, False)
    if kind == "int" and 2 < bits <= 8:
        top = (1 << (bits - 1)) - 1
        return Levels(spec, tuple(range(-top, top + 1)), bits, True)
    raise UserError(f"weight {spec!r}: ADMM quantizes onto binary, ternary, int2 .. int8 or pow2:K levels")


def nearest_level(y: torch.Tensor, ints) -> torch.Tensor:
    """Each element of y mapped to the nearest of the sorted integer levels `ints` (a tie: the lower one)."""
    lv = torch.tensor(ints, dtype=y.dtype)
    if len(ints) == 1:
        return lv.expand_as(y).clone()
    mid = (lv[:-1] + lv[1:]) / 2
    return lv[torch.bucketize(y, mid)]


def fit_scale(v: torch.Tensor, ints, iters: int = 30) -> tuple[float, torch.Tensor]:
    """(alpha, q) with q = nearest_level(v / alpha) minimising ||v - alpha q|| over alternating updates from
    several starting alphas; q holds integers of `ints`. v is a flat tensor of the weights to quantize."""
    v = v.detach().double().flatten()
    top = max(abs(i) for i in ints)
    a = v.abs()
    if v.numel() == 0 or float(a.max()) == 0.0:
        return 1.0, torch.zeros_like(v)
    starts = [float(torch.quantile(a, p)) / top for p in (1.0, 0.99, 0.95, 0.8, 0.6)] + [float(a.mean())]
    best = None
    for alpha in starts:
        if alpha <= 0:
            continue
        for _ in range(iters):
            q = nearest_level(v / alpha, ints)
            qq = float((q * q).sum())
            if qq == 0:
                break
            new = float((v * q).sum()) / qq
            if new <= 0 or abs(new - alpha) <= 1e-12 * alpha:
                alpha = new if new > 0 else alpha
                break
            alpha = new
        q = nearest_level(v / alpha, ints)
        d = float(((v - alpha * q) ** 2).sum())
        if best is None or d < best[0]:
            best = (d, alpha, q)
    return best[1], best[2]


def project_quant(v: torch.Tensor, levels: Levels, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """(Z, alpha): the projection of v onto alpha * levels (pruned positions of `mask` stay 0, kept ones go
    to the nonzero levels when the layer is pruned)."""
    pruned = mask is not None and bool((mask == 0).any())
    ints = levels.kept() if pruned else levels.ints
    keep = mask > 0 if mask is not None else torch.ones_like(v, dtype=torch.bool)
    alpha, q = fit_scale(v[keep], ints)
    z = torch.zeros_like(v)
    z[keep] = (alpha * q).to(v.dtype)
    return z, alpha


def _groups(w: torch.Tensor, structure: str) -> tuple[torch.Tensor, callable]:
    """(group scores = L2 norms, expand(group mask) -> element mask) for a structure."""
    if structure == "filter":
        norms = w.reshape(w.shape[0], -1).norm(dim=1)
        return norms, lambda g: g.reshape(-1, *([1] * (w.dim() - 1))).expand_as(w)
    if structure == "channel":
        dims = [d for d in range(w.dim()) if d != 1]
        norms = w.pow(2).sum(dim=dims).sqrt()
        return norms, lambda g: g.reshape(1, -1, *([1] * (w.dim() - 2))).expand_as(w)
    if structure == "column":
        norms = w.reshape(w.shape[0], -1).norm(dim=0)
        return norms, lambda g: g.reshape(1, -1).expand(w.shape[0], -1).reshape(w.shape)
    raise UserError(f"method.prune.structure: {structure!r} is not one of {', '.join(STRUCTURES)}")


def prune_mask(v: torch.Tensor, sparsity: float, structure: str = "unstructured",
               prev: torch.Tensor | None = None) -> torch.Tensor:
    """The 0/1 mask of the projection of v onto "round(sparsity * n) elements (or groups) are zero": the
    largest magnitudes (group norms) are kept; entries already pruned in `prev` are pruned first (progressive
    steps only prune further); ties go by position, the lower index pruned first."""
    v = v.detach()
    if structure == "unstructured":
        score = v.abs().flatten().clone()
        if prev is not None:
            score[prev.flatten() == 0] = -1.0
        mask = torch.ones_like(score)
        k = int(round(sparsity * score.numel()))
        if k:
            mask[score.argsort(stable=True)[:k]] = 0.0
        return mask.reshape(v.shape)
    score, expand = _groups(v, structure)
    score = score.clone()
    if prev is not None:
        gone, _ = _groups(prev, structure)
        score[gone == 0] = -1.0
    keep = torch.ones_like(score)
    k = int(round(sparsity * score.numel()))
    if k:
        keep[score.argsort(stable=True)[:k]] = 0.0
    return expand(keep).to(v.dtype).contiguous()


def admm_update(w: torch.Tensor, u: torch.Tensor, project) -> tuple[torch.Tensor, torch.Tensor]:
    """One ADMM iteration after the W-subproblem (eq. 3): Z = Proj_S(W + U) (eq. 4), then U = U + W - Z."""
    z = project(w + u)
    return z, u + w - z


def rho_at(iteration: int, init: float, factor: float, cap: float) -> float:
    """rho of ADMM iteration k (0-based): init * factor^k, at most cap (the paper starts at 1.5e-3 and
    increases rho with the iterations)."""
    return min(init * factor ** iteration, cap)
