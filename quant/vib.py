"""VIBNet channel gates (paper 001, eq. 9-13, 18-19): structured pruning learned by gradient descent.

Each channel output is multiplied by a Gaussian gate z = mu + eps * sigma (eq. 9-10) while training and by
its mean mu at inference. The upper bound of the VIB loss (eq. 13) adds gamma * sum log(1 + mu^2 / sigma^2),
which drives alpha = mu^2 / sigma^2 down for channels the task does not need; a channel with
alpha < alpha_th is pruned (eq. 18) and contributes exactly zero. For the BOPs term of the loss the count of
pruned channels is relaxed by a sigmoid with temperature tau (eq. 19). Eq. 19 as printed,
sigmoid((alpha - alpha_th) / tau), counts the channels that are kept; we use the pruned-channel form
sigmoid((log alpha_th - log alpha) / tau), consistent with eq. 18, on log alpha because alpha spans many
orders of magnitude (a linear-alpha sigmoid is flat everywhere but within tau of the threshold).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class VIBGate(nn.Module):
    """Multiplicative Gaussian gates for the `channels` outputs of one layer (dimension 1 of the input)."""

    def __init__(self, channels: int, alpha_th: float = 1e-3, init_mu: float = 1.0, init_log_sigma2: float = -6.0):
        super().__init__()
        self.alpha_th = float(alpha_th)
        self.mu = nn.Parameter(torch.full((channels,), float(init_mu)))
        self.log_sigma2 = nn.Parameter(torch.full((channels,), float(init_log_sigma2)))
        self.enabled = True   # False: z = 1 (no pruning at all)
        self.frozen = False   # True: z = mu * mask even while training (second stage of the two-stage scheme)

    @property
    def channels(self) -> int:
        return self.mu.numel()

    def log_alpha(self) -> torch.Tensor:
        return torch.log(self.mu ** 2 + 1e-30) - self.log_sigma2

    def alpha(self) -> torch.Tensor:
        """alpha = mu^2 / sigma^2, the signal-to-noise ratio of each gate."""
        return torch.exp(self.log_alpha())

    def keep_mask(self) -> torch.Tensor:
        """Eq. 18's complement: 1 for channels with alpha >= alpha_th, 0 for pruned ones."""
        return (self.log_alpha() >= math.log(self.alpha_th)).to(self.mu.dtype).detach()

    def pruned_ratio(self) -> float:
        """Eq. 18: the fraction of channels with alpha < alpha_th."""
        return float(1.0 - self.keep_mask().mean()) if self.enabled else 0.0

    def soft_pruned_ratio(self, tau: float) -> torch.Tensor:
        """Eq. 19 (relaxed eq. 18), differentiable in mu and sigma."""
        if not self.enabled:
            return self.mu.new_zeros(())
        return torch.sigmoid((math.log(self.alpha_th) - self.log_alpha()) / tau).mean()

    def kl(self) -> torch.Tensor:
        """The gate term of eq. 13: sum_i log(1 + mu_i^2 / sigma_i^2)."""
        if not self.enabled or self.frozen:
            return self.mu.new_zeros(())
        return F.softplus(self.log_alpha()).sum()  # log(1 + e^log_alpha), stable for large alpha

    def gate_values(self) -> torch.Tensor:
        """The deterministic gate of inference: mu on kept channels, 0 on pruned ones."""
        return self.mu * self.keep_mask() if self.enabled else torch.ones_like(self.mu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training and not self.frozen:
            eps = torch.randn(x.shape[0], self.channels, *([1] * (x.dim() - 2)), device=x.device, dtype=x.dtype)
            sigma = torch.exp(0.5 * self.log_sigma2).view(shape)
            z = (self.mu.view(shape) + eps * sigma) * self.keep_mask().view(shape)
        else:
            z = self.gate_values().view(shape)
        return x * z


def vib_loss(ce: torch.Tensor, gates, gamma: float) -> torch.Tensor:
    """Eq. 13: cross entropy plus gamma times the sum of the gates' log(1 + alpha)."""
    return ce + gamma * sum((g.kl() for g in gates), ce.new_zeros(()))
