"""The quantized network a config describes, built from Brevitas layers, and its float twin.

Hidden layer: QuantLinear (no bias) -> BatchNorm1d -> quantized activation; FINN streamlines the batch
norm and the activation's scale into integer thresholds. Last layer: QuantLinear alone, whose per-tensor
scale folds into the arg-max.
"""
from __future__ import annotations

import brevitas.nn as qnn
import torch
from torch import nn

from hw.errors import UserError
from quant.config import ModelConfig
from quant.quantizers import act_quant, weight_quant


def _check(cfg: ModelConfig, classes: int) -> None:
    for i, layer in enumerate(cfg.layers):
        if layer.kind != "linear":
            raise UserError(f"model.layers.{i}: {layer.kind!r} layers are not supported yet; accepted: linear")
    if cfg.layers[-1].features != classes:
        raise UserError(f"model.layers.{len(cfg.layers) - 1}.features: the last layer has "
                        f"{cfg.layers[-1].features} outputs but the dataset has {classes} classes")


def _activation(spec: str) -> nn.Module:
    quant = act_quant(spec)
    if spec.startswith("uint"):
        return qnn.QuantReLU(act_quant=quant, return_quant_tensor=False)
    return qnn.QuantIdentity(act_quant=quant, return_quant_tensor=False)


class QuantMLP(nn.Module):
    """Takes integer pixels (as floats) of shape [N, features]; returns float logits."""

    def __init__(self, cfg: ModelConfig, in_features: int, classes: int):
        super().__init__()
        _check(cfg, classes)
        blocks: list[nn.Module] = []
        width = in_features
        for layer in cfg.layers:
            blocks.append(qnn.QuantLinear(width, layer.features, bias=False,
                                          weight_quant=weight_quant(layer.weight)))
            if layer.act is not None:
                blocks.append(nn.BatchNorm1d(layer.features))
                blocks.append(_activation(layer.act))
            width = layer.features
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))

    def quant_linears(self) -> list[qnn.QuantLinear]:
        return [m for m in self.body if isinstance(m, qnn.QuantLinear)]


class FloatMLP(nn.Module):
    """The same topology in float32, the baseline a quantized accuracy is compared with."""

    def __init__(self, cfg: ModelConfig, in_features: int, classes: int):
        super().__init__()
        _check(cfg, classes)
        blocks: list[nn.Module] = []
        width = in_features
        for layer in cfg.layers:
            blocks.append(nn.Linear(width, layer.features, bias=layer.act is None))
            if layer.act is not None:
                blocks += [nn.BatchNorm1d(layer.features), nn.ReLU()]
            width = layer.features
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))


def build_model(cfg: ModelConfig, in_features: int, classes: int, quantized: bool = True) -> nn.Module:
    return (QuantMLP if quantized else FloatMLP)(cfg, in_features, classes)
