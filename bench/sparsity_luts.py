"""LUTs against sparsity at a fixed topology: fully unrolled constant-weight layers (pqhw_sparse_unrolled)
build nothing for a zero weight, so their LUTs should fall in proportion to the nonzeros (issue 17, part 3).

One random layer (Gaussian weights, seed 0) is pruned by magnitude to 0, 50, 75, 90 and 95 % zeros (and 100 %,
which leaves only what does not depend on the weights: the output FIFO and its credit), quantized (ternary:
the sign of each kept weight; int3: round to +-1..+-3 of a per-layer scale), given thresholds inside its
accumulator range, and synthesised by Yosys for ECP5 as the emitter instantiates it (hw.layer_rtl). Each row
records LUTs, FFs, the estimate (hw.estimate), and `vs_proportional`: (LUTs / dense LUTs) / (nonzeros / dense
nonzeros), 1.0 being LUTs exactly in proportion to nonzeros; the target is within 15 % above 50 % sparsity.
`vs_proportional_net` takes the 100 % row (the weight-independent part) off both LUTs first.
    python -m bench.sparsity_luts [--formats ternary int3] [--shape 32 64]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SPARSITIES = (0.0, 0.5, 0.75, 0.9, 0.95, 1.0)
SHAPE = (16, 64)        # neurons x inputs: a quarter of a digits hidden layer (Yosys takes minutes a dense one)
INPUT_DTYPE = "UINT2"   # the ADMM and PTQ configs' 2-bit activations
THRESHOLDS = 3          # uint2 outputs
TARGET = 0.15


def pruned_weights(shape, sparsity: float, fmt: str, seed: int = 0) -> np.ndarray:
    """Integer weights of one Gaussian layer with the smallest-magnitude `sparsity` of them set to zero."""
    w = np.random.default_rng(seed).standard_normal(shape)
    k = int(round(sparsity * w.size))
    order = np.argsort(np.abs(w), axis=None, kind="stable")
    keep = np.ones(w.size, dtype=bool)
    keep[order[:k]] = False
    keep = keep.reshape(shape)
    if fmt == "ternary":
        q = np.sign(w).astype(np.int64)
    elif fmt == "int3":
        scale = np.abs(w).max() / 3
        q = np.clip(np.round(w / scale), -3, 3).astype(np.int64)
        q = np.where(q == 0, np.sign(w), q).astype(np.int64)  # a kept weight stays nonzero
    else:
        raise ValueError(f"format {fmt!r}: accepted ternary, int3")
    return np.where(keep, q, 0)


def layer_at(shape, sparsity: float, fmt: str, seed: int = 0):
    from hw.kinds.mvau import MVAU, acc_range
    from hw.layer_rtl import dtype_fmt
    from sim import graphs

    mh, mw = shape
    w = pruned_weights(shape, sparsity, fmt, seed)
    mode, w_dt = ("ternary", "INT2") if fmt == "ternary" else ("int", "INT3")
    probe = MVAU(name="sparse", mode=mode, mh=mh, mw=mw, pe=mh, simd=mw, input_dtype=INPUT_DTYPE, weight_dtype=w_dt,
                 acc_dtype="INT32", output_dtype="UINT2", weights=w.tolist(), weight_memory="const")
    lo, hi = acc_range(probe, dtype_fmt(INPUT_DTYPE))
    t = graphs.random_thresholds(np.random.default_rng(seed + 1), lo, hi, mh, THRESHOLDS)
    return probe.model_copy(update={"acc_dtype": graphs._dtype_name(lo, hi), "thresholds": t.tolist()})


def curve(work: Path, fmt: str, shape=SHAPE, sparsities=SPARSITIES, seed: int = 0) -> list[dict]:
    from bench.rtl_bench import synth_layer
    from hw.estimate import COEFFS, block_features, linear
    from hw.layer_rtl import dtype_fmt, layer_rtl

    rows = []
    for s in sparsities:
        layer = layer_at(shape, s, fmt, seed)
        rtl = layer_rtl(layer, dtype_fmt(INPUT_DTYPE), "blk")
        f = block_features(rtl.module, rtl.params, "ecp5")["features"]
        t0 = time.monotonic()
        r = synth_layer(layer, dtype_fmt(INPUT_DTYPE), "ecp5", Path(work) / f"{fmt}_{int(round(100 * s))}")
        row = {"format": fmt, "sparsity": s, "nonzeros": int(np.count_nonzero(layer.weight_array())),
               "terms": rtl.params["NTERM"], "module": r["module"], "luts": r["luts"], "ffs": r["ffs"],
               "lutram_cells": r["lutram_cells"], "estimate_luts": round(linear(COEFFS["ecp5"]["luts"], f)),
               "yosys_seconds": round(time.monotonic() - t0, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    dense = next(r for r in rows if r["sparsity"] == 0.0)
    empty = next((r for r in rows if r["sparsity"] == 1.0), None)
    for r in rows:
        if r["nonzeros"] and r is not dense:
            share = r["nonzeros"] / dense["nonzeros"]
            r["vs_proportional"] = round(r["luts"] / dense["luts"] / share, 3)
            if empty is not None:
                r["vs_proportional_net"] = round((r["luts"] - empty["luts"]) / (dense["luts"] - empty["luts"]) / share,
                                                 3)
    return rows


def run(work: Path, formats=("ternary",), shape=SHAPE) -> dict:
    """The `make bench ONLY=sparsity_luts` hook: one curve per weight format."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    out = {"shape": list(shape), "input_dtype": INPUT_DTYPE, "thresholds": THRESHOLDS, "family": "ecp5",
           "target": f"vs_proportional within {TARGET:.0%} of 1.0 above 50 % sparsity", "curves": {}}
    for fmt in formats:
        rows = curve(work, fmt, shape)
        above = [r for r in rows if 0.5 < r["sparsity"] < 1.0]
        out["curves"][fmt] = {"rows": rows,
                              "max_deviation_above_50": round(max(abs(r["vs_proportional"] - 1) for r in above), 3),
                              "max_deviation_above_50_net": round(max(abs(r["vs_proportional_net"] - 1)
                                                                      for r in above), 3)}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "sparsity_luts")
    parser.add_argument("--formats", nargs="*", default=["ternary"], choices=["ternary", "int3"])
    parser.add_argument("--shape", nargs=2, type=int, default=list(SHAPE), metavar=("MH", "MW"))
    args = parser.parse_args(argv)
    print(json.dumps(run(args.work, args.formats, tuple(args.shape)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
