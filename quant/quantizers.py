"""Brevitas injector quantizers, one name per precision a config can ask for.

Weights: binary (bipolar sign, scale 1), ternary ({-1, 0, +1} by a threshold at half the learned scale),
intN (signed, narrow range, learned per-tensor scale). Activations: binary (bipolar sign), intN / uintN.
Everything is per-tensor: FINN streamlines per-tensor scales through batch norm into integer thresholds,
and a per-tensor scale on the last layer folds into the final arg-max.
"""
from __future__ import annotations

import re

from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerTensorFloat,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
    Uint8ActPerTensorFloat,
)

from common.errors import UserError

WEIGHT_CHOICES = "binary, ternary, int2 .. int8"
ACT_CHOICES = "binary, int2 .. int8, uint1 .. uint8"


class TernaryWeight(Int8WeightPerTensorFloat):
    """Plain threshold ternary: round(w / s) clamped to {-1, 0, 1}, s learned from the weight statistics."""

    bit_width = 2
    narrow_range = True


def _parse(spec: str) -> tuple[str, int]:
    m = re.fullmatch(r"(binary|ternary|u?int)(\d*)", spec.strip().lower())
    if not m:
        return "", 0
    return m.group(1), int(m.group(2)) if m.group(2) else 0


def weight_quant(spec: str):
    """The Brevitas weight quantizer for a config string such as 'binary', 'ternary' or 'int4'."""
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
    kind, bits = _parse(spec)
    return {"binary": 1, "ternary": 2}.get(kind, bits)
