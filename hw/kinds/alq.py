"""`alq`: a matrix-vector layer (fully connected, or a lowered convolution) whose weights are sums of binary
bases (ALQ, paper 003), on bit planes.

Row r of the weight matrix is W[r] = sum_i 2^shift[r][i] (2 plane[r][i] - 1): up to NB live bases per output
channel (the per-group bit-width table is which slots are live), each a {-1, +1} vector stored as the bit
plane `plane` (bit j = input j, 1 for +1) with its power-of-two coordinate as a shift. The input elements are
split into their bit planes x = sum_k c_k 2^k bit_k (c_k = -1 for the sign bit of signed inputs, else +1), so

  acc[r] = sum_i sum_k c_k 2^(shift_i + k) (2 popcount(plane_i AND bit_k) - popcount(bit_k)),

which is sum_j W[r, j] x_j exactly: the xnor-popcount of a {-1, +1} basis against a {-1, +1} input plane,
2 popcount(XNOR) - n, reduced to {0, 1} input bits. Then MultiThreshold as in the MVAU (y = #{acc >= T} +
bias), or the accumulator itself for the classifier. Block pqhw_alq: one column fold of SIMD inputs for PE
neurons a cycle, all NB bases and IN_BITS planes in parallel; cycles (MH/PE)(MW/SIMD), as FINN's MVAU.

FINN sees such a layer as an integer MVAU (quant/methods/alq_export.py exports it so). The kind claims an
MVAU node only when the QONNX file carries ALQ's bases (metadata `pqhw.alq`, one entry per MVAU in graph
order), and refuses in one line when those bases do not reproduce FINN's integer weights exactly. A layer
whose rows come from an image (a conv's (C_in, kh, kw), the (C, H, W) flatten before the first linear layer:
the entry's `in_shape`) has its plane bits in torch's order; FINN's lowering orders those rows (kh, kw, C_in)
(Im2Col) and (H, W, C) (RemoveCNVtoFCFlatten), and the planes are permuted the same way before the check.
"""
from __future__ import annotations

import json
from typing import ClassVar, Literal

import numpy as np
from pydantic import model_validator

from common.dtypes import dtype_bits, smallest_dtype
from common.errors import UserError
from hw.kinds.base import LayerKind, MatrixShape, finn_ints, register
from hw.kinds.threshold import multithreshold
from hw.layer_rtl import (STYLE_CONST, STYLE_ROM, Fmt, LayerRTL, activation_params, check_folding, const_literal,
                          fmt_for_range, memh, pack)
from hw.resources import Memory

METADATA_KEY = "pqhw.alq"  # written by quant/methods/alq_export.py (hw may not import quant)
MAX_IN_BITS = 8
AUTO_CONST_MAX_BITS = 4096


def _bits_of(hex_plane: str, n: int) -> np.ndarray:
    v = int(hex_plane, 16)
    return np.array([(v >> j) & 1 for j in range(n)], dtype=np.int64)


def finn_row_order(hex_plane: str, in_shape: list[int]) -> str:
    """A plane over a row in (C, H, W) order as the same plane in FINN's (H, W, C) order."""
    c, h, w = in_shape
    bits = _bits_of(hex_plane, c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()
    return hex(int("".join("1" if b else "0" for b in bits[::-1]), 2))


def alq_metadata(model) -> dict | None:
    raw = model.get_metadata_prop(METADATA_KEY)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise UserError(f"model metadata {METADATA_KEY}: not valid JSON; export the run again with `pqhw export`") \
            from None


def input_planes(x: np.ndarray, fmt: Fmt) -> list[tuple[int, np.ndarray]]:
    """[(signed weight c_k 2^k, bit k of every element)] of integer inputs in `fmt` (two's complement)."""
    u = np.asarray(x, dtype=np.int64) & ((1 << fmt.bits) - 1)
    out = []
    for k in range(fmt.bits):
        c = -(1 << k) if fmt.signed and k == fmt.bits - 1 else 1 << k
        out.append((c, (u >> k) & 1))
    return out


@register
class ALQ(MatrixShape, LayerKind):
    kind: Literal["alq"] = "alq"
    mh: int
    mw: int
    simd: int = 1
    num_vectors: int = 1
    input_dtype: str
    acc_dtype: str
    output_dtype: str
    shifts: list[list[int]]        # [MH][NB]: the shift of each basis slot, -1 for an empty slot
    planes: list[list[str]]        # [MH][NB]: hex bit planes of MW bits (bit j = input j, 1 for +1)
    thresholds: list[list[int]] | None = None
    threshold_bias: int = 0
    weight_memory: Literal["auto", "const", "rom"] = "auto"

    finn_ops: ClassVar[tuple[str, ...]] = ("MVAU",)
    rtl_modules: ClassVar[dict[str, list[str]]] = {"pqhw_alq": ["pqhw_mem", "pqhw_mt", "pqhw_credit_fifo",
                                                                "pqhw_fifo"]}
    testbench: ClassVar[str] = "tb_alq"
    computes: ClassVar[bool] = True

    @model_validator(mode="after")
    def _check(self):
        if len(self.shifts) != self.mh or len(self.planes) != self.mh:
            raise ValueError(f"{self.name}: shifts/planes have {len(self.shifts)}/{len(self.planes)} rows, "
                             f"expected {self.mh}")
        nb = {len(r) for r in self.shifts} | {len(r) for r in self.planes}
        if len(nb) != 1 or min(nb) < 1:
            raise ValueError(f"{self.name}: every row needs the same number (>= 1) of basis slots")
        if any(s < -1 for r in self.shifts for s in r):
            raise ValueError(f"{self.name}: a shift is below -1 (-1 marks an empty slot)")
        return self

    # -- reading ----------------------------------------------------------------------------------------------
    @classmethod
    def claims(cls, model, node) -> bool:
        """An MVAU of a model that carries ALQ bases."""
        return node.op_type == "MVAU" and model.get_metadata_prop(METADATA_KEY) is not None

    @classmethod
    def from_finn(cls, model, node, attrs: dict, prev_dtype: str | None) -> "ALQ":
        meta = alq_metadata(model)
        where = f"node {node.name} (MVAU, ALQ)"
        mvaus = [n.name for n in model.graph.node if n.op_type == "MVAU"]
        index = mvaus.index(node.name)
        if meta.get("version") != 1 or index >= len(meta.get("layers", [])):
            raise UserError(f"{where}: the model's {METADATA_KEY} metadata has no bases for MVAU number {index} "
                            f"(it lists {len(meta.get('layers', []))}); export the run again with `pqhw export`")
        in_dt = attrs["inputDataType"]
        if dtype_bits(in_dt) > MAX_IN_BITS or in_dt in ("BIPOLAR",):
            raise UserError(f"{where}: inputs are {in_dt}; the ALQ block takes BINARY, UINTn and INTn of "
                            f"1..{MAX_IN_BITS} bits")
        w = finn_ints(model.get_initializer(node.input[1]), f"{node.name} weights").T
        mh, mw = int(attrs["MH"]), int(attrs["MW"])
        entry = meta["layers"][index]
        terms = entry["terms"]
        in_shape = entry.get("in_shape")
        if in_shape is not None:
            if len(in_shape) != 3 or int(np.prod(in_shape)) != mw:
                raise UserError(f"{where}: the ALQ bases' in_shape {in_shape} does not match the node's {mw} "
                                "inputs; export the run again with `pqhw export`")
            terms = [[(s, finn_row_order(p, in_shape)) for s, p in t] for t in terms]
        if w.shape != (mh, mw) or len(terms) != mh:
            raise UserError(f"{where}: the ALQ bases describe {len(terms)} channels, the node has {mh} x {mw} "
                            "weights; export the run again with `pqhw export`")
        nb = max(1, max(len(t) for t in terms))
        shifts = [[int(s) for s, _ in t] + [-1] * (nb - len(t)) for t in terms]
        planes = [[p for _, p in t] + ["0x0"] * (nb - len(t)) for t in terms]
        layer_w = weights_of(shifts, planes, mw)
        if not np.array_equal(layer_w, w):
            bad = int((layer_w != w).any(axis=1).sum())
            raise UserError(f"{where}: the ALQ bases in the model's metadata do not reproduce FINN's integer "
                            f"weights ({bad} of {mh} channels differ); export the run again with `pqhw export`")
        from hw.kinds.mvau import exact_acc_range

        lo, hi = exact_acc_range("int", w, in_dt)
        acc_dt = smallest_dtype(lo, hi)
        thresholds, bias, out_dt = None, 0, acc_dt
        if not attrs.get("noActivation", 0):
            t = finn_ints(model.get_initializer(node.input[2]), f"{node.name} thresholds")
            thresholds = np.clip(t, lo, hi + 1).tolist()
            bias = int(attrs.get("ActVal", 0))
            out_dt = attrs["outputDataType"]
            if out_dt == "BIPOLAR":
                raise UserError(f"{where}: BIPOLAR outputs are not supported; accepted: BINARY, INTn, UINTn")
        return cls(name=node.name, mh=mh, mw=mw, pe=int(attrs["PE"]), simd=int(attrs["SIMD"]),
                   num_vectors=int(np.prod(attrs.get("numInputVectors", [1]))), input_dtype=in_dt,
                   acc_dtype=acc_dt, output_dtype=out_dt, shifts=shifts, planes=planes, thresholds=thresholds,
                   threshold_bias=bias)

    # -- arithmetic -------------------------------------------------------------------------------------------
    @property
    def nb(self) -> int:
        return len(self.shifts[0])

    def plane_array(self) -> np.ndarray:
        """[MH, NB, MW] bits."""
        return np.stack([np.stack([_bits_of(p, self.mw) for p in row]) for row in self.planes])

    def shift_array(self) -> np.ndarray:
        return np.asarray(self.shifts, dtype=np.int64)

    def weight_array(self) -> np.ndarray:
        """The integer weights the bases stand for (what FINN's MVAU holds)."""
        return weights_of(self.shifts, self.planes, self.mw)

    def threshold_array(self) -> np.ndarray | None:
        return None if self.thresholds is None else np.asarray(self.thresholds, dtype=np.int64)

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """acc [N, MH] by the bit-plane formula of the module docstring (not by W @ x)."""
        x = np.asarray(x, dtype=np.int64).reshape(-1, self.mw)
        from hw.layer_rtl import dtype_fmt

        planes, shifts = self.plane_array(), self.shift_array()
        acc = np.zeros((len(x), self.mh), dtype=np.int64)
        for c, bits in input_planes(x, dtype_fmt(self.input_dtype)):
            count = bits.sum(axis=1)                                      # popcount(bit_k)  [N]
            for i in range(self.nb):
                live = shifts[:, i] >= 0
                ones = bits @ planes[:, i, :].T                           # popcount(plane AND bit_k) [N, MH]
                scale = np.where(live, np.left_shift(1, np.maximum(shifts[:, i], 0)), 0)
                acc += c * scale[None, :] * (2 * ones - count[:, None])
        return acc

    def reference(self, x: np.ndarray) -> np.ndarray:
        """[N, num_vectors * MW] -> [N, num_vectors * MH]."""
        x = np.asarray(x, dtype=np.int64)
        acc = self.accumulate(x.reshape(-1, self.mw))
        t = self.threshold_array()
        y = acc if t is None else multithreshold(acc, t, self.threshold_bias)
        return y.reshape(len(x), -1)

    @property
    def stream_dtype(self) -> str:
        return self.acc_dtype if self.thresholds is None else self.output_dtype

    def costs(self) -> dict:
        """Bits and bit operations: each live basis is a 1-bit weight against every input bit."""
        live = int((self.shift_array() >= 0).sum())
        a_bits = dtype_bits(self.input_dtype)
        macs = self.mh * self.mw * self.num_vectors
        return {"weight_bits": round(live / self.mh, 3), "act_bits": a_bits, "macs": macs,
                "bops": live * self.mw * a_bits * self.num_vectors, "basis_bits": live * self.mw}

    # -- hardware ---------------------------------------------------------------------------------------------
    def acc_range(self, in_fmt: Fmt) -> tuple[int, int]:
        w = self.weight_array()
        hi_terms = np.maximum(w * in_fmt.lo, w * in_fmt.hi)
        lo_terms = np.minimum(w * in_fmt.lo, w * in_fmt.hi)
        return int(lo_terms.sum(axis=1).min()), int(hi_terms.sum(axis=1).max())

    def rtl(self, in_fmt: Fmt, prefix: str) -> LayerRTL:
        """pqhw_alq's parameters; plane words in prefix_p.memh and thresholds in prefix_t.memh for ROMs."""
        check_folding(self.name, self.mw, self.simd, "simd")
        check_folding(self.name, self.mh, self.pe, "pe")
        if not 1 <= in_fmt.bits <= MAX_IN_BITS:
            raise UserError(f"layer {self.name}: the ALQ block takes inputs of 1..{MAX_IN_BITS} bits, "
                            f"got {in_fmt.bits}")
        lo, hi = self.acc_range(in_fmt)
        acc = fmt_for_range(lo, hi)
        if acc.bits > 32:
            raise UserError(f"layer {self.name}: accumulators of {acc.bits} bits; the ALQ block takes up to 32 "
                            "(retrain with a smaller method.exp_window)")
        pe, simd, nb = self.pe, self.simd, self.nb
        sf, nf = self.mw // simd, self.mh // pe
        planes, shifts = self.plane_array(), self.shift_array()
        sh_max = max(0, int(shifts.max()))
        sh_bits = max(1, sh_max.bit_length())
        # plane word nf*SF+sf: lane p, slot i, element s at bit (p*NB + i)*SIMD + s
        pwords = [pack(planes[n * pe:(n + 1) * pe, :, s * simd:(s + 1) * simd].ravel(), 1)
                  for n in range(nf) for s in range(sf)]
        pwidth = pe * nb * simd
        # exponent table word nf: lane p, slot i at (p*NB + i)*(SH_BITS+1): {live, shift}
        ecodes = np.where(shifts >= 0, (1 << sh_bits) | np.maximum(shifts, 0), 0)
        ewords = [pack(ecodes[n * pe:(n + 1) * pe].ravel(), sh_bits + 1) for n in range(nf)]
        act, twords, twidth, out = activation_params(self.name, self.threshold_array(), self.threshold_bias,
                                                   self.output_dtype, lo, hi, pe, acc)
        style = self._style(pwidth * len(pwords))
        params = {"MW": self.mw, "MH": self.mh, "SIMD": simd, "PE": pe, "NB": nb, "IN_BITS": in_fmt.bits,
                  "IN_SIGNED": int(in_fmt.signed), "SH_BITS": sh_bits, "ACC_BITS": acc.bits,
                  "ACC_SIGNED": int(acc.signed), "MEM_STYLE": style, **act,
                  "E_INIT": const_literal(ewords, pe * nb * (sh_bits + 1))}
        files = {}
        if style == STYLE_CONST:
            params["P_INIT"] = const_literal(pwords, pwidth)
            if twords:
                params["T_INIT"] = const_literal(twords, twidth)
        else:
            files[f"{prefix}_p.memh"] = memh(pwords, pwidth)
            params["P_FILE"] = f"{prefix}_p.memh"
            if twords:
                files[f"{prefix}_t.memh"] = memh(twords, twidth)
                params["T_FILE"] = f"{prefix}_t.memh"
        return LayerRTL("pqhw_alq", params, files, in_fmt, simd, out, pe)

    def _style(self, plane_bits: int) -> int:
        if self.weight_memory == "const":
            return STYLE_CONST
        if self.weight_memory == "rom":
            return STYLE_ROM
        unrolled = self.pe == self.mh and self.simd == self.mw
        return STYLE_CONST if unrolled or plane_bits <= AUTO_CONST_MAX_BITS else STYLE_ROM

    @classmethod
    def features(cls, module: str, p: dict, family: str) -> tuple[dict, list[Memory], int]:
        """What pqhw_alq elaborates, in the MVAU's vocabulary: PE x NB x IN_BITS popcounts of SIMD AND bits (1-bit
        leaves) and one shifted ACC_BITS term a basis into each lane's sum (`lanes`); the exponent table as
        constant bits. Against Yosys (synth_ecp5) on three digits layers at SIMD 1-2: LUTs 1,139 / 857 / 382
        estimated vs 1,139 / 616 / 435 (0, +39, -12 %), FFs 450 / 317 / 208 vs 498 / 350 / 267; not part of the
        calibration fit."""
        pe, simd, nb, ib, acc = p["PE"], p["SIMD"], p["NB"], p["IN_BITS"], p["ACC_BITS"]
        sf, nf, nt = p["MW"] // simd, p["MH"] // pe, p.get("NT", 0)
        pcw = (simd).bit_length()
        terms = pe * nb * ib
        f = {"blocks": 1, "lanes": terms * simd + pe * nb * acc, "acc_bits": pe * acc,
             "cmp_bits": pe * nt * p.get("TH_BITS", 0), "stream_bits": simd * ib + pe * p["OUT_BITS"],
             "reg_bits": simd * ib * 2 + terms * pcw + 3 * pe * acc + pe * nb * (p["SH_BITS"] + 1)
             + 2 * max(1, (sf * nf - 1).bit_length())}
        pw = pe * nb * simd
        tw = (1 if p.get("TH_SHARED", 0) else pe) * max(nt, 1) * p.get("TH_BITS", 0)
        mems = []
        rom = p.get("MEM_STYLE", 0) == 1
        for role, width, depth in (("bit_planes", pw, sf * nf), ("thresholds", tw if nt else 0,
                                                                 1 if p.get("TH_SHARED", 0) else nf)):
            if not width:
                continue
            if rom:
                mems.append(Memory(role, width, depth, rom=True))
            else:
                f["const_bits"] = f.get("const_bits", 0) + width * depth
            f["reg_bits"] += width
        f["const_bits"] = f.get("const_bits", 0) + nf * pe * nb * (p["SH_BITS"] + 1)
        if nf > 1:
            mems.append(Memory("input_buffer", simd * ib, sf, rom=False))
        mems.append(Memory("output_fifo", pe * p["OUT_BITS"], 8, rom=False))
        return f, mems, 0

    def weight_memories(self) -> tuple[str, ...]:
        return ("auto", "const", "rom")

    def summary(self, p: dict) -> str:
        style = "const" if p["MEM_STYLE"] == 0 else "rom"
        return (f"layer {self.name}, ALQ {p['MH']}x{p['MW']}, {p['NB']} bases x {p['IN_BITS']} input planes, "
                f"PE={p['PE']} SIMD={p['SIMD']}, bit planes {style}")

    def report_row(self) -> dict:
        return {"mode": f"alq{self.nb}", "mh": self.mh, "mw": self.mw, "simd": self.simd,
                "weight_dtype": f"ALQ{self.nb}", "acc_dtype": self.acc_dtype, **self.costs()}


def weights_of(shifts: list[list[int]], planes: list[list[str]], mw: int) -> np.ndarray:
    """W[r] = sum_i 2^shift (2 plane - 1) over the live slots: [MH, MW] integers."""
    w = np.zeros((len(shifts), mw), dtype=np.int64)
    for r, (srow, prow) in enumerate(zip(shifts, planes)):
        for s, p in zip(srow, prow):
            if s >= 0:
                w[r] += (2 * _bits_of(p, mw) - 1) << s
    return w
