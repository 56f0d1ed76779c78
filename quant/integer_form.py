"""The integer form of an exportable network: the same function, written so that float32 computes it exactly.

Why: a trained network carries non-power-of-two scales (learned steps, batch norm), so its float32 sums
are rounded, and torch and onnxruntime round them in different orders. An activation a few millionths of a
step from a rounding tie then comes out one level apart in Brevitas and in the QONNX execution (the digits
CNN at DJPQ-restrict: 22 of 450 vectors). The integer form moves every scale out of the sums:

- each weight layer holds its integer weights (scale 1) and sees integer inputs, so its sums are integers
  below 2**24 and exact in any order;
- the batch norm and the scales around it become one multiply and one add per channel,
  a = gamma / sqrt(var + eps) * s_in * s_w / s_act and b = (beta - mean * gamma / sqrt(var + eps)) / s_act,
  computed once here and applied as two float32 operations, which both engines round alike;
- the activation quantizer that follows has scale 1, so it outputs the integer levels themselves.

In exact arithmetic this is the trained network (max-pool and flatten commute with the positive scales);
in float32 the two may differ on a near-tie, which `pqhw export` counts and reports.
"""
from __future__ import annotations

import brevitas.nn as qnn
import torch
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerTensorFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)
from torch import nn

EXACT_SUM = 2 ** 24  # float32 holds every integer up to here


class ChannelAffine(nn.Module):
    """x * a + b per channel (dim 1), as two float32 operations: exported as an ONNX Mul and Add."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, conv: bool):
        super().__init__()
        shape = (1, -1, 1, 1) if conv else (1, -1)
        self.register_buffer("a", a.detach().to(torch.float32).reshape(shape))
        self.register_buffer("b", b.detach().to(torch.float32).reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.a + self.b


class NotIntegerForm(Exception):
    """The network has a part the integer form does not cover; it is exported as it is."""


def _weight_quant(bits: int, narrow: bool):
    if bits == 1:
        return SignedBinaryWeightPerTensorConst.let(scaling_const=1.0)
    top = 2 ** (bits - 1) - (1 if narrow else 0)  # the int scaling: scale = scaling_const / top = 1
    return Int8WeightPerTensorFloat.let(bit_width=bits, narrow_range=narrow, scaling_impl_type="const",
                                        scaling_const=float(top))


def _integer_layer(layer: nn.Module) -> tuple[nn.Module, float, int]:
    """The layer with its integer weights at scale 1, its weight scale, and its largest sum of |weights| of
    one output (to bound the accumulator)."""
    qw = layer.quant_weight()
    if qw.scale.numel() != 1:
        raise NotIntegerForm("per-channel weight scale")
    bits = int(qw.bit_width)
    ints = qw.int().detach().to(torch.float32)
    narrow = bool(layer.weight_quant.is_narrow_range)
    quant = _weight_quant(bits, narrow)
    if isinstance(layer, qnn.QuantConv2d):
        new = qnn.QuantConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                              padding=layer.padding, bias=False, weight_quant=quant)
    elif isinstance(layer, qnn.QuantLinear):
        new = qnn.QuantLinear(layer.in_features, layer.out_features, bias=False, weight_quant=quant)
    else:
        raise NotIntegerForm(type(layer).__name__)
    if getattr(layer, "bias", None) is not None:
        raise NotIntegerForm("a weight layer with a bias")
    with torch.no_grad():
        new.weight.copy_(ints)
    check = new.quant_weight()
    if float(check.scale) != 1.0 or not torch.equal(check.int().to(torch.float32), ints):
        raise NotIntegerForm("integer weights do not survive their quantizer")
    return new.eval(), float(qw.scale.detach()), int(ints.abs().flatten(1).sum(1).max())


def _act_quant(bits: int, signed: bool):
    if bits == 1 and signed:
        return SignedBinaryActPerTensorConst.let(scaling_const=1.0)
    if signed:
        return Int8ActPerTensorFloat.let(bit_width=bits, narrow_range=False, scaling_impl_type="const",
                                         min_val=-float(2 ** (bits - 1)), max_val=float(2 ** (bits - 1)))
    return Uint8ActPerTensorFloat.let(bit_width=bits, scaling_impl_type="const", max_val=float(2 ** bits - 1))


def _integer_act(act: nn.Module) -> tuple[nn.Module, float, int]:
    """The activation at scale 1, its scale, and its largest integer level."""
    proxy = act.act_quant
    bits, signed, scale = int(proxy.bit_width()), bool(proxy.is_signed), float(proxy.scale().detach())
    if isinstance(act, qnn.QuantReLU) and not signed:
        new = qnn.QuantReLU(act_quant=_act_quant(bits, False), return_quant_tensor=False)
    elif isinstance(act, qnn.QuantIdentity):
        if bits > 1 and getattr(proxy, "is_narrow_range", False):
            raise NotIntegerForm("a narrow-range signed activation")
        new = qnn.QuantIdentity(act_quant=_act_quant(bits, signed), return_quant_tensor=False)
    else:
        raise NotIntegerForm(type(act).__name__)
    new = new.eval()
    if float(new.act_quant.scale()) != 1.0:
        raise NotIntegerForm("an activation whose integer levels do not survive their quantizer")
    return new, scale, 2 ** bits - 1 if not signed else 2 ** (bits - 1)


def integer_form(model: nn.Module) -> nn.Module:
    """A copy of `model` (a Sequential `body` of weight layer -> [batch norm] -> [activation] -> [max-pool]
    [-> flatten] ... -> classifier) in the integer form; raises NotIntegerForm for anything else."""
    import copy

    if not isinstance(getattr(model, "body", None), nn.Sequential):
        raise NotIntegerForm(f"{type(model).__name__} has no Sequential body of layers")
    blocks = list(model.body)
    out: list[nn.Module] = []
    s_in, top_in = 1.0, 255  # scale and largest |level| of the current tensor's integers (pixels: <= 8 bits)
    i = 0
    while i < len(blocks):
        m = blocks[i]
        if isinstance(m, (qnn.QuantConv2d, qnn.QuantLinear)):
            layer, s_w, w_abs = _integer_layer(m)
            conv = isinstance(m, qnn.QuantConv2d)
            if w_abs * top_in >= EXACT_SUM:
                raise NotIntegerForm("an accumulator beyond 2**24")
            out.append(layer)
            j = i + 1
            bn = blocks[j] if j < len(blocks) and isinstance(blocks[j], (nn.BatchNorm1d, nn.BatchNorm2d)) else None
            j += bn is not None
            act = blocks[j] if j < len(blocks) and hasattr(blocks[j], "act_quant") else None
            if act is None:
                if bn is not None:
                    raise NotIntegerForm("a batch norm without an activation after it")
                if j != len(blocks):
                    raise NotIntegerForm("modules after the classifier: "
                                         + ", ".join(type(b).__name__ for b in blocks[j:]))
                break  # the classifier: integer logits, scale 1
            new_act, s_act, top = _integer_act(act)
            c = m.out_channels if conv else m.out_features
            if bn is not None:
                inv = (bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps))
                a = inv * s_in * s_w / s_act
                b = (bn.bias.detach().double() - bn.running_mean.double() * inv) / s_act
            else:
                a = torch.full((c,), s_in * s_w / s_act, dtype=torch.float64)
                b = torch.zeros(c, dtype=torch.float64)
            out += [ChannelAffine(a, b, conv), new_act]
            s_in, top_in = s_act, top  # the integers q stand for q * s_act
            i = j + 1
            continue
        if isinstance(m, (nn.MaxPool2d, nn.Flatten)) or type(m).__name__ == "FlattenAnyBatch":
            out.append(copy.deepcopy(m))
            i += 1
            continue
        raise NotIntegerForm(type(m).__name__)
    else:
        raise NotIntegerForm("no classifier")
    new = copy.copy(model)
    new._modules = dict(model._modules)
    new.body = nn.Sequential(*out).eval()
    return new.eval()
