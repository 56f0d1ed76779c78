"""The DJPQ comparison (paper 001, Table 1 layout): every baseline and DJPQ on one network and split, for
each of MODELS (the digits MLP and the digits CNN by default; LeNet-5 on mnist5k with --models lenet5).

run(out_path) trains each row from the model's config with only the method section changed, over SEEDS
(mean, std and every run per row), one training thread each, writes the rows as JSON to out_path (each row
names its model) and, beside it, PNG plots per model of the learned bit widths and pruning ratios per layer
(paper Figs. 1-4) and of accuracy against BOPs.
"""
from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"mlp": "digits_djpq", "cnn": "digits_djpq_cnn", "lenet5": "mnist5k_lenet5_djpq"}
DEFAULT_MODELS = ("mlp", "cnn")
TITLES = {"mlp": "digits MLP 64-64-64-10", "cnn": "digits CNN conv16-conv32-pool-fc10",
          "lenet5": "LeNet-5 on mnist5k"}

ROWS = [
    ("fixed 8/8", {"variant": "fixed", "fixed_bits": [8, 8]}),
    ("fixed 4/4", {"variant": "fixed", "fixed_bits": [4, 4]}),
    ("fixed 2/2", {"variant": "fixed", "fixed_bits": [2, 2]}),
    ("DQ", {"variant": "dq", "restrict": "none"}),
    # footnote 2: DQ's learned widths upper rounded to powers of two after training
    ("DQ-restrict", {"variant": "dq", "restrict": "pow2_up", "restrict_after": True}),
    ("VIBNet + fixed 8/8", {"variant": "vib_dq", "fixed_bits": [8, 8]}),
    ("two-stage (VIBNet, then DQ)", {"variant": "vib_dq", "restrict": "none"}),
    ("DJPQ", {"variant": "djpq", "restrict": "none"}),
    ("DJPQ-restrict", {"variant": "djpq", "restrict": "pow2"}),
]
KEEP = ("test_accuracy", "float_accuracy", "macs", "bops", "float_macs", "float_bops", "mac_compression",
        "bop_compression",
        "weight_bits_per_layer", "act_bits_per_layer", "pruned_channels_ratio", "layer_pruning_ratio",
        "kept_channels", "hardware_runnable", "train_seconds")
SEEDS = (0, 1, 2)
STATS = ("test_accuracy", "macs", "bops", "mac_compression", "bop_compression")


def _summary(values) -> dict:
    values = [float(v) for v in values]
    return {"mean": round(statistics.fmean(values), 6),
            "std": round(statistics.stdev(values), 6) if len(values) > 1 else 0.0}


def _config(model: str, overrides: dict, seed: int = 0) -> dict:
    cfg = yaml.safe_load((ROOT / "configs" / f"{MODELS[model]}.yaml").read_text())
    cfg["training"]["seed"] = seed
    cfg["training"]["threads"] = 1
    method = {k: v for k, v in cfg["method"].items() if k not in ("variant", "restrict", "fixed_bits")}
    cfg["method"] = {**method, **overrides}
    return cfg


def train_rows(work: Path, model: str = "mlp", only: tuple[str, ...] | None = None) -> list[dict]:
    import torch

    from quant.methods.djpq import pretrain_cache

    torch.set_num_threads(1)
    with pretrain_cache(work / model / "pretrained"):  # one float pre-training a seed, shared by the rows
        rows = _train_rows(work, model, only)
    return _with_float_row(model, rows)


def _train_rows(work: Path, model: str, only: tuple[str, ...] | None) -> list[dict]:
    from common.errors import UserError
    from quant.config import parse_config
    from quant.train import train_run

    base = ROOT / "configs" / f"{MODELS[model]}.yaml"
    rows = []
    for label, overrides in ROWS:
        if only is not None and label not in only:
            continue
        runs, diverged = [], []
        for seed in SEEDS:
            cfg = parse_config(_config(model, overrides, seed), f"{base} ({label})")
            try:
                m = train_run(cfg, work / model / f"{label.replace(' ', '_').replace('/', '-')}_{seed}",
                              show_progress=False)
            except UserError as e:  # a diverged seed is reported with the row, not averaged
                diverged.append({"seed": seed, "error": str(e)})
                continue
            runs.append({**{k: m[k] for k in KEEP}, "seed": seed})
        if not runs:
            rows.append({"model": model, "row": label, "method": overrides, "diverged": diverged})
            continue
        rows.append({"model": model, "row": label, "diverged": diverged, "seeds": [r["seed"] for r in runs],
                     "bit_width": "/".join(map(str, overrides["fixed_bits"]))
                     if "fixed_bits" in overrides else "mixed", "method": overrides,
                     **{k: _summary(r[k] for r in runs) for k in STATS},
                     "weight_bits_per_layer": [r["weight_bits_per_layer"] for r in runs],
                     "act_bits_per_layer": [r["act_bits_per_layer"] for r in runs],
                     "layer_pruning_ratio": runs[0]["layer_pruning_ratio"],
                     "kept_channels": [r["kept_channels"] for r in runs], "runs": runs})
    return rows


def _with_float_row(model: str, rows: list[dict]) -> list[dict]:
    first = next(r["runs"] for r in rows if "runs" in r)
    rows.insert(0, {"model": model, "row": "float baseline", "bit_width": "32/32",
                    "test_accuracy": _summary(r["float_accuracy"] for r in first),
                    "macs": _summary(r["float_macs"] for r in first),
                    "bops": _summary(r["float_bops"] for r in first),
                    "mac_compression": _summary([1.0]), "bop_compression": _summary([1.0])})
    return rows


def plot(rows: list[dict], out_dir: Path, model: str = "mlp") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    rows = [r for r in rows if "test_accuracy" in r]
    mixed = [r for r in rows if r.get("bit_width") == "mixed"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in mixed:  # seed 0
        axes[0].plot(range(len(r["weight_bits_per_layer"][0])), r["weight_bits_per_layer"][0], "o-", label=r["row"])
        axes[1].plot(range(len(r["act_bits_per_layer"][0])), r["act_bits_per_layer"][0], "s--", label=r["row"])
    axes[0].set(title="learned weight bits per layer", xlabel="layer", ylabel="bits")
    axes[1].set(title="learned activation bits per layer", xlabel="layer (output activation)", ylabel="bits")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / f"djpq_{model}_bits.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    pruned = [r for r in rows if r.get("layer_pruning_ratio") and any(r["layer_pruning_ratio"])]
    for r in pruned:
        ax.plot(range(len(r["layer_pruning_ratio"])), r["layer_pruning_ratio"], "o-", label=r["row"])
    ax.set(title="layer-wise pruning ratio P_l (eq. 14)", xlabel="layer", ylabel="P_l", ylim=(0, 1))
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / f"djpq_{model}_pruning.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.errorbar(r["bops"]["mean"], 100 * r["test_accuracy"]["mean"], yerr=100 * r["test_accuracy"]["std"],
                    fmt="o")
        ax.annotate(r["row"], (r["bops"]["mean"], 100 * r["test_accuracy"]["mean"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set(xscale="log", xlabel="BOPs (log)", ylabel="test accuracy (%)", title=f"{TITLES[model]}: accuracy vs BOPs")
    fig.tight_layout()
    paths.append(out_dir / f"djpq_{model}_acc_vs_bops.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def table(rows: list[dict]) -> str:
    lines = [f"| method | bit-width | test acc. % (mean ± std, {len(SEEDS)} seeds) | MACs | BOPs | MAC comp. | "
             "BOP comp. | w bits (seed 0) | a bits (seed 0) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "test_accuracy" not in r:
            lines.append(f"| {r['row']} | - | all seeds diverged | | | | | | |")
            continue
        a, mac, bop = r["test_accuracy"], r["macs"], r["bops"]
        wb = r["weight_bits_per_layer"][0] if "weight_bits_per_layer" in r else "-"
        ab = r["act_bits_per_layer"][0] if "act_bits_per_layer" in r else "-"
        bad = f" ({len(r['diverged'])} of {len(SEEDS)} seeds diverged)" if r.get("diverged") else ""
        lines.append(f"| {r['row']} | {r['bit_width']} | {100 * a['mean']:.2f} ± {100 * a['std']:.2f}{bad} | "
                     f"{mac['mean']:.0f} ± {mac['std']:.0f} | {bop['mean']:.0f} ± {bop['std']:.0f} | "
                     f"{r['mac_compression']['mean']:.2f} | {r['bop_compression']['mean']:.1f} | {wb} | {ab} |")
    return "\n".join(lines)


def run(out_path, models=DEFAULT_MODELS) -> list[dict]:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rows, tables = [], []
    with tempfile.TemporaryDirectory() as work:
        for model in models:
            mine = train_rows(Path(work), model)
            rows += mine
            plot(mine, out_path.parent, model)
            tables.append(f"{TITLES[model]} ({MODELS[model]}):\n\n{table(mine)}\n")
            out_path.write_text(json.dumps(rows, indent=2) + "\n")  # each model's rows as soon as they exist
    (out_path.with_suffix(".md")).write_text("\n".join(tables))
    return rows


LENET5_ROWS = None  # every row of Table 1: 27 runs of 60-170 s


def run_lenet5(work: Path) -> dict:
    """`make bench ONLY=djpq_lenet5`: Table 1's rows on LeNet-5 over mnist5k, 3 seeds each."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = train_rows(Path(tmp), "lenet5", LENET5_ROWS)
    plot(rows, work, "lenet5")
    (work / "djpq_lenet5.md").write_text(table(rows) + "\n")
    return {"rows": rows, "table": str(work / "djpq_lenet5.md")}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", nargs="?", type=Path, default=ROOT / "bench" / "out" / "djpq_table.json")
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(DEFAULT_MODELS))
    args = ap.parse_args()
    result = run(args.out, args.models)
    print(args.out.with_suffix(".md").read_text())
