"""The DQ quantizer of DJPQ (paper 001, eq. 1-7) and the power-of-two bit restriction of its Alg. 2.

x_q = sign(x) * d * round(x~ / d),  x~ = 0 below q_s, (|x| - q_s)^t inside [q_s, q_m], (q_m - q_s)^t above.
q_m, d and t are learned (t only for weights; activations use t = 1 and a non-negative grid), q_s is fixed.
Whatever the learned values, the forward value is always an integer times the step, so the layer maps onto
an integer MVAU: the integers are round(x~ / d), the scale is d.

Gradients with respect to d, q_m and t are exactly eq. 5-7. The gradient with respect to x is the
straight-through estimate (1 where the input lies inside [q_s, q_m], 0 in the clipped and dead zones).

Bit widths: eq. 3 (symmetric weights) and eq. 4 (unsigned activations) give a continuous bit width whose
ceiling is passed straight through, so the BOPs term of the loss has a gradient in d, q_m and t.

Bounds. The paper requires 0 < q_s < q_m, and a grid of fewer than 2 bits is no weight grid the hardware
implements. Nothing in eq. 3-7 keeps either: under the BOPs term, eq. 3's straight-through ceiling keeps a
gradient below 2 bits (where the ceiling no longer moves), so q_m falls through q_s, eq. 6's (q_m - q_s)^(t-1)
turns NaN and training diverges (LeNet-5's DQ, seeds 1 and 2, epoch 2). So the bit width used in the loss
stops at MIN_BITS (no gradient below it) and, after each optimizer step, `project_()` puts q_m, d back into
the feasible set: top level (q_m - q_s)^t / d at least the MIN_BITS grid's (q_m raised) and at most the
MAX_BITS grid's (d raised).

Restriction (Alg. 2): the bit width is mapped to b' (power of two: 2^round(log2 b), at least 2; 2^ceil(log2 b)
for pow2_up; or the next integer), the forward pass uses the step d' = (q_m - q_s)^t / L(b') with q_m unchanged, and
the backward
pass is unchanged (d' takes d's gradient). L(b) = 2^(b-1) - 1 for weights, as in Alg. 2; for activations
L(b) = 2^b - 1 rather than Alg. 2's 2^b, because the top level 2^b would need b + 1 unsigned bits.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from common.errors import UserError

RESTRICT_CHOICES = ("none", "integer", "pow2", "pow2_up")
HW_BITS = range(2, 9)  # int MVAU widths the RTL implements (plus binary/ternary)
MIN_BITS, MAX_BITS = 2, 8  # the feasible widths of a learned grid (project_)


class DQFunction(torch.autograd.Function):
    """x_q of eq. 2, backward of eq. 5 (d), eq. 6 (q_m), eq. 7 (t) and the straight-through x gradient."""

    @staticmethod
    def forward(ctx, x, d, q_m, t, q_s: float):
        a = x.abs()
        inside = (a >= q_s) & (a <= q_m)
        above = a > q_m
        base = torch.where(above, q_m - q_s, (a - q_s).clamp_min(0.0))
        mapped = torch.where(inside | above, base.clamp_min(0.0) ** t, torch.zeros_like(a))
        u = mapped / d
        r = torch.round(u)
        sgn = torch.sign(x)
        ctx.save_for_backward(sgn, inside, above, base, mapped, u, r, q_m, t)
        ctx.q_s, ctx.d_shape = q_s, d.shape
        return sgn * d * r

    @staticmethod
    def backward(ctx, g):
        sgn, inside, above, base, mapped, u, r, q_m, t = ctx.saved_tensors
        active = inside | above
        g_d = (g * torch.where(active, sgn * (r - u), torch.zeros_like(u))).sum()  # eq. 5
        g_qm = (g * torch.where(above, sgn * t * (q_m - ctx.q_s) ** (t - 1), torch.zeros_like(u))).sum()  # eq. 6
        safe = torch.where(base > 0, base, torch.ones_like(base))
        g_t = (g * torch.where(active & (base > 0), sgn * mapped * torch.log(safe), torch.zeros_like(u))).sum()  # eq. 7
        g_x = g * inside.to(g.dtype)
        return g_x, g_d.reshape(ctx.d_shape), g_qm.reshape(q_m.shape), g_t.reshape(t.shape), None


def _ceil_ste(v: torch.Tensor) -> torch.Tensor:
    return v + (torch.ceil(v) - v).detach()


def weight_bits_eq3(q_m, d, t, q_s: float) -> torch.Tensor:
    """Eq. 3: b = log2 ceil((q_m - q_s)^t / d + 1) + 1 (ceil straight-through)."""
    return torch.log2(_ceil_ste((q_m - q_s).clamp_min(1e-12) ** t / d + 1)) + 1


def act_bits_eq4(q_m, d, q_s: float) -> torch.Tensor:
    """Eq. 4: b = log2 ceil((q_m - q_s) / d) (ceil straight-through)."""
    return torch.log2(_ceil_ste(((q_m - q_s).clamp_min(1e-12) / d).clamp_min(1.0)))


def restrict_bits(b: float, mode: str) -> int:
    """Alg. 2 ('pow2'): s = log2 b, s' = round(s) (the paper writes the rounding operation as in eq. 1 and
    says "rounded to the nearest power-of-two"), b' = 2^s', at least 2 and at most 32: the boundary between
    4 and 8 bits is 2^2.5 = 5.66. 'pow2_up': the next power of two, 2^ceil(log2 b) (footnote 2's DQ-restrict,
    "upper rounded"). 'integer': the next integer."""
    if not math.isfinite(b):
        raise UserError(f"a learned bit width is {b} (training diverged); lower the learning rate of the bit "
                        "widths or the BOPs weight beta")
    if mode in ("pow2", "pow2_up"):
        s = math.log2(max(b, 1.0))
        s = math.floor(s + 0.5) if mode == "pow2" else math.ceil(s - 1e-9)
        return int(min(32, max(2, 2 ** s)))
    if mode == "integer":
        return int(min(32, max(2, math.ceil(b - 1e-6))))
    raise UserError(f"method.restrict: {mode!r} has no bit rounding; accepted: integer, pow2, pow2_up")


def levels(bits: int, signed: bool) -> int:
    """Largest integer level of a grid of `bits` bits: 2^(b-1) - 1 (symmetric narrow) or 2^b - 1 (unsigned)."""
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


def bits_for_level(top: int, signed: bool) -> int:
    """Bits a grid needs to hold the integers 0..top (unsigned) or -top..top (signed, narrow range)."""
    mag = max(int(math.ceil(math.log2(top + 1))), 1) if top > 0 else 1
    return mag + 1 if signed else mag


def pow2_ste(d: torch.Tensor) -> torch.Tensor:
    """The step rounded up to a power of two (so requantization is a shift), gradient straight through."""
    return d + (torch.exp2(torch.ceil(torch.log2(d))) - d).detach()


class DQQuant(nn.Module):
    """One per-tensor DQ quantizer (weights: signed with learnable t; activations: unsigned, t = 1).

    `restrict`: 'none' (eq. 2 with the learned d), 'integer' or 'pow2' (Alg. 2). `fixed_bits` pins b' to a
    fixed width (the fixed 8/8, 4/4, 2/2 baselines); `pow2_scale` rounds the forward step up to 2^k.
    `enabled = False` passes weights through unchanged and activations through a ReLU (the float
    pre-training phase: the float layer of eq. 9's f_l ends in its nonlinearity)."""

    def __init__(self, signed: bool, init_bits: int, q_m: float, q_s: float, restrict: str = "none",
                 fixed_bits: int | None = None, learn_t: bool = True, pow2_scale: bool = False):
        super().__init__()
        if restrict not in RESTRICT_CHOICES:
            raise UserError(f"method.restrict: {restrict!r}; accepted: {', '.join(RESTRICT_CHOICES)}")
        if not q_m > q_s >= 0:
            raise UserError(f"method: DQ needs 0 <= q_s < q_m (got q_s={q_s}, q_m={q_m})")
        self.signed, self.q_s, self.restrict = signed, float(q_s), restrict
        self.fixed_bits, self.pow2_scale = fixed_bits, pow2_scale
        bits = fixed_bits or init_bits
        self.q_m = nn.Parameter(torch.tensor(float(q_m)))
        self.d = nn.Parameter(torch.tensor((q_m - q_s) / levels(bits, signed)))
        self.t = nn.Parameter(torch.tensor(1.0), requires_grad=signed and learn_t and fixed_bits is None)
        self.enabled = True

    def _t(self) -> torch.Tensor:
        return self.t.clamp(0.25, 4.0) if self.signed else self.t.detach().clamp(1.0, 1.0)

    def _d(self) -> torch.Tensor:
        return self.d.clamp_min(1e-8)

    def _range(self) -> torch.Tensor:
        return (self.q_m - self.q_s).clamp_min(1e-12) ** self._t()

    def continuous_bits(self) -> torch.Tensor:
        """Eq. 3 or eq. 4 on the learned parameters (differentiable above MIN_BITS, constant at or below)."""
        if self.signed:
            b = weight_bits_eq3(self.q_m, self._d(), self._t(), self.q_s)
        else:
            b = act_bits_eq4(self.q_m, self._d(), self.q_s)
        return torch.where(b.detach() > MIN_BITS, b, b.detach())

    @torch.no_grad()
    def project_(self) -> None:
        """Back into the feasible set after an optimizer step: levels(MIN_BITS) <= (q_m - q_s)^t / d <=
        levels(MAX_BITS), so q_m > q_s always; q_m is raised at the bottom, d at the top."""
        t, d = float(self._t()), float(self._d())
        low, high = levels(MIN_BITS, self.signed), levels(MAX_BITS, self.signed)
        q_m_low = self.q_s + (low * d) ** (1.0 / t)
        if not float(self.q_m) >= q_m_low:
            self.q_m.fill_(q_m_low)
        top = float(self._range()) / d
        if top > high:
            self.d.fill_(float(self._range()) / high)

    def target_bits(self) -> int | None:
        """b' of Alg. 2 (or the fixed width); None when the forward uses the learned step as is."""
        if self.fixed_bits is not None:
            return self.fixed_bits
        if self.restrict == "none":
            return None
        return restrict_bits(float(self.continuous_bits().detach()), self.restrict)

    def step(self) -> torch.Tensor:
        """The step of the forward pass: d, or d' of Alg. 2 carrying d's gradient."""
        d = self._d()
        b = self.target_bits()
        if b is not None:
            d_adj = self._range().detach() / levels(b, self.signed)
            d = d + (d_adj - d).detach()
        return pow2_ste(d) if self.pow2_scale else d

    def bits(self) -> torch.Tensor:
        """Bit width for the BOPs loss: b' where the forward is restricted (gradient of eq. 3/4), else eq. 3/4."""
        if self.fixed_bits is not None:  # a fixed width is no parameter: the BOPs term has no gradient here
            return self.q_m.new_tensor(float(self.fixed_bits))
        b = self.continuous_bits()
        tb = self.target_bits()
        return b if tb is None else b + (tb - b).detach()

    def top_level(self) -> int:
        """Largest integer the forward pass produces: round((q_m - q_s)^t / step)."""
        with torch.no_grad():
            return int(torch.round(self._range() / self.step()))

    def hw_bits(self) -> int:
        """Bits of the integer grid the forward pass actually uses (the datatype in hardware)."""
        tb = self.target_bits()
        return tb if tb is not None else bits_for_level(self.top_level(), self.signed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:  # float phases: an activation quantizer is the float network's ReLU
            return x if self.signed else x.clamp_min(0.0)
        if not self.signed:
            x = x.clamp_min(0.0)  # the unsigned grid: negative inputs map to 0 (ReLU)
        return DQFunction.apply(x, self.step(), self.q_m, self._t(), self.q_s)

    def integers(self, x: torch.Tensor) -> torch.Tensor:
        """round(x~ / step): the integers the hardware holds for x."""
        with torch.no_grad():
            return torch.round(self.forward(x) / self.step())
