"""The PTQ ablation on digits (paper 000, Table 4 layout), for the MLP and the small CNN.

Rows: the float baseline; plain threshold ternary (TWN-like), STE-Only (prune, no reset) and STE-Reset
(prune, reset: the full method) at sparsity targets 50/70/80 %. Every row trains for the same total epochs
(the configs' pretrain + prune + quantize) and is repeated over SEEDS, because one test sample of the 450
is 0.22 %. The paper's Table 4 setting (70 %, first and last layers not ternarised, here int8) adds an
STE-Only / STE-Reset pair; there, sparsity counts the ternarised layers only. Also the weight storage of
each network: float32, FINN's 2 bits per ternary weight and the 5-bit codebook, and the compression ratios.
run(out_path) writes the rows as JSON.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"mlp": ROOT / "configs" / "digits_ptq.yaml", "cnn": ROOT / "configs" / "digits_ptq_cnn.yaml"}
SPARSITIES = (0.5, 0.7, 0.8)
VARIANTS = {"TWN-like": {"variant": "twn"}, "STE-Only": {"variant": "ptq", "reset": False},
            "STE-Reset": {"variant": "ptq", "reset": True}}
SEEDS = (0, 1, 2)
# the paper's Table 4 setting: 70 % pruning, first and last layers not ternarised (kept here at int8)
TABLE4 = {"STE-Only (first/last int8)": {"variant": "ptq", "reset": False},
          "STE-Reset (first/last int8)": {"variant": "ptq", "reset": True}}


def _config(path: Path, seed: int, overrides: dict, keep_first_last: bool = False) -> dict:
    cfg = yaml.safe_load(path.read_text())
    cfg["training"].update(seed=seed, float_baseline=False)
    cfg["method"].update(overrides)
    if keep_first_last:
        for layer in (cfg["model"]["layers"][0], cfg["model"]["layers"][-1]):
            layer["weight"] = "int8"
        cfg["method"].update(first_layer="config", last_layer="config")
    return cfg


def storage(model) -> dict:
    """Weight storage of a network's weight layers in bits: float32, 2-bit ternary, and the 5-bit codebook."""
    from common import codebook

    weights, code_bits = 0, 0
    for layer in model.quant_layers():
        rows, mw = layer.weight.shape[0], layer.weight[0].numel()
        weights += rows * mw
        code_bits += codebook.packed_bits(rows, mw)
    return {"weights": weights, "bits_float32": 32 * weights, "bits_2bit": 2 * weights, "bits_codebook": code_bits,
            "ratio_2bit_vs_float32": round(32 / 2, 2), "ratio_codebook_vs_float32": round(32 * weights / code_bits, 2),
            "codebook_saving_vs_2bit": round(1 - code_bits / (2 * weights), 4)}


def _summary(values: list[float]) -> dict:
    return {"mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "runs": [round(v, 4) for v in values]}


def float_row(kind: str, path: Path) -> dict:
    import torch

    from quant.config import parse_config
    from quant.data import load_dataset
    from quant.layers import build_model
    from quant.train import accuracy, fit, seed_everything

    accs = []
    for seed in SEEDS:
        cfg = parse_config(_config(path, seed, {}), str(path))
        e = cfg.method["epochs"]
        cfg.training.epochs = e["pretrain"] + e["prune"] + e["quantize"]
        split = load_dataset(cfg.dataset)
        seed_everything(seed)
        torch.manual_seed(seed)
        model = build_model(cfg.model, split.image_shape, split.classes, quantized=False)
        fit(model, split, cfg.training)
        accs.append(accuracy(model, split.x_test, split.y_test))
    return {"model": kind, "row": "float baseline", "sparsity_target": 0.0, "epochs": cfg.training.epochs,
            "test_accuracy": _summary(accs), "sparsity": _summary([0.0] * len(accs))}


def ablation_rows(kind: str, path: Path, work: Path) -> list[dict]:
    from quant.config import parse_config
    from quant.train import train_run

    rows = []
    plan = [(s, label, o, False) for s in SPARSITIES for label, o in VARIANTS.items()]
    plan += [(0.7, label, o, True) for label, o in TABLE4.items()]
    for sparsity, label, overrides, keep in plan:
        runs = []
        for seed in SEEDS:
            cfg = parse_config(_config(path, seed, {**overrides, "sparsity": sparsity}, keep), str(path))
            runs.append(train_run(cfg, work / f"{kind}_{label.split()[0]}_{keep}_{sparsity}_{seed}",
                                 show_progress=False))
        rows.append({"model": kind, "row": label, "sparsity_target": sparsity,
                     "epochs": sum(runs[0]["phase_epochs"].values()),
                     "test_accuracy": _summary([m["test_accuracy"] for m in runs]),
                     "sparsity": _summary([m["sparsity"] for m in runs]),
                     "phase_test_accuracy": {p: _summary([m["phase_test_accuracy"][p] for m in runs])
                                             for p in runs[0]["phase_test_accuracy"]},
                     "delta_per_layer": runs[0]["delta_per_layer"]})
    return rows


def run(out_path) -> list[dict]:
    import torch

    from quant.config import parse_config
    from quant.data import load_dataset
    from quant.build import make_model

    torch.set_num_threads(1)
    out_path = Path(out_path)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, path in MODELS.items():
            cfg = parse_config(yaml.safe_load(path.read_text()), str(path))
            split = load_dataset(cfg.dataset)
            rows.append({"model": kind, "row": "weight storage",
                         **storage(make_model(cfg, split.image_shape, split.classes))})
            rows.append(float_row(kind, path))
            rows += ablation_rows(kind, path, Path(tmp))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | row | sparsity target | epochs | test accuracy % (mean ± std) | sparsity % |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "test_accuracy" not in r:
            continue
        a, s = r["test_accuracy"], r["sparsity"]
        lines.append(f"| {r['model']} | {r['row']} | {100 * r['sparsity_target']:.0f} | {r['epochs']} | "
                     f"{100 * a['mean']:.2f} ± {100 * a['std']:.2f} | {100 * s['mean']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    result = run(sys.argv[1] if len(sys.argv) > 1 else "ptq_ablation.json")
    print(table(result))
