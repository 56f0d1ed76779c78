"""Frames/s per LUT against FINN's own estimate of the same PE/SIMD: TFC, SFC and LFC.

Each net is FINN's BNN-PYNQ reference as FINN users export it (bench.finn_zoo.export_net), plus the TFC w1a1
we train on mnist5k with 1-bit inputs (its first layer a 784-input ternary MVAU). Per net, in one run:

- pqhw: `pqhw compile --target-fps 50000 --clock-mhz 100` (the folding), `pqhw verify` on 64 vectors, then the
  verified accelerator alone (rtl/pqhw_top.sv, no UART board wrapper: FINN's estimate counts no shell either)
  through Yosys synth_ecp5, the block-RAM output-register pass and nextpnr-ecp5 out of context on the ULX3S's
  LFE5U-85F at a 150 MHz target (bench.rtllib_compare.measure). frames/s = Fmax / measured cycles per frame.
- FINN: `pqhw finn-estimate --board pynq-z2 --freq 100` of the same folded graph: FINN's LUTs and frames/s.
- ratio = (pqhw frames/s per LUT) / (FINN's frames/s per LUT); the issue's target is >= 1.5.

Each side counts its own device's LUTs (ECP5 LUT4s against FINN's 7-series LUT6 estimate), as the target is
defined. One place-and-route seed; Fmax moves by a few per cent between seeds.

    python -m bench.lut_efficiency [--nets tfc_1w1a ...]        (or: make bench ONLY=lut_efficiency)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FINN_NETS = ["tfc_1w1a", "tfc_2w2a", "sfc_1w1a", "lfc_1w1a"]
TRAINED = {"mnist5k_tfc_w1a1": "configs/mnist5k_tfc_w1a1.yaml"}   # 1-bit inputs: a ternary first layer
TARGET_FPS = 50000.0
CLOCK_MHZ = 100.0
VECTORS = 64
FINN_BOARD = "pynq-z2"
TARGET_RATIO = 1.5


def accelerator_design(hw_dir: Path):
    """The accelerator of a verified hw dir as a bench.rtllib_compare Design (top pqhw_top, its memory images)."""
    from bench.rtllib_compare import Design
    from hw.board_top import accelerator_sources, memory_images

    sources = accelerator_sources(hw_dir)
    top = next(s for s in sources if s.stem == "pqhw_top")
    return Design("pqhw_top", top.read_text(), [s for s in sources if s != top], "verilog",
                  {m.name: m.read_text() for m in memory_images(hw_dir)})


def model_for(name: str, work: Path) -> Path:
    """FINN's net exported as FINN does, or our trained config exported by `pqhw export`."""
    from bench.finn_zoo import export_net, pqhw

    if name not in TRAINED:
        return export_net(name, work / name / f"{name}.onnx")
    run = work / name / "run"
    for args in (("train", ROOT / TRAINED[name], "--out", run), ("export", run)):
        code, err, _ = pqhw(*args)
        if code:
            raise RuntimeError(f"pqhw {args[0]} {name}: {err}")
    return run / "model.qonnx.onnx"


def net_row(name: str, work: Path) -> dict:
    from bench.finn_zoo import build, pqhw
    from bench.rtllib_compare import measure

    t0 = time.perf_counter()
    hw = work / name / "hw"
    row = {"net": name, **build(model_for(name, work), hw, VECTORS, None, "--target-fps", TARGET_FPS)}
    if not (row.get("verified") is True and row.get("mismatches") == 0):
        return row
    p = measure(accelerator_design(hw), work / name / "ooc")
    row["pqhw"] = {k: p.get(k) for k in ("ok", "luts", "ffs", "brams", "dsps", "fmax_mhz", "bram_output_registers",
                                         "synth_seconds", "pnr_seconds", "error")}
    code, err, _ = pqhw("finn-estimate", hw, "--board", FINN_BOARD, "--freq", CLOCK_MHZ)
    est = hw / FINN_BOARD / "finn_estimate.json"
    if code or not est.is_file():
        row["finn_error"] = err
        return row
    f = json.loads(est.read_text())
    row["finn"] = {"luts": f["total"]["luts"], "brams_18k": f["total"]["brams_18k"],
                   "max_cycles": f["max_cycles"], "fps": f["estimated_fps"], "clock_mhz": CLOCK_MHZ}
    if p.get("ok") and p.get("fmax_mhz"):
        fps = p["fmax_mhz"] * 1e6 / row["measured_cycles_per_frame"]
        row["pqhw"]["fps"] = round(fps, 1)
        row["pqhw"]["fps_per_lut"] = round(fps / p["luts"], 2)
        row["finn"]["fps_per_lut"] = round(f["estimated_fps"] / f["total"]["luts"], 2)
        row["ratio"] = round(row["pqhw"]["fps_per_lut"] / row["finn"]["fps_per_lut"], 3)
        row["meets_target"] = row["ratio"] >= TARGET_RATIO
    row["bench_seconds"] = round(time.perf_counter() - t0, 1)
    return row


def table(rows) -> str:
    lines = ["| net | folding | cycles | pqhw LUTs | BRAMs | Fmax MHz | frames/s | FINN LUTs | FINN frames/s | "
             "ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, f = r.get("pqhw") or {}, r.get("finn") or {}
        fold = ", ".join(x for x in r.get("layers", []) if x.startswith("MVAU"))
        lines.append(f"| {r['net']} | {fold} | {r.get('measured_cycles_per_frame')} | {p.get('luts')} | "
                     f"{p.get('brams')} | {p.get('fmax_mhz')} | {p.get('fps')} | {f.get('luts')} | {f.get('fps')} | "
                     f"{r.get('ratio', r.get('error', r.get('finn_error', '')))} |")
    return "\n".join(lines)


def run(work: Path, nets=None) -> dict:
    from bench.rtllib_compare import TARGET_MHZ

    work = Path(work)
    rows = []
    for name in nets or [*FINN_NETS, *TRAINED]:
        rows.append(net_row(name, work))
        print(json.dumps(rows[-1]), flush=True)
    return {"target_fps": TARGET_FPS, "clock_mhz": CLOCK_MHZ, "vectors": VECTORS, "pnr_target_mhz": TARGET_MHZ,
            "pnr": "yosys synth_ecp5 + OUTREG pass + nextpnr-ecp5 --out-of-context, LFE5U-85F, seed 1",
            "finn_board": FINN_BOARD, "target_ratio": TARGET_RATIO, "rows": rows, "table": table(rows)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="*", default=None, help=f"subset of {FINN_NETS + list(TRAINED)}")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "lut_efficiency")
    args = ap.parse_args(argv)
    res = run(args.work, args.nets)
    print(res["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
