"""Synthesis and place-and-route time against design size, the measurements behind hw/synth_time.py.

Random-weight networks (digits 64-64-64-10 and FINN's TFC 784-64-64-64-10, xnor / 2-bit) from folded to
fully unrolled go through the open ECP5 flow as `pqhw bitstream --board ulx3s-85f` runs it (UART board
top, yosys synth_ecp5, nextpnr-ecp5, ecppack), one run at a time; each row holds hw.estimate's LUTs,
the placed LUTs, Fmax and the seconds of synthesis and of place and route. Some designs are run a second
time with other synth_ecp5 options (FAST_RERUN: -nowidelut) to measure what they save and cost. (Yosys
0.70's synth_ecp5 has no -noabc9: it accepts the word and runs ABC9 all the same, so runs recorded with it
are default runs.)
`fit` turns the rows into the power law hw.synth_time uses.

    python -m bench.synth_time [--only NAME ...]          # or: make bench ONLY=synth_time
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOARD = "ulx3s-85f"
TARGET_MHZ = 150.0
TFC = [784, 64, 64, 64, 10]
DIGITS = [64, 64, 64, 10]


def designs() -> dict:
    """name -> (mode, sizes, folds, input dtype, weight dtype, activation dtype)."""
    return {
        "digits_w1a1_f1024": ("xnor", DIGITS, [(1, 4), (1, 4), (1, 1)], "BINARY", "BINARY", "BINARY"),
        "digits_w1a1_f64": ("xnor", DIGITS, [(8, 8), (8, 8), (2, 8)], "BINARY", "BINARY", "BINARY"),
        "digits_w2a2_f64": ("int", DIGITS, [(8, 8), (8, 8), (2, 8)], "UINT2", "INT2", "UINT2"),
        "tfc_w1a1_f256": ("xnor", TFC, [(4, 49), (4, 16), (4, 16), (1, 8)], "BINARY", "BINARY", "BINARY"),
        "digits_w1a1_unrolled": ("xnor", DIGITS, [(64, 64), (64, 64), (10, 64)], "BINARY", "BINARY", "BINARY"),
        "tfc_w1a1_f64": ("xnor", TFC, [(16, 49), (8, 32), (8, 32), (2, 32)], "BINARY", "BINARY", "BINARY"),
    }


# designs measured again with other synth_ecp5 options: no wide LUTs (LUT5-7 from PFU muxes)
FAST_RERUN = (("tfc_w1a1_f256", "-nowidelut"),)


def build(name: str, work: Path, synth_options: str = "") -> dict:
    from boards.registry import get_board
    from hw.bitstream import build_bitstream
    from hw.board_top import board_sources
    from hw.emit import emit
    from hw.estimate import estimate_graph
    from sim import graphs

    mode, sizes, folds, in_dt, w_dt, act = designs()[name]
    graph = graphs.mlp(0, mode, sizes, folds, in_dt, w_dt, act)
    est = estimate_graph(graph, "ecp5", BOARD)["total"]
    hw_dir = work / "hw"
    emit(graph, hw_dir)
    graph.save(hw_dir / "graph.json")
    board = get_board(BOARD)
    sources, top, data = board_sources(hw_dir, board, work / "top")
    t0 = time.monotonic()
    s = build_bitstream(sources, top, board, work / BOARD, seed=1, target_mhz=TARGET_MHZ, data_files=data,
                        synth_options=synth_options)
    return {"design": name, "synth_options": synth_options, "folds": folds, "estimated_luts": est["luts"],
            "estimated_ffs": est["ffs"], "luts": s["luts"], "ffs": s["ffs"], "brams": s["brams"],
            "fmax_mhz": s["fmax_mhz"], "synth_seconds": s["steps_seconds"]["synth"],
            "pnr_seconds": s["steps_seconds"]["pnr"], "seconds": round(time.monotonic() - t0, 1)}


def fit(rows: list[dict]) -> dict:
    """seconds = a * (estimated kLUTs) ** b over every finished row (hw.synth_time.fit_power_law); a design
    whose default run did not finish counts with its run under another option, if that one did."""
    from hw.synth_time import fit_power_law

    pts = [(r["estimated_luts"], r["synth_seconds"] + r["pnr_seconds"]) for r in rows if "error" not in r]
    if len(pts) < 2:
        return {}
    a, b = fit_power_law(pts)
    return {"a": round(a, 3), "b": round(b, 3), "points": len(pts)}


def run(work: Path, only: list[str] | None = None, options: str | None = None) -> dict:
    """Every design with the default synthesis, then the FAST_RERUN ones with FAST_OPTION; with `options`,
    only the `only` designs with those options."""
    work = Path(work)
    rows = []
    names = [n for n in designs() if not only or n in only]
    jobs = [(n, options) for n in names] if options is not None else \
        [(n, "") for n in names] + [(n, opt) for n, opt in FAST_RERUN if n in names]
    for name, opt in jobs:
        print(f"-- {name} {opt}", flush=True)
        try:
            row = build(name, work / (name + opt.replace("-", "_")), opt)
        except Exception as err:  # a failed run is a measurement too (reported, not hidden)
            row = {"design": name, "synth_options": opt, "error": str(err)[:500]}
        print("   " + json.dumps(row), flush=True)
        rows.append(row)
    return {"board": BOARD, "target_mhz": TARGET_MHZ, "rows": rows, "fit": fit(rows)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "synth_time")
    parser.add_argument("--only", nargs="*", default=None, help=f"subset of {list(designs())}")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--options", default=None, help="only these synth_ecp5 options (e.g. -noabc9)")
    args = parser.parse_args(argv)
    res = run(args.work, args.only, args.options)
    print(json.dumps(res["fit"]))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
