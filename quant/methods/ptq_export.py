"""From a trained PTQ network to the plain Brevitas Net that `pqhw export` writes, and the codebook artefact.

Ternary layers become QuantLinear/QuantConv2d with INT2 narrow-range weights {-1, 0, 1} under a constant
per-tensor scale: 1 for hidden layers, whose per-channel factor 1/||w_hat_row|| is folded into the next
batch norm, and gain/||w_hat|| for the classifier (a per-tensor scale the arg-max ignores). LSQ
activations become Brevitas uint/int activation quantizers with the learned step as a constant scale.
"""
from __future__ import annotations

import copy
from pathlib import Path

import brevitas.nn as qnn
import numpy as np
import torch
from brevitas.inject.enum import RestrictValueType, ScalingImplType
from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerTensorFloat, Uint8ActPerTensorFloat
from torch import nn

from common.errors import UserError
from common import codebook
from quant.layers import Net
from quant.methods.ptq_layers import LSQAct, PTQConv2d, PTQLinear


def const_ternary_weight(scale: float):
    """INT2 narrow-range weights with a fixed per-tensor scale: round(w / scale) in {-1, 0, 1}."""
    return Int8WeightPerTensorFloat.let(bit_width=2, narrow_range=True, scaling_impl_type=ScalingImplType.CONST,
                                        scaling_init=float(scale), restrict_scaling_type=RestrictValueType.FP)


def const_act(act: LSQAct) -> nn.Module:
    """A Brevitas activation with the LSQ step as its constant scale (Brevitas takes the clip range)."""
    s = float(act.step.detach())
    if act.hw_bits < 2 and not act.signed:
        raise UserError(f"activation with levels 0 .. {act.hi}: eq. 26 reads 2^(k-1) - 1, so uint{act.bits} "
                        "holds 1-bit activations, which the QONNX export does not carry; use act: uint3 "
                        "(eq. 26's levels 0 .. 3) or method.act_levels: lsq")
    common = dict(bit_width=act.hw_bits, scaling_impl_type=ScalingImplType.CONST,
                  restrict_scaling_type=RestrictValueType.FP)
    if act.signed:
        quant = Int8ActPerTensorFloat.let(narrow_range=False, scaling_init=s * (1 << (act.bits - 1)), **common)
        return qnn.QuantIdentity(act_quant=quant, return_quant_tensor=False)
    quant = Uint8ActPerTensorFloat.let(scaling_init=s * act.hi, **common)
    return qnn.QuantReLU(act_quant=quant, return_quant_tensor=False)


def _fold_into_bn(bn: nn.Module, c: torch.Tensor) -> nn.Module:
    """BN(c * z) as BN'(z): mean / c, gamma * c (c > 0 per channel), the same variance and eps."""
    bn = copy.deepcopy(bn)
    with torch.no_grad():
        bn.running_mean.div_(c)
        bn.weight.mul_(c)
    return bn


def _ternary_layer(layer, scale: float):
    q = layer.w.codes()
    if isinstance(layer, PTQLinear):
        new = qnn.QuantLinear(layer.in_features, layer.out_features, bias=False,
                              weight_quant=const_ternary_weight(scale))
    else:
        new = qnn.QuantConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, padding=layer.padding,
                              bias=False, weight_quant=const_ternary_weight(scale))
    with torch.no_grad():
        new.weight.copy_(q * scale)
    return new


def brevitas_net(run_cfg, model) -> Net:
    """The exportable Brevitas Net equal to the trained PTQ network (up to float rounding in batch norm)."""
    net = Net(run_cfg.model, model.image_shape, run_cfg.model.layers[-1].features, quantized=True)
    body = list(model.body)
    for j, m in enumerate(body):
        if type(m) in (nn.Linear, nn.Conv2d):
            raise UserError(f"layer {j}: kept in float (method.first_layer: float, the paper's setting), which "
                            "has no integer hardware; train with first_layer: config (its config quantizer) "
                            "to export")
        if isinstance(m, (PTQLinear, PTQConv2d)):
            if int(m.w.stage) != 1:
                raise UserError(f"layer {j}: weights are not ternary yet (the quantize phase did not run); "
                                "train the run to the end before exporting")
            s = m.w.row_scale()
            s = torch.where(s > 0, s, torch.ones_like(s))  # an all-zero layer: any positive factor is exact
            if j + 1 < len(body) and isinstance(body[j + 1], (nn.BatchNorm1d, nn.BatchNorm2d)):
                net.body[j] = _ternary_layer(m, 1.0)
                net.body[j + 1] = _fold_into_bn(body[j + 1], s)
            else:
                if not torch.allclose(s, s[0].expand_as(s)):
                    raise UserError(f"layer {j}: a layer without a following batch norm needs one per-tensor "
                                    "scale")
                net.body[j] = _ternary_layer(m, float(s[0]))
        elif isinstance(m, LSQAct):
            net.body[j] = const_act(m)
        elif not (j > 0 and isinstance(body[j - 1], (PTQLinear, PTQConv2d))
                  and isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))):
            net.body[j] = copy.deepcopy(m)
    return net.eval()


def ternary_matrices(model) -> list[tuple[int, np.ndarray | None]]:
    """(index, [rows, mw] integer weights) per weight layer of a Brevitas Net; None where not ternary."""
    out = []
    for i, layer in enumerate(model.quant_layers()):
        qw = layer.quant_weight()
        ints = qw.int().detach().cpu().numpy().astype(np.int64)
        ternary = float(qw.bit_width) == 2 and np.isin(ints, (-1, 0, 1)).all()
        out.append((i, ints.reshape(ints.shape[0], -1) if ternary else None))
    return out


def write_codebook(run_dir: Path) -> dict:
    """DIR/model.codebook.bin (each ternary layer's packed 5-bit codes, byte-aligned per layer, rows = output
    channels in PyTorch weight order) and DIR/model.codebook.json (layout, and bytes vs 2-bit and float32)."""
    from quant.checkpoint import atomic_write_bytes, load_run, write_json
    from quant.build import exportable

    run_dir = Path(run_dir)
    model, cfg, _ = load_run(run_dir)
    net = exportable(cfg, model).eval()
    blob, layers = b"", []
    for i, w in ternary_matrices(net):
        if w is None:
            layers.append({"layer": i, "ternary": False})
            continue
        data, bits = codebook.encode_bytes(w)
        if not np.array_equal(codebook.decode_bytes(data, *w.shape), w):
            raise RuntimeError(f"layer {i}: codebook round trip failed")
        layers.append({"layer": i, "ternary": True, "rows": int(w.shape[0]), "mw": int(w.shape[1]),
                       "offset": len(blob), "bytes": len(data), "bits": bits, "weights": int(w.size),
                       "bits_2bit": 2 * int(w.size), "bits_float32": 32 * int(w.size)})
        blob += data
    tern = [l for l in layers if l["ternary"]]
    if not tern:
        raise UserError(f"{run_dir}: the model has no ternary weight layer; --codebook needs ternary weights")
    weights = sum(l["weights"] for l in tern)
    report = {"file": str(run_dir / "model.codebook.bin"), "code_bits": codebook.CODE_BITS,
              "layers": layers, "bytes": len(blob), "bits": sum(l["bits"] for l in tern), "weights": weights,
              "bytes_2bit": -(-2 * weights // 8), "bytes_float32": 4 * weights,
              "ratio_vs_float32": round(4 * weights / len(blob), 2),
              "ratio_vs_2bit": round((2 * weights / 8) / len(blob), 3)}
    atomic_write_bytes(run_dir / "model.codebook.bin", blob)
    write_json(run_dir / "model.codebook.json", report)
    return report
