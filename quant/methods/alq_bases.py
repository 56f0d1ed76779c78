"""ALQ (paper 003) on tensors: weight groups, structured sketching (Alg. 1), AMSGrad moments (eq. 8-10), the
binary-basis search (eq. 19-20), the coordinate refit (eq. 23) and the alpha-domain pruning choice (eq. 13).

Everything here works on all groups of one layer at once: B is [G, n, I_max] in {-1, +1}, alpha [G, I_max] and
a 0/1 mask [G, I_max] saying which bases a group still has (I_g = mask[g].sum()). A masked basis contributes
nothing, so groups of different bit widths share one tensor.
"""
from __future__ import annotations

import itertools
import math
import re

import torch

from common.errors import UserError

LAMBDA = 1e-6  # eq. 23: lambda * I keeps B^T H B invertible (the paper's value)
STRUCTURES = "channel, subchannel<K> (linear), kernel, pixel, channel (conv)"


# ---------------------------------------------------------------------------------------------- grouping
def parse_structure(spec: str, shape: tuple[int, ...], where: str) -> tuple[str, int]:
    """(kind, K) of a grouping name for a weight of `shape` ([O, I] linear, [O, C, kh, kw] conv), checked.

    Sec. 5.1 / A.2: fully connected layers group channel-wise (w[c, :]) or sub-channel-wise (w[c, d:d+n],
    `subchannel2` = each row cut into 2 equal groups); convolutions channel-wise, kernel-wise (w[c, d, :, :])
    or pixel-wise (w[c, :, h, w])."""
    m = re.fullmatch(r"(channel|kernel|pixel|subchannel)(\d*)", str(spec).strip().lower())
    conv = len(shape) == 4
    if not m or (m.group(1) != "subchannel" and m.group(2)):
        raise UserError(f"{where}: grouping {spec!r} is not known; accepted: {STRUCTURES}")
    kind = m.group(1)
    if conv and kind == "subchannel":
        raise UserError(f"{where}: subchannel grouping is for linear layers; a conv accepts channel, kernel, pixel")
    if not conv and kind in ("kernel", "pixel"):
        raise UserError(f"{where}: {kind} grouping is for conv layers; a linear layer accepts channel, subchannelK")
    k = 1
    if kind == "subchannel":
        k = int(m.group(2) or 0)
        if k < 1 or shape[1] % k:
            raise UserError(f"{where}: subchannel{m.group(2)} must cut the {shape[1]} inputs into equal groups "
                            "(K >= 1 dividing the input count)")
    return kind, k


def group_shape(kind: str, k: int, shape: tuple[int, ...]) -> tuple[int, int]:
    """(G, n): number of groups and weights per group."""
    if len(shape) == 2:
        o, i = shape
        return (o, i) if kind == "channel" else (o * k, i // k)
    o, c, kh, kw = shape
    return {"channel": (o, c * kh * kw), "kernel": (o * c, kh * kw), "pixel": (o * kh * kw, c)}[kind]


def to_groups(w: torch.Tensor, kind: str, k: int) -> torch.Tensor:
    """The weight tensor as [G, n]; the groups of one output channel are consecutive rows."""
    g, n = group_shape(kind, k, tuple(w.shape))
    if kind == "pixel":
        return w.permute(0, 2, 3, 1).reshape(g, n)
    return w.reshape(g, n)


def from_groups(wg: torch.Tensor, kind: str, k: int, shape: tuple[int, ...]) -> torch.Tensor:
    if kind == "pixel":
        o, c, kh, kw = shape
        return wg.reshape(o, kh, kw, c).permute(0, 3, 1, 2)
    return wg.reshape(shape)


# ------------------------------------------------------------------------------------------------ Alg. 1
def _masked_solve(a: torch.Tensor, rhs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Solves a[g] x = rhs[g] over the unmasked coordinates only; masked coordinates of x are 0."""
    mm = mask[:, :, None] * mask[:, None, :]
    eye = torch.eye(a.shape[-1], dtype=a.dtype)
    a = a * mm + eye * (1 - mask)[:, None, :]
    return torch.linalg.solve(a, (rhs * mask).unsqueeze(-1)).squeeze(-1) * mask


def relative_error(eps: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """||eps / w||_2^2 per group (Alg. 1's stopping test, element-wise division); an element with w = 0 counts
    0 when its residual is 0 and infinitely much otherwise."""
    ratio = torch.where(w != 0, eps / torch.where(w != 0, w, torch.ones_like(w)),
                        torch.where(eps == 0, torch.zeros_like(eps), torch.full_like(eps, math.inf)))
    return (ratio ** 2).sum(-1)


def sketch(wg: torch.Tensor, max_bits: int, sigma: float = 0.0, history: list | None = None):
    """Alg. 1 (structured sketching) for all groups [G, n] of a layer: greedy bases beta_i = sign(residual)
    with a least-squares refit of all alpha of the group after each new basis, until ||eps / w||^2 <= sigma
    or I_max bases. Computed in float64. Returns (B [G, n, I_max], alpha [G, I_max], mask [G, I_max]);
    `history`, when given, receives the squared residual norm per group after each basis.

    sign(0) is taken as +1 (a basis has no zero entries). The least-squares alpha may come out negative; the
    basis column is then negated (alpha_i beta_i is unchanged) so that alpha >= 0 as the paper defines it."""
    w = wg.detach().to(torch.float64)
    g, n = w.shape
    b = torch.ones(g, n, max_bits, dtype=torch.float64)
    alpha = torch.zeros(g, max_bits, dtype=torch.float64)
    mask = torch.zeros(g, max_bits, dtype=torch.float64)
    eps = w.clone()
    for i in range(max_bits):
        active = relative_error(eps, w) > sigma
        if not bool(active.any()):
            break
        beta = torch.where(eps >= 0, 1.0, -1.0).to(torch.float64)
        b[:, :, i] = torch.where(active[:, None], beta, b[:, :, i])
        mask[:, i] = active.to(torch.float64)
        gram = torch.einsum("gni,gnj->gij", b, b)
        alpha = _masked_solve(gram, torch.einsum("gni,gn->gi", b, w), mask)
        eps = w - torch.einsum("gni,gi->gn", b, alpha)
        if history is not None:
            history.append((eps ** 2).sum(-1).clone())
    b, alpha = make_positive(b, alpha)
    return b.to(wg.dtype), alpha.to(wg.dtype), mask.to(wg.dtype)


def make_positive(b: torch.Tensor, alpha: torch.Tensor):
    """A negative alpha_i becomes -alpha_i with the basis negated (Sec. 3.3: alpha stays >= 0)."""
    sign = torch.where(alpha < 0, -1.0, 1.0).to(alpha.dtype)
    return b * sign[:, None, :], alpha * sign


def reconstruct(b: torch.Tensor, alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """w_g = B_g alpha_g (eq. 2) for every group: [G, n]."""
    return torch.einsum("gni,gi->gn", b, alpha * mask)


# --------------------------------------------------------------------------------------------- AMSGrad
def amsgrad_moments(grad: torch.Tensor, state: dict, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
    """One AMSGrad moment update (Reddi et al.; the bias correction of torch's Adam(amsgrad=True)), in place
    on state {m, v, vmax, step}. Returns (g, H) of eq. 10: g = a * m_hat, H = sqrt(vmax_hat) + eps, so that
    the unconstrained AMSGrad step is x - g / H (eq. 8 and 21)."""
    b1, b2 = betas
    state["step"] += 1
    t = float(state["step"])
    state["m"].mul_(b1).add_(grad, alpha=1 - b1)
    state["v"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
    torch.maximum(state["vmax"], state["v"], out=state["vmax"])
    m_hat = state["m"] / (1 - b1 ** t)
    h = (state["vmax"] / (1 - b2 ** t)).sqrt() + eps
    return lr * m_hat, h


# ------------------------------------------------------------------------------------ eq. 19-20 and 23
def all_codes(bits: int, dtype=torch.float32) -> torch.Tensor:
    """All 2^bits rows b^T in {-1, +1}^bits (eq. 20), [2^bits, bits]."""
    return torch.tensor(list(itertools.product((-1.0, 1.0), repeat=bits)), dtype=dtype)


def nearest_codes(target: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Eq. 19: for each group g and row j the code b minimising |b^T coords_g - target_gj| among all 2^I values
    (eq. 20), found by binary search over the sorted values. target [G, n], coords [G, I] -> B [G, n, I]."""
    codes = all_codes(coords.shape[1], coords.dtype)
    values = coords @ codes.T  # [G, K]
    sorted_vals, order = values.sort(dim=1)
    mids = (sorted_vals[:, 1:] + sorted_vals[:, :-1]) / 2
    pos = torch.searchsorted(mids.contiguous(), target.contiguous())  # index into sorted_vals
    idx = order.gather(1, pos)
    return codes[idx]


def refit_alpha(b_new: torch.Tensor, h: torch.Tensor, g: torch.Tensor, w_hat: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
    """Eq. 23: alpha = -(B'^T H B' + lambda I)^-1 B'^T (g - H B alpha), with H B alpha = H w_hat (the current
    quantized weights), i.e. the minimiser of the quadratic model eq. 10 in span(B'). Per group; [G, I]."""
    bh = b_new * h[:, :, None]
    a = torch.einsum("gni,gnj->gij", bh, b_new) + LAMBDA * torch.eye(b_new.shape[-1], dtype=b_new.dtype)
    rhs = torch.einsum("gni,gn->gi", b_new, h * w_hat - g)
    return _masked_solve(a, rhs, mask)


# ------------------------------------------------------------------------------------- Alg. 2, eq. 13
def loss_increment(g: torch.Tensor, h: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Eq. 13: f_i = -g_i alpha_i + 1/2 H_ii alpha_i^2, the modelled loss increase of setting alpha_i to 0."""
    return -g * alpha + 0.5 * h * alpha ** 2


def choose_pruned(scores: list[torch.Tensor], masks: list[torch.Tensor], bits_per_alpha: list[int],
                  bits_now: int, bits_goal: int, k_percent: float, everything: bool = False,
                  keep_groups: list[bool] | None = None) -> list[torch.Tensor]:
    """Which alpha to remove so that the counted bits fall to bits_goal or just below (Alg. 2, one iteration).

    Per layer the k % smallest scores of the live alpha are candidates, and never fewer than the iteration
    must remove (in that layer's alpha), so that the global sort, not the candidate count, decides where the
    bases go (`everything`: all live alpha); the candidates of all layers are sorted together and removed in
    ascending order until the bits are at or below the goal. A layer's last live alpha is never removed, nor, in a
    layer whose `keep_groups` flag is set, a group's last
    one. Returns a 0/1 removal mask per layer."""
    removed = [torch.zeros_like(m) for m in masks]
    need = bits_now - bits_goal
    if need <= 0:
        return removed
    cand = []
    for layer, (s, m) in enumerate(zip(scores, masks)):
        live = int(m.sum())
        quota = math.ceil(need / bits_per_alpha[layer])
        take = live if everything else min(live, max(math.ceil(k_percent / 100 * live), quota))
        flat = torch.where(m.flatten() > 0, s.flatten(), torch.full_like(s.flatten(), math.inf))
        vals, idx = flat.topk(take, largest=False, sorted=True)
        cand += [(float(v), layer, int(i)) for v, i in zip(vals, idx)]
    cand.sort()
    left = [int(m.sum()) for m in masks]
    per_group = [m.sum(1).long().tolist() for m in masks]
    keep = keep_groups or [False] * len(masks)
    bits = bits_now
    for _, layer, i in cand:
        if bits <= bits_goal:
            break
        g = i // masks[layer].shape[1]
        if left[layer] <= 1 or (keep[layer] and per_group[layer][g] <= 1):
            continue
        removed[layer].view(-1)[i] = 1
        left[layer] -= 1
        per_group[layer][g] -= 1
        bits -= bits_per_alpha[layer]
    return removed


def pow2(x: torch.Tensor) -> torch.Tensor:
    """Nearest power of two in the log domain (0 stays 0): the optional power-of-two coordinates."""
    safe = torch.where(x > 0, x, torch.ones_like(x))
    return torch.where(x > 0, torch.exp2(torch.round(torch.log2(safe))), torch.zeros_like(x))


def round_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Nearest m 2^e with an m-bit mantissa m in {1, 1 + 2^(1-bits), .., 2 - 2^(1-bits)} (0 stays 0): the optional
    fixed-point coordinates, a sum of at most `bits` powers of two each. bits = 1 is pow2 (log-domain nearest)."""
    if bits <= 1:
        return pow2(x)
    safe = torch.where(x > 0, x, torch.ones_like(x))
    e = torch.floor(torch.log2(safe))
    unit = torch.exp2(e - (bits - 1))
    return torch.where(x > 0, torch.round(safe / unit) * unit, torch.zeros_like(x))
