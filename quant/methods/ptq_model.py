"""The PTQ network: the config's quant.layers.Net with its ternary weight layers and activations swapped for
PTQ ones, so module positions match the Brevitas network that `pqhw export` writes."""
from __future__ import annotations

import brevitas.nn as qnn
from torch import nn

from common.errors import UserError
from quant.layers import Net
from quant.methods.ptq_layers import LSQAct, PTQConv2d, PTQLinear
from quant.quantizers import _parse

PTQ_LAYERS = (PTQLinear, PTQConv2d)
BREVITAS_LAYERS = (qnn.QuantLinear, qnn.QuantConv2d)


def ternarised(n_layers: int, first_layer: str, last_layer: str) -> list[bool]:
    """Which weight layers PTQ ternarises under the first/last-layer policy ('ternary', 'config' or 'float')."""
    flags = [True] * n_layers
    if first_layer != "ternary":
        flags[0] = False
    if last_layer != "ternary":
        flags[-1] = False
    return flags


def act_spec(spec: str, where: str, levels: str = "lsq") -> tuple[int, bool]:
    kind, bits = _parse(spec)
    if kind == "uint" and levels == "eq26" and bits == 1:
        raise UserError(f"{where}: eq. 26's unsigned levels 0 .. 2^(k-1) - 1 are only 0 for {spec!r}; use "
                        "uint2 or wider, or method.act_levels: lsq")
    if kind == "uint" and 1 <= bits <= 8:
        return bits, False
    if kind == "int" and 2 <= bits <= 8:
        return bits, True
    raise UserError(f"{where}: PTQ learns LSQ activation steps for uintN / intN; {spec!r} is not one "
                    "(accepted: uint1 .. uint8, int2 .. int8)")


class PTQNet(Net):
    """A Net whose ternarised layers are PTQLinear/PTQConv2d and whose activations are LSQAct."""

    def __init__(self, run_cfg, mcfg, image_shape, classes):
        super().__init__(run_cfg.model, image_shape, classes, quantized=True)
        specs = run_cfg.model.layers
        flags = ternarised(len(specs), mcfg.first_layer, mcfg.last_layer)
        for i, (spec, tern) in enumerate(zip(specs, flags)):
            if tern and spec.weight.strip().lower() not in ("ternary", "ternary2"):
                raise UserError(f"model.layers.{i}.weight: PTQ ternarises this layer (method.first_layer/"
                                f"last_layer) so it must say 'ternary', not {spec.weight!r}")
        kw = dict(normalize=mcfg.variant == "ptq", threshold="learned" if mcfg.variant == "ptq" else "quantile",
                  sparsity=mcfg.sparsity)
        policy = {0: mcfg.first_layer, len(specs) - 1: mcfg.last_layer}
        weight_idx, act_idx = 0, 0
        acts = [s.act for s in specs if s.act is not None]
        for j, m in enumerate(self.body):
            if isinstance(m, BREVITAS_LAYERS):
                i = weight_idx
                weight_idx += 1
                if not flags[i]:
                    if policy.get(i) == "float":  # the paper keeps the first conv in float
                        self.body[j] = (nn.Linear(m.in_features, m.out_features, bias=False)
                                        if isinstance(m, qnn.QuantLinear) else
                                        nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size[0], padding=m.padding,
                                                  bias=False))
                    continue
                last = i == len(specs) - 1
                gain = last and mcfg.classifier_gain
                if isinstance(m, qnn.QuantLinear):
                    new = PTQLinear(m.in_features, m.out_features, per_tensor=last, gain=gain, **kw)
                else:
                    new = PTQConv2d(m.in_channels, m.out_channels, m.kernel_size[0], padding=m.padding[0],
                                    per_tensor=last, gain=gain, **kw)
                self.body[j] = new
            elif isinstance(m, (qnn.QuantReLU, qnn.QuantIdentity)):
                bits, signed = act_spec(acts[act_idx], f"model.layers.{act_idx}.act", mcfg.act_levels)
                act_idx += 1
                self.body[j] = LSQAct(bits, signed, mcfg.act_levels)

    def quant_layers(self) -> list[nn.Module]:
        """Every weight layer: ternarised, kept at its config quantizer, or kept in float."""
        return [m for m in self.body if isinstance(m, PTQ_LAYERS + BREVITAS_LAYERS + (nn.Linear, nn.Conv2d))]

    def ptq_layers(self) -> list[nn.Module]:
        return [m for m in self.body if isinstance(m, PTQ_LAYERS)]

    def acts(self) -> list[LSQAct]:
        return [m for m in self.body if isinstance(m, LSQAct)]
