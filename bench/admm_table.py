"""The ADMM table (paper 002, Table 5 layout) on the embedded MNIST: pruning rate, weight bits, accuracy,
compression, for configs/mnist5k_admm_mlp.yaml with only the weight quantizer changed per row.

run(out_path) trains each row, writes the rows as JSON to out_path and a Markdown table beside it; the
paper's own LeNet-5 numbers (full MNIST, 60,000 training images; cited, not measured here) follow our rows.
`--hardware DIR ...` instead reads accelerators already built from such models (`pqhw export`, `compile`,
`verify`, `bitstream`: DIR/metrics.json, DIR/hw*/{graph,verify,bitstream}.json) into results.json's "admm"
entry under "hardware": accuracy, zeros, MVAU arithmetic and modules, mismatches, cycles, LUTs, FFs, Fmax.
    python -m bench.admm_table [--rows int3 pow2:3] [--dataset digits]
    python -m bench.admm_table --hardware runs/admm_best runs/admm_pow2
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"mnist5k": ROOT / "configs" / "mnist5k_admm_mlp.yaml", "digits": ROOT / "configs" / "digits_admm.yaml"}
ROWS = ["int8", "int3", "pow2:3", "ternary"]  # int8: close to pruning alone
PAPER = [  # Ye et al., Table 5 and section 6.2 (LeNet-5 on MNIST)
    {"row": "paper: LeNet-5 uncompressed", "accuracy": 0.992, "pruning_rate": 1.0, "bits": 32},
    {"row": "paper: one-shot ADMM [18]", "accuracy": 0.992, "pruning_rate": 71.2, "bits": 32},
    {"row": "paper: extended one-shot ADMM", "accuracy": 0.992, "pruning_rate": 85.0, "bits": 32},
    {"row": "paper: progressive ADMM", "accuracy": 0.992, "pruning_rate": 200.0, "bits": 32},
    {"row": "paper: progressive ADMM", "accuracy": 0.990, "pruning_rate": 246.0, "bits": 32},
    {"row": "paper: binary, all layers", "accuracy": 0.9921, "pruning_rate": 1.0, "bits": 1},
]
KEEP = ("test_accuracy", "float_accuracy", "sparsity", "sparsity_per_layer", "pruning_rate", "bits_per_layer",
        "compression_nonzero_vs_float32", "phase_test_accuracy", "admm_residual", "train_seconds")


def _config(base: Path, weight: str, float_baseline: bool) -> dict:
    cfg = yaml.safe_load(base.read_text())
    cfg = copy.deepcopy(cfg)
    for layer in cfg["model"]["layers"]:
        layer["weight"] = weight
    cfg["training"]["float_baseline"] = float_baseline
    cfg["name"] = f"{cfg['name']}_{weight.replace(':', '')}"
    return cfg


def train_rows(work: Path, rows=ROWS, dataset: str = "mnist5k") -> list[dict]:
    from quant.config import parse_config
    from quant.train import train_run

    out = []
    for i, weight in enumerate(rows):
        cfg = parse_config(_config(CONFIGS[dataset], weight, float_baseline=i == 0), f"{CONFIGS[dataset]} ({weight})")
        m = train_run(cfg, work / cfg.name, show_progress=False)
        out.append({"row": f"ADMM {weight}", "weight": weight, **{k: m[k] for k in KEEP if k in m}})
    if "float_accuracy" in out[0]:
        out.insert(0, {"row": "float baseline", "weight": "float32", "test_accuracy": out[0]["float_accuracy"],
                       "sparsity": 0.0, "pruning_rate": 1.0, "compression_nonzero_vs_float32": 1.0})
    return out


def table(rows: list[dict], dataset: str) -> str:
    lines = [f"| row ({dataset}, TFC-sized MLP) | weights | zeros | pruning rate | accuracy | vs float32 (nonzeros) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['row']} | {r['weight']} | {100 * r['sparsity']:.1f} % | {r['pruning_rate']}x | "
                     f"{100 * r['test_accuracy']:.2f} % | {r['compression_nonzero_vs_float32']}x |")
    for p in PAPER:
        lines.append(f"| {p['row']} (full MNIST) | {p['bits']} bit | {100 * (1 - 1 / p['pruning_rate']):.1f} % | "
                     f"{p['pruning_rate']}x | {100 * p['accuracy']:.2f} % | - |")
    return "\n".join(lines)


def run(work: Path, rows=ROWS, dataset: str = "mnist5k") -> dict:
    import torch

    from quant.checkpoint import write_json

    torch.set_num_threads(1)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    measured = train_rows(work, rows, dataset)
    write_json(work / "admm_table.json", measured)
    (work / "admm_table.md").write_text(table(measured, dataset) + "\n")
    return {"dataset": dataset, "rows": measured, "paper": PAPER, "table": str(work / "admm_table.md")}


def hardware_rows(run_dirs: list[Path]) -> list[dict]:
    """One row per built accelerator (each DIR/hw* that verify passed), from the files the commands wrote."""
    from hw.emit import plan
    from hw.ir import Graph
    from hw.kinds.mvau import MODES

    names = {v: k for k, v in MODES.items()}
    rows = []
    for d in map(Path, run_dirs):
        m = json.loads((d / "metrics.json").read_text())
        for hw in sorted(p for p in d.glob("hw*") if (p / "verify.json").is_file()):
            v = json.loads((hw / "verify.json").read_text())
            stages = plan(Graph.load(hw / "graph.json"))
            row = {"model": m["name"], "hw_dir": str(hw), "test_accuracy": m["test_accuracy"],
                   "float_accuracy": m.get("float_accuracy"), "sparsity": m.get("sparsity"),
                   "modules": [s.module for s in stages],
                   "arith": [names[int(s.params["MODE"])] if "MODE" in s.params else "unrolled"
                             for s in stages if s.layer.kind == "mvau"],
                   "verified_vectors": v["vectors"], "mismatches": v["mismatches"],
                   "cycles_per_frame": v["cycles_per_frame"],
                   "expected_cycles_per_frame": v["expected_cycles_per_frame"]}
            b = hw / "bitstream.json"
            if b.is_file():
                b = json.loads(b.read_text())
                row.update({k: b[k] for k in ("board", "luts", "ffs", "brams", "dsps", "fmax_mhz", "target_mhz")})
            rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "admm")
    parser.add_argument("--rows", nargs="*", default=ROWS)
    parser.add_argument("--dataset", choices=sorted(CONFIGS), default="mnist5k")
    parser.add_argument("--hardware", type=Path, nargs="*", default=None, help="built run DIRs to record")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args(argv)
    if args.hardware:
        rows = hardware_rows(args.hardware)
        results = json.loads(args.results.read_text())
        results.setdefault("admm", {})["hardware"] = rows
        args.results.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(rows, indent=1))
        return 0
    r = run(args.work, args.rows, args.dataset)
    print(Path(r["table"]).read_text())
    print(json.dumps({k: v for k, v in r.items() if k != "rows"}, indent=1)[:400])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
