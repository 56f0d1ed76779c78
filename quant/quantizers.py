"""Brevitas injector quantizers, one name per precision a config can ask for.

Weights: binary (bipolar sign, scale 1), ternary ({-1, 0, +1} by a threshold at half the learned scale),
intN (signed, narrow range, learned per-tensor scale). Activations: binary (bipolar sign), intN / uintN.
Power of two (pow2:K): {0, +-2^k * scale, k = 0 .. K-1} with a per-tensor max-abs scale (see Pow2Weight).
Everything is per-tensor: FINN streamlines per-tensor scales through batch norm into integer thresholds,
and a per-tensor scale on the last layer folds into the final arg-max.
"""
from __future__ import annotations

import re

import torch
from brevitas.proxy import WeightQuantProxyFromInjector
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerTensorFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)

from torch import nn

from common.errors import UserError

POW2_MAX_EXPONENTS = 7  # pow2:7 reaches +-64, the widest that fits INT8
WEIGHT_CHOICES = f"binary, ternary, int2 .. int8, pow2:1 .. pow2:{POW2_MAX_EXPONENTS}"
ACT_CHOICES = "binary, int2 .. int8, uint1 .. uint8"


class TernaryWeight(Int8WeightPerTensorFloat):
    """Plain threshold ternary: round(w / s) clamped to {-1, 0, 1}, s learned from the weight statistics."""

    bit_width = 2
    narrow_range = True


def pow2_levels(exponents: int) -> list[int]:
    """The integer magnitudes of pow2:K, in increasing order: 0, 1, 2, 4, ..., 2^(K-1)."""
    return [0] + [1 << k for k in range(exponents)]


def nearest_pow2(y: torch.Tensor, exponents: int, zero: bool = True) -> torch.Tensor:
    """Each element of y (in units of the scale) mapped to the nearest of {0, +-2^k, k < exponents} (without
    0 when zero is False); a tie goes to the smaller magnitude. Not differentiable: see Pow2Round for the STE."""
    mags = torch.tensor(pow2_levels(exponents)[0 if zero else 1:], dtype=y.dtype, device=y.device)
    mid = (mags[:-1] + mags[1:]) / 2
    sign = torch.sign(y) if zero else torch.where(y < 0, -1.0, 1.0).to(y.dtype)
    return sign * mags[torch.bucketize(y.abs(), mid)]


class Pow2Round(nn.Module):
    """Brevitas float_to_int_impl of pow2:K: nearest power-of-two level, straight-through gradient."""

    def __init__(self, pow2_exponents: int):
        super().__init__()
        self.exponents = int(pow2_exponents)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + (nearest_pow2(y.detach(), self.exponents) - y).detach()


class Pow2IntScaling(nn.Module):
    """Brevitas int_scaling_impl of pow2:K: the largest level 2^(K-1), so a max-abs scale maps the largest
    weight onto the largest power of two (the INT(K+1) range itself would waste the top levels)."""

    def __init__(self, pow2_exponents: int):
        super().__init__()
        self.top = float(1 << (int(pow2_exponents) - 1))

    def forward(self, bit_width: torch.Tensor, signed=None) -> torch.Tensor:
        return torch.tensor(self.top, dtype=bit_width.dtype, device=bit_width.device)


class Pow2WeightProxy(WeightQuantProxyFromInjector):
    """In export mode the exporter receives the quantized weights instead of the latent float ones: a QONNX
    Quant node rounds to the nearest integer, which reproduces {0, +-2^k} exactly only from values already on
    that grid (for the other quantizers the two roundings are the same, so they need no such step).
    Brevitas picks export handlers by exact proxy type, so this proxy brings the QONNX weight handler itself:
    pow2 weights export through QONNX (what pqhw uses), not through Brevitas' other export formats."""

    @property
    def export_mode(self):
        return self._export_mode

    @export_mode.setter
    def export_mode(self, value):
        if value and self.export_handler is None:
            from brevitas.export.onnx.qonnx.handler import BrevitasWeightQuantProxyHandler

            self.export_handler = BrevitasWeightQuantProxyHandler()
        WeightQuantProxyFromInjector.export_mode.fset(self, value)

    def forward(self, x: torch.Tensor):
        if self.is_quant_enabled and self.export_mode:
            x = self.tensor_quant(x)[0].detach()
        return super().forward(x)


class Pow2Weight(Int8WeightPerTensorFloat):
    """pow2:K weights: sign * 2^k * scale for k in 0 .. K-1, or 0; scale = max|w| / 2^(K-1) per tensor.
    Exported as a QONNX Quant node of bit width K+1 (narrow range), i.e. FINN sees an INT(K+1) MatMul whose
    integer weights are all in {0, +-1, +-2, ..., +-2^(K-1)} (pow2:3: INT4 holding {0, +-1, +-2, +-4})."""

    pow2_exponents = 3
    bit_width = 4
    narrow_range = True
    float_to_int_impl = Pow2Round
    int_scaling_impl = Pow2IntScaling
    proxy_class = Pow2WeightProxy


def pow2_weight(exponents: int, **kw):
    """The pow2:K quantizer (kw: e.g. a constant scale for export)."""
    return Pow2Weight.let(pow2_exponents=exponents, bit_width=exponents + 1, **kw)


def parse_pow2(spec: str) -> int:
    """K of a 'pow2:K' spec, 0 for any other spec; a pow2 spec with K out of range is a UserError."""
    m = re.fullmatch(r"pow2:(\d+)", spec.strip().lower())
    if not m:
        return 0
    k = int(m.group(1))
    if not 1 <= k <= POW2_MAX_EXPONENTS:
        raise UserError(f"weight quantizer {spec!r}: pow2:K takes K = 1 .. {POW2_MAX_EXPONENTS} exponents "
                        f"(levels 0, +-1 .. +-2^(K-1)); accepted: {WEIGHT_CHOICES}")
    return k


def _parse(spec: str) -> tuple[str, int]:
    m = re.fullmatch(r"(binary|ternary|u?int)(\d*)", spec.strip().lower())
    if not m:
        return "", 0
    return m.group(1), int(m.group(2)) if m.group(2) else 0


def weight_quant(spec: str):
    """The Brevitas weight quantizer for a config string such as 'binary', 'ternary' or 'int4'."""
    exponents = parse_pow2(spec)
    if exponents:
        return pow2_weight(exponents)
    kind, bits = _parse(spec)
    if kind == "binary" and bits in (0, 1):
        return SignedBinaryWeightPerTensorConst
    if kind == "ternary" and bits in (0, 2):
        return TernaryWeight
    if kind == "int" and 2 <= bits <= 8:
        # int2 keeps all four levels {-2..1}; wider grids drop the most negative level (symmetric).
        return Int8WeightPerTensorFloat.let(bit_width=bits, narrow_range=bits > 2)
    raise UserError(f"weight quantizer {spec!r} is not supported; accepted: {WEIGHT_CHOICES}")


def act_quant(spec: str):
    """The Brevitas activation quantizer for 'binary', 'uintN' (after ReLU) or 'intN' (signed)."""
    kind, bits = _parse(spec)
    if kind == "binary" and bits in (0, 1):
        return SignedBinaryActPerTensorConst
    if kind == "uint" and 1 <= bits <= 8:
        return Uint8ActPerTensorFloat.let(bit_width=bits)
    if kind == "int" and 2 <= bits <= 8:
        return Int8ActPerTensorFloat.let(bit_width=bits, narrow_range=False)
    raise UserError(f"activation quantizer {spec!r} is not supported; accepted: {ACT_CHOICES}")


def weight_bits(spec: str) -> int:
    exponents = parse_pow2(spec)
    if exponents:  # 2K + 1 levels: sign and exponent code, 0 included
        return (2 * exponents).bit_length()
    kind, bits = _parse(spec)
    return {"binary": 1, "ternary": 2}.get(kind, bits)
