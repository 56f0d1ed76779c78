"""MACs and bit operations (BOPs) per layer (paper 001, eq. 14-16), for training and for compiled graphs.

BOPs_l = MACs_l * b_w,l * b_a,l-1: one multiply-accumulate of a b_w-bit weight with a b_a-bit input costs
b_w * b_a bit operations. The same numbers come out of three places, so a table row can be checked against
the hardware: a quant.layers.Net (or any module with the same layer kinds), a DJPQ network (with pruning
ratios from its gates, differentiable for the loss), and a compiled hw.ir graph.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

FLOAT_BITS = 32


@dataclass
class LayerCost:
    name: str
    macs: float
    weight_bits: float
    act_bits: float   # bits of this layer's input activations (b_a,l-1)
    in_channels: int
    out_channels: int

    @property
    def bops(self) -> float:
        return bops(self.macs, self.weight_bits, self.act_bits)

    def row(self) -> dict:
        return {**asdict(self), "bops": self.bops}


def layerwise_pruning_ratio(p_prev, p):
    """Eq. 14: the fraction of a layer's weights removed when p_prev of its inputs and p of its outputs go."""
    return 1 - (1 - p_prev) * (1 - p)


def macs(c_in: int, c_out: int, p_in=0.0, p_out=0.0, out_hw: tuple[int, int] = (1, 1),
         kernel: tuple[int, int] = (1, 1)):
    """Eq. 15: (1 - p_l-1) c_l-1 (1 - p_l) c_l m_w m_h k_w k_h (works on floats and on tensors)."""
    return (1 - p_in) * c_in * (1 - p_out) * c_out * out_hw[0] * out_hw[1] * kernel[0] * kernel[1]


def bops(layer_macs, b_w, b_a):
    """Eq. 16."""
    return layer_macs * b_w * b_a


def total_macs(rows: list[LayerCost]) -> float:
    return float(sum(r.macs for r in rows))


def total_bops(rows: list[LayerCost]) -> float:
    return float(sum(r.bops for r in rows))


def _act_bits(module: nn.Module) -> float | None:
    """Bit width of an activation module, or None if it does not quantize (a plain ReLU keeps float)."""
    quant = getattr(module, "act_quant", None)
    if quant is not None:
        return float(quant.bit_width())
    if isinstance(module, (nn.ReLU, nn.Identity)):
        return float(FLOAT_BITS)
    return None


def _weight_bits(layer: nn.Module) -> float:
    if hasattr(layer, "quant_weight"):
        return float(layer.quant_weight().bit_width)
    return float(FLOAT_BITS)


def net_costs(model: nn.Module, input_bits: float = FLOAT_BITS) -> list[LayerCost]:
    """Per-layer costs of a quant.layers.Net (quantized or float): walks `model.body` in order, taking each
    weight layer's input bits from the activation before it (the network input: `input_bits`)."""
    shape = model.image_shape if getattr(model, "has_conv", False) else (int(torch.tensor(model.image_shape).prod()),)
    spatial: dict[nn.Module, tuple[int, int]] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: spatial.__setitem__(mod, tuple(o.shape[2:4]) or (1, 1)))
             for m in model.body if isinstance(m, (nn.Linear, nn.Conv2d))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape).flatten(1))
    model.train(was_training)
    for h in hooks:
        h.remove()
    rows, a_bits = [], float(input_bits)
    for m in model.body:
        if isinstance(m, nn.Conv2d):
            rows.append(LayerCost(f"layer{len(rows)}", macs(m.in_channels, m.out_channels, out_hw=spatial[m],
                                                            kernel=m.kernel_size),
                                  _weight_bits(m), a_bits, m.in_channels, m.out_channels))
        elif isinstance(m, nn.Linear):
            rows.append(LayerCost(f"layer{len(rows)}", macs(m.in_features, m.out_features),
                                  _weight_bits(m), a_bits, m.in_features, m.out_features))
        else:
            b = _act_bits(m)
            if b is not None:
                a_bits = b
    return rows


def graph_costs(graph) -> list[LayerCost]:
    """Per-layer costs of a compiled hw.ir graph: MVAU layers; xnor counts 1x1-bit, ternary 2-bit weights."""
    from common.dtypes import dtype_bits

    rows = []
    for l in graph.compute_layers:
        w_bits = {"xnor": 1, "ternary": 2}.get(l.mode) or dtype_bits(l.weight_dtype)
        a_bits = 1 if l.mode == "xnor" else dtype_bits(l.input_dtype)
        rows.append(LayerCost(l.name, float(l.mh * l.mw * l.num_vectors), float(w_bits), float(a_bits), l.mw, l.mh))
    return rows


def at_float(rows: list[LayerCost]) -> list[LayerCost]:
    """The same (unpruned) layers at 32/32 bits: the baseline of the BOP compression ratio."""
    return [LayerCost(r.name, r.macs, FLOAT_BITS, FLOAT_BITS, r.in_channels, r.out_channels) for r in rows]


def summary(rows: list[LayerCost], reference: list[LayerCost]) -> dict:
    """Totals and compression ratios of `rows` against an unpruned float `reference` of the same network."""
    m, b = total_macs(rows), total_bops(rows)
    return {"macs": m, "bops": b, "mac_compression": total_macs(reference) / m if m else float("inf"),
            "bop_compression": total_bops(reference) / b if b else float("inf")}
