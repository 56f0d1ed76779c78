"""Thresholds compared all at once (pqhw_mt) against found by binary search (pqhw_mt_search), as Yosys builds one
MVAU for the ECP5: what hw/threshold_search.use_search's rule is measured by. Layers: 4-bit and 8-bit outputs
(3, 7, 15 and 255 thresholds a channel), per-channel and shared rows, constant tables and ROMs, beside the estimate."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# (label, channels, inputs, PE, SIMD, thresholds a channel, shared, weight memory)
LAYERS = [
    ("2-bit out, 16 ch, PE 2, const", 16, 16, 2, 4, 3, False, "const"),
    ("3-bit out, 16 ch, PE 2, const", 16, 16, 2, 4, 7, False, "const"),
    ("4-bit out, 16 ch, PE 2, const", 16, 16, 2, 4, 15, False, "const"),
    ("4-bit out, 64 ch, PE 4, rom", 64, 64, 4, 8, 15, False, "rom"),
    ("8-bit out, 24 ch, PE 1, rom", 24, 32, 1, 8, 255, False, "rom"),
    ("8-bit out, 24 ch, PE 4, rom", 24, 32, 4, 8, 255, False, "rom"),
    ("8-bit out, shared row, PE 4, const", 8, 8, 4, 2, 255, True, "const"),
]


def _layer(mh, mw, pe, simd, nt, shared, memory, how):
    from sim import graphs

    layer = graphs.mvau(np.random.default_rng(mh + nt), "l", "int", mh, mw, pe, simd, "UINT4", "INT4", nt=nt,
                        shared=shared, weight_memory=memory)
    return layer.model_copy(update={"threshold_search": how})


def run(work: Path, layers=LAYERS) -> dict:
    from bench.rtl_bench import synth_layer
    from hw.estimate import COEFFS, block_features, linear
    from hw.layer_rtl import dtype_fmt

    rows = []
    for label, mh, mw, pe, simd, nt, shared, memory in layers:
        row = {"layer": label}
        for how in ("parallel", "search"):
            layer = _layer(mh, mw, pe, simd, nt, shared, memory, how)
            got = synth_layer(layer, dtype_fmt("UINT4"), "ecp5", Path(work) / f"{label}_{how}".replace(" ", "_"))
            est = block_features(got["module"], got["params"], "ecp5")
            row[how] = {"luts": got["luts"], "ffs": got["ffs"], "brams": got["brams"],
                        "estimated_luts": round(linear(COEFFS["ecp5"]["luts"], est["features"])),
                        "estimated_ffs": round(linear(COEFFS["ecp5"]["ffs"], est["features"])),
                        "estimated_brams": est["brams"]}
        row["auto_searches"] = bool(_layer(mh, mw, pe, simd, nt, shared, memory, "auto").rtl(
            dtype_fmt("UINT4"), "blk").params.get("TH_SEARCH"))
        rows.append(row)
        print(row, flush=True)
    return {"family": "ecp5", "rows": rows}
