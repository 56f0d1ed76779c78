"""The network DJPQ trains (DQ-quantized linear layers with VIBNet gates) and its hardware form.

Hidden layer l: y = DQ_a( z_l * BN(x @ DQ_w(W_l)^T) ). The gate sits between batch norm and the quantized
activation, not after the activation as in eq. 9, so that at inference the gate mean folds into the batch
norm scale and the activation quantizer stays the last op of the layer (FINN turns BN + quantizer into
integer thresholds). For a positive gate both orders are the same function up to the quantizer's grid.
The last layer is a DQ-quantized linear layer alone; its logits go to the arg-max.

`to_brevitas()` gives the plain Brevitas network `pqhw export` writes: pruned channels removed (rows of W_l,
entries of BN_l, columns of W_l+1), gate means and the activation's q_s folded into the batch norm, and each
layer's learned bit widths as its int{b} / uint{b} datatypes, with the learned steps as fixed scales.
"""
from __future__ import annotations

import brevitas.nn as qnn
import torch
import torch.nn.functional as F
from brevitas.inject.enum import ScalingImplType
from brevitas.quant import Int8WeightPerTensorFloat, Uint8ActPerTensorFloatMaxInit
from torch import nn

from common.errors import UserError
from quant import cost
from quant.dq import DQQuant, levels
from quant.vib import VIBGate


class DJPQLinear(nn.Module):
    """One linear layer with a DQ weight quantizer; hidden layers add BN, a VIB gate and a DQ activation."""

    def __init__(self, c_in: int, c_out: int, hidden: bool, q: dict):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.wq = DQQuant(True, q["w_bits"], 1.0, q["q_s_w"], q["restrict"], q["fixed_w"], True, q["pow2_scale"])
        self.hidden = hidden
        if hidden:
            self.bn = nn.BatchNorm1d(c_out)
            self.gate = VIBGate(c_out, q["alpha_th"], init_log_sigma2=q["init_log_sigma2"])
            self.aq = DQQuant(False, q["a_bits"], 4.0, q["q_s_a"], q["restrict"], q["fixed_a"], False, False)

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.wq(self.weight))
        return self.gate(self.bn(y)) if self.hidden else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pre_activation(x)
        return self.aq(y) if self.hidden else y


class DJPQNet(nn.Module):
    """Takes integer pixels (as floats) [N, features]; returns float logits. Linear layers only."""

    def __init__(self, model_cfg, image_shape, classes: int, q: dict, input_bits: int):
        super().__init__()
        for i, layer in enumerate(model_cfg.layers):
            if layer.kind != "linear":
                raise UserError(f"model.layers.{i}: method djpq trains linear layers only; accepted kind: linear")
        if model_cfg.layers[-1].features != classes:
            raise UserError(f"model.layers.{len(model_cfg.layers) - 1}.features: the last layer has "
                            f"{model_cfg.layers[-1].features} outputs but the dataset has {classes} classes")
        self.image_shape = tuple(image_shape)
        self.input_bits = input_bits
        width = int(torch.tensor(self.image_shape).prod())
        blocks = []
        for i, layer in enumerate(model_cfg.layers):
            blocks.append(DJPQLinear(width, layer.features, i < len(model_cfg.layers) - 1, q))
            width = layer.features
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for b in self.blocks:
            x = b(x)
        return x

    def quant_layers(self) -> list[DJPQLinear]:
        """The weight layers in order (each has .weight)."""
        return list(self.blocks)

    def gates(self) -> list[VIBGate]:
        return [b.gate for b in self.blocks if b.hidden]

    def weight_quantizers(self) -> list[DQQuant]:
        return [b.wq for b in self.blocks]

    def act_quantizers(self) -> list[DQQuant]:
        return [b.aq for b in self.blocks if b.hidden]

    def quant_parameters(self) -> list[nn.Parameter]:
        return [p for q in self.weight_quantizers() + self.act_quantizers() for p in (q.q_m, q.d, q.t)
                if p.requires_grad]

    def gate_parameters(self) -> list[nn.Parameter]:
        return [p for g in self.gates() for p in (g.mu, g.log_sigma2)]

    def weight_parameters(self) -> list[nn.Parameter]:
        skip = {id(p) for p in self.quant_parameters() + self.gate_parameters()}
        return [p for p in self.parameters() if id(p) not in skip and p.requires_grad]

    def _input_bits(self, i: int, act_bits: list) -> float:
        return float(self.input_bits) if i == 0 else act_bits[i - 1]

    def soft_bops(self, tau: float) -> torch.Tensor:
        """Sum of eq. 16 with soft pruning ratios (eq. 19) and the quantizers' bit widths: the loss term."""
        p = [g.soft_pruned_ratio(tau) for g in self.gates()]
        a_bits = [q.bits() if q.enabled else torch.tensor(float(cost.FLOAT_BITS)) for q in self.act_quantizers()]
        total = self.blocks[0].weight.new_zeros(())
        for i, b in enumerate(self.blocks):
            p_in = p[i - 1] if i > 0 else 0.0
            p_out = p[i] if b.hidden else 0.0
            b_w = b.wq.bits() if b.wq.enabled else cost.FLOAT_BITS
            b_a = self.input_bits if i == 0 else a_bits[i - 1]
            total = total + cost.bops(cost.macs(b.in_features, b.out_features, p_in, p_out), b_w, b_a)
        return total

    def layer_costs(self) -> list[cost.LayerCost]:
        """Per-layer MACs and BOPs after hard pruning (eq. 18) at the hardware bit widths."""
        p = [g.pruned_ratio() for g in self.gates()]
        a_bits = [float(q.hw_bits()) if q.enabled else float(cost.FLOAT_BITS) for q in self.act_quantizers()]
        rows = []
        for i, b in enumerate(self.blocks):
            p_in = p[i - 1] if i > 0 else 0.0
            p_out = p[i] if b.hidden else 0.0
            c_in, c_out = round((1 - p_in) * b.in_features), round((1 - p_out) * b.out_features)
            rows.append(cost.LayerCost(f"layer{i}", float(cost.macs(c_in, c_out)),
                                       float(b.wq.hw_bits()) if b.wq.enabled else float(cost.FLOAT_BITS),
                                       self._input_bits(i, a_bits), c_in, c_out))
        return rows

    def dense_costs(self) -> list[cost.LayerCost]:
        """The same network unpruned (for the float reference)."""
        return [cost.LayerCost(f"layer{i}", float(cost.macs(b.in_features, b.out_features)), cost.FLOAT_BITS,
                               cost.FLOAT_BITS, b.in_features, b.out_features) for i, b in enumerate(self.blocks)]

    def to_brevitas(self) -> "ExportNet":
        return ExportNet.from_djpq(self)


def _weight_quant(bits: int, step: float):
    # ParameterScaling divides its value by the grid's largest level; the scale it returns is `step`.
    return Int8WeightPerTensorFloat.let(bit_width=bits, narrow_range=True,
                                        scaling_impl_type=ScalingImplType.PARAMETER,
                                        scaling_init=step * levels(bits, True))


def _act_quant(bits: int, step: float):
    return Uint8ActPerTensorFloatMaxInit.let(bit_width=bits, max_val=step * levels(bits, False))


def _kept(gate: VIBGate) -> torch.Tensor:
    """Indices of kept channels; if every channel is pruned, one channel with a zero gate stays, so the
    next layer still has an input (it contributes exactly 0, as the pruned channels did)."""
    keep = torch.nonzero(gate.keep_mask() > 0).flatten()
    return keep if len(keep) else torch.argmax(gate.log_alpha()).reshape(1)


class ExportNet(nn.Module):
    """A plain Brevitas MLP (QuantLinear -> BN -> QuantReLU ..., QuantLinear), layered like quant.layers.Net."""

    def __init__(self, body: nn.Sequential, image_shape):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))

    def quant_layers(self) -> list[nn.Module]:
        return [m for m in self.body if isinstance(m, qnn.QuantLinear)]

    @classmethod
    @torch.no_grad()
    def from_djpq(cls, net: DJPQNet) -> "ExportNet":
        for i, q in enumerate(net.act_quantizers()):
            if not q.enabled:
                raise UserError(f"layer {i}: activations are not quantized (float phase); export a trained run")
            if q.top_level() != levels(q.hw_bits(), False):
                raise UserError(f"layer {i}: the activation grid tops out at {q.top_level()}, not at "
                                f"2^{q.hw_bits()}-1, so no uint{q.hw_bits()} holds it exactly; export needs "
                                "method.restrict: integer or pow2")
        body, cols = [], torch.arange(net.blocks[0].in_features)
        for b in net.blocks:
            rows = _kept(b.gate) if b.hidden else torch.arange(b.out_features)
            step = float(b.wq.step())
            bits = b.wq.hw_bits()
            lin = qnn.QuantLinear(len(cols), len(rows), bias=False, weight_quant=_weight_quant(bits, step))
            lin.weight.copy_(b.wq(b.weight)[rows][:, cols])
            body.append(lin)
            if b.hidden:
                z = b.gate.gate_values()[rows]
                bn = nn.BatchNorm1d(len(rows), eps=b.bn.eps)
                bn.running_mean.copy_(b.bn.running_mean[rows])
                bn.running_var.copy_(b.bn.running_var[rows])
                bn.weight.copy_(b.bn.weight[rows] * z)
                bn.bias.copy_(b.bn.bias[rows] * z - b.aq.q_s)
                a_bits = b.aq.hw_bits()
                body += [bn, qnn.QuantReLU(act_quant=_act_quant(a_bits, float(b.aq.step())),
                                           return_quant_tensor=False)]
            cols = rows
        return cls(nn.Sequential(*body), net.image_shape).eval()
