"""ALQ (paper 003) accuracy against average weight bits: the mnist5k MLP at 2, 1 and 0.7 bits and the digits
MLP at 1 bit, each with 2-bit activations, next to its float baseline and the paper's own numbers.

run(work) trains each row from its config with only method.target_bits changed, writes alq_table.md beside
the runs and returns the rows (bench/run.py stores them under "alq").
"""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ROWS = [("mnist5k_alq_mlp", 2.0), ("mnist5k_alq_mlp", 1.0), ("mnist5k_alq_mlp", 0.7), ("digits_alq", 1.0)]
KEEP = ("test_accuracy", "float_accuracy", "avg_weight_bits", "avg_weight_bits_with_table", "act_bits",
        "storage_bits", "storage_kib", "basis_bits", "table_bits", "alpha_count", "params",
        "weight_bits_per_layer", "live_outputs_per_layer", "train_seconds")
# The paper's rows (other networks and datasets: for scale, not a like-for-like comparison).
PAPER = [
    {"network": "LeNet-5, MNIST (Table 2)", "I_W/I_A": "<1 / 32", "storage": "22.7 KB (76x)",
     "top1": 99.12, "float": 99.19},
    {"network": "VGG, CIFAR-10 (Table 3)", "I_W/I_A": "0.66 / 32", "storage": "1.29 MB (43x)",
     "top1": 92.0, "float": 92.8},
    {"network": "VGG, CIFAR-10 (Table 3)", "I_W/I_A": "0.40 / 32", "storage": "0.82 MB (68x)",
     "top1": 90.9, "float": 92.8},
    {"network": "ResNet18, ImageNet (Table 4)", "I_W/I_A": "2.0 / 2", "storage": "3.44 MB",
     "top1": 66.4, "float": 69.8},
    {"network": "ResNet18, ImageNet (Table 4)", "I_W/I_A": "1.0 / 2", "storage": "1.83 MB",
     "top1": 63.2, "float": 69.8},
]


def _config(name: str, bits: float) -> dict:
    cfg = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    cfg["method"]["target_bits"] = bits
    cfg["name"] = f"{name}_{bits}b"
    return cfg


def table(rows: list[dict]) -> str:
    lines = ["| config | target bits | weight bits (+ table) | act bits | storage | test acc | float |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['target_bits']} | {r['avg_weight_bits']:.3f} "
                     f"({r['avg_weight_bits_with_table']:.3f}) | {r['act_bits']} | {r['storage_kib']} KiB | "
                     f"{100 * r['test_accuracy']:.2f} % | {100 * r['float_accuracy']:.2f} % |")
    lines += ["", "Paper 003 (its networks and datasets):", "",
              "| network | I_W / I_A | weights | top-1 | float |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {p['network']} | {p['I_W/I_A']} | {p['storage']} | {p['top1']} % | {p['float']} % |"
              for p in PAPER]
    return "\n".join(lines)


def run(work: Path, rows=ROWS) -> dict:
    from quant.config import parse_config
    from quant.train import train_run

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for name, bits in rows:
        cfg = parse_config(_config(name, bits), f"{name}.yaml (target_bits {bits})")
        m = train_run(cfg, work / cfg.name, show_progress=False)
        out.append({"config": name, "target_bits": bits, **{k: m[k] for k in KEEP}})
        (work / "alq_table.md").write_text(table(out) + "\n")
    return {"rows": out, "paper": PAPER, "table": str(work / "alq_table.md")}
