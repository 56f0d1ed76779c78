"""Per-layer RTL parameters and memory images: the one place that maps an hw.ir layer onto the
parameters of its hand-written module (hw/rtl). The emitter and the block testbenches both use it, so a
block proven in its own testbench is instantiated the same way in a generated accelerator.

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
from hw.ir import MVAU, LabelSelect, Threshold, dtype_bits, dtype_signed
from common import codebook

MODES = {"xnor": 0, "ternary": 1, "int": 2}
STYLE_CONST, STYLE_ROM = 0, 1
# "auto" bakes weights into logic when the layer is fully unrolled or its weights are this small.
AUTO_CONST_MAX_BITS = 4096


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


def acc_range(layer: MVAU, in_fmt: Fmt) -> tuple[int, int]:
    """Smallest and largest accumulator any input in in_fmt's range can produce, over all rows."""
    if layer.mode == "xnor":
        return 0, layer.mw
    w = layer.weight_array()
    hi_terms = np.maximum(w * in_fmt.lo, w * in_fmt.hi)
    lo_terms = np.minimum(w * in_fmt.lo, w * in_fmt.hi)
    return int(lo_terms.sum(axis=1).min()), int(hi_terms.sum(axis=1).max())


def weight_fmt(layer: MVAU) -> Fmt:
    if layer.mode == "xnor":
        return Fmt(1, False)
    if layer.mode == "ternary":
        return Fmt(2, True)
    return dtype_fmt(layer.weight_dtype)


def check_weights(layer: MVAU, wf: Fmt) -> None:
    w = layer.weight_array()
    lo, hi = (0, 1) if layer.mode == "xnor" else (-1, 1) if layer.mode == "ternary" else (wf.lo, wf.hi)
    if w.size and (w.min() < lo or w.max() > hi):
        raise UserError(f"layer {layer.name}: weights span [{w.min()}, {w.max()}], mode {layer.mode} "
                        f"with {layer.weight_dtype} accepts [{lo}, {hi}]")
    if layer.mode == "int" and not 1 <= wf.bits <= 8:
        raise UserError(f"layer {layer.name}: integer weights of {wf.bits} bits are not implemented; accepted 1..8")


def check_folding(name: str, total: int, fold: int, what: str) -> None:
    if fold < 1 or total % fold:
        raise UserError(f"layer {name}: {what}={fold} must divide {total}")


def weight_style(layer: MVAU, wbits: int) -> int:
    if layer.weight_memory == "codebook":
        if layer.mode != "ternary":
            raise UserError(f"layer {layer.name}: weight_memory 'codebook' stores ternary weights; this layer is "
                            f"{layer.mode} (accepted for it: auto, const, rom)")
        return STYLE_ROM
    if layer.weight_memory == "const":
        return STYLE_CONST
    if layer.weight_memory == "rom":
        return STYLE_ROM
    unrolled = layer.pe == layer.mh and layer.simd == layer.mw
    return STYLE_CONST if unrolled or layer.mh * layer.mw * wbits <= AUTO_CONST_MAX_BITS else STYLE_ROM


def tree_fanin(product_bits: int) -> int:
    """Terms added per adder-tree stage: wide for 1-bit popcounts, narrower as products grow, so each
    registered stage stays a few LUT levels deep."""
    return 16 if product_bits <= 2 else 8 if product_bits <= 4 else 2


def codebook_words(w: np.ndarray, pe: int, simd: int) -> tuple[list[int], int]:
    """Weight words of 5-bit codes (common.codebook): per lane the SIMD weights of one column fold,
    zero-padded to a multiple of three, lane p code g at bit (p*CG + g)*5. Returns (words, word width)."""
    nf, sf = w.shape[0] // pe, w.shape[1] // simd
    cg = codebook.groups_per_row(simd)
    words = []
    for n in range(nf):
        for s in range(sf):
            codes = codebook.encode_rows(w[n * pe:(n + 1) * pe, s * simd:(s + 1) * simd])
            words.append(pack(codes.ravel(), codebook.CODE_BITS))
    return words, pe * cg * codebook.CODE_BITS


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


def _activation(name: str, t: np.ndarray | None, bias: int, out_dtype: str, lo: int, hi: int, pe: int,
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


def mvau_rtl(layer: MVAU, in_fmt: Fmt, prefix: str) -> LayerRTL:
    """Parameters of pqhw_mvau for one layer (pqhw_xnor_unrolled for a fully unrolled xnor layer with
    constant weights); memory files named prefix_w.memh / prefix_t.memh."""
    check_folding(layer.name, layer.mw, layer.simd, "simd")
    check_folding(layer.name, layer.mh, layer.pe, "pe")
    if layer.num_vectors != 1:
        raise UserError(f"layer {layer.name}: num_vectors={layer.num_vectors} (convolution) is not implemented; "
                        f"accepted 1")
    wf = weight_fmt(layer)
    check_weights(layer, wf)
    if layer.mode == "xnor" and in_fmt != Fmt(1, False):
        raise UserError(f"layer {layer.name}: xnor mode needs BINARY inputs, got {in_fmt.bits}-bit elements")
    if layer.mode == "int" and in_fmt.bits > 8:
        raise UserError(f"layer {layer.name}: integer mode takes inputs of 1..8 bits, got {in_fmt.bits}")
    lo, hi = acc_range(layer, in_fmt)
    acc = Fmt(max(1, layer.mw.bit_length()), False) if layer.mode == "xnor" else fmt_for_range(lo, hi)
    style = weight_style(layer, wf.bits)
    pe, simd, sf, nf = layer.pe, layer.simd, layer.mw // layer.simd, layer.mh // layer.pe
    w = layer.weight_array()
    coded = layer.weight_memory == "codebook"
    if coded:
        wwords, wwidth = codebook_words(w, pe, simd)
    else:
        wwidth = pe * simd * wf.bits
        wwords = [pack(w[n * pe:(n + 1) * pe, s * simd:(s + 1) * simd], wf.bits) for n in range(nf) for s in range(sf)]
    product_bits = {"xnor": 2, "ternary": in_fmt.bits + 1, "int": in_fmt.bits + wf.bits + 1}[layer.mode]
    act, twords, twidth, out = _activation(layer.name, layer.threshold_array(), layer.threshold_bias,
                                           layer.output_dtype, lo, hi, pe, acc)
    params = {
        "MODE": MODES[layer.mode], "MW": layer.mw, "MH": layer.mh, "SIMD": simd, "PE": pe,
        "IN_BITS": in_fmt.bits, "IN_SIGNED": int(in_fmt.signed), "W_BITS": wf.bits, "W_SIGNED": int(wf.signed),
        "ACC_BITS": acc.bits, "ACC_SIGNED": int(acc.signed), "MEM_STYLE": style, "W_CODEBOOK": int(coded),
        "FANIN": tree_fanin(product_bits), **act,
    }
    files = {}
    if style == STYLE_CONST:
        params["W_INIT"] = const_literal(wwords, wwidth)
        if twords:
            params["T_INIT"] = const_literal(twords, twidth)
    else:
        files[f"{prefix}_w.memh"] = memh(wwords, wwidth)
        params["W_FILE"] = f"{prefix}_w.memh"
        if twords:
            files[f"{prefix}_t.memh"] = memh(twords, twidth)
            params["T_FILE"] = f"{prefix}_t.memh"
    if unrolled_xnor(params):
        keep = ("MW", "MH", "ACC_BITS", "NT", "TH_SHARED", "TH_BITS", "BIAS", "OUT_BITS", "W_INIT", "T_INIT")
        return LayerRTL("pqhw_xnor_unrolled", {k: params[k] for k in keep if k in params}, files, in_fmt, simd,
                        out, pe)
    return LayerRTL("pqhw_mvau", params, files, in_fmt, simd, out, pe)


def unrolled_xnor(params: dict) -> bool:
    """pqhw_xnor_unrolled takes the layer: xnor, fully unrolled (PE = MH, SIMD = MW), weights as constants.
    It shares each group of four inputs' popcount between all neurons with the same weight pattern."""
    return (params["MODE"] == MODES["xnor"] and params["PE"] == params["MH"] and params["SIMD"] == params["MW"]
            and params["MEM_STYLE"] == STYLE_CONST and not params["W_CODEBOOK"] and params["ACC_BITS"] <= 32)


def threshold_rtl(layer: Threshold, in_fmt: Fmt, prefix: str, style: int = STYLE_CONST) -> LayerRTL:
    check_folding(layer.name, layer.channels, layer.pe, "pe")
    if layer.num_vectors != 1:
        raise UserError(f"layer {layer.name}: num_vectors={layer.num_vectors} is not implemented; accepted 1")
    t = layer.threshold_array()
    if t.ndim != 2 or t.shape[0] not in (1, layer.channels):
        raise UserError(f"layer {layer.name}: thresholds are {t.shape}, expected (1 or {layer.channels}, T)")
    act, words, width, out = _activation(layer.name, t, layer.threshold_bias, layer.output_dtype,
                                         in_fmt.lo, in_fmt.hi, layer.pe, in_fmt)
    params = {"CH": layer.channels, "PE": layer.pe, "IN_BITS": in_fmt.bits, "IN_SIGNED": int(in_fmt.signed),
              "MEM_STYLE": style, **{k: v for k, v in act.items()}}
    files = {}
    if style == STYLE_CONST:
        params["T_INIT"] = const_literal(words, width)
    else:
        files[f"{prefix}_t.memh"] = memh(words, width)
        params["T_FILE"] = f"{prefix}_t.memh"
    return LayerRTL("pqhw_threshold", params, files, in_fmt, layer.pe, out, layer.pe)


def label_select_rtl(layer: LabelSelect, in_fmt: Fmt) -> LayerRTL:
    check_folding(layer.name, layer.channels, layer.pe, "pe")
    if layer.k != 1:
        raise UserError(f"layer {layer.name}: label select with k={layer.k} is not implemented; accepted k=1")
    out_bits = max(1, (layer.channels - 1).bit_length())
    params = {"CH": layer.channels, "PE": layer.pe, "IN_BITS": in_fmt.bits, "IN_SIGNED": int(in_fmt.signed),
              "OUT_BITS": out_bits}
    return LayerRTL("pqhw_label_select", params, {}, in_fmt, layer.pe, Fmt(out_bits, False), 1)


def layer_rtl(layer, in_fmt: Fmt, prefix: str) -> LayerRTL:
    if isinstance(layer, MVAU):
        return mvau_rtl(layer, in_fmt, prefix)
    if isinstance(layer, Threshold):
        return threshold_rtl(layer, in_fmt, prefix)
    if isinstance(layer, LabelSelect):
        return label_select_rtl(layer, in_fmt)
    raise UserError(f"layer {layer.name}: kind {layer.kind!r} has no RTL block")
