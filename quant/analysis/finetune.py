"""Full-model comparison at equal size (section 5, Table 1): prune or quantize, then fine-tune the same.

Pruning: per-tensor magnitude pruning of every weight (rank >= 2) to ratio 1 - b/16 with a fixed mask.
Quantization: symmetric uniform b-bit fake quantization of the same weights with a straight-through
estimator; the per-tensor scale is MSE-optimal for the current weights and re-estimated every epoch.
Both run as torch parametrizations, so the fine-tuned model's weights are exactly the compressed ones.
"""
from __future__ import annotations

import copy
from typing import Callable, Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from quant.analysis.grids import DEFAULT_GRID, best_scale, check_bits, int_range, prune_ratio


class FakeQuant(nn.Module):
    """Round-to-nearest on scale * {lo..hi}; the backward pass is the identity (STE)."""

    def __init__(self, bits: int, grid: str = DEFAULT_GRID):
        super().__init__()
        self.bits, self.grid = bits, grid
        self.lo, self.hi = int_range(bits, grid)
        self.register_buffer("scale", torch.tensor(1.0))

    def refresh(self, latent: torch.Tensor) -> None:
        self.scale.fill_(best_scale(latent.detach().cpu().double().numpy(), self.bits, self.grid))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        q = torch.clamp(torch.round(w / self.scale), self.lo, self.hi) * self.scale
        return q.detach() + (w - w.detach())  # exactly q forward (w - w is 0.0), identity backward


class FixedMask(nn.Module):
    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def weight_modules(model: nn.Module) -> list[nn.Module]:
    """Modules owning a floating-point `weight` parameter of rank >= 2."""
    return [m for m in model.modules()
            if isinstance(getattr(m, "weight", None), nn.Parameter) and m.weight.dim() >= 2
            and m.weight.is_floating_point()]


def magnitude_mask(w: torch.Tensor, ratio: float) -> torch.Tensor:
    k = int(round(ratio * w.numel()))
    mask = torch.ones_like(w)
    if k > 0:
        mask.view(-1)[torch.topk(w.detach().abs().view(-1), k, largest=False).indices] = 0.0
    return mask


def pruned_copy(model: nn.Module, ratio: float) -> nn.Module:
    out = copy.deepcopy(model)
    for m in weight_modules(out):
        parametrize.register_parametrization(m, "weight", FixedMask(magnitude_mask(m.weight, ratio)))
    return out


def quantized_copy(model: nn.Module, bits: int, grid: str = DEFAULT_GRID) -> nn.Module:
    out = copy.deepcopy(model)
    for m in weight_modules(out):
        fq = FakeQuant(bits, grid)
        fq.refresh(m.weight)
        parametrize.register_parametrization(m, "weight", fq)
    return out


def refresh_scales(model: nn.Module) -> None:
    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            for p in m.parametrizations.weight:
                if isinstance(p, FakeQuant):
                    p.refresh(m.parametrizations.weight.original)


def train(model: nn.Module, batches: Iterable, epochs: int, lr: float = 1e-2,
          after_epoch: Callable[[nn.Module], None] | None = None) -> nn.Module:
    """Adam on cross-entropy over (inputs, labels) batches; after_epoch(model) runs after each epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for xb, yb in batches:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
        if after_epoch is not None:
            after_epoch(model)
    return model


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable) -> float:
    model.eval()
    correct = total = 0
    for xb, yb in batches:
        correct += int((model(xb).argmax(dim=1) == yb).sum())
        total += int(yb.numel())
    return correct / max(total, 1)


@torch.no_grad()
def compressed_stats(model: nn.Module) -> dict:
    """What the fine-tuned weights really are: overall sparsity and the most distinct values in a tensor."""
    zeros = total = levels = 0
    owners = [m for m in model.modules() if parametrize.is_parametrized(m, "weight")] or weight_modules(model)
    for m in owners:
        w = m.weight.detach()
        zeros += int((w == 0).sum())
        total += w.numel()
        levels = max(levels, int(torch.unique(w).numel()))
    return {"sparsity": zeros / max(total, 1), "max_distinct_values": levels}


def compare(model: nn.Module, train_batches: Iterable, test_batches: Iterable, bits: int, epochs: int,
            lr: float = 1e-3, grid: str = DEFAULT_GRID, seed: int = 0) -> dict:
    """Accuracy of the model pruned to 1 - b/16 and quantized to b bits, before and after equal fine-tuning."""
    check_bits(bits)
    ratio = prune_ratio(bits)
    row = {"bits": bits, "prune_ratio": ratio, "epochs": epochs, "grid": grid,
           "baseline_accuracy": accuracy(model, test_batches)}
    torch.manual_seed(seed)
    pruned = pruned_copy(model, ratio)
    row["prune_accuracy_before"] = accuracy(pruned, test_batches)
    train(pruned, train_batches, epochs, lr)
    row["prune_accuracy"] = accuracy(pruned, test_batches)
    row["prune_stats"] = compressed_stats(pruned)
    torch.manual_seed(seed)
    quant = quantized_copy(model, bits, grid)
    row["quant_accuracy_before"] = accuracy(quant, test_batches)
    train(quant, train_batches, epochs, lr, after_epoch=refresh_scales)
    row["quant_accuracy"] = accuracy(quant, test_batches)
    row["quant_stats"] = compressed_stats(quant)
    row["winner"] = ("quantization" if row["quant_accuracy"] > row["prune_accuracy"]
                     else "pruning" if row["prune_accuracy"] > row["quant_accuracy"] else "tie")
    return row


def compare_all(model: nn.Module, train_batches, test_batches, bits: Iterable[int], epochs: int,
                lr: float = 1e-3, grid: str = DEFAULT_GRID, advance: Callable[[], None] | None = None) -> list[dict]:
    rows = []
    for b in bits:
        rows.append(compare(model, train_batches, test_batches, b, epochs, lr, grid))
        if advance is not None:
            advance()
    return rows

