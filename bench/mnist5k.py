"""mnist5k (5,000 real MNIST images, 4,000 / 1,000): FINN's TFC / SFC / LFC at w1a1 and w2a2, test accuracy
next to the float baseline of the same topology, seconds per epoch; and how long three quantized TFC epochs
take with one torch thread against torch's default thread count.

`make bench ONLY=mnist5k` trains all six configs; `python -m bench.mnist5k --configs mnist5k_tfc_w1a1 ...`
trains a subset and merges its rows into bench/results.json["mnist5k"], leaving the other rows and keys.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [f"mnist5k_{arch}_{prec}" for arch in ("tfc", "sfc", "lfc") for prec in ("w1a1", "w2a2")]
# The targets (FINN's TFC-W1A1 reaches about 93 % on the full 60k MNIST).
TARGETS = {"mnist5k_tfc_w1a1": 0.90, "mnist5k_tfc_w2a2": 0.94, "mnist5k_lfc_w1a1": 0.94}
TORCH_DEFAULT_THREADS = torch.get_num_threads()  # read at import, before any run sets its own


def train_config(name: str, work: Path) -> dict:
    from quant.config import load_config
    from quant.train import train_run

    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    m = train_run(cfg, work / name, show_progress=False)
    epochs = cfg.training.epochs
    row = {
        "test_accuracy": m["test_accuracy"], "float_accuracy": m.get("float_accuracy"),
        "train_accuracy": m["train_accuracy"], "target_accuracy": TARGETS.get(name),
        "train_seconds_per_epoch": round(m["train_seconds"] / epochs, 3),
        "float_seconds_per_epoch": (round(m["float_train_seconds"] / epochs, 3)
                                    if "float_train_seconds" in m else None),
        "epochs": epochs, "threads": m["threads"], "lr": cfg.training.lr, "batch_size": cfg.training.batch_size,
        "shift": cfg.training.shift, "input_bits": cfg.dataset.input_bits, "params": m["params"],
        "weight_bits_total": m["weight_bits_total"], "compression_vs_float32": m["compression_vs_float32"],
    }
    if name in TARGETS:
        row["meets_target"] = m["test_accuracy"] >= TARGETS[name]
    return row


def thread_timing(work: Path, epochs: int = 3) -> dict:
    """Seconds per quantized TFC w1a1 epoch with one thread and with torch's default, same seed."""
    from quant.config import load_config
    from quant.train import train_run

    out = {"config": "mnist5k_tfc_w1a1", "epochs": epochs, "torch_default_threads": TORCH_DEFAULT_THREADS}
    for key, threads in (("one_thread", 1), ("torch_default", TORCH_DEFAULT_THREADS)):
        cfg = load_config(ROOT / "configs" / "mnist5k_tfc_w1a1.yaml")
        cfg.training.epochs, cfg.training.threads, cfg.training.float_baseline = epochs, threads, False
        m = train_run(cfg, work / f"threads_{threads}", show_progress=False)
        out[f"{key}_seconds_per_epoch"] = round(m["train_seconds"] / epochs, 3)
    return out


def collect(work: Path, configs: list[str]) -> dict:
    work = Path(work)
    rows = {}
    for name in configs:
        t0 = time.perf_counter()
        rows[name] = train_config(name, work)
        rows[name]["bench_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {100 * rows[name]['test_accuracy']:.2f} % (float {100 * rows[name]['float_accuracy']:.2f} %), "
              f"{rows[name]['train_seconds_per_epoch']} s/epoch", flush=True)
    return {"configs": rows, "threads": thread_timing(work)}


def run(work: Path) -> dict:
    """`make bench` entry: all six configs."""
    return collect(work, CONFIGS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="*", default=CONFIGS, choices=CONFIGS, metavar="CONFIG",
                        help=f"subset of {CONFIGS}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "mnist5k")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    new = collect(args.work, args.configs)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    section = results.setdefault("mnist5k", {})
    section.setdefault("configs", {}).update(new["configs"])
    section["threads"] = new["threads"]
    section["bench_seconds"] = round(time.perf_counter() - t0, 1)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results in {args.out} under 'mnist5k'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
