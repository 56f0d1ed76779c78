"""The network DJPQ trains (DQ-quantized convolutions and linear layers with VIBNet gates) and its hardware form.

Hidden layer l: y = DQ_a( z_l * BN(f_l(x, DQ_w(W_l))) ), f_l a linear layer or a convolution (stride 1, zero
padding, then an optional max-pool after the activation, as quant.layers builds them); convolutions come
first, the first linear layer flattens its input. The gate sits between batch norm and the quantized
activation, not after the activation as in eq. 9, so that at inference the gate mean folds into the batch
norm scale and the activation quantizer stays the last op of the layer (FINN turns BN + quantizer into
integer thresholds). For a positive gate both orders are the same function up to the quantizer's grid.
A conv gate scales a whole output channel (all its positions), so pruning it removes the channel.
The last layer is a DQ-quantized linear layer alone; its logits go to the arg-max.

`to_brevitas()` gives the plain Brevitas network `pqhw export` writes: pruned channels removed (output rows of
W_l, entries of BN_l, input columns of W_l+1: for a linear layer after a convolution, the H*W flattened
positions of each removed channel), gate means and the activation's q_s folded into the batch norm, and each
layer's learned bit widths as its int{b} / uint{b} datatypes, with the learned steps as fixed scales. The
classifier and its input are the exception: exported at scale 1 (the last batch norm divided by its
activation's step, the last weights as their integers), so the exported logits are the integer logits
divided by a positive constant, computed by float32 Brevitas and QONNX exactly (integer products and sums
below 2^24). With learned scales there, a float32 sum over 8-bit x 8-bit terms strays from the integer grid
by more than export's check allows (digits_djpq_cnn: 0.04 of a step).
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
from quant.layers import FlattenAnyBatch
from quant.vib import VIBGate


class DJPQLinear(nn.Module):
    """One linear layer with a DQ weight quantizer; hidden layers add BN, a VIB gate and a DQ activation.

    `in_units` is the number of prunable inputs (the previous layer's channels) and `unit_size` the features
    each of them contributes (H*W after a convolution, else 1): in_features = in_units * unit_size."""

    kind = "linear"
    kernel = (1, 1)
    out_hw = (1, 1)

    def __init__(self, in_units: int, c_out: int, hidden: bool, q: dict, unit_size: int = 1):
        super().__init__()
        self.in_units, self.unit_size = in_units, unit_size
        self.weight = nn.Parameter(torch.empty(c_out, in_units * unit_size))
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
        y = F.linear(x.flatten(1), self.wq(self.weight))
        return self.gate(self.bn(y)) if self.hidden else y

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        """The layer's output from its pre-activation: the activation quantizer (a ReLU in float phases)."""
        return self.aq(y) if self.hidden else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.pre_activation(x))

    def dense_macs(self) -> int:
        return int(cost.macs(self.in_features, self.out_features))

    def macs(self, p_in, p_out):
        """Eq. 15 with the pruning ratios of the inputs' and the outputs' channels (floats or tensors)."""
        return cost.macs(self.in_features, self.out_features, p_in, p_out)

    def kept_weights(self, kept_in: int, kept_out: int) -> int:
        return kept_in * self.unit_size * kept_out


class DJPQConv(nn.Module):
    """A convolution (stride 1, zero `padding`) with a DQ weight quantizer, BN, a VIB gate on each output
    channel, a DQ activation and an optional max-pool of the quantized activation."""

    kind = "conv"
    hidden = True

    def __init__(self, c_in: int, c_out: int, kernel: int, padding: int, pool: int, in_hw: tuple[int, int],
                 q: dict):
        super().__init__()
        self.padding, self.pool = padding, pool
        self.in_units, self.unit_size = c_in, 1
        self.kernel = (kernel, kernel)
        self.out_hw = (in_hw[0] + 2 * padding - kernel + 1, in_hw[1] + 2 * padding - kernel + 1)
        self.weight = nn.Parameter(torch.empty(c_out, c_in, kernel, kernel))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.wq = DQQuant(True, q["w_bits"], 1.0, q["q_s_w"], q["restrict"], q["fixed_w"], True, q["pow2_scale"])
        self.bn = nn.BatchNorm2d(c_out)
        self.gate = VIBGate(c_out, q["alpha_th"], init_log_sigma2=q["init_log_sigma2"])
        self.aq = DQQuant(False, q["a_bits"], 4.0, q["q_s_a"], q["restrict"], q["fixed_a"], False, False)

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def pooled_hw(self) -> tuple[int, int]:
        return self.out_hw[0] // self.pool, self.out_hw[1] // self.pool

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.bn(F.conv2d(x, self.wq(self.weight), padding=self.padding)))

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        y = self.aq(y)
        return F.max_pool2d(y, self.pool) if self.pool > 1 else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.pre_activation(x))

    def dense_macs(self) -> int:
        return int(self.macs(0.0, 0.0))

    def macs(self, p_in, p_out):
        """Eq. 15: kept input channels x kept output channels x output positions x kernel size."""
        return cost.macs(self.in_features, self.out_features, p_in, p_out, self.out_hw, self.kernel)

    def kept_weights(self, kept_in: int, kept_out: int) -> int:
        return kept_in * kept_out * self.kernel[0] * self.kernel[1]


class DJPQNet(nn.Module):
    """Takes integer pixels (as floats) [N, C*H*W]; returns float logits. Convolutions first, then linear
    layers, the last one the classifier."""

    def __init__(self, model_cfg, image_shape, classes: int, q: dict, input_bits: int):
        super().__init__()
        layers = model_cfg.layers
        if layers[-1].kind != "linear":
            raise UserError(f"model.layers.{len(layers) - 1}: the last layer must be linear (the classifier)")
        if layers[-1].features != classes:
            raise UserError(f"model.layers.{len(layers) - 1}.features: the last layer has "
                            f"{layers[-1].features} outputs but the dataset has {classes} classes")
        self.image_shape = tuple(image_shape)
        self.input_bits = input_bits
        self.has_conv = layers[0].kind == "conv"
        if self.has_conv and len(self.image_shape) != 3:
            raise UserError(f"model.layers.0: a conv layer needs image data; this dataset gives flat vectors "
                            f"of shape {list(self.image_shape)}")
        c, h, w = self.image_shape if self.has_conv else (int(torch.tensor(self.image_shape).prod()), 1, 1)
        unit = 1
        blocks, seen_linear = [], False
        for i, layer in enumerate(layers):
            if layer.kind == "conv":
                if seen_linear:
                    raise UserError(f"model.layers.{i}: a conv layer after a linear layer; convs come first")
                if layer.kernel > min(h, w) + 2 * layer.padding:
                    raise UserError(f"model.layers.{i}.kernel: {layer.kernel} is larger than the {h}x{w} input"
                                    + (f" padded by {layer.padding}" if layer.padding else ""))
                b = DJPQConv(c, layer.channels, layer.kernel, layer.padding, layer.pool, (h, w), q)
                if min(b.pooled_hw) < 1:
                    raise UserError(f"model.layers.{i}.pool: {layer.pool} is larger than the layer's "
                                    f"{b.out_hw[0]}x{b.out_hw[1]} output")
                blocks.append(b)
                c, (h, w) = layer.channels, b.pooled_hw
                continue
            if not seen_linear:
                unit, seen_linear = h * w, True
            blocks.append(DJPQLinear(c, layer.features, i < len(layers) - 1, q, unit))
            c, unit = layer.features, 1
        self.blocks = nn.ModuleList(blocks)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The flat integer pixels as the first layer takes them (an image for a convolution)."""
        return x.reshape(-1, *self.image_shape) if self.has_conv else x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prepare(x)
        for b in self.blocks:
            x = b(x)
        return x

    def quant_layers(self) -> list[nn.Module]:
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
            total = total + cost.bops(b.macs(p_in, p_out), b_w, b_a)
        return total

    def kept_counts(self) -> list[tuple[int, int]]:
        """(kept input units, kept output channels) per layer after hard pruning (eq. 18), as the export
        keeps them (a fully pruned layer keeps one channel)."""
        kept = [int(len(_kept(b.gate))) if b.hidden else b.out_features for b in self.blocks]
        return [(kept[i - 1] if i else b.in_units, kept[i]) for i, b in enumerate(self.blocks)]

    def layer_costs(self) -> list[cost.LayerCost]:
        """Per-layer MACs and BOPs after hard pruning (eq. 18) at the hardware bit widths."""
        a_bits = [float(q.hw_bits()) if q.enabled else float(cost.FLOAT_BITS) for q in self.act_quantizers()]
        rows = []
        for i, (b, (k_in, k_out)) in enumerate(zip(self.blocks, self.kept_counts())):
            p_in, p_out = 1 - k_in / b.in_units, 1 - k_out / b.out_features
            rows.append(cost.LayerCost(f"layer{i}", float(round(b.macs(p_in, p_out))),
                                       float(b.wq.hw_bits()) if b.wq.enabled else float(cost.FLOAT_BITS),
                                       self._input_bits(i, a_bits), k_in * b.unit_size, k_out))
        return rows

    def dense_costs(self) -> list[cost.LayerCost]:
        """The same network unpruned (for the float reference)."""
        return [cost.LayerCost(f"layer{i}", float(b.dense_macs()), cost.FLOAT_BITS, cost.FLOAT_BITS,
                               b.in_features, b.out_features) for i, b in enumerate(self.blocks)]

    def kept_weights(self) -> list[int]:
        """Weights per layer after channel removal."""
        return [b.kept_weights(k_in, k_out) for b, (k_in, k_out) in zip(self.blocks, self.kept_counts())]

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


def _columns(units: torch.Tensor, unit_size: int) -> torch.Tensor:
    """Input columns of a layer that keeps `units` of its input channels, each `unit_size` wide (C, H, W
    flattening: channel c covers columns c*H*W .. c*H*W + H*W - 1)."""
    return (units[:, None] * unit_size + torch.arange(unit_size)[None, :]).flatten()


class ExportNet(nn.Module):
    """A plain Brevitas network layered like quant.layers.Net: QuantConv2d -> BN -> QuantReLU (-> MaxPool) ...,
    a flatten, QuantLinear -> BN -> QuantReLU ..., QuantLinear."""

    def __init__(self, body: nn.Sequential, image_shape, has_conv: bool = False):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.has_conv = has_conv
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(-1, *self.image_shape) if self.has_conv else x.flatten(1))

    def quant_layers(self) -> list[nn.Module]:
        return [m for m in self.body if isinstance(m, (qnn.QuantConv2d, qnn.QuantLinear))]

    @classmethod
    @torch.no_grad()
    def from_djpq(cls, net: DJPQNet) -> "ExportNet":
        for i, q in enumerate(net.act_quantizers()):
            if not q.enabled:
                raise UserError(f"layer {i}: activations are not quantized (float phase); export a trained run")
            if q.top_level() != levels(q.hw_bits(), False):
                raise UserError(f"layer {i}: the activation grid tops out at {q.top_level()}, not at "
                                f"{2 ** q.hw_bits() - 1} = 2^{q.hw_bits()}-1, so no uint{q.hw_bits()} holds it "
                                "exactly; export needs method.restrict: integer or pow2")
        body, units, flat = [], torch.arange(net.blocks[0].in_units), False
        last_hidden = max(i for i, b in enumerate(net.blocks) if b.hidden) if len(net.blocks) > 1 else -1
        for i, b in enumerate(net.blocks):
            rows = _kept(b.gate) if b.hidden else torch.arange(b.out_features)
            step = float(b.wq.step())
            bits = b.wq.hw_bits()
            w = b.wq(b.weight)[rows]
            if not b.hidden:  # the classifier on the integer grid: its logits are integers (see below)
                w, step = torch.round(w / step), 1.0
            if b.kind == "conv":
                layer = qnn.QuantConv2d(len(units), len(rows), b.kernel, padding=b.padding, bias=False,
                                        weight_quant=_weight_quant(bits, step))
                layer.weight.copy_(w[:, units])
            else:
                cols = _columns(units, b.unit_size)
                if net.has_conv and not flat:
                    body.append(FlattenAnyBatch(len(cols)))
                    flat = True
                layer = qnn.QuantLinear(len(cols), len(rows), bias=False, weight_quant=_weight_quant(bits, step))
                layer.weight.copy_(w[:, cols])
            body.append(layer)
            if b.hidden:
                z = b.gate.gate_values()[rows]
                bn = (nn.BatchNorm2d if b.kind == "conv" else nn.BatchNorm1d)(len(rows), eps=b.bn.eps)
                bn.running_mean.copy_(b.bn.running_mean[rows])
                bn.running_var.copy_(b.bn.running_var[rows])
                a_step = float(b.aq.step())
                # the classifier's input grid at scale 1: its batch norm divided by the step, same integers
                div = a_step if i == last_hidden else 1.0
                bn.weight.copy_(b.bn.weight[rows] * z / div)
                bn.bias.copy_((b.bn.bias[rows] * z - b.aq.q_s) / div)
                a_bits = b.aq.hw_bits()
                body += [bn, qnn.QuantReLU(act_quant=_act_quant(a_bits, a_step / div), return_quant_tensor=False)]
                if b.kind == "conv" and b.pool > 1:
                    body.append(nn.MaxPool2d(b.pool))
            units = rows
        return cls(nn.Sequential(*body), net.image_shape, net.has_conv).eval()
