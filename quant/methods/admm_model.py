"""The network ADMM trains, and the Brevitas network `pqhw export` writes from it.

AdmmNet is the config's quant.layers.Net with each weight layer swapped for a float AdmmLinear/AdmmConv2d
(the paper's W, trained by SGD under the ADMM penalty) carrying its ADMM state as buffers: Z and U (eq. 2-4),
rho, the pruning mask, the weights already fixed on a quantization level (and their values), the level
spacing alpha, and whether the whole layer is quantized. Batch norms and the config's Brevitas activation
quantizers stay as they are, so module positions match the exported Net. (The paper quantizes weights only;
here activations are quantized from the start because the accelerator carries integer activations.)

brevitas_net() turns a finished AdmmNet into a plain Net whose weight quantizers have the constant scale
alpha and whose weights are exactly alpha * q, so the Brevitas integer weights are the projected levels q:
  binary, no zeros      bipolar {-1, +1} (FINN's xnor layers)
  binary / ternary      INT2 narrow {-1, 0, 1} (a pruned binary layer holds zeros: it is ternary in hardware)
  int2                  INT2 {-2 .. 1};  intN (N > 2): INTN narrow {-(2^(N-1)-1) .. 2^(N-1)-1}
  pow2:K                INT(K+1) narrow holding {0, +-1, +-2, .., +-2^(K-1)} (quant.quantizers.Pow2Weight)
"""
from __future__ import annotations

import copy

import brevitas.nn as qnn
import torch
from brevitas.inject.enum import RestrictValueType, ScalingImplType
from brevitas.quant import Int8WeightPerTensorFloat, SignedBinaryWeightPerTensorConst
from torch import nn

from common.errors import UserError
from quant.layers import Net
from quant.methods.admm_proj import Levels, levels_for, nearest_level
from quant.quantizers import pow2_weight

BREVITAS_LAYERS = (qnn.QuantLinear, qnn.QuantConv2d)


def _admm_buffers(m: nn.Module) -> None:
    w = m.weight
    for name in ("Z", "U", "frozen", "fixed"):
        m.register_buffer(name, torch.zeros_like(w))
    m.register_buffer("mask", torch.ones_like(w))
    m.register_buffer("rho", torch.zeros(()))
    m.register_buffer("alpha", torch.zeros(()))
    m.register_buffer("quantized", torch.zeros((), dtype=torch.long))


class AdmmLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)
        _admm_buffers(self)


class AdmmConv2d(nn.Conv2d):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, padding: int = 0):
        super().__init__(in_channels, out_channels, kernel, padding=padding, bias=False)
        _admm_buffers(self)


ADMM_LAYERS = (AdmmLinear, AdmmConv2d)


class AdmmNet(Net):
    """A Net whose weight layers are float AdmmLinear/AdmmConv2d (same initial weights as the Net's)."""

    def __init__(self, run_cfg, image_shape, classes):
        super().__init__(run_cfg.model, image_shape, classes, quantized=True)
        self.levels = [levels_for(spec.weight) for spec in run_cfg.model.layers]
        for j, m in enumerate(self.body):
            if isinstance(m, qnn.QuantLinear):
                new = AdmmLinear(m.in_features, m.out_features)
            elif isinstance(m, qnn.QuantConv2d):
                new = AdmmConv2d(m.in_channels, m.out_channels, m.kernel_size[0], m.padding[0])
            else:
                continue
            with torch.no_grad():
                new.weight.copy_(m.weight)
            self.body[j] = new

    def quant_layers(self) -> list[nn.Module]:
        return [m for m in self.body if isinstance(m, ADMM_LAYERS)]


def enforce(layer: nn.Module) -> None:
    """The constraints that hold between optimizer steps: pruned weights 0, fixed weights at their level."""
    with torch.no_grad():
        w = torch.where(layer.fixed > 0, layer.frozen, layer.weight) * layer.mask
        layer.weight.copy_(w)


def quantize_layer(layer: nn.Module, levels: Levels) -> None:
    """Final mapping of one layer: every unpruned weight not yet fixed goes to its nearest level of alpha (the
    kept levels when the layer is pruned), and the whole layer is fixed."""
    with torch.no_grad():
        pruned = bool((layer.mask == 0).any())
        ints = levels.kept() if pruned else levels.ints
        a = float(layer.alpha)
        q = nearest_level(layer.weight.double() / a, ints).to(layer.weight.dtype) * a
        w = torch.where(layer.fixed > 0, layer.frozen, q) * layer.mask
        layer.weight.copy_(w)
        layer.frozen.copy_(w)
        layer.fixed.copy_(layer.mask)
        layer.quantized.fill_(1)


def integer_weights(layer: nn.Module, levels: Levels, where: str) -> torch.Tensor:
    """The layer's weights as integers of its levels (checked: on the grid of alpha, inside the levels)."""
    a = float(layer.alpha)
    if int(layer.quantized) != 1 or a <= 0:
        raise UserError(f"{where}: weights are not quantized yet (the ADMM quantization steps did not finish); "
                        "train the run to the end before exporting")
    w = layer.weight.detach().double()
    q = torch.round(w / a)
    if (w - q * a).abs().max() > 1e-6 * a or not torch.isin(q, torch.tensor((0, *levels.ints), dtype=q.dtype)).all():
        raise UserError(f"{where}: weights are not on the {levels.spec} levels of alpha {a:.6g}")
    return q


def _quantizer(levels: Levels, alpha: float, bipolar: bool):
    const = dict(scaling_impl_type=ScalingImplType.CONST, restrict_scaling_type=RestrictValueType.FP)
    if levels.pow2:
        return pow2_weight(levels.pow2, scaling_init=alpha * (1 << (levels.pow2 - 1)), **const)
    if bipolar:
        return SignedBinaryWeightPerTensorConst.let(scaling_init=alpha)
    bits, narrow = (2, True) if levels.bits == 1 else (levels.bits, levels.narrow)
    top = (1 << (bits - 1)) - (1 if narrow else 0)  # Brevitas divides the constant by this for signed ints
    return Int8WeightPerTensorFloat.let(bit_width=bits, narrow_range=narrow, scaling_init=alpha * top, **const)


def brevitas_layer(layer: nn.Module, levels: Levels, where: str) -> nn.Module:
    q = integer_weights(layer, levels, where)
    a = float(layer.alpha)
    quant = _quantizer(levels, a, bipolar=levels.bits == 1 and bool((q != 0).all()))
    if isinstance(layer, AdmmLinear):
        new = qnn.QuantLinear(layer.in_features, layer.out_features, bias=False, weight_quant=quant)
    else:
        new = qnn.QuantConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, padding=layer.padding,
                              bias=False, weight_quant=quant)
    with torch.no_grad():
        new.weight.copy_((q * a).to(new.weight.dtype))
    got = new.quant_weight()
    if not torch.equal(torch.round(got.value.detach().double() / float(got.scale)), q):
        raise RuntimeError(f"{where}: Brevitas does not reproduce the projected integer weights")
    return new


def brevitas_net(run_cfg, model: AdmmNet) -> Net:
    """The Brevitas Net equal to the trained AdmmNet (layer sizes taken from the AdmmNet's modules)."""
    net = Net(run_cfg.model, model.image_shape, run_cfg.model.layers[-1].features, quantized=True)
    index = 0
    for j, m in enumerate(model.body):
        if isinstance(m, ADMM_LAYERS):
            net.body[j] = brevitas_layer(m, model.levels[index], f"model.layers.{index}")
            index += 1
        else:
            net.body[j] = copy.deepcopy(m)
    return net.eval()
