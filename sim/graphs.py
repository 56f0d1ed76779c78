"""Random hw.ir layers and graphs with known structure, for block tests, accelerator tests and benches.

Thresholds are drawn inside the reachable accumulator range (so outputs vary), sorted per channel as FINN
produces them; `edge_thresholds` adds values at and beyond the limits of that range.
"""
from __future__ import annotations

import numpy as np

from hw.ir import Graph, dtype_range

from hw.kinds.mvau import MVAU

from hw.kinds.label_select import LabelSelect

from hw.kinds.threshold import Threshold
from hw.layer_rtl import dtype_fmt, fmt_for_range
from hw.kinds.mvau import acc_range


def random_weights(rng, mode: str, mh: int, mw: int, weight_dtype: str) -> np.ndarray:
    if mode == "xnor":
        return rng.integers(0, 2, (mh, mw))
    if mode == "ternary":
        return rng.integers(-1, 2, (mh, mw))
    lo, hi = dtype_range(weight_dtype)
    return rng.integers(lo, hi + 1, (mh, mw))


def random_thresholds(rng, lo: int, hi: int, rows: int, nt: int, edge: bool = False) -> np.ndarray:
    t = rng.integers(lo, hi + 2, (rows, nt))
    if edge:
        limits = np.array([lo - 5, lo, hi, hi + 1, hi + 7])
        t[:, : min(nt, len(limits))] = limits[: min(nt, len(limits))]
    return np.sort(t, axis=1)


def mvau(rng, name: str, mode: str, mh: int, mw: int, pe: int = 1, simd: int = 1, input_dtype: str = "BINARY",
         weight_dtype: str = "BINARY", nt: int = 1, out_signed: bool = False, shared: bool = False,
         edge: bool = False, weight_memory: str = "auto") -> MVAU:
    """A layer with thresholds (nt > 0: output UINT/INT of the count) or without (nt = 0: the accumulator)."""
    w = random_weights(rng, mode, mh, mw, weight_dtype)
    probe = MVAU(name=name, mode=mode, mh=mh, mw=mw, pe=pe, simd=simd, input_dtype=input_dtype,
                 weight_dtype=weight_dtype, acc_dtype="INT32", output_dtype="INT32", weights=w.tolist())
    lo, hi = acc_range(probe, dtype_fmt(input_dtype))
    acc_dtype = "UINT%d" % max(1, mw.bit_length()) if mode == "xnor" else _dtype_name(lo, hi)
    if nt == 0:
        return probe.model_copy(update={"acc_dtype": acc_dtype, "output_dtype": acc_dtype,
                                        "weight_memory": weight_memory})
    t = random_thresholds(rng, lo, hi, 1 if shared else mh, nt, edge)
    bias = -(nt // 2) - 1 if out_signed else 0
    out = _dtype_name(bias, bias + nt)
    if nt == 1 and not out_signed:
        out = "BINARY"
    return MVAU(name=name, mode=mode, mh=mh, mw=mw, pe=pe, simd=simd, input_dtype=input_dtype,
                weight_dtype=weight_dtype, acc_dtype=acc_dtype, output_dtype=out, weights=w.tolist(),
                thresholds=t.tolist(), threshold_bias=bias, weight_memory=weight_memory)


def _dtype_name(lo: int, hi: int) -> str:
    f = fmt_for_range(lo, hi)
    return f"{'INT' if f.signed else 'UINT'}{f.bits}"


def threshold(rng, name: str, channels: int, pe: int, input_dtype: str, nt: int, shared: bool = False,
              bias: int = 0, edge: bool = False) -> Threshold:
    lo, hi = dtype_range(input_dtype)
    t = random_thresholds(rng, lo, hi, 1 if shared else channels, nt, edge)
    return Threshold(name=name, channels=channels, pe=pe, input_dtype=input_dtype,
                     output_dtype=_dtype_name(min(bias, 0), bias + nt), thresholds=t.tolist(), threshold_bias=bias)


def random_inputs(rng, dtype: str, n: int, length: int) -> np.ndarray:
    lo, hi = dtype_range(dtype)
    return rng.integers(lo, hi + 1, (n, length))


def mlp(seed: int, mode: str, sizes: list[int], folds: list[tuple[int, int]], input_dtype: str,
        weight_dtype: str, act_dtype: str, weight_memory: str = "auto") -> Graph:
    """A classifier: hidden MVAUs thresholded to act_dtype, a last MVAU without activation, label select.

    sizes = [inputs, hidden..., classes]; folds = (pe, simd) per MVAU.
    """
    rng = np.random.default_rng(seed)
    layers = []
    cur = input_dtype
    for i, (mw, mh) in enumerate(zip(sizes[:-1], sizes[1:])):
        pe, simd = folds[i]
        last = i == len(sizes) - 2
        lmode = "xnor" if mode == "xnor" else mode
        wdt = "BINARY" if mode == "xnor" else weight_dtype
        if last:
            layers.append(mvau(rng, f"mvau{i}", lmode, mh, mw, pe, simd, cur, wdt, nt=0, weight_memory=weight_memory))
        else:
            a_lo, a_hi = dtype_range(act_dtype)
            nt = a_hi - a_lo
            layer = mvau(rng, f"mvau{i}", lmode, mh, mw, pe, simd, cur, wdt, nt=nt,
                         out_signed=a_lo < 0, weight_memory=weight_memory)
            layer = layer.model_copy(update={"output_dtype": act_dtype, "threshold_bias": a_lo})
            layers.append(layer)
            cur = act_dtype
    classes = sizes[-1]
    last = layers[-1]
    layers.append(LabelSelect(name="label", channels=classes, pe=last.pe, input_dtype=last.output_dtype,
                              output_dtype="UINT%d" % max(1, (classes - 1).bit_length())))
    return Graph(input_dtype=input_dtype, input_shape=[sizes[0]], layers=layers)
