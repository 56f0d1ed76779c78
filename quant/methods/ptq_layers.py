"""PTQ building blocks: L2-normalised weights (eq. 19-21), the refined ternary STE (eq. 22-25), LSQ activations.

Normalisation is per output channel (a row of a linear layer, a filter of a convolution: the "layer with a
single output" of eq. 4-19) for hidden layers, whose batch norm absorbs any per-channel scale, and per
tensor with a learnable positive gain for the classifier, whose outputs go straight to the arg-max: there a
per-tensor scale is the only one the hardware can ignore.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-12


def _dims(w: torch.Tensor, per_tensor: bool) -> tuple[int, ...]:
    return tuple(range(w.dim())) if per_tensor else tuple(range(1, w.dim()))


def _norm(w: torch.Tensor, per_tensor: bool) -> torch.Tensor:
    return w.pow(2).sum(dim=_dims(w, per_tensor), keepdim=True).sqrt()


def m_w_times(w: torch.Tensor, g: torch.Tensor, per_tensor: bool) -> torch.Tensor:
    """M_w g of eq. 21 for each normalised vector of w: (g - w (w.g)/||w||^2) / ||w||; 0 where w = 0."""
    n = _norm(w, per_tensor)
    dims = _dims(w, per_tensor)
    proj = (w * g).sum(dim=dims, keepdim=True) / n.clamp_min(EPS).pow(2)
    return torch.where(n > EPS, (g - w * proj) / n.clamp_min(EPS), torch.zeros_like(g))


class L2Normalize(torch.autograd.Function):
    """Forward w / ||w||; backward the gradient scaled by M_w (eq. 20-21)."""

    @staticmethod
    def forward(ctx, w, per_tensor: bool):
        ctx.save_for_backward(w)
        ctx.per_tensor = per_tensor
        return w / _norm(w, per_tensor).clamp_min(EPS)

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        return m_w_times(w, g, ctx.per_tensor), None


def ternarize(w: torch.Tensor, delta) -> torch.Tensor:
    """Quant(w, delta) of eq. 1: +1 above delta, -1 below -delta, 0 in between (delta = 0: the resetting step)."""
    return torch.sign(w) * (w.abs() > delta).to(w.dtype)


class RefinedTernarySTE(torch.autograd.Function):
    """Forward: Quant(w, delta) / ||Quant(w, delta)|| (eq. 22-23). Backward: dE/dw = M_w dE/dw_hat (eq. 24,
    the STE passes through Quant, M_w taken at the latent w as the paper writes it) and dE/d(delta) = the sum
    of dE/dw_i over the weights whose ternary value is non-zero (eq. 25)."""

    @staticmethod
    def forward(ctx, w, delta, per_tensor: bool):
        q = ternarize(w, delta)
        ctx.save_for_backward(w, q)
        ctx.per_tensor = per_tensor
        return q / _norm(q, per_tensor).clamp_min(EPS)

    @staticmethod
    def backward(ctx, g):
        w, q = ctx.saved_tensors
        gw = m_w_times(w, g, ctx.per_tensor)
        gdelta = (gw * (q != 0)).sum().reshape(())
        return gw, gdelta, None


class PTQWeight(nn.Module):
    """The latent weight of one layer and how the forward pass sees it, by stage.

    stage -1: plain w (the float pre-training that gives PTQ its pretrained model); stage 0: w/||w||
    (normalize) or w; stage 1: ternary, either with the learned threshold delta and the
    refined STE, or (threshold 'quantile') TWN-like: delta at the sparsity quantile of |w|, scale alpha =
    mean |w| of the kept weights, identity STE. `mask` holds the magnitude pruning; pruned weights stay 0.
    """

    def __init__(self, shape, per_tensor: bool, normalize: bool, threshold: str, sparsity: float,
                 gain: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(shape))
        fan_in = math.prod(shape[1:])
        nn.init.uniform_(self.weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        self.register_buffer("mask", torch.ones(shape))
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))
        self.delta = nn.Parameter(torch.zeros(()))
        self.per_tensor, self.normalize, self.threshold, self.sparsity = per_tensor, normalize, threshold, sparsity
        if per_tensor and normalize and gain:
            self.log_gain = nn.Parameter(torch.tensor(0.5 * math.log(shape[0])))

    def gain(self) -> torch.Tensor:
        return self.log_gain.exp() if hasattr(self, "log_gain") else torch.ones(())

    def quantile_delta(self) -> torch.Tensor:
        return torch.quantile(self.weight.detach().abs().flatten(), self.sparsity)

    def forward(self) -> torch.Tensor:
        w = self.weight * self.mask
        if int(self.stage) == -1:
            return w
        if int(self.stage) == 0:
            return L2Normalize.apply(w, self.per_tensor) * self.gain() if self.normalize else w
        if self.threshold == "quantile":
            q = ternarize(w.detach(), self.quantile_delta())
            alpha = (w.detach().abs() * q.abs()).sum() / q.abs().sum().clamp_min(1)
            return alpha * (w + (q - w).detach())
        return RefinedTernarySTE.apply(w, self.delta, self.per_tensor) * self.gain()

    def codes(self) -> torch.Tensor:
        """The ternary values {-1, 0, 1} the stage-1 forward uses."""
        w = self.weight.detach() * self.mask
        delta = self.quantile_delta() if self.threshold == "quantile" else self.delta.detach()
        return ternarize(w, delta)

    def row_scale(self) -> torch.Tensor:
        """Per-output-channel factor s with forward weight = s * codes (stage 1), shape [rows]."""
        q = self.codes()
        if self.threshold == "quantile":
            w = self.weight.detach() * self.mask
            alpha = (w.abs() * q.abs()).sum() / q.abs().sum().clamp_min(1)
            return alpha.expand(q.shape[0]).clone()
        n = _norm(q, self.per_tensor).flatten()
        s = torch.where(n > EPS, 1 / n.clamp_min(EPS), torch.ones_like(n)) * self.gain().detach()
        return s.expand(q.shape[0]).clone()


class PTQLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, **kw):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.w = PTQWeight((out_features, in_features), **kw)

    @property
    def weight(self) -> torch.Tensor:
        return self.w.weight

    def forward(self, x):
        return F.linear(x, self.w())


class PTQConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, **kw):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.padding = padding  # zero padding, as the config's conv (LeNet-5's first layer pads 2)
        self.w = PTQWeight((out_channels, in_channels, kernel_size, kernel_size), **kw)

    @property
    def weight(self) -> torch.Tensor:
        return self.w.weight

    def forward(self, x):
        return F.conv2d(x, self.w(), padding=self.padding)


def _grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    return (x - x * scale).detach() + x * scale


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return (torch.round(x) - x).detach() + x


class LSQAct(nn.Module):
    """Learned step size activation quantizer (LSQ, eq. 26): y = clamp(round(x/s), lo, hi) * s.

    Unsigned (after ReLU), levels 'eq26' (the paper's eq. 26): 0 .. 2^(k-1) - 1, so k = 2 gives {0, 1};
    levels 'lsq' (LSQ's own unsigned grid): 0 .. 2^k - 1. Signed: -2^(k-1) .. 2^(k-1) - 1. Until `enabled`,
    it is a plain ReLU (unsigned) or the identity (signed), which is how the float phases train.
    """

    def __init__(self, bits: int, signed: bool, levels: str = "eq26"):
        super().__init__()
        self.bits, self.signed = bits, signed
        self.lo = -(1 << (bits - 1)) if signed else 0
        if signed or levels == "eq26":
            self.hi = (1 << (bits - 1)) - 1
        else:
            self.hi = (1 << bits) - 1
        # the unsigned integer width the levels need in hardware (eq. 26: k - 1 bits)
        self.hw_bits = bits if signed else max(1, int(self.hi).bit_length())
        self.step = nn.Parameter(torch.ones(()))
        self.register_buffer("enabled", torch.zeros((), dtype=torch.bool))

    def init_step(self, x: torch.Tensor) -> None:
        """LSQ's initial step 2 E|x| / sqrt(Q_p) from a calibration batch, and quantization switched on."""
        with torch.no_grad():
            self.step.fill_(max(2 * x.abs().mean().item() / math.sqrt(self.hi), 1e-4))
            self.enabled.fill_(True)

    def forward(self, x):
        if not bool(self.enabled):
            return x if self.signed else F.relu(x)
        s = _grad_scale(self.step, 1.0 / math.sqrt(x[0].numel() * self.hi))
        return _round_ste(torch.clamp(x / s, self.lo, self.hi)) * s
