"""The network a config describes, built from Brevitas layers, and its float twin.

Hidden layer: QuantLinear / QuantConv2d (no bias) -> BatchNorm -> quantized activation (-> max-pool);
FINN streamlines the batch norm and the activation's scale into integer thresholds. Last layer: a
QuantLinear alone, whose per-tensor scale folds into the arg-max. The input is the integer pixels as a
flat vector [N, C*H*W]; convolutional models view it as an image.
"""
from __future__ import annotations

import brevitas.nn as qnn
import torch
from torch import nn

from common.errors import UserError
from quant.config import ModelConfig
from quant.quantizers import act_quant, weight_quant


def _check(cfg: ModelConfig, classes: int) -> None:
    seen_linear = False
    for i, layer in enumerate(cfg.layers):
        if layer.kind == "conv" and seen_linear:
            raise UserError(f"model.layers.{i}: a conv layer after a linear layer; convs come first")
        seen_linear |= layer.kind == "linear"
    if cfg.layers[-1].kind != "linear":
        raise UserError(f"model.layers.{len(cfg.layers) - 1}: the last layer must be linear (the classifier)")
    if cfg.layers[-1].features != classes:
        raise UserError(f"model.layers.{len(cfg.layers) - 1}.features: the last layer has "
                        f"{cfg.layers[-1].features} outputs but the dataset has {classes} classes")


def quant_activation(spec: str) -> nn.Module:
    quant = act_quant(spec)
    if spec.startswith("uint"):
        return qnn.QuantReLU(act_quant=quant, return_quant_tensor=False)
    return qnn.QuantIdentity(act_quant=quant, return_quant_tensor=False)


class FlattenAnyBatch(nn.Module):
    """Flatten to [N, features] as reshape(-1, features): nn.Flatten exports a shape fixed at the export batch."""

    def __init__(self, features: int):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, self.features)


class Net(nn.Module):
    """Takes integer pixels (as floats) of shape [N, C*H*W]; returns float logits."""

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, ...], classes: int, quantized: bool = True):
        super().__init__()
        _check(cfg, classes)
        self.image_shape = tuple(image_shape)
        self.has_conv = cfg.layers[0].kind == "conv"
        blocks: list[nn.Module] = []
        c, h, w = self.image_shape if len(self.image_shape) == 3 else (1, 1, self.image_shape[0])
        flat = c * h * w
        flattened = not self.has_conv
        for i, layer in enumerate(cfg.layers):
            if layer.kind == "conv":
                p = layer.padding
                if layer.kernel > min(h, w) + 2 * p:
                    raise UserError(f"model.layers.{i}.kernel: {layer.kernel} is larger than the {h}x{w} input"
                                    + (f" padded by {p}" if p else ""))
                conv = (qnn.QuantConv2d(c, layer.channels, layer.kernel, padding=p, bias=False,
                                        weight_quant=weight_quant(layer.weight))
                        if quantized else nn.Conv2d(c, layer.channels, layer.kernel, padding=p, bias=False))
                blocks += [conv, nn.BatchNorm2d(layer.channels), self._act(layer.act, quantized)]
                c, h, w = layer.channels, h + 2 * p - layer.kernel + 1, w + 2 * p - layer.kernel + 1
                if layer.pool > 1:
                    blocks.append(nn.MaxPool2d(layer.pool))
                    h, w = h // layer.pool, w // layer.pool
                flat = c * h * w
                continue
            if not flattened:
                blocks.append(FlattenAnyBatch(flat))
                flattened = True
            last = layer.act is None
            blocks.append(qnn.QuantLinear(flat, layer.features, bias=False, weight_quant=weight_quant(layer.weight))
                          if quantized else nn.Linear(flat, layer.features, bias=last))
            if not last:
                blocks += [nn.BatchNorm1d(layer.features), self._act(layer.act, quantized)]
            flat = layer.features
        self.body = nn.Sequential(*blocks)

    @staticmethod
    def _act(spec: str, quantized: bool) -> nn.Module:
        return quant_activation(spec) if quantized else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # -1: the exported graph keeps any batch
        x = x.reshape(-1, *self.image_shape) if self.has_conv else x.flatten(1)
        return self.body(x)

    def quant_layers(self) -> list[nn.Module]:
        """The weight layers in order (QuantConv2d and QuantLinear)."""
        return [m for m in self.body if isinstance(m, (qnn.QuantLinear, qnn.QuantConv2d))]


def build_model(cfg: ModelConfig, image_shape: tuple[int, ...], classes: int, quantized: bool = True) -> nn.Module:
    return Net(cfg, image_shape, classes, quantized)
