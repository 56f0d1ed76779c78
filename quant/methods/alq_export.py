"""The hardware form of a trained ALQ network (paper 003): a Brevitas network computing the same integers as
the ALQNet, and the binary bases that pqhw's `alq` layer kind builds its bit planes from.

Why the integers are exact:
- `pow2: true`: every live alpha is 2^e (or, with `mantissa_bits` m, an m-bit mantissa times 2^e), so a weight
  w = sum_i alpha_i beta_i is W_int 2^-f with f the smallest power of two the layer needs: an integer layer
  with a power-of-two per-tensor scale (`exp_window` bounds W_int).
- `act_levels: uniform`: an activation is step * q, q = 0 .. 2^I_x - 1, step a power of two, taken as Brevitas'
  QuantReLU takes it (alq_net.ALQAct), so FINN turns bias, scales and the step into integer thresholds.
- `classifier_bias: false`: the logits are W_int q times one scale, which the arg-max absorbs.

The bases travel in the QONNX file's metadata (`METADATA_KEY`): per layer and output channel the live bases
as (shift, bit plane) terms, W_int[r] = sum_i 2^shift_i (2 plane_i - 1) (a basis whose alpha has several
mantissa bits is as many terms with the same plane). A plane's bits are in torch's order of the row: (C_in, kh,
kw) for a conv, (C, H, W) for the linear layer after the flatten; such layers say so in `in_shape`, because
FINN's lowering (Im2Col, and RemoveCNVtoFCFlatten) orders the rows (kh, kw, C_in) / (H, W, C) and the hardware
permutes the planes the same way. The hardware reads them back and checks that they reproduce FINN's integer
weights exactly (hw/kinds/alq.py). Everything else the export refuses in one line: free activation levels have
no exact integer route yet, and only channel-wise groups (one set of bases per output channel) are built.
"""
from __future__ import annotations

import json
import math

import numpy as np
import torch
from torch import nn

from common.errors import UserError

METADATA_KEY = "pqhw.alq"
METADATA_VERSION = 1


class ALQExportNet(nn.Module):
    """Integer pixels (as floats) [N, features] -> logits, Brevitas layers only (viewed as [N, C, H, W] first
    when `image_shape` is given, as quant.layers.Net does); `qonnx_metadata` goes into the exported file."""

    def __init__(self, blocks: list[nn.Module], metadata: dict[str, str], image_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.body = nn.Sequential(*blocks)
        self.qonnx_metadata = metadata
        self.image_shape = image_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image_shape is not None:
            x = x.reshape(-1, *self.image_shape)  # -1: the exported graph keeps any batch
        return self.body(x)

    def quant_layers(self) -> list[nn.Module]:
        import brevitas.nn as qnn

        return [b for b in self.body if isinstance(b, (qnn.QuantLinear, qnn.QuantConv2d))]


def check_exportable(run_cfg, m, model) -> None:
    """One line for each thing the integer route cannot take yet."""
    if not m.pow2:
        raise UserError("method.pow2: exporting ALQ to integer hardware needs pow2: true (alpha and gamma powers "
                        "of two); retrain with it")
    if m.act_levels != "uniform":
        raise UserError("method.act_levels: 'free' levels x_ref + D gamma are not uniform, and no exact integer "
                        "route for them is built yet; retrain with act_levels: uniform")
    if m.classifier_bias:
        raise UserError("method.classifier_bias: a float bias on the last layer leaves the logits off the integer "
                        "grid; retrain with classifier_bias: false")
    for i, layer in enumerate(model.quant_layers()):
        if layer.w.kind != "channel":
            raise UserError(f"method.structures.{i}: {layer.w.structure!r} groups have no hardware export yet "
                            "(one set of bases per output channel is built); accepted: channel (as "
                            "mnist5k_alq_lenet5_hw.yaml sets for every layer)")
        if not bool(layer.w.quantized):
            raise UserError(f"model.layers.{i}: weights are not binary bases yet (ALQ's init phase did not run); "
                            "train the run to the end before exporting")


def layer_integers(w) -> tuple[np.ndarray, int, list[list[tuple[int, str]]]]:
    """(W_int [O, I], f, terms): the weights as integers times 2^-f, and per output channel its bases as terms
    (shift, plane as hex, bit j = input j, 1 for +1) with W_int[r] = sum 2^shift (2 plane - 1): one term per
    basis with power-of-two alpha, one per mantissa bit set with `mantissa_bits` > 1 (same plane)."""
    coords = w.coords().detach().double()
    mask = w.mask.detach() > 0
    live = coords[mask]
    if live.numel() == 0 or bool((live <= 0).any()):
        raise UserError(f"ALQ layer of shape {list(w.shape)}: a live basis has alpha 0 (no power of two); retrain "
                        "with pow2: true and exp_window set")
    f = next((f for f in range(-64, 65) if bool(torch.all(live * 2.0 ** f == torch.round(live * 2.0 ** f)))), None)
    if f is None:
        raise UserError("ALQ layer: alpha are not on a power-of-two grid; retrain with pow2: true")
    ints = torch.round(coords * 2.0 ** f).long()
    b = w.B.detach() > 0  # [G, n, I]
    terms: list[list[tuple[int, str]]] = []
    w_int = np.zeros((w.groups, w.n), dtype=np.int64)
    for g in range(w.groups):
        row = []
        for i in range(w.max_bits):
            if not bool(mask[g, i]):
                continue
            plane = b[g, :, i].numpy()
            code = hex(int("".join("1" if v else "0" for v in plane[::-1]), 2))
            c = int(ints[g, i])
            w_int[g] += (2 * plane.astype(np.int64) - 1) * c
            row += [(k, code) for k in range(c.bit_length()) if c >> k & 1]
        terms.append(row)
    w_hat = w.w_hat().detach().double().numpy().reshape(w.groups, w.n)
    if not np.array_equal(w_hat * 2.0 ** f, w_int.astype(np.float64)):
        raise RuntimeError("ALQ layer: the bases do not reproduce the float32 weights exactly (exponents span "
                           "more than float32 holds; set method.exp_window)")
    return w_int.reshape(w.shape), f, terms


def _weight_quant(bits: int, scale: float):
    from brevitas.core.restrict_val import RestrictValueType
    from brevitas.core.scaling import ScalingImplType
    from brevitas.quant import Int8WeightPerTensorFloat

    top = (1 << (bits - 1)) - 1  # narrow range: Brevitas divides the constant by this
    return Int8WeightPerTensorFloat.let(bit_width=bits, narrow_range=True, scaling_init=scale * top,
                                        scaling_impl_type=ScalingImplType.CONST,
                                        restrict_scaling_type=RestrictValueType.FP)


def _act_quant(bits: int, step: float):
    from brevitas.core.restrict_val import RestrictValueType
    from brevitas.core.scaling import ScalingImplType
    from brevitas.quant import Uint8ActPerTensorFloat

    return Uint8ActPerTensorFloat.let(bit_width=bits, scaling_init=step * ((1 << bits) - 1),
                                      scaling_impl_type=ScalingImplType.CONST,
                                      restrict_scaling_type=RestrictValueType.FP)


def _integer_layer(layer, where: str, in_shape: list[int] | None):
    """(the Brevitas layer holding W_int 2^-f, its metadata entry)."""
    import brevitas.nn as qnn

    from quant.methods.alq_net import ALQConv2d

    w_int, f, terms = layer_integers(layer.w)
    bits = max(2, int(np.abs(w_int).max()).bit_length() + 1)
    scale = 2.0 ** -f
    quant = _weight_quant(bits, scale)
    bias = layer.bias is not None
    if isinstance(layer, ALQConv2d):
        o, c, k, _ = layer.w.shape
        new = qnn.QuantConv2d(c, o, k, padding=layer.padding, bias=bias, weight_quant=quant)
        in_shape = [c, k, k]
    else:
        new = qnn.QuantLinear(layer.w.shape[1], layer.w.shape[0], bias=bias, weight_quant=quant)
    with torch.no_grad():
        new.weight.copy_(torch.as_tensor(w_int * scale, dtype=new.weight.dtype))
        if bias:
            new.bias.copy_(layer.bias.detach())
    got = new.quant_weight()
    if float(got.scale) != scale or not torch.equal(got.value.detach().double() / scale,
                                                    torch.as_tensor(w_int, dtype=torch.float64)):
        raise RuntimeError(f"{where}: Brevitas does not reproduce the ALQ integer weights")
    side = {"shape": list(layer.w.shape), "scale_exponent": f, "weight_bits": bits, "terms": terms}
    if in_shape is not None:
        side["in_shape"] = list(in_shape)
    return new, side


def brevitas_act(act, where: str):
    import brevitas.nn as qnn

    step = float(act.step())
    e = math.log2(step) if step > 0 else math.nan
    if not e == round(e):
        raise UserError(f"{where}: activation step {step:g} is not a power of two; retrain with pow2: true")
    new = qnn.QuantReLU(act_quant=_act_quant(act.bits, step), return_quant_tensor=False)
    if float(new.act_quant.scale()) != step:
        raise RuntimeError(f"{where}: Brevitas' activation scale {float(new.act_quant.scale())} is not the step {step}")
    return new


def brevitas_net(run_cfg, m, model) -> ALQExportNet:
    """The Brevitas network equal to `model` (checked on the test split: integer logits, vector for vector)."""
    import copy

    from quant.layers import FlattenAnyBatch
    from quant.methods.alq_net import ALQAct, ALQConv2d, ALQLinear

    check_exportable(run_cfg, m, model)
    model = model.eval()
    blocks, layers, index, acts = [], [], 0, 0
    image = tuple(model.image_shape) if model.has_conv else None
    c, h, w = image if image is not None else (0, 0, 0)
    flat_from: list[int] | None = None  # (C, H, W) of the image the next linear layer takes, flattened
    for mod in model.body:
        if isinstance(mod, (ALQLinear, ALQConv2d)):
            new, side = _integer_layer(mod, f"model.layers.{index}", flat_from)
            blocks.append(new)
            layers.append(side)
            index += 1
            flat_from = None
            if isinstance(mod, ALQConv2d):
                k, p = mod.w.shape[2], mod.padding
                c, h, w = mod.w.shape[0], h + 2 * p - k + 1, w + 2 * p - k + 1
        elif isinstance(mod, ALQAct):
            blocks.append(brevitas_act(mod, f"activation {acts} (after model.layers.{index - 1})"))
            acts += 1
        elif isinstance(mod, nn.Identity):
            continue
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            blocks.append(copy.deepcopy(mod))
        elif isinstance(mod, nn.MaxPool2d):
            blocks.append(copy.deepcopy(mod))
            h, w = h // mod.kernel_size, w // mod.kernel_size
        elif isinstance(mod, nn.Flatten):
            blocks.append(FlattenAnyBatch(c * h * w))  # nn.Flatten would pin the export batch
            flat_from = [c, h, w]
        else:
            raise RuntimeError(f"ALQ export: no Brevitas form for {type(mod).__name__}")
    meta = {"version": METADATA_VERSION, "act_bits": m.act_bits, "layers": layers}
    net = ALQExportNet(blocks, {METADATA_KEY: json.dumps(meta, separators=(",", ":"))}, image).eval()
    check_equal(model, net, run_cfg)
    return net


def logit_scale(net: ALQExportNet) -> float:
    from quant.export import logit_scale as scale_of

    return scale_of(net)


def check_equal(model, net: ALQExportNet, run_cfg) -> None:
    """The ALQNet and its Brevitas form give the same integer logits on every test vector."""
    from quant.data import load_dataset
    from quant.export import brevitas_logits, to_integers

    split = load_dataset(run_cfg.dataset)
    x = split.x_test.reshape(len(split.x_test), -1)
    scale = logit_scale(net)
    with torch.no_grad():
        ref = to_integers(model(torch.as_tensor(x, dtype=torch.float32)).numpy(), scale, "ALQ model")
    got = to_integers(brevitas_logits(net, x), scale, "Brevitas form of the ALQ model")
    bad = np.nonzero((ref != got).any(axis=1))[0]
    if len(bad):
        raise RuntimeError(f"the Brevitas form of the ALQ model differs on {len(bad)} of {len(x)} test vectors; "
                           f"first: vector {int(bad[0])}: {ref[bad[0]].tolist()} vs {got[bad[0]].tolist()}")
