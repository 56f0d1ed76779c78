"""The built-in workload: a small MLP on sklearn's 8x8 digits, so every command runs without user files.

The split and initialisation are seeded, so two runs give the same model and the same numbers.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from quant.analysis.finetune import train


def loaders(batch_size: int = 64, seed: int = 0, test_fraction: float = 0.25):
    """Train and test batches of (float image / 16, label) from sklearn's bundled digits."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    gen = torch.Generator().manual_seed(seed + 1)
    train_dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[train], y[train]),
                                           batch_size=batch_size, shuffle=True, generator=gen)
    test_dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[test], y[test]), batch_size=512)
    return train_dl, test_dl


def mlp(hidden: int = 64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 10))


def trained_mlp(epochs: int = 30, seed: int = 0):
    """(model, train batches, test batches) for the built-in digits workload."""
    train_dl, test_dl = loaders(seed=seed)
    model = train(mlp(seed=seed), train_dl, epochs)
    return model, train_dl, test_dl


@torch.no_grad()
def capture_inputs(model: nn.Module, batches, max_samples: int = 4096) -> dict[str, np.ndarray]:
    """Inputs of every Linear and Conv2d layer (convolutions unfolded to rows of patches), by weight name."""
    seen: dict[str, list] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            hooks.append(mod.register_forward_hook(_hook(f"{name}.weight" if name else "weight", mod, seen)))
    model.eval()
    try:
        count = 0
        for batch in batches:
            xb = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(xb)
            count += len(xb)
            if count >= max_samples:
                break
    finally:
        for h in hooks:
            h.remove()
    return {k: np.concatenate(v)[:max_samples * 64] for k, v in seen.items()}


def _hook(key: str, mod: nn.Module, seen: dict):
    def record(_mod, inp, _out):
        x = inp[0]
        x = getattr(x, "value", x)
        if isinstance(mod, nn.Conv2d):
            x = nn.functional.unfold(x, mod.kernel_size, mod.dilation, mod.padding, mod.stride)
            x = x.transpose(1, 2).reshape(-1, x.shape[1])
        else:
            x = x.reshape(-1, x.shape[-1])
        seen.setdefault(key, []).append(x.detach().double().numpy())
    return record
