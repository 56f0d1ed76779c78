"""Accuracy of the four digits configs at their full epochs next to the float baseline, train seconds per
epoch, export and compile seconds, and the exactness chain on the whole test split."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

CONFIGS = ["digits_w1a1", "digits_tern_a2", "digits_w2a2", "digits_w4a4"]
TARGETS = {"digits_w4a4": 0.96, "digits_tern_a2": 0.95, "digits_w2a2": 0.94, "digits_w1a1": 0.90}


def run(work: Path) -> dict:
    from hw.compile import compile_model
    from hw.ir import Graph
    from hw.reference import run_graph
    from quant.checkpoint import load_run
    from quant.config import load_config
    from quant.export import brevitas_logits, classes_from_logits, export_run
    from quant.train import train_run

    root = Path(__file__).resolve().parent.parent
    rows = {}
    for name in CONFIGS:
        run_dir = work / name
        cfg = load_config(root / "configs" / f"{name}.yaml")
        m = train_run(cfg, run_dir, show_progress=False)
        t0 = time.perf_counter()
        export_run(run_dir)
        t1 = time.perf_counter()
        c = compile_model(run_dir / "model.qonnx.onnx", run_dir / "hw", target_fps=100000, clock_mhz=100)
        t2 = time.perf_counter()
        model, _, split = load_run(run_dir)
        ref = run_graph(Graph.load(run_dir / "hw" / "graph.json"), split.x_test)[:, 0]
        chain = int((ref != classes_from_logits(brevitas_logits(model, split.x_test))).sum())
        rows[name] = {
            "test_accuracy": m["test_accuracy"], "float_accuracy": m.get("float_accuracy"),
            "target_accuracy": TARGETS[name], "meets_target": m["test_accuracy"] >= TARGETS[name],
            "train_seconds_per_epoch": round(m["train_seconds"] / cfg.training.epochs, 3),
            "export_seconds": round(t1 - t0, 2), "compile_seconds": round(t2 - t1, 2),
            "chain_mismatches_test_split": chain + c["reference_vs_finn_mismatches"],
            "expected_cycles_per_frame": c["expected_cycles_per_frame"], "expected_fps": c["expected_fps"],
            "weight_bits_total": m["weight_bits_total"],
            "test_accuracy_reference": float(np.mean(ref == split.y_test)),
        }
    return {"configs": rows}
