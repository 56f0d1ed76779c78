"""The network ALQ (paper 003) trains: weight layers whose weights are sums of binary bases per group, and
multi-bit activations x_ref + D gamma.

Hidden layer: ALQ linear / conv with a float bias -> ALQ activation (-> max-pool); last layer: ALQ linear with
a float bias, its outputs unquantized (Sec. 4: the last layer's output is not quantized). `batch_norm: true`
puts a BatchNorm (and no bias) before each activation instead. It is off by default: batch norm makes the
loss blind to the scale of a channel's weights, so eq. 13 (which prices removing alpha_i by alpha_i^2) rates
the bases of channels whose alpha happen to be small as free and empties channels (the 64-16-16-10 digits
net of the tests at 0.7 bits: 47 % with batch norm, 5 of 16 channels left in layer 2; 74 % without). Bias and
thresholds fold into the hardware's
integer thresholds the same way batch norm would.

Before `init()` a layer is a plain float layer (pre-training); after it, its weights exist only as B, alpha and
the basis mask, and every forward builds w_hat = B alpha (eq. 2) as a detached leaf whose gradient dl/dw_hat
the optimiser steps read (no straight-through estimator for weights, as the paper). The float `weight`
parameter is overwritten with w_hat after every phase, so no full-precision weight is kept.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import UserError
from quant.methods import alq_bases as ab


class ALQWeight(nn.Module):
    """A weight tensor as binary bases per group, with the AMSGrad moments of both domains as buffers (so a
    checkpoint of the state dict resumes an optimiser exactly)."""

    def __init__(self, shape: tuple[int, ...], structure: str, max_bits: int, pow2: bool, where: str,
                 exp_window: int | None = None, mantissa_bits: int = 1):
        super().__init__()
        self.exp_window, self.mantissa_bits = exp_window, mantissa_bits
        self.shape = tuple(shape)
        self.kind, self.k = ab.parse_structure(structure, self.shape, where)
        self.structure = structure
        self.groups, self.n = ab.group_shape(self.kind, self.k, self.shape)
        self.max_bits, self.pow2 = max_bits, pow2
        self.weight = nn.Parameter(torch.empty(self.shape))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        g, n, i = self.groups, self.n, max_bits
        self.register_buffer("B", torch.ones(g, n, i))
        self.register_buffer("alpha", torch.zeros(g, i))
        self.register_buffer("mask", torch.zeros(g, i))
        self.register_buffer("quantized", torch.zeros((), dtype=torch.bool))
        for dom, shp in (("w", (g, n)), ("a", (g, i))):
            for name in ("m", "v", "vmax"):
                self.register_buffer(f"{dom}_{name}", torch.zeros(shp))
            self.register_buffer(f"{dom}_step", torch.zeros((), dtype=torch.long))
        self._w = None

    # -- state
    def moments(self, dom: str) -> dict:
        return {k: getattr(self, f"{dom}_{k}") for k in ("m", "v", "vmax", "step")}

    def coords(self) -> torch.Tensor:
        """The coordinates the forward uses: alpha of the live bases (power-of-two rounded with pow2). With
        `exp_window` W (pow2 only) a live alpha below 2^(e_max - W), e_max the layer's largest exponent, is
        raised to it, so the layer's integer weights need at most W + log2(I_max) + 2 bits. `mantissa_bits` m > 1
        rounds to m 2^e with an m-bit mantissa instead (m powers of two at most, each a shifted term)."""
        a = self.alpha * self.mask
        if not self.pow2:
            return a
        a = ab.round_mantissa(a, self.mantissa_bits)
        if self.exp_window is not None and bool((self.mask > 0).any()):
            top = float(a.max())
            if top > 0:
                floor = top * 2.0 ** -self.exp_window
                a = torch.where(self.mask > 0, a.clamp_min(floor), torch.zeros_like(a))
        return a

    def w_hat_groups(self) -> torch.Tensor:
        return ab.reconstruct(self.B, self.coords(), self.mask)

    def w_hat(self) -> torch.Tensor:
        return ab.from_groups(self.w_hat_groups(), self.kind, self.k, self.shape)

    def forward(self) -> torch.Tensor:
        if not bool(self.quantized):
            return self.weight
        w = self.w_hat().detach().requires_grad_(torch.is_grad_enabled())
        self._w = w
        return w

    @torch.no_grad()
    def sync_weight(self) -> None:
        if bool(self.quantized):
            self.weight.copy_(self.w_hat())

    # -- Alg. 1
    @torch.no_grad()
    def init(self, sigma: float) -> None:
        b, alpha, mask = ab.sketch(ab.to_groups(self.weight, self.kind, self.k), self.max_bits, sigma)
        self.B.copy_(b)
        self.alpha.copy_(alpha)
        self.mask.copy_(mask)
        self.quantized.fill_(True)
        for t in self.moments("w").values():
            t.zero_()
        for t in self.moments("a").values():
            t.zero_()
        self.sync_weight()
        self.weight.requires_grad_(False)

    # -- gradients
    def grad_groups(self) -> torch.Tensor:
        if self._w is None or self._w.grad is None:
            raise RuntimeError("ALQ step before a backward pass through this layer")
        return ab.to_groups(self._w.grad, self.kind, self.k)

    def grad_alpha(self) -> torch.Tensor:
        """Eq. 14: dl/dalpha_g = B_g^T dl/dw_hat_g (live bases only). With pow2 this is the gradient with
        respect to the rounded coordinates, applied to alpha unchanged."""
        return torch.einsum("gni,gn->gi", self.B, self.grad_groups()) * self.mask

    # -- Alg. 3 with speedup: new bases (eq. 17-20), then alpha by eq. 23
    @torch.no_grad()
    def bases_step(self, lr: float, betas, eps: float) -> None:
        g, h = ab.amsgrad_moments(self.grad_groups(), self.moments("w"), lr, betas, eps)
        w_hat = self.w_hat_groups()
        b_new = ab.nearest_codes(w_hat - g / h, self.coords())
        b_new = torch.where(self.mask[:, None, :] > 0, b_new, torch.ones_like(b_new))
        alpha = ab.refit_alpha(b_new, h, g, w_hat, self.mask)
        b_new, alpha = ab.make_positive(b_new, alpha)
        self.B.copy_(b_new)
        self.alpha.copy_(alpha)

    # -- Alg. 4: AMSGrad on alpha (eq. 21) with an L2 term, negative alpha flipped into its basis
    @torch.no_grad()
    def coords_step(self, lr: float, l2: float, betas, eps: float) -> None:
        grad = self.grad_alpha() + l2 * self.alpha * self.mask
        g, h = ab.amsgrad_moments(grad, self.moments("a"), lr, betas, eps)
        alpha = (self.alpha - g / h) * self.mask
        b, alpha = ab.make_positive(self.B, alpha)
        self.B.copy_(b)
        self.alpha.copy_(alpha)

    # -- Alg. 2: moments in the alpha domain and eq. 13
    @torch.no_grad()
    def prune_scores(self, lr: float, betas, eps: float) -> torch.Tensor:
        g, h = ab.amsgrad_moments(self.grad_alpha(), self.moments("a"), lr, betas, eps)
        return ab.loss_increment(g, h, self.coords())

    @torch.no_grad()
    def remove(self, removed: torch.Tensor) -> None:
        self.mask.mul_(1 - removed)
        self.alpha.mul_(self.mask)
        for t in ("m", "v", "vmax"):
            getattr(self, f"a_{t}").mul_(self.mask)

    # -- counting
    def live_alphas(self) -> int:
        return int(self.mask.sum()) if bool(self.quantized) else self.groups * self.max_bits

    def basis_bits(self) -> int:
        """Bits of the binary bases: n per live alpha."""
        return self.n * self.live_alphas()

    def table_bits(self) -> int:
        """The per-group bit-width table: I_g in ceil(log2(I_max + 1)) bits for each of the G groups."""
        return self.groups * math.ceil(math.log2(self.max_bits + 1))

    def group_bits(self) -> torch.Tensor:
        return self.mask.sum(1)

    def live_outputs(self) -> int:
        """Output channels with at least one live basis in one of their groups (the others output zero)."""
        per = self.groups // self.shape[0]
        return int((self.mask.view(self.shape[0], per * self.max_bits).sum(1) > 0).sum())


class ALQLinear(nn.Module):
    def __init__(self, c_in: int, c_out: int, bias: bool, structure: str, max_bits: int, pow2: bool, where: str,
                 exp_window: int | None = None, mantissa_bits: int = 1):
        super().__init__()
        self.w = ALQWeight((c_out, c_in), structure, max_bits, pow2, where, exp_window, mantissa_bits)
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        return self.w.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w(), self.bias)


class ALQConv2d(nn.Module):
    """A convolution, stride 1, `padding` zeros on each side, as quant.layers builds them."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bias: bool, structure: str, max_bits: int, pow2: bool,
                 where: str, exp_window: int | None = None, mantissa_bits: int = 1, padding: int = 0):
        super().__init__()
        self.padding = padding
        self.w = ALQWeight((c_out, c_in, kernel, kernel), structure, max_bits, pow2, where, exp_window,
                           mantissa_bits)
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        return self.w.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.w(), self.bias, padding=self.padding)


class ALQAct(nn.Module):
    """Sec. 4: a layer-wise step activation x_hat = x_ref + D gamma, D in {-1, +1}^(N x I_x), gamma >= 0.

    Each value takes the nearest of the 2^I_x levels (binary search over the sorted levels). The paper fits the
    output range of ReLU with x_ref > 0; here the input of the step is ReLU(x), so everything below the lowest
    level maps to it. In training mode x_ref and gamma follow a running average (`momentum`) of the least-
    squares fit of [x_ref, gamma] to the batch under its current codes D (the statistical reconstruction error);
    they start uniform over [0, the 99th percentile] of the first batch. The step has no gradient, so the
    backward pass is the straight-through one of PACT (which Sec. 4 follows): 1 where 0 < x <= the top level,
    0 elsewhere. The paper's no-approximation claim is about weights; activations need this one. Disabled
    (pre-training) it is a ReLU.

    `uniform` (not in the paper; method.act_levels: uniform) ties the bases to gamma_k = g 2^k and x_ref to
    sum_k gamma_k, so the levels are 0, 2g, 4g, ..., (2^I_x - 1) 2g: the activation is an unsigned I_x-bit
    integer times the step 2g, and D's bit k is bit k of that integer. The level is taken as Brevitas'
    QuantReLU takes it, clamp(round_half_even(x / step), 0, 2^I_x - 1), and the running average fits the one
    step; with pow2 the step is a power of two. That is what lets hardware compute it with thresholds."""

    def __init__(self, bits: int, momentum: float, pow2: bool, uniform: bool = False):
        super().__init__()
        self.bits, self.momentum, self.pow2, self.uniform = bits, momentum, pow2, uniform
        self.register_buffer("x_ref", torch.zeros(()))
        self.register_buffer("gamma", torch.zeros(bits))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))
        self.register_buffer("enabled", torch.zeros((), dtype=torch.bool))
        self.register_buffer("codes", ab.all_codes(bits))

    def step(self) -> torch.Tensor:
        """Uniform levels: the distance between two levels (2 g, a power of two with pow2)."""
        g = ab.pow2(self.gamma[:1]) if self.pow2 else self.gamma[:1]
        return 2 * g[0]

    def coords(self) -> torch.Tensor:
        if self.uniform:
            return self.step() / 2 * 2.0 ** torch.arange(self.bits, dtype=self.gamma.dtype)
        return ab.pow2(self.gamma) if self.pow2 else self.gamma

    def reference(self) -> torch.Tensor:
        return self.coords().sum() if self.uniform else self.x_ref

    def levels(self):
        """(sorted level values [2^I], their codes [2^I, I])."""
        vals = self.reference() + self.codes @ self.coords()
        vals, order = vals.sort()
        return vals, self.codes[order]

    def encode(self, r: torch.Tensor):
        vals, codes = self.levels()
        if self.uniform:
            step = self.step()
            idx = torch.clamp(torch.round(r / step), 0, (1 << self.bits) - 1)
            return idx * step, codes[idx.long()]
        idx = torch.bucketize(r, (vals[1:] + vals[:-1]) / 2)
        return vals[idx], codes[idx]

    @torch.no_grad()
    def _start(self, r: torch.Tensor) -> None:
        flat = r.flatten()
        sample = flat[torch.linspace(0, len(flat) - 1, min(len(flat), 100_000)).long()]
        top = max(float(torch.quantile(sample, 0.99)), 1e-3)
        if self.uniform:
            self.gamma.fill_(top / ((1 << self.bits) - 1) / 2)
            self.x_ref.copy_(self.reference())
            self.ready.fill_(True)
            return
        steps = 2.0 ** torch.arange(self.bits - 1, -1, -1, dtype=torch.float32)
        self.gamma.copy_(top / 2 * steps / steps.sum())
        self.x_ref.fill_(top / 2)
        self.ready.fill_(True)

    @torch.no_grad()
    def _update(self, r: torch.Tensor, d: torch.Tensor) -> None:
        mom = self.momentum
        if self.uniform:
            # r ~ step * q with q = sum_k 2^k (d_k + 1) / 2, the level index; least squares in the one step
            q = ((d.reshape(-1, self.bits) + 1) / 2) @ (2.0 ** torch.arange(self.bits, dtype=r.dtype))
            qq = float((q * q).sum())
            if qq > 0:
                g = float((q * r.reshape(-1)).sum()) / qq / 2
                self.gamma.mul_(mom).add_((1 - mom) * g)
            self.x_ref.copy_(self.reference())
            return
        a = torch.cat([torch.ones(r.numel(), 1), d.reshape(-1, self.bits)], 1)
        gram = a.T @ a + 1e-6 * r.numel() * torch.eye(self.bits + 1)
        theta = torch.linalg.solve(gram, a.T @ r.reshape(-1))
        x_ref, gamma = theta[0].clamp_min(0.0), theta[1:].abs()
        self.x_ref.mul_(mom).add_((1 - mom) * x_ref)
        self.gamma.mul_(mom).add_((1 - mom) * gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.relu(x)
        if not bool(self.enabled):
            return r
        if self.training and not bool(self.ready):
            self._start(r.detach())
        xq, d = self.encode(r.detach())
        if self.training:
            self._update(r.detach(), d)
        inside = (x > 0) & (x <= self.levels()[0][-1])
        return xq + (r - r.detach()) * inside


class ALQNet(nn.Module):
    """Integer pixels (as floats) [N, C*H*W] -> float logits, from the config's layers (convs first)."""

    def __init__(self, model_cfg, image_shape, classes: int, m):
        super().__init__()
        layers = model_cfg.layers
        n = len(layers)
        if layers[-1].kind != "linear":
            raise UserError(f"model.layers.{n - 1}: the last layer must be linear (the classifier)")
        if layers[-1].features != classes:
            raise UserError(f"model.layers.{n - 1}.features: the last layer has {layers[-1].features} outputs "
                            f"but the dataset has {classes} classes")
        structures = m.structures or [("kernel" if l.kind == "conv" else "channel") for l in layers]
        if len(structures) != n:
            raise UserError(f"method.structures: {len(structures)} entries for {n} weight layers; give one "
                            "grouping a layer")
        self.image_shape = tuple(image_shape)
        self.has_conv = layers[0].kind == "conv"
        c, h, w = self.image_shape if len(self.image_shape) == 3 else (1, 1, self.image_shape[0])
        blocks: list[nn.Module] = []
        flattened = not self.has_conv
        q = dict(max_bits=m.max_bits, pow2=m.pow2, exp_window=m.exp_window, mantissa_bits=m.mantissa_bits)
        bn = m.batch_norm
        uniform = m.act_levels == "uniform"
        for i, (layer, st) in enumerate(zip(layers, structures)):
            where = f"method.structures.{i}"
            if layer.kind == "conv":
                if flattened:
                    raise UserError(f"model.layers.{i}: a conv layer after a linear layer; convs come first")
                p = layer.padding
                if layer.kernel > min(h, w) + 2 * p:
                    raise UserError(f"model.layers.{i}.kernel: {layer.kernel} is larger than the {h}x{w} input "
                                    f"with padding {p}")
                blocks += [ALQConv2d(c, layer.channels, layer.kernel, not bn, st, where=where, padding=p, **q),
                           nn.BatchNorm2d(layer.channels) if bn else nn.Identity(),
                           ALQAct(m.act_bits, m.act_momentum, m.pow2, uniform)]
                c, h, w = layer.channels, h + 2 * p - layer.kernel + 1, w + 2 * p - layer.kernel + 1
                if layer.pool > 1:
                    blocks.append(nn.MaxPool2d(layer.pool))
                    h, w = h // layer.pool, w // layer.pool
                continue
            if not flattened:
                blocks.append(nn.Flatten())
                flattened = True
            last = i == n - 1
            bias = m.classifier_bias if last else not bn
            blocks.append(ALQLinear(c * h * w, layer.features, bias, st, where=where, **q))
            if not last:
                blocks += [nn.BatchNorm1d(layer.features) if bn else nn.Identity(),
                           ALQAct(m.act_bits, m.act_momentum, m.pow2, uniform)]
            c, h, w = layer.features, 1, 1
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, *self.image_shape) if self.has_conv else x.flatten(1)
        return self.body(x)

    def quant_layers(self) -> list[nn.Module]:
        return [b for b in self.body if isinstance(b, (ALQLinear, ALQConv2d))]

    def alq_weights(self) -> list[ALQWeight]:
        return [b.w for b in self.quant_layers()]

    def acts(self) -> list[ALQAct]:
        return [b for b in self.body if isinstance(b, ALQAct)]

    def float_parameters(self) -> list[nn.Parameter]:
        """Batch norm and the last bias: trained by AMSGrad in every phase (footnote 1 of the paper)."""
        skip = {id(w.weight) for w in self.alq_weights()}
        return [p for p in self.parameters() if id(p) not in skip]
