"""Dead channels of a finished AdmmNet removed before export, so folded hardware layers shrink too (paper 002's
structured pruning pays off only when the zero filters are gone from the graph, not merely zero).

A hidden channel whose weights are all zero (a pruned filter or neuron) outputs one constant, k = act(bn(0)),
for every input. Removing it drops its row from its layer and batch norm, and its input columns from the next
weight layer; when k != 0 the next layer loses k times those columns' weights from every output, which the
next layer's batch norm takes back (its running mean lowered by the same amount), so the network computes
what it computed before. Kept, because the constant cannot be folded: channels with k != 0 feeding the last
layer (no batch norm follows it) or a padded convolution (the padding zeros make the contribution depend on
the position). A layer keeps at least one channel.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from quant.layers import FlattenAnyBatch
from quant.methods.admm_model import ADMM_LAYERS, AdmmConv2d, brevitas_net

_PER_WEIGHT = ("weight", "Z", "U", "frozen", "fixed", "mask")  # the layer's tensors shaped like its weight


def _slice(layer: nn.Module, dim: int, keep: torch.Tensor) -> None:
    for name in _PER_WEIGHT:
        t = getattr(layer, name)
        new = t.detach().index_select(dim, keep).clone()
        if name == "weight":
            layer.weight = nn.Parameter(new, requires_grad=t.requires_grad)
        else:
            setattr(layer, name, new)
    conv = isinstance(layer, AdmmConv2d)
    n = layer.weight.shape[dim]
    if dim == 0:
        setattr(layer, "out_channels" if conv else "out_features", n)
    else:
        setattr(layer, "in_channels" if conv else "in_features", n)


def _slice_bn(bn: nn.Module, keep: torch.Tensor) -> None:
    for name in ("weight", "bias"):
        setattr(bn, name, nn.Parameter(getattr(bn, name).detach()[keep].clone()))
    bn.running_mean = bn.running_mean[keep].clone()
    bn.running_var = bn.running_var[keep].clone()
    bn.num_features = len(keep)


def _constants(bn: nn.Module, act: nn.Module, channels: int, conv: bool) -> torch.Tensor:
    """Each channel's output for a zero pre-activation (eval mode: running statistics)."""
    for p in act.parameters():
        if p.numel() == channels > 1:
            raise RuntimeError("a per-channel activation quantizer cannot have channels removed")
    was = bn.training, act.training
    bn.eval()
    act.eval()
    try:
        with torch.no_grad():
            z = torch.zeros(2, channels, *((1, 1) if conv else ()))
            out = act(bn(z))
            out = getattr(out, "value", out)
    finally:
        bn.train(was[0])
        act.train(was[1])
    return out[0].reshape(channels).double()


def remove_dead_channels(net: nn.Module) -> list[int]:
    """Removes, in place, the dead hidden channels the network can lose exactly; returns the count per weight
    layer (the last layer's outputs are the classes and are never removed)."""
    body = net.body
    pos = [j for j, m in enumerate(body) if isinstance(m, ADMM_LAYERS)]
    removed = [0] * len(pos)
    for i, (p, q) in enumerate(zip(pos[:-1], pos[1:])):
        layer, bn, act, nxt = body[p], body[p + 1], body[p + 2], body[q]
        conv = isinstance(layer, AdmmConv2d)
        channels = layer.weight.shape[0]
        dead = (layer.weight.detach().flatten(1) == 0).all(dim=1)
        if not bool(dead.any()):
            continue
        k = _constants(bn, act, channels, conv)
        next_bn = body[q + 1] if i + 1 < len(pos) - 1 else None
        foldable = next_bn is not None and not (isinstance(nxt, AdmmConv2d) and nxt.padding[0] > 0)
        removable = dead & ((k == 0) | foldable)
        if bool(removable.all()):
            removable[0] = False
        if not bool(removable.any()):
            continue
        unit = nxt.weight.shape[1] // channels  # a channel's input columns (a flattened conv map: H*W of them)
        wn = nxt.weight.detach().double()
        cols = wn.reshape(wn.shape[0], channels, unit, -1)  # [out, channel, position, kernel]
        lost = (cols * k.reshape(1, -1, 1, 1) * removable.reshape(1, -1, 1, 1)).sum(dim=(1, 2, 3))
        keep = torch.nonzero(~removable).flatten()
        with torch.no_grad():
            if next_bn is not None:
                next_bn.running_mean -= lost.to(next_bn.running_mean.dtype)
            _slice(layer, 0, keep)
            _slice_bn(bn, keep)
            col_keep = (keep.reshape(-1, 1) * unit + torch.arange(unit).reshape(1, -1)).flatten()
            _slice(nxt, 1, col_keep)
        for m in body[p + 3:q]:
            if isinstance(m, FlattenAnyBatch):
                m.features = nxt.weight.shape[1]
        removed[i] = int(removable.sum())
    return removed


def export_net(run_cfg, model: nn.Module, shrink: bool = True) -> nn.Module:
    """What `pqhw export` writes for an ADMM run: the Brevitas net of a copy of the trained network, with
    shrink its dead channels removed first; `removed_channels` says how many per weight layer."""
    model = copy.deepcopy(model)
    removed = remove_dead_channels(model) if shrink else [0] * len(model.quant_layers())
    net = brevitas_net(run_cfg, model)
    net.removed_channels = removed
    return net
