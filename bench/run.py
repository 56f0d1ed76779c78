"""`make bench`: the project's measured targets, written to one JSON file.

Each benchmark is a function returning a JSON-able dict; they run side by side in one process so that
ratios compare like with like. `--only NAME` runs a subset. Targets are recorded next to the measurements
(a benchmark reports, it does not assert: this machine is shared and noisy).
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> "module:function"; each function takes a scratch directory and returns a dict.
BENCHMARKS = {
    "foundation": "bench.foundation:run",
    "ptq": "bench.run:ptq",
    "djpq": "bench.run:djpq",
    "djpq_hw": "bench.djpq_hw:run",
    "djpq_lenet5": "bench.djpq_table:run_lenet5",
    "ptq_lenet5": "bench.ptq_ablation:run_lenet5",
    "djpq_hw_cnn": "bench.djpq_hw:run_cnn",
    "djpq_hw_lenet5": "bench.djpq_hw:run_lenet5",
    "threshold_search": "bench.threshold_search:run",
    "estimates": "bench.estimate_calibration:run",
    "rtl": "bench.rtl_bench:run",
    "sim_speed": "bench.sim_speed:run",
    "mnist5k": "bench.mnist5k:run",
    "finn_zoo": "bench.finn_zoo:run",
    "alq": "bench.alq_table:run",
    "alq_hw": "bench.alq_table:run_hw",
    "alq_lenet5": "bench.alq_table:run_lenet5",
    "admm": "bench.admm_table:run",
    "admm_lenet5": "bench.admm_table:run_lenet5",
    "sparsity_luts": "bench.sparsity_luts:run",
    "rtllib_blocks": "bench.rtllib_compare:run",
    "synth_time": "bench.synth_time:run",
    "conv_nets": "bench.conv_nets:run",
    "lut_efficiency": "bench.lut_efficiency:run",
    "sweep": "bench.sweep_bench:run",
    "board_training": "bench.board_training:run",
}


def ptq(work: Path) -> dict:
    """Paper 000, Table 4 ablation on digits (plain ternary, STE-only, STE-reset at 50/70/80 %)."""
    from bench.ptq_ablation import run, table

    rows = run(work / "ptq_ablation.json")
    (work / "ptq_ablation.md").write_text(table(rows) + "\n")
    return {"rows": rows, "table": str(work / "ptq_ablation.md")}


def djpq(work: Path) -> dict:
    """Paper 001, Table 1 on digits: fixed 8/8, 4/4, 2/2, DQ, VIBNet+DQ, DJPQ, DJPQ-restrict (+ plots)."""
    from bench.djpq_table import run

    return {"rows": run(work / "djpq_table.json"), "table": str(work / "djpq_table.md")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--only", nargs="*", default=None, help=f"subset of {sorted(BENCHMARKS)}")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {sorted(BENCHMARKS)}")
    machine = {"python": platform.python_version(), "processor": platform.processor(),
               "cores": __import__("os").cpu_count()}
    for name in names:
        module, func = BENCHMARKS[name].split(":")
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        row = getattr(importlib.import_module(module), func)(args.work / name)
        row["bench_seconds"] = round(time.perf_counter() - t0, 1)
        # read again just before writing: another benchmark may have written its key meanwhile
        results = json.loads(args.out.read_text()) if args.out.is_file() else {}
        results.update({"machine": machine, name: row})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
