"""The ADMM table (paper 002, Table 5 layout) on the embedded MNIST: pruning rate, weight bits, accuracy,
compression, with only the weight quantizer changed per row, each row trained with SEEDS seeds (mean and std):
configs/mnist5k_admm_mlp.yaml (FINN's TFC, `make bench ONLY=admm`) and configs/mnist5k_admm_lenet5.yaml (the
paper's LeNet-5, `make bench ONLY=admm_lenet5`).

run(out_path) trains each row, writes the rows as JSON to out_path and a Markdown table beside it; the
paper's own LeNet-5 numbers (full MNIST, 60,000 training images; cited, not measured here) follow our rows.
`--hardware DIR ...` instead reads accelerators already built from such models (`pqhw export`, `compile`,
`verify`, `bitstream`: DIR/metrics.json, DIR/hw*/{graph,verify,bitstream}.json) into results.json's "admm"
entry (`--key` another) under "hardware": accuracy, zeros, MVAU arithmetic and modules, mismatches, cycles,
LUTs, FFs, Fmax, and the channels export removed.
    python -m bench.admm_table [--rows int3 pow2:3] [--dataset lenet5] [--seeds 3]
    python -m bench.admm_table --hardware runs/admm_best runs/admm_pow2
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"mnist5k": ROOT / "configs" / "mnist5k_admm_mlp.yaml", "digits": ROOT / "configs" / "digits_admm.yaml",
           "lenet5": ROOT / "configs" / "mnist5k_admm_lenet5.yaml"}
NETS = {"mnist5k": "mnist5k, TFC-sized MLP", "digits": "digits MLP", "lenet5": "mnist5k, LeNet-5"}
ROWS = ["int8", "int3", "pow2:3", "ternary"]  # int8: close to pruning alone
LENET5_ROWS = ["int3", "ternary"]  # about 4 minutes a run on one core
SEEDS = 3
KEYS = {"mnist5k": "admm", "lenet5": "admm_lenet5"}  # results.json entries (bench.run's names)
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


def _config(base: Path, weight: str, float_baseline: bool, seed: int) -> dict:
    cfg = copy.deepcopy(yaml.safe_load(base.read_text()))
    for layer in cfg["model"]["layers"]:
        layer["weight"] = weight
    cfg["training"]["float_baseline"] = float_baseline
    cfg["training"]["seed"] = seed
    cfg["name"] = f"{cfg['name']}_{weight.replace(':', '')}_s{seed}"
    return cfg


def _mean_std(values: list[float]) -> tuple[float, float]:
    import numpy as np

    return round(float(np.mean(values)), 5), round(float(np.std(values)), 5)


def train_rows(work: Path, rows=ROWS, dataset: str = "mnist5k", seeds: int = SEEDS) -> list[dict]:
    """One row per weight format, each the mean (and std) over `seeds` runs; the float baseline trained beside
    the first format's runs, seed for seed."""
    from quant.config import parse_config
    from quant.train import train_run

    out, floats = [], []
    for i, weight in enumerate(rows):
        runs = []
        for seed in range(seeds):
            cfg = parse_config(_config(CONFIGS[dataset], weight, i == 0, seed), f"{CONFIGS[dataset]} ({weight})")
            m = train_run(cfg, work / cfg.name, show_progress=False)
            runs.append({"seed": seed, **{k: m[k] for k in KEEP if k in m}})
            if i == 0 and "float_accuracy" in m:
                floats.append(m["float_accuracy"])
        acc, std = _mean_std([r["test_accuracy"] for r in runs])
        first = runs[0]
        out.append({"row": f"ADMM {weight}", "weight": weight, "test_accuracy": acc, "test_accuracy_std": std,
                    "seeds": seeds, **{k: first[k] for k in ("sparsity", "pruning_rate",
                                                             "compression_nonzero_vs_float32", "bits_per_layer",
                                                             "sparsity_per_layer") if k in first},
                    "runs": runs})
    if floats:
        acc, std = _mean_std(floats)
        out.insert(0, {"row": "float baseline", "weight": "float32", "test_accuracy": acc, "test_accuracy_std": std,
                       "seeds": len(floats), "sparsity": 0.0, "pruning_rate": 1.0,
                       "compression_nonzero_vs_float32": 1.0, "runs": [{"seed": s, "test_accuracy": a}
                                                                      for s, a in enumerate(floats)]})
        for r in out[1:]:
            r["gap_to_float_points"] = round(100 * (acc - r["test_accuracy"]), 2)
    return out


def table(rows: list[dict], dataset: str) -> str:
    lines = [f"| row ({NETS[dataset]}) | weights | zeros | pruning rate | accuracy (mean +- std) | vs float32 "
             "(nonzeros) |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        acc = f"{100 * r['test_accuracy']:.2f} +- {100 * r.get('test_accuracy_std', 0.0):.2f} %"
        lines.append(f"| {r['row']} | {r['weight']} | {100 * r['sparsity']:.1f} % | {r['pruning_rate']}x | "
                     f"{acc} | {r['compression_nonzero_vs_float32']}x |")
    for p in PAPER:
        lines.append(f"| {p['row']} (full MNIST) | {p['bits']} bit | {100 * (1 - 1 / p['pruning_rate']):.1f} % | "
                     f"{p['pruning_rate']}x | {100 * p['accuracy']:.2f} % | - |")
    return "\n".join(lines)


def run(work: Path, rows=ROWS, dataset: str = "mnist5k", seeds: int = SEEDS) -> dict:
    import torch

    from quant.checkpoint import write_json

    torch.set_num_threads(1)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    measured = train_rows(work, rows, dataset, seeds)
    write_json(work / "admm_table.json", measured)
    (work / "admm_table.md").write_text(table(measured, dataset) + "\n")
    out = {"dataset": dataset, "config": str(CONFIGS[dataset].relative_to(ROOT)), "rows": measured,
           "paper": PAPER, "table": str(work / "admm_table.md")}
    results = ROOT / "bench" / "results.json"
    earlier = json.loads(results.read_text()).get(KEYS.get(dataset, ""), {}) if results.is_file() else {}
    built = earlier.get("hardware")
    if built:  # rows of accelerators built earlier (--hardware) stay; each names its model and accuracy
        out["hardware"] = built
    return out


def run_lenet5(work: Path) -> dict:
    """`make bench ONLY=admm_lenet5`: the paper's network."""
    return run(work, LENET5_ROWS, "lenet5")


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
            removed = json.loads((d / "export.json").read_text()).get("removed_channels") \
                if (d / "export.json").is_file() else None
            row = {"model": m["name"], "hw_dir": str(hw), "test_accuracy": m["test_accuracy"],
                   "removed_channels": removed, "macs": json.loads((hw / "compile.json").read_text()).get("macs"),
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
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--hardware", type=Path, nargs="*", default=None, help="built run DIRs to record")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--key", default="admm", help="results.json entry whose 'hardware' list --hardware sets")
    args = parser.parse_args(argv)
    if args.hardware:
        rows = hardware_rows(args.hardware)
        results = json.loads(args.results.read_text())
        results.setdefault(args.key, {})["hardware"] = rows
        args.results.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(rows, indent=1))
        return 0
    r = run(args.work, args.rows, args.dataset, args.seeds)
    print(Path(r["table"]).read_text())
    print(json.dumps({k: v for k, v in r.items() if k != "rows"}, indent=1)[:400])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
