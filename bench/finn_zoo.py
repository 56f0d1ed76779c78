"""FINN's BNN-PYNQ reference networks as FINN users have them, through `pqhw compile` and `pqhw verify`.

Each net comes from brevitas_examples.bnn_pynq (`model_with_cfg(name, pretrained=False)`) with random
weights and random batch-norm / TensorNorm statistics and affine parameters (fixed seeds), a divide-by-255
module in front, exported as FINN's end-to-end tests do (export_qonnx, qonnx cleanup, input UINT8). Then
`pqhw compile` at the default folding and at --target-fps, and `pqhw verify` (Verilator) on each; a
default-folding build slower than DEFAULT_SIM_MAX_CYCLES per frame is compiled but not simulated (one
frame at PE = SIMD = 1 is 50k-800k cycles for the FC nets, 28.9M for a CNV). The CNVs (32x32x3 UINT8) are
folded for CNV_TARGET_FPS instead (a CNV at 50,000 fps would need ~15,000 parallel lanes in its widest layer)
and verified on CNV_VECTORS vectors, since each frame is ~100k cycles of simulation and the front-end checks
every step in FINN's python execution (~1 s a vector and step). Per net: compiled yes/no, mismatches,
measured vs expected cycles per frame, or the one error line.

    python -m bench.run --only finn_zoo           (or: python -m bench.finn_zoo --nets tfc_1w1a)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# the CNVs (export_net builds them too) are measured by bench.conv_nets, with a board and a bitstream
NETS = ["tfc_1w1a", "tfc_1w2a", "tfc_2w2a", "sfc_1w1a", "sfc_1w2a", "sfc_2w2a", "lfc_1w1a", "lfc_1w2a"]
CNVS = ["cnv_1w1a", "cnv_1w2a", "cnv_2w2a"]
TARGET_FPS = 50000.0  # at 100 MHz: 2,000 cycles per frame
CLOCK_MHZ = 100.0
VECTORS = 64
DEFAULT_VECTORS = 4
DEFAULT_SIM_MAX_CYCLES = 60000
CNV_TARGET_FPS = 1000.0  # at 100 MHz: 100,000 cycles per frame
CNV_VECTORS = 4


def export_net(name: str, path: Path, seed: int = 0) -> Path:
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model
    from torch import nn

    class DivBy255(nn.Module):
        def forward(self, x):
            return x / 255.0

    torch.manual_seed(seed)  # the nets draw their weights uniformly in [-1, 1] at construction
    net, cfg = model_with_cfg(name, pretrained=False)
    g = torch.Generator().manual_seed(seed + 1)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, TensorNorm)):
            n = m.running_mean.numel()
            m.running_mean.data = torch.randn(n, generator=g)
            m.running_var.data = torch.rand(n, generator=g) * 2 + 0.5
            m.weight.data = torch.randn(n, generator=g)
            m.bias.data = torch.randn(n, generator=g)
    model = nn.Sequential(DivBy255(), net).eval()
    shape = (1, 3, 32, 32) if cfg.get("MODEL", "ARCH") == "CNV" else (1, 1, 28, 28)
    path.parent.mkdir(parents=True, exist_ok=True)
    export_qonnx(model, torch.zeros(shape), export_path=str(path))
    m = cleanup_model(ModelWrapper(str(path)))
    m.set_tensor_datatype(m.graph.input[0].name, DataType["UINT8"])
    m.save(str(path))
    return path


def pqhw(*args) -> tuple[int, str, float]:
    """`pqhw ARGS` as a user runs it; (exit status, last line of stderr, seconds)."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pqhw.cli", *map(str, args)], capture_output=True, text=True)
    err = [l for l in p.stderr.strip().splitlines() if l.strip()]
    return p.returncode, (err[-1] if err else ""), round(time.perf_counter() - t0, 1)


def build(model: Path, out: Path, vectors: int, sim_max_cycles: int | None, *fold) -> dict:
    code, err, secs = pqhw("compile", model, "--out", out, "--clock-mhz", CLOCK_MHZ, *fold)
    row = {"compiled": code == 0, "compile_seconds": secs}
    if code != 0:
        row.update(exit_status=code, error=err)
        return row
    c = json.loads((out / "compile.json").read_text())
    row.update(expected_cycles_per_frame=c["expected_cycles_per_frame"],
               finn_exp_cycles_per_frame=max(l["finn_exp_cycles"] for l in c["layers"]),
               layers=[f"{l['name']} PE{l['pe']}" + (f" SIMD{l['simd']}" if l["simd"] else "") for l in c["layers"]],
               estimate_luts=(c.get("estimate_total") or {}).get("luts"))
    if sim_max_cycles is not None and c["expected_cycles_per_frame"] > sim_max_cycles:
        row["verified"] = f"not simulated: {c['expected_cycles_per_frame']} cycles/frame"
        return row
    code, err, secs = pqhw("verify", out, "--vectors", vectors)
    row["verify_seconds"] = secs
    if not (out / "verify.json").is_file():
        row.update(verified=False, exit_status=code, error=err)
        return row
    v = json.loads((out / "verify.json").read_text())
    # compile.json's expected value is the folding's (FINN's exp_cycles); verify.json's is the emitted design's
    row.update(verified=code == 0, vectors=v["vectors"], mismatches=v["mismatches"],
               measured_cycles_per_frame=v["cycles_per_frame"],
               verify_expected_cycles_per_frame=v["expected_cycles_per_frame"])
    if v["cycles_per_frame"]:
        row["measured_over_expected"] = round(v["cycles_per_frame"] / row["expected_cycles_per_frame"], 3)
    return row


def run(work: Path, nets=None, target_fps: float = TARGET_FPS, vectors: int = VECTORS) -> dict:
    work = Path(work)
    rows = []
    for name in nets or NETS:
        t0 = time.perf_counter()
        model = export_net(name, work / name / f"{name}.onnx")
        row = {"net": name, "export_seconds": round(time.perf_counter() - t0, 1)}
        row["default"] = build(model, work / name / "hw_default", DEFAULT_VECTORS, DEFAULT_SIM_MAX_CYCLES)
        if row["default"]["compiled"]:
            cnv = name.startswith("cnv")
            fps = CNV_TARGET_FPS if cnv else target_fps
            row["target_fps"] = build(model, work / name / "hw_fps", CNV_VECTORS if cnv else vectors, None,
                                      "--target-fps", fps)
            row["target_fps"]["fps"] = fps
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"target_fps": target_fps, "cnv_target_fps": CNV_TARGET_FPS, "cnv_vectors": CNV_VECTORS,
            "clock_mhz": CLOCK_MHZ, "vectors": vectors,
            "default_folding_vectors": DEFAULT_VECTORS, "default_sim_max_cycles": DEFAULT_SIM_MAX_CYCLES,
            "rows": rows, "table": table(rows)}


def table(rows) -> str:
    lines = ["| net | compiled | default: expected cycles (measured) | --target-fps | mismatches / vectors | "
             "measured / expected cycles | ratio |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        d = r["default"]
        if not d["compiled"]:
            lines.append(f"| {r['net']} | no | {d['error']} | | | | |")
            continue
        dm = d.get("measured_cycles_per_frame")
        dcol = f"{d['expected_cycles_per_frame']} ({dm if dm else 'not simulated'})"
        f = r.get("target_fps", {})
        if not f.get("compiled"):
            lines.append(f"| {r['net']} | default only | {dcol} | {f.get('fps', '')} | {f.get('error')} | | |")
            continue
        lines.append(f"| {r['net']} | yes | {dcol} | {f.get('fps', '')} | {f.get('mismatches')} / {f.get('vectors')} | "
                     f"{f.get('measured_cycles_per_frame')} / {f['expected_cycles_per_frame']} | "
                     f"{f.get('measured_over_expected')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="*", default=None, help=f"subset of {NETS + CNVS}")
    ap.add_argument("--work", type=Path, default=Path(__file__).resolve().parent.parent / "runs" / "bench" / "finn_zoo")
    ap.add_argument("--target-fps", type=float, default=TARGET_FPS)
    ap.add_argument("--vectors", type=int, default=VECTORS)
    args = ap.parse_args(argv)
    res = run(args.work, args.nets, args.target_fps, args.vectors)
    print(res["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
