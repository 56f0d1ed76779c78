"""Helpers every layer kind uses to describe its RTL block: stream element formats, packing, memory images,
threshold tables, sized literals. Each kind's `rtl()` (hw/kinds) maps the layer onto its block's
parameters with these; the emitter and the block testbenches both call it, so a block proven in its own
testbench is instantiated the same way in a generated accelerator.

Streams between layers carry elements in a `Fmt` (bits, signed). Accumulators are sized from the exact
reachable range of each layer (weights and input range), never from the declared acc_dtype: FINN can
report too narrow an accumulator for xnor layers. Thresholds are clipped to [lo, hi + 1] of the value
they compare against, which keeps every comparison result and fits a signed TH_BITS = value bits + 1
(signed values) or + 2 (unsigned values: hi + 1 = 2^bits).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.errors import UserError
from common.dtypes import dtype_bits, dtype_signed

STYLE_CONST, STYLE_ROM = 0, 1


@dataclass(frozen=True)
class Fmt:
    """Element format on a stream: width and two's complement or not."""
    bits: int
    signed: bool

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


def dtype_fmt(name: str) -> Fmt:
    """BINARY and BIPOLAR travel as unsigned {0,1} codes; the rest as their QONNX width and sign."""
    if name in ("BINARY", "BIPOLAR"):
        return Fmt(1, False)
    return Fmt(dtype_bits(name), dtype_signed(name))


def fmt_for_range(lo: int, hi: int) -> Fmt:
    if lo >= 0:
        return Fmt(max(1, int(hi).bit_length()), False)
    return Fmt(max(int(-lo - 1).bit_length(), int(hi).bit_length()) + 1, True)


def to_bits(values, bits: int) -> list[int]:
    return [int(v) & ((1 << bits) - 1) for v in np.asarray(values).ravel()]


def pack(values, bits: int) -> int:
    """Elements into one integer, element 0 in the least significant bits (two's complement)."""
    word = 0
    for i, v in enumerate(to_bits(values, bits)):
        word |= v << (i * bits)
    return word


def unpack(word: int, count: int, fmt: Fmt) -> list[int]:
    mask = (1 << fmt.bits) - 1
    out = []
    for i in range(count):
        v = (int(word) >> (i * fmt.bits)) & mask
        if fmt.signed and v >> (fmt.bits - 1):
            v -= 1 << fmt.bits
        out.append(v)
    return out


def memh(words: list[int], width: int) -> str:
    digits = max(1, (width + 3) // 4)
    return "".join(f"{w:0{digits}x}\n" for w in words)


def const_literal(words: list[int], width: int) -> str:
    total = 0
    for a, w in enumerate(words):
        total |= w << (a * width)
    return f"{width * len(words)}'h{total:x}"


def sv_param(value) -> str:
    """A parameter value as SystemVerilog source and as a simulator override: ints, sized literals, strings."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value if value[:1].isdigit() or "'" in value else f'"{value}"'
    return str(int(value))


def check_folding(name: str, total: int, fold: int, what: str) -> None:
    if fold < 1 or total % fold:
        raise UserError(f"layer {name}: {what}={fold} must divide {total}")


@dataclass
class LayerRTL:
    """One instantiated block: module name, parameters, memory files, stream formats and beat sizes."""
    module: str
    params: dict
    files: dict[str, str]
    in_fmt: Fmt
    in_n: int
    out_fmt: Fmt
    out_n: int


def threshold_bits(val: Fmt) -> int:
    """Signed width holding every clipped threshold in [lo, hi + 1] of the compared value's format."""
    return val.bits + (1 if val.signed else 2)


def _threshold_words(t: np.ndarray, lo: int, hi: int, pe: int, th_bits: int, shared: bool) -> tuple[list[int], int]:
    t = np.clip(t, lo, hi + 1)
    nt = t.shape[1]
    if shared:
        return [pack(t[0], th_bits)], nt * th_bits
    rows = [pack(t[nf * pe:(nf + 1) * pe].ravel(), th_bits) for nf in range(t.shape[0] // pe)]
    return rows, pe * nt * th_bits


def activation_params(name: str, t: np.ndarray | None, bias: int, out_dtype: str, lo: int, hi: int, pe: int,
                val_fmt: Fmt) -> tuple[dict, list[int], int, Fmt]:
    """Threshold parameters shared by the MVAU and the standalone unit: (params, words, width, out fmt)."""
    if t is None:
        out = Fmt(max(val_fmt.bits, dtype_fmt(out_dtype).bits), val_fmt.signed)
        return {"NT": 0, "OUT_BITS": out.bits}, [], 0, out
    shared = t.shape[0] == 1
    th_bits = threshold_bits(val_fmt)
    words, width = _threshold_words(t, lo, hi, pe, th_bits, shared)
    out = dtype_fmt(out_dtype)
    ylo, yhi = bias, bias + t.shape[1]
    if ylo < out.lo or yhi > out.hi:
        raise UserError(f"layer {name}: activation outputs span [{ylo}, {yhi}], output datatype {out_dtype} "
                        f"holds [{out.lo}, {out.hi}]")
    params = {"NT": t.shape[1], "TH_SHARED": int(shared), "TH_BITS": th_bits, "BIAS": bias, "OUT_BITS": out.bits,
              "TH_SORTED": int(bool(np.all(np.diff(t, axis=1) >= 0)))}
    return params, words, width, out


def layer_rtl(layer, in_fmt: Fmt, prefix: str) -> LayerRTL:
    """The block of any layer kind for input elements in `in_fmt`."""
    return layer.rtl(in_fmt, prefix)
