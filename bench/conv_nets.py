"""Convolutional networks through pqhw, as a user runs them (the conv issue's figures).

- The digits CNN and LeNet-5 (mnist5k) through `pqhw flow --board ulx3s-85f` (train, export, compile, verify
  with idle and backpressure, bitstream): accuracy next to the float baseline, measured against expected
  cycles, LUTs, FFs, BRAMs, Fmax.
- FINN's CNV_1W1A, CNV_1W2A, CNV_2W2A from brevitas_examples (random weights, exported as FINN's end-to-end
  tests do, 32x32x3 UINT8) through `pqhw compile --board ulx3s-85f --target-fps 3000 --clock-mhz 100` (FINN's
  published CNV-W1A1 rate on the Pynq-Z1: its `fold_cnv_large` folding, 32,400 cycles a frame at 100 MHz) and
  `pqhw verify`; `pqhw finn-estimate` of the same PE/SIMD on the Pynq-Z2 beside it; a bitstream on the
  ECP5-85F for the nets in CNV_BITSTREAM.

    python -m bench.run --only conv_nets          (or: python -m bench.conv_nets --cnvs cnv_1w1a --no-flows)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.finn_zoo import CNVS, export_net, pqhw

ROOT = Path(__file__).resolve().parent.parent
BOARD = "ulx3s-85f"
FLOWS = {"digits CNN (PTQ, ternary)": "digits_ptq_cnn", "LeNet-5 w2a2 (mnist5k)": "mnist5k_lenet5_w2a2"}
FLOW_VECTORS = 100
CNV_FPS = 3000.0
CNV_CLOCK_MHZ = 100.0
CNV_VECTORS = 4
CNV_BITSTREAM = ["cnv_1w1a"]
FINN_BOARD = "pynq-z2"
# FINN's fold_cnv_large (tests/end2end/test_end2end_bnn_pynq.py): (PE, SIMD) of the nine MVAUs; its slowest
# layers take 32,400 (conv 1) and 28,224 (conv 2) cycles: 3,086 frames/s at 100 MHz, BNN-PYNQ's ~3,000.
FINN_CNV_FOLDING = [(16, 3), (32, 32), (16, 32), (16, 32), (4, 32), (1, 32), (1, 4), (1, 8), (5, 1)]


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def flow_row(label: str, config: str, work: Path) -> dict:
    out = work / config
    code, err, secs = pqhw("flow", ROOT / "configs" / f"{config}.yaml", "--out", out, "--board", BOARD,
                           "--vectors", FLOW_VECTORS)
    row = {"net": label, "config": config, "exit_status": code, "flow_seconds": secs}
    if code != 0:
        row["error"] = err
    m, c = _json(out / "metrics.json"), _json(out / "hw" / "compile.json")
    v, b = _json(out / "hw" / "verify.json"), _json(out / "hw" / "bitstream.json")
    if m:
        row.update(test_accuracy=m["test_accuracy"], float_accuracy=m.get("float_accuracy"))
    if c:
        row.update(expected_cycles_per_frame=c["expected_cycles_per_frame"], target_fps=c.get("target_fps"),
                   target_fps_reached=c.get("target_fps_reached"), layers=len(c["layers"]))
    if v:
        row.update(vectors=v["vectors"], mismatches=v["mismatches"], measured_cycles_per_frame=v["cycles_per_frame"])
    if b:
        row.update({k: b[k] for k in ("luts", "ffs", "brams", "fmax_mhz", "target_mhz", "meets_timing")})
        if v and b["fmax_mhz"]:
            row["fps_at_fmax"] = round(b["fmax_mhz"] * 1e6 / v["cycles_per_frame"], 1)
    return row


def cnv_row(name: str, work: Path, bitstream: bool) -> dict:
    model = export_net(name, work / name / f"{name}.onnx")
    hw = work / name / "hw"
    row = {"net": name, "target_fps": CNV_FPS, "clock_mhz": CNV_CLOCK_MHZ}
    code, err, secs = pqhw("compile", model, "--out", hw, "--board", BOARD, "--target-fps", CNV_FPS,
                           "--clock-mhz", CNV_CLOCK_MHZ)
    row.update(compiled=code == 0, compile_seconds=secs)
    if code != 0:
        return {**row, "error": err}
    c, e = _json(hw / "compile.json"), _json(hw / "estimate.json")
    row.update(expected_cycles_per_frame=c["expected_cycles_per_frame"],
               folding=[f"{l['name']} PE{l['pe']}" + (f" SIMD{l['simd']}" if l.get("simd") else "")
                        for l in c["layers"] if l["kind"] == "mvau"],
               estimate={k: (e or {}).get("total", {}).get(k) for k in ("luts", "ffs", "brams")})
    verified, err, secs = pqhw("verify", hw, "--vectors", CNV_VECTORS)
    v = _json(hw / "verify.json")
    row.update(verify_seconds=secs, verified=verified == 0)
    if v:
        row.update(vectors=v["vectors"], mismatches=v["mismatches"], measured_cycles_per_frame=v["cycles_per_frame"])
    else:
        row["error"] = err
    code, err, secs = pqhw("finn-estimate", hw, "--board", FINN_BOARD, "--freq", CNV_CLOCK_MHZ)
    f = _json(hw / FINN_BOARD / "finn_estimate.json")
    row["finn_estimate"] = ({"luts": f["total"]["luts"], "brams_18k": f["total"]["brams_18k"],
                             "max_cycles": f["max_cycles"], "estimated_fps": f["estimated_fps"]}
                            if f else {"error": err})
    if bitstream and verified == 0 and v and not v["mismatches"]:
        code, err, secs = pqhw("bitstream", hw, "--board", BOARD)
        b = _json(hw / "bitstream.json")
        row["bitstream_seconds"] = secs
        if b:
            row.update({k: b[k] for k in ("luts", "ffs", "brams", "fmax_mhz", "meets_timing")})
            row["fps_at_fmax"] = round(b["fmax_mhz"] * 1e6 / v["cycles_per_frame"], 1) if b["fmax_mhz"] else None
        else:
            row["bitstream_error"] = err
    return row


def run(work: Path, cnvs=None, flows: bool = True) -> dict:
    work = Path(work)
    rows = [flow_row(label, config, work) for label, config in FLOWS.items()] if flows else []
    for r in rows:
        print(json.dumps(r), flush=True)
    for name in CNVS if cnvs is None else cnvs:
        rows.append(cnv_row(name, work, name in CNV_BITSTREAM))
        print(json.dumps(rows[-1]), flush=True)
    return {"board": BOARD, "cnv_target_fps": CNV_FPS, "cnv_clock_mhz": CNV_CLOCK_MHZ,
            "finn_published": {"net": "CNV-W1A1", "board": "Pynq-Z1", "fps": 3000, "clock_mhz": 100,
                               "folding": FINN_CNV_FOLDING},
            "rows": rows, "table": table(rows)}


def table(rows) -> str:
    lines = ["| net | accuracy (float) | mismatches / vectors | measured / expected cycles | LUTs | FFs | BRAMs | "
             "Fmax MHz | frames/s at Fmax | FINN estimate (Pynq-Z2): LUTs, BRAM18, frames/s at 100 MHz |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        acc = (f"{100 * r['test_accuracy']:.2f} % ({100 * r['float_accuracy']:.2f} %)"
               if r.get("test_accuracy") is not None and r.get("float_accuracy") is not None else "random weights")
        est = r.get("estimate") or {}
        luts = r.get("luts", f"{est.get('luts')} (estimate)" if est else None)
        brams = r.get("brams", f"{est.get('brams')} (estimate)" if est else None)
        f = r.get("finn_estimate") or {}
        finn = (f"{f['luts']:,}, {f['brams_18k']:g}, {f['estimated_fps']:,.0f}" if "luts" in f
                else f.get("error", ""))
        lines.append(f"| {r['net']} | {acc} | {r.get('mismatches')} / {r.get('vectors')} | "
                     f"{r.get('measured_cycles_per_frame')} / {r.get('expected_cycles_per_frame')} | {luts} | "
                     f"{r.get('ffs', '')} | {brams} | {r.get('fmax_mhz', '')} | {r.get('fps_at_fmax', '')} | {finn} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cnvs", nargs="*", default=None, help=f"subset of {CNVS}")
    ap.add_argument("--no-flows", action="store_true", help="skip the digits CNN and LeNet-5 flows")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "conv_nets")
    args = ap.parse_args(argv)
    res = run(args.work, args.cnvs, not args.no_flows)
    print(res["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
