"""`mvau`: matrix-vector-activation unit, FINN's MVAU: out[n, r] = act(acc[n, r]).

acc = sum_k W[r, k] * x[n, k] (modes "ternary", "int") or acc = sum_k (W[r, k] == x[n, k]) (mode "xnor":
popcount of XNOR on {0,1} codes of bipolar values). act is MultiThreshold when thresholds are present:
y = #{i : acc >= T[r, i]} + threshold_bias, else the identity (y = acc in acc_dtype). The input vector
arrives MW/SIMD beats of SIMD elements; the output leaves MH/PE beats of PE elements, row r = nf * PE + p in
beat nf, lane p. Blocks: pqhw_mvau; pqhw_xnor_unrolled for a fully unrolled xnor layer with constant weights;
pqhw_sparse_unrolled for a fully unrolled ternary or integer layer with constant weights, which builds a
term per nonzero signed digit of each weight and nothing for a zero weight (hw/rtl); testbench sim/tb_mvau.

Integer layers whose weights are all 0 or +-2^k can run pqhw_mvau's shift arithmetic (MODE 3: a product is
the input shifted by k, not W_BITS partial products): `arith` "auto" picks it when its adder-tree leaves are
fewer bits than the integer mode's, "shift" forces it (refused for other weights), "int" keeps the integer
mode. The integers and the reference are the same either way.

Accumulators are sized from the exact reachable range of each layer (weights and input range), never from
the declared acc_dtype: FINN can report too narrow an accumulator for xnor layers.
"""
from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import model_validator

from common import codebook
from common.dtypes import dtype_bits, dtype_range, smallest_dtype
from common.errors import UserError
from hw.kinds.base import LayerKind, MatrixShape, finn_ints, register
from hw.kinds.threshold import multithreshold
from hw.layer_rtl import (STYLE_CONST, STYLE_ROM, Fmt, LayerRTL, activation_params, check_folding, const_literal,
                          dtype_fmt, fmt_for_range, memh, pack)
from hw.resources import Memory, literal_int
from hw.threshold_search import check_sorted, latency, search_features, search_params, use_search

MODES = {"xnor": 0, "ternary": 1, "int": 2, "shift": 3}
# "auto" bakes weights into logic when the layer is fully unrolled or its weights are this small.
AUTO_CONST_MAX_BITS = 4096
# A threshold table above this goes to a ROM even when the weights stay constants: one parameter literal per
# table, and Verilator takes at most 65,536 bits in one.
CONST_TABLE_MAX_BITS = 32768
MAX_BITS = 8  # the RTL's MVAU modes: binary, ternary, and integers of 2..8 bits


def mvau_accumulate(x: np.ndarray, weights: np.ndarray, mode: str) -> np.ndarray:
    """Accumulators [N, MH] for inputs [N, MW]; xnor counts positions where weight code == input code."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(weights, dtype=np.int64)
    if mode == "xnor":
        return (x[:, None, :] == w[None, :, :]).sum(axis=-1, dtype=np.int64)
    return x @ w.T


def exact_acc_range(mode: str, w: np.ndarray, in_dtype: str) -> tuple[int, int]:
    """Exact accumulator range over every input the datatype allows (per row, then the widest row)."""
    if mode == "xnor":
        return 0, int(w.shape[1])
    lo_x, hi_x = dtype_range(in_dtype)
    lo = np.minimum(w * lo_x, w * hi_x).sum(axis=1)
    hi = np.maximum(w * lo_x, w * hi_x).sum(axis=1)
    return int(lo.min()), int(hi.max())


@register
class MVAU(MatrixShape, LayerKind):
    kind: Literal["mvau"] = "mvau"
    mode: Literal["xnor", "ternary", "int"]
    mh: int
    mw: int
    simd: int = 1
    num_vectors: int = 1
    input_dtype: str
    weight_dtype: str
    acc_dtype: str
    output_dtype: str
    weights: list[list[int]]
    thresholds: list[list[int]] | None = None
    threshold_bias: int = 0
    weight_memory: Literal["auto", "const", "rom", "codebook"] = "auto"
    arith: Literal["auto", "int", "shift"] = "auto"
    # thresholds: "auto" searches many a row (hw/threshold_search.use_search), "search" / "parallel" force a way
    threshold_search: Literal["auto", "search", "parallel"] = "auto"

    finn_ops: ClassVar[tuple[str, ...]] = ("MVAU",)
    rtl_modules: ClassVar[dict[str, list[str]]] = {
        "pqhw_mvau": ["pqhw_mem", "pqhw_mt", "pqhw_mt_search", "pqhw_credit_fifo", "pqhw_fifo"],
        "pqhw_xnor_unrolled": ["pqhw_mt", "pqhw_credit_fifo", "pqhw_fifo"],
        "pqhw_sparse_unrolled": ["pqhw_mt", "pqhw_credit_fifo", "pqhw_fifo"],
    }
    testbench: ClassVar[str] = "tb_mvau"
    computes: ClassVar[bool] = True

    @model_validator(mode="after")
    def _check(self):
        w = np.asarray(self.weights)
        if w.shape != (self.mh, self.mw):
            raise ValueError(f"{self.name}: weights are {w.shape}, expected ({self.mh}, {self.mw})")
        if self.thresholds is not None:
            t = np.asarray(self.thresholds)
            if t.ndim != 2 or t.shape[0] not in (1, self.mh):
                raise ValueError(f"{self.name}: thresholds are {t.shape}, expected (1 or {self.mh}, T)")
        return self

    @classmethod
    def from_finn(cls, model, node, attrs: dict, prev_dtype: str | None) -> "MVAU":
        w_dt = attrs["weightDataType"]
        in_dt = attrs["inputDataType"]
        for what, dt in (("weights", w_dt), ("inputs", in_dt)):
            if dtype_bits(dt) > MAX_BITS:
                raise UserError(f"node {node.name} (MVAU): {what} are {dt}; the hardware takes binary, ternary and "
                                f"integers of 2..{MAX_BITS} bits (quantize this layer to at most {MAX_BITS} bits)")
        # FINN stores the weight matrix as [MW, MH] (the MatMul parameter); the graph uses rows = outputs.
        w = finn_ints(model.get_initializer(node.input[1]), f"{node.name} weights").T
        if attrs.get("binaryXnorMode", 0):
            mode = "xnor"
            w_dt = "BINARY"
        elif np.isin(w, (-1, 0, 1)).all():
            mode, w_dt = "ternary", "INT2"
        else:
            mode = "int"
        lo, hi = exact_acc_range(mode, w, in_dt)
        acc_dt = smallest_dtype(lo, hi)
        thresholds, bias, out_dt = None, 0, acc_dt
        if not attrs.get("noActivation", 0):
            t = finn_ints(model.get_initializer(node.input[2]), f"{node.name} thresholds")
            thresholds = np.clip(t, lo, hi + 1).tolist()  # beyond the accumulator's reach they never change y
            bias = int(attrs.get("ActVal", 0))
            out_dt = attrs["outputDataType"]
            if out_dt == "BIPOLAR":
                raise UserError(f"node {node.name} (MVAU): BIPOLAR outputs are not supported; accepted: "
                                "BINARY, INTn, UINTn")
        return cls(name=node.name, mode=mode, mh=int(attrs["MH"]), mw=int(attrs["MW"]), pe=int(attrs["PE"]),
                    simd=int(attrs["SIMD"]), num_vectors=int(np.prod(attrs.get("numInputVectors", [1]))),
                    input_dtype=in_dt, weight_dtype=w_dt, acc_dtype=acc_dt,
                    output_dtype=out_dt, weights=w.tolist(), thresholds=thresholds, threshold_bias=bias)

    def weight_array(self) -> np.ndarray:
        return np.asarray(self.weights, dtype=np.int64)

    def threshold_array(self) -> np.ndarray | None:
        return None if self.thresholds is None else np.asarray(self.thresholds, dtype=np.int64)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """[N, num_vectors * MW] -> [N, num_vectors * MH]: each of a frame's vectors on its own."""
        x = np.asarray(x, dtype=np.int64)
        acc = mvau_accumulate(x.reshape(-1, self.mw), self.weight_array(), self.mode)
        t = self.threshold_array()
        y = acc if t is None else multithreshold(acc, t, self.threshold_bias)
        return y.reshape(len(x), -1)

    @property
    def stream_dtype(self) -> str:
        return self.acc_dtype if self.thresholds is None else self.output_dtype

    def costs(self) -> dict:
        """Bits and bit operations (paper 001, eq. 16): xnor counts 1x1-bit, ternary 2-bit weights."""
        w_bits = {"xnor": 1, "ternary": 2}.get(self.mode) or dtype_bits(self.weight_dtype)
        a_bits = 1 if self.mode == "xnor" else dtype_bits(self.input_dtype)
        macs = self.mh * self.mw * self.num_vectors
        return {"weight_bits": w_bits, "act_bits": a_bits, "macs": macs, "bops": macs * w_bits * a_bits}

    def rtl(self, in_fmt: Fmt, prefix: str) -> LayerRTL:
        """pqhw_mvau's parameters (pqhw_xnor_unrolled for a fully unrolled xnor layer with constant weights);
        memory files named prefix_w.memh / prefix_t.memh."""
        check_folding(self.name, self.mw, self.simd, "simd")
        check_folding(self.name, self.mh, self.pe, "pe")
        wf = weight_fmt(self)
        check_weights(self, wf)
        if self.mode == "xnor" and in_fmt != Fmt(1, False):
            raise UserError(f"layer {self.name}: xnor mode needs BINARY inputs, got {in_fmt.bits}-bit elements")
        if self.mode == "int" and in_fmt.bits > 8:
            raise UserError(f"layer {self.name}: integer mode takes inputs of 1..8 bits, got {in_fmt.bits}")
        lo, hi = acc_range(self, in_fmt)
        acc = Fmt(max(1, self.mw.bit_length()), False) if self.mode == "xnor" else fmt_for_range(lo, hi)
        style = weight_style(self, wf.bits)
        pe, simd, sf, nf = self.pe, self.simd, self.mw // self.simd, self.mh // self.pe
        coded = self.weight_memory == "codebook"
        if unrolled_sparse(self, style):
            return sparse_unrolled_rtl(self, in_fmt, lo, hi, acc)
        shift = use_shift(self, in_fmt, wf)
        w = shift_codes(self.weight_array()) if shift else self.weight_array()
        if shift:
            wf = Fmt(shift_bits(self.weight_array()) + 2, False)
        if coded:
            wwords, wwidth = codebook_words(w, pe, simd)
        else:
            wwidth = pe * simd * wf.bits
            wwords = [pack(w[n * pe:(n + 1) * pe, s * simd:(s + 1) * simd], wf.bits)
                      for n in range(nf) for s in range(sf)]
        mode = "shift" if shift else self.mode
        act, twords, twidth, out = activation_params(self.name, self.threshold_array(), self.threshold_bias,
                                                   self.output_dtype, lo, hi, pe, acc)
        if (style == STYLE_CONST and self.weight_memory == "auto" and not (pe == self.mh and simd == self.mw)
                and len(twords) * twidth > CONST_TABLE_MAX_BITS):
            # a large threshold table (8-bit outputs: 255 thresholds a channel) goes to a ROM like large
            # weights; as one parameter literal it exceeded Verilator's 65,536 bits (LeNet-5 fc 2: 77,520)
            style = STYLE_ROM
        t = self.threshold_array()
        search = use_search(t, len(twords) * twidth, self.threshold_search) and not (
            self.mode == "xnor" and pe == self.mh and simd == self.mw and style == STYLE_CONST)
        if search:  # many thresholds a row: one read a stage instead of a word of all (hw/threshold_search)
            check_sorted(self.name, t)
            act.update(TH_SEARCH=1)
        params = {
            "MODE": MODES[mode], "MW": self.mw, "MH": self.mh, "SIMD": simd, "PE": pe,
            "IN_BITS": in_fmt.bits, "IN_SIGNED": int(in_fmt.signed), "W_BITS": wf.bits, "W_SIGNED": int(wf.signed),
            **({"SH_MAX": max_shift(self.weight_array())} if shift else {}),
            "ACC_BITS": acc.bits, "ACC_SIGNED": int(acc.signed), "MEM_STYLE": style, "W_CODEBOOK": int(coded),
            "FANIN": 0, **act,
        }
        params["FANIN"] = tree_fanin(params)
        files = {}
        if search:
            sp, files = search_params(np.clip(t, lo, hi + 1), pe, act["TH_BITS"], style, prefix)
            params.update(sp)
            twords = []
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

    @classmethod
    def features(cls, module: str, p: dict, family: str) -> tuple[dict, list[Memory], int]:
        if module == "pqhw_xnor_unrolled":
            f, mems = xnor_unrolled_features(p)
            return f, mems, 0
        if module == "pqhw_sparse_unrolled":
            f, mems = sparse_unrolled_features(p)
            return f, mems, 0
        return mvau_features(p, family == "ecp5")

    def weight_memories(self) -> tuple[str, ...]:
        """Codebook memories hold ternary weights only (quant/codebook: 5-bit codes of three weights)."""
        return ("auto", "const", "rom") + (("codebook",) if self.mode == "ternary" else ())

    def as_estimated(self) -> "MVAU":
        """Codebook weight memories are estimated as ROMs of their packed codes."""
        return self.model_copy(update={"weight_memory": "rom"}) if self.weight_memory == "codebook" else self

    def estimate_notes(self) -> dict:
        return {"weight_memory": self.weight_memory}

    def summary(self, p: dict) -> str:
        if "NTERM" in p:
            return (f"layer {self.name}, {p['MH']}x{p['MW']}, PE={p['MH']} SIMD={p['MW']}, weights const, "
                    f"{p['NTERM']} terms for {int(np.count_nonzero(self.weight_array()))} nonzero weights")
        if "MEM_STYLE" not in p:
            return f"layer {self.name}, {p['MH']}x{p['MW']}, PE={p['MH']} SIMD={p['MW']}, weights const"
        style = "const" if p["MEM_STYLE"] == 0 else "codebook rom" if p.get("W_CODEBOOK") else "rom"
        arith = ", shift arithmetic" if p["MODE"] == MODES["shift"] else ""
        return f"layer {self.name}, {p['MH']}x{p['MW']}, PE={p['PE']} SIMD={p['SIMD']}, weights {style}{arith}"

    def report_row(self) -> dict:
        return {"mode": self.mode, "arith": self.arith, "mh": self.mh, "mw": self.mw, "simd": self.simd,
                "weight_dtype": self.weight_dtype, "acc_dtype": self.acc_dtype, **self.costs()}


def acc_range(layer: "MVAU", in_fmt: Fmt) -> tuple[int, int]:
    """Smallest and largest accumulator any input in in_fmt's range can produce, over all rows."""
    if layer.mode == "xnor":
        return 0, layer.mw
    w = layer.weight_array()
    hi_terms = np.maximum(w * in_fmt.lo, w * in_fmt.hi)
    lo_terms = np.minimum(w * in_fmt.lo, w * in_fmt.hi)
    return int(lo_terms.sum(axis=1).min()), int(hi_terms.sum(axis=1).max())


def weight_fmt(layer: "MVAU") -> Fmt:
    if layer.mode == "xnor":
        return Fmt(1, False)
    if layer.mode == "ternary":
        return Fmt(2, True)
    return dtype_fmt(layer.weight_dtype)


def check_weights(layer: "MVAU", wf: Fmt) -> None:
    w = layer.weight_array()
    lo, hi = (0, 1) if layer.mode == "xnor" else (-1, 1) if layer.mode == "ternary" else (wf.lo, wf.hi)
    if w.size and (w.min() < lo or w.max() > hi):
        raise UserError(f"layer {layer.name}: weights span [{w.min()}, {w.max()}], mode {layer.mode} "
                        f"with {layer.weight_dtype} accepts [{lo}, {hi}]")
    if layer.mode == "int" and not 1 <= wf.bits <= 8:
        raise UserError(f"layer {layer.name}: integer weights of {wf.bits} bits are not implemented; accepted 1..8")


def weight_style(layer: "MVAU", wbits: int) -> int:
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


def tree_fanin(p: dict) -> int:
    """Terms added per adder-tree stage, so that each registered stage stays a few LUT levels deep behind the
    weight RAM. Measured on the ECP5-85F, out of context, at 50k frames/s (bench.lut_efficiency): FINN's
    TFC_1W1A (xnor) placed at 123.6 MHz with 16, 165.7 with 8 (2 % more LUTs), 153.4 with 4; the mnist5k TFC
    with 1-bit inputs (a ternary first layer, signed 2-bit leaves) at 110.0 MHz with 8, 153.9 with 4 (and
    1 % fewer LUTs)."""
    if p["MODE"] == MODES["xnor"]:
        return 8
    return 4 if product_bits(p) <= 4 else 2


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


def product_bits(p: dict) -> int:
    """Bits of one product's signed tree leaf in pqhw_mvau (what tree_fanin sizes the stages by)."""
    if p["MODE"] == MODES["xnor"]:
        return 2
    if p["MODE"] == MODES["ternary"]:
        return p["IN_BITS"] + 1
    if p["MODE"] == MODES["shift"]:
        return p["IN_BITS"] + 1 + p["SH_MAX"]
    return p["IN_BITS"] + p["W_BITS"] + 1


# Power-of-two weights: shift arithmetic ----------------------------------------------------------------------
def is_pow2(w: np.ndarray) -> bool:
    """Every weight is 0 or +-2^k (k >= 0)."""
    a = np.abs(np.asarray(w, dtype=np.int64))
    return bool(np.all((a & (a - 1)) == 0))


def max_shift(w: np.ndarray) -> int:
    """Largest k of a weight +-2^k (0 when all weights are 0 or +-1)."""
    a = np.abs(np.asarray(w, dtype=np.int64))
    return int(a.max()).bit_length() - 1 if a.size and a.max() > 0 else 0


def shift_bits(w: np.ndarray) -> int:
    """Bits of a shift amount in pqhw_mvau's shift codes (at least one)."""
    return max(1, max_shift(w).bit_length())


def shift_codes(w: np.ndarray) -> np.ndarray:
    """pqhw_mvau MODE 3 weight codes {negative, nonzero, k}: k in the low shift_bits bits."""
    w = np.asarray(w, dtype=np.int64)
    sb = shift_bits(w)
    a = np.abs(w)
    k = np.where(a > 0, np.log2(np.maximum(a, 1)).astype(np.int64), 0)
    return k | ((a > 0).astype(np.int64) << sb) | ((w < 0).astype(np.int64) << (sb + 1))


def _shift_lane_cost(in_bits: int, sh_max: int) -> float:
    """Leaf bits of one shift-mode product (the shifted term and its correction bit) plus the shifter's
    multiplexers (one 2:1 level per shift bit)."""
    pw = in_bits + 1 + sh_max
    return float(pw + 1 + (pw * max(1, sh_max.bit_length()) if sh_max else 0))


def use_shift(layer: "MVAU", in_fmt: Fmt, wf: Fmt) -> bool:
    """Whether pqhw_mvau runs this layer in shift arithmetic (see the module docstring)."""
    if layer.mode == "xnor" and layer.arith == "shift":
        raise UserError(f"layer {layer.name}: arith 'shift' needs integer weights; this layer is xnor "
                        "(accepted for it: auto, int)")
    if layer.mode != "int" or layer.arith == "int":
        return False  # a ternary layer's add/subtract/skip is the shift arithmetic with k = 0 already
    w = layer.weight_array()
    if not is_pow2(w):
        if layer.arith == "shift":
            bad = int(w.ravel()[np.flatnonzero(np.abs(w.ravel()) & (np.abs(w.ravel()) - 1))[0]])
            raise UserError(f"layer {layer.name}: arith 'shift' needs every weight 0 or +-2^k; weight {bad} is "
                            "not (accepted: auto or int for this layer)")
        return False
    if layer.arith == "shift":
        return True
    p = {"MODE": MODES["int"], "IN_BITS": in_fmt.bits, "W_BITS": wf.bits, "W_SIGNED": int(wf.signed)}
    return _shift_lane_cost(in_fmt.bits, max_shift(w)) < _lane_cost(p)


# Fully unrolled constant layers: a term per nonzero signed digit ---------------------------------------------
def csd_digits(v: int) -> list[tuple[int, bool]]:
    """Canonical signed digits of v: (k, negative) with v = sum of +-2^k, the fewest nonzero digits."""
    out, k, v = [], 0, int(v)
    while v:
        if v & 1:
            d = 2 - (v & 3)  # +1 or -1: leaves a multiple of 4
            out.append((k, d < 0))
            v -= d
        v >>= 1
        k += 1
    return out


def unrolled_sparse(layer: "MVAU", style: int) -> bool:
    """pqhw_sparse_unrolled takes the layer: ternary or integer, fully unrolled, weights as constants."""
    return (layer.mode in ("ternary", "int") and layer.pe == layer.mh and layer.simd == layer.mw
            and style == STYLE_CONST and layer.weight_memory != "codebook")


def sparse_terms(w: np.ndarray) -> tuple[list[tuple[int, int, bool]], list[int], list[int]]:
    """(terms (input, shift, negative) neuron after neuron, START offsets, subtracted terms per neuron)."""
    terms, start, negs = [], [0], []
    for row in np.asarray(w, dtype=np.int64):
        c = 0
        for s in np.flatnonzero(row):
            for k, neg in csd_digits(row[s]):
                terms.append((int(s), k, neg))
                c += neg
        start.append(len(terms))
        negs.append(c)
    return terms, start, negs


def sparse_unrolled_rtl(layer: "MVAU", in_fmt: Fmt, lo: int, hi: int, acc: Fmt) -> LayerRTL:
    """pqhw_sparse_unrolled's parameters. A neuron's tree sums to acc - C (C: its subtracted terms, each
    entering as ~v = -v - 1); with thresholds the thresholds are lowered by C, without them C is added."""
    if not 1 <= in_fmt.bits <= 16:
        raise UserError(f"layer {layer.name}: unrolled layers take inputs of 1..16 bits, got {in_fmt.bits}")
    w = layer.weight_array()
    terms, start, negs = sparse_terms(w)
    c = np.asarray(negs, dtype=np.int64)
    rlo = np.minimum(w * in_fmt.lo, w * in_fmt.hi).sum(axis=1)
    rhi = np.maximum(w * in_fmt.lo, w * in_fmt.hi).sum(axis=1)
    t = layer.threshold_array()
    tree_lo, tree_hi = int((rlo - c).min()), int((rhi - c).max())
    dot = fmt_for_range(min(tree_lo, lo), max(tree_hi, hi))
    dot = Fmt(max(2, dot.bits + (0 if dot.signed else 1)), True)
    src_bits = max(1, (layer.mw - 1).bit_length())
    sh_max = max((k for _, k, _ in terms), default=0)
    sh_bits = max(1, sh_max.bit_length())
    tb = src_bits + sh_bits + 1
    word = 0
    for i, (src, k, neg) in enumerate(terms):
        word |= (src | (k << src_bits) | (int(neg) << (src_bits + sh_bits))) << (i * tb)
    if t is not None:
        t = np.broadcast_to(t, (layer.mh, t.shape[1])) - c[:, None]
        add = np.zeros(layer.mh, dtype=np.int64)
        act, twords, twidth, out = activation_params(layer.name, t, layer.threshold_bias, layer.output_dtype,
                                                     tree_lo, tree_hi, layer.mh, dot)
    else:
        add = c
        act, twords, twidth, out = activation_params(layer.name, None, 0, layer.output_dtype, lo, hi, layer.mh, acc)
    params = {"MW": layer.mw, "MH": layer.mh, "IN_BITS": in_fmt.bits, "IN_SIGNED": int(in_fmt.signed),
              "NTERM": len(terms), "SRC_BITS": src_bits, "SH_BITS": sh_bits, "SH_MAX": sh_max,
              "DOT_BITS": dot.bits, "TERMS": f"{max(1, len(terms)) * tb}'h{word:x}",
              "START": const_literal(start, 32), "ADD_INIT": const_literal([pack(add, dot.bits)], layer.mh * dot.bits),
              **act}
    params.pop("TH_SHARED", None)
    if twords:
        params["T_INIT"] = const_literal(twords, twidth)
    return LayerRTL("pqhw_sparse_unrolled", params, {}, in_fmt, layer.mw, out, layer.mh)


def unrolled_xnor(params: dict) -> bool:
    """pqhw_xnor_unrolled takes the layer: xnor, fully unrolled (PE = MH, SIMD = MW), weights as constants.
    It shares each group of four inputs' popcount between all neurons with the same weight pattern."""
    return (params["MODE"] == MODES["xnor"] and params["PE"] == params["MH"] and params["SIMD"] == params["MW"]
            and params["MEM_STYLE"] == STYLE_CONST and not params["W_CODEBOOK"] and params["ACC_BITS"] <= 32)


# Resource features (hw.estimate prices them) -----------------------------------------------------------------
def _lane_cost(p: dict) -> float:
    """Bits of adder-tree leaves one PE x SIMD lane feeds in (as pqhw_mvau builds them): an XNOR bit; a
    ternary term and its correction bit; an integer product's partial products (plus the signed weight's
    correction)."""
    if p["MODE"] == 0:
        return 1.0
    if p["MODE"] == 1:
        return 2.0 * (p["IN_BITS"] + 1)
    if p["MODE"] == 3:
        return _shift_lane_cost(p["IN_BITS"], p["SH_MAX"])
    terms = p["W_BITS"] + (1 if p.get("W_SIGNED", 1) else 0)
    return float(terms * (p["IN_BITS"] + p["W_BITS"] + 1))


def mvau_features(p: dict, dsp_family: bool) -> tuple[dict, list[Memory], int]:
    pe, simd, mw, mh = p["PE"], p["SIMD"], p["MW"], p["MH"]
    sf, nf = mw // simd, mh // pe
    nt, acc = p.get("NT", 0), p["ACC_BITS"]
    th_words = 1 if p.get("TH_SHARED", 0) else nf
    tw = (1 if p.get("TH_SHARED", 0) else pe) * max(nt, 1) * p.get("TH_BITS", 0)
    ww = pe * simd * p["W_BITS"]
    search = nt > 0 and p.get("TH_SEARCH", 0)
    f = {"blocks": 1, "lanes": pe * simd * _lane_cost(p), "acc_bits": pe * acc,
         "cmp_bits": 0 if search else pe * nt * p.get("TH_BITS", 0),
         "stream_bits": simd * p["IN_BITS"] + pe * p["OUT_BITS"],
         "reg_bits": simd * p["IN_BITS"] + 3 * pe * acc + 2 * math.ceil(math.log2(max(sf * nf, 2)))}
    mems = []
    rom = p.get("MEM_STYLE", 0) == 1
    if search:  # the thresholds are the search's stage tables (hw/threshold_search)
        sf_, smems = search_features(p, pe, nf, acc)
        f["cmp_bits"] = sf_.pop("cmp_bits")
        for k, v in sf_.items():
            f[k] = f.get(k, 0) + v
        mems += smems
    for role, width, depth in (("weights", ww, sf * nf), ("thresholds", tw if nt and not search else 0, th_words)):
        if not width:
            continue
        if rom:
            mems.append(Memory(role, width, depth, rom=True))
            f["reg_bits"] += width
        elif depth > 1:
            f["const_bits"] = f.get("const_bits", 0) + width * depth
            f["reg_bits"] += width
    if nf > 1:
        mems.append(Memory("input_buffer", simd * p["IN_BITS"], sf, rom=False))
    # the output FIFO holds what is in flight: the search's stages instead of pqhw_mt's two registers
    extra = latency(nt, p.get("TH_WREG", 0)) - 2 if search else 0
    mems.append(Memory("output_fifo", pe * p["OUT_BITS"], p.get("OUT_DEPTH", 8) + extra, rom=False))
    dsps = pe * simd if dsp_family and p["MODE"] == 2 and min(p["IN_BITS"], p["W_BITS"]) >= 3 else 0
    return f, mems, dsps


def xnor_unrolled_features(p: dict) -> tuple[dict, list[Memory]]:
    """pqhw_xnor_unrolled as it elaborates: registered 3-bit partials, one per weight pattern a group of
    four inputs uses (a pattern and its complement share one when there are thresholds), and each
    neuron's exact-width adder tree; `unrolled_bits` counts the bits of both, which is about one LUT and
    one flip-flop each (measured on all three families from 16x64 to 64x64)."""
    mw, mh, nt = p["MW"], p["MH"], p.get("NT", 0)
    weights = literal_int(p["W_INIT"])
    groups = (mw + 3) // 4
    levels = (groups - 1).bit_length()
    comp = nt > 0 and groups > 1

    def node_bits(k: int) -> int:
        return math.ceil(math.log2((7 * min(1 << k, groups) if comp else min(4 << k, mw)) + 1))

    partials = 0
    for g in range(groups):
        gs = min(4, mw - 4 * g)
        used = set()
        for n in range(mh):
            pat = (weights >> (n * mw + 4 * g)) & ((1 << gs) - 1)
            flip = comp and (g < groups - 1 or groups % 2 == 0) and pat >> (gs - 1) & 1
            used.add(pat ^ ((1 << gs) - 1) if flip else pat)
        partials += len(used)
    tree = mh * sum(((groups + (1 << k) - 1) >> k) * node_bits(k) for k in range(1, levels + 1))
    f = {"blocks": 1, "unrolled_bits": 3 * partials + tree, "stream_bits": mw + mh * p["OUT_BITS"]}
    return f, [Memory("output_fifo", mh * p["OUT_BITS"], p.get("OUT_DEPTH", 4), rom=False)]


def sparse_unrolled_features(p: dict) -> tuple[dict, list[Memory]]:
    """pqhw_sparse_unrolled as it elaborates: each neuron's adder nodes at their widths (`unrolled_bits`,
    about a LUT and a flip-flop a bit, as pqhw_xnor_unrolled's), the pass-through registers of neurons with
    fewer terms than the widest and the input register (flip-flops), and the comparisons against constants;
    nothing for a zero weight."""
    mh, dot = p["MH"], p["DOT_BITS"]
    lw = p["IN_BITS"] + 1 + p["SH_MAX"]
    start = literal_int(p["START"])
    counts = [((start >> (32 * (n + 1))) & 0xFFFFFFFF) - ((start >> (32 * n)) & 0xFFFFFFFF) for n in range(mh)]
    levels = (max(counts) - 1).bit_length() if max(counts) > 1 else 0
    add_bits = pass_bits = 0
    for c in counts:
        m = max(c, 1)
        for k in range(1, levels + 1):
            nodes, prev = -(-m // (1 << k)), -(-m // (1 << (k - 1)))
            width = min(lw + k, dot)
            adders = prev // 2
            add_bits += adders * width
            pass_bits += (nodes - adders) * width
    # Comparisons against constant thresholds: 0.43 of a ROM comparison bit's LUTs; the fixed part is a block's
    # and its output FIFO (fitted on 32x64 ternary layers at 50-100 % zeros, Yosys for ECP5).
    nt = p.get("NT", 0)
    f = {"blocks": 1, "unrolled_bits": add_bits, "cmp_bits": 0.43 * mh * nt * dot,
         "reg_bits": pass_bits + p["MW"] * p["IN_BITS"]}
    return f, [Memory("output_fifo", mh * p["OUT_BITS"], p.get("OUT_DEPTH", 4), rom=False)]
