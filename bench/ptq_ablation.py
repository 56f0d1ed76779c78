"""The PTQ ablation (paper 000, Table 4 layout) on the digits MLP and the small digits CNN (`run`), and on
LeNet-5 over mnist5k (`run_lenet5`, `make bench ONLY=ptq_lenet5`).

Rows: the float baseline; the paper's own setting (first layer in float, eq. 26's activation levels); then,
in the configs' hardware setting (every layer ternary, LSQ's 0..3 levels), plain threshold ternary
(TWN-like: no learned threshold, no L2 normalisation, no pruning phase), STE-Only (prune, no reset) and
STE-Reset (prune, reset: the full method) at sparsity targets 50/70/80 % (the CNN: 70 % only). Every row
trains for the same total epochs (the configs' float + pretrain + prune + quantize) with the paper's SGD
schedule, and is repeated over SEEDS, because one test sample of the 450 is 0.22 %. The paper's Table 4
setting (70 %, first and last layers kept in float) adds an STE-Only / STE-Reset pair; there, sparsity
counts the ternarised layers only. Each row also gives its MACs and BOPs (eq. 14-16 of paper 001: dense,
and over the non-zero ternary weights, with 2-bit ternary weights, float layers at 32 bits and each layer's
input activation bits) and the BOP compression against the float network. Also the weight storage of
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
MODELS = {"mlp": ROOT / "configs" / "digits_ptq.yaml", "cnn": ROOT / "configs" / "digits_ptq_cnn.yaml",
          "lenet5": ROOT / "configs" / "mnist5k_lenet5_ptq.yaml"}
DEFAULT_MODELS = ("mlp", "cnn")
SPARSITIES = {"mlp": (0.5, 0.7, 0.8), "cnn": (0.7,), "lenet5": (0.7,)}
VARIANTS = {"TWN-like": {"variant": "twn"}, "STE-Only": {"variant": "ptq", "reset": False},
            "STE-Reset": {"variant": "ptq", "reset": True}}
SEEDS = (0, 1, 2)
# the paper's Table 4 setting: 70 % pruning, first and last layers not quantized (float)
TABLE4 = {"STE-Only (first/last float)": {"variant": "ptq", "reset": False, "first_layer": "float",
                                          "last_layer": "float"},
          "STE-Reset (first/last float)": {"variant": "ptq", "reset": True, "first_layer": "float",
                                           "last_layer": "float"}}
# Sections 4.3-5 as written: first layer in float, eq. 26's levels 0 .. 2^(k-1) - 1 (uint2 -> {0, 1})
PAPER = {"PTQ, paper setting (first float, eq. 26 levels)": {"variant": "ptq", "reset": True,
                                                             "first_layer": "float", "act_levels": "eq26"}}


def _config(path: Path, seed: int, overrides: dict) -> dict:
    cfg = yaml.safe_load(path.read_text())
    cfg["training"].update(seed=seed, float_baseline=False)
    cfg["method"].update(overrides)
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


def costs(cfg, metrics: dict | None = None) -> dict:
    """MACs and BOPs of one trained row: dense, and with each ternarised layer's zero codes skipped
    (metrics["sparsity_per_layer"]); ternary weights count 2 bits, float layers 32, and each layer's input
    the bits of its activation levels (eq. 26's uint2 levels {0, 1} are 1 bit)."""
    from quant import cost
    from quant.data import load_dataset
    from quant.layers import build_model
    from quant.methods.ptq_model import act_spec, ternarised

    split = load_dataset(cfg.dataset)
    rows = cost.net_costs(build_model(cfg.model, split.image_shape, split.classes, quantized=False))
    m = cfg.method
    layers = cfg.model.layers
    tern = ternarised(len(layers), m.get("first_layer", "float"), m.get("last_layer", "ternary"))
    sparsity = list((metrics or {}).get("sparsity_per_layer", [0.0] * sum(tern)))
    a_bits = [float(cfg.dataset.input_bits)]
    for i, spec in enumerate(layers[:-1]):
        bits, _ = act_spec(spec.act, f"model.layers.{i}.act", m.get("act_levels", "eq26"))
        a_bits.append(float(bits - 1 if m.get("act_levels", "eq26") == "eq26" else bits))
    macs = nz_macs = bops = nz_bops = 0.0
    for r, t, ab in zip(rows, tern, a_bits):
        wb = 2.0 if t else float(cost.FLOAT_BITS)
        keep = 1.0 - sparsity.pop(0) if t else 1.0
        macs, nz_macs = macs + r.macs, nz_macs + r.macs * keep
        bops, nz_bops = bops + cost.bops(r.macs, wb, ab), nz_bops + cost.bops(r.macs * keep, wb, ab)
    float_bops = cost.total_bops(cost.at_float(rows))
    return {"macs": macs, "nonzero_macs": round(nz_macs, 1), "bops": bops, "nonzero_bops": round(nz_bops, 1),
            "float_bops": float_bops, "bop_compression": round(float_bops / bops, 3),
            "nonzero_bop_compression": round(float_bops / nz_bops, 3)}


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
        cfg.training.epochs = e["float"] + e["pretrain"] + e["prune"] + e["quantize"]
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
    plan = [(0.7, label, o) for label, o in PAPER.items()]
    plan += [(s, label, o) for s in SPARSITIES[kind] for label, o in VARIANTS.items()]
    plan += [(0.7, label, o) for label, o in TABLE4.items()]
    for n, (sparsity, label, overrides) in enumerate(plan):
        runs, cost_runs = [], []
        for seed in SEEDS:
            cfg = parse_config(_config(path, seed, {**overrides, "sparsity": sparsity}), str(path))
            runs.append(train_run(cfg, work / f"{kind}_{n}_{seed}", show_progress=False))
            cost_runs.append(costs(cfg, runs[-1]))
        rows.append({"model": kind, "row": label, "sparsity_target": sparsity, "method": overrides,
                     **{k: _summary([c[k] for c in cost_runs]) for k in
                        ("macs", "nonzero_macs", "bops", "nonzero_bops", "bop_compression",
                         "nonzero_bop_compression")},
                     "epochs": sum(runs[0]["phase_epochs"].values()),
                     "test_accuracy": _summary([m["test_accuracy"] for m in runs]),
                     "sparsity": _summary([m["sparsity"] for m in runs]),
                     "phase_test_accuracy": {p: _summary([m["phase_test_accuracy"][p] for m in runs])
                                             for p in runs[0]["phase_test_accuracy"]},
                     "delta_per_layer": runs[0]["delta_per_layer"]})
    return rows


def run(out_path, models=DEFAULT_MODELS) -> list[dict]:
    import torch

    from quant.config import parse_config
    from quant.data import load_dataset
    from quant.build import make_model

    torch.set_num_threads(1)
    out_path = Path(out_path)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in models:
            path = MODELS[kind]
            cfg = parse_config(yaml.safe_load(path.read_text()), str(path))
            split = load_dataset(cfg.dataset)
            rows.append({"model": kind, "row": "weight storage",
                         **storage(make_model(cfg, split.image_shape, split.classes))})
            dense = costs(cfg)  # the float network: every layer's weights and inputs at 32 bits
            rows.append({**float_row(kind, path), "macs": _summary([dense["macs"]]),
                         "bops": _summary([dense["float_bops"]])})
            rows += ablation_rows(kind, path, Path(tmp))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | row | sparsity target | epochs | test accuracy % (mean ± std) | sparsity % | MACs "
             "(non-zero) | BOPs (non-zero) | BOP comp. (non-zero) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "test_accuracy" not in r:
            continue
        a, s = r["test_accuracy"], r["sparsity"]
        c = (f"{r['macs']['mean']:.0f} ({r['nonzero_macs']['mean']:.0f}) | {r['bops']['mean']:.0f} "
             f"({r['nonzero_bops']['mean']:.0f}) | {r['bop_compression']['mean']:.1f} "
             f"({r['nonzero_bop_compression']['mean']:.1f})") if "nonzero_macs" in r else (
            f"{r['macs']['mean']:.0f} | {r['bops']['mean']:.0f} | 1.0" if "macs" in r else "| |")
        lines.append(f"| {r['model']} | {r['row']} | {100 * r['sparsity_target']:.0f} | {r['epochs']} | "
                     f"{100 * a['mean']:.2f} ± {100 * a['std']:.2f} | {100 * s['mean']:.1f} | {c} |")
    return "\n".join(lines)


def run_lenet5(work: Path) -> dict:
    """`make bench ONLY=ptq_lenet5`: the ablation on LeNet-5 over mnist5k, 3 seeds a row."""
    work = Path(work)
    rows = run(work / "ptq_lenet5.json", ("lenet5",))
    (work / "ptq_lenet5.md").write_text(table(rows) + "\n")
    return {"rows": rows, "table": str(work / "ptq_lenet5.md")}


if __name__ == "__main__":
    result = run(sys.argv[1] if len(sys.argv) > 1 else "ptq_ablation.json")
    print(table(result))
