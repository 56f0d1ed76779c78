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


# ------------------------------------------------------------------------------------------------ hardware
# ALQ nets for hardware (configs/digits_alq_hw.yaml at two targets) next to the binary and 2-bit nets of the
# same 64-64-64-10 topology, each compiled at the same frame budget and verified in RTL simulation.
# Rows: (config, target bits or None for a plain quantized config, method overrides).
HW_ROWS = [("digits_alq_hw", 1.0, {}), ("digits_alq_hw", 2.0, {}), ("digits_alq_hw", 1.0, {"mantissa_bits": 1}),
           ("digits_w1a1", None, {}), ("digits_w2a2", None, {}),
           ("mnist5k_alq_mlp_hw", 1.0, {}), ("mnist5k_tfc_w1a1", None, {}), ("mnist5k_tfc_w2a2", None, {})]
HW_FPS, HW_CLOCK_MHZ, HW_VECTORS = 25_000, 100.0, 64


def _mvau_cell(r: dict) -> str:
    if r["kind"] != "alq":
        return "-"
    return f"{r['as_mvau_luts']:,}" if r.get("as_mvau_luts") is not None else "refused (weights > 8 bits)"


def hw_table(rows: list[dict]) -> str:
    lines = [f"Hardware at {HW_FPS:,} frames/s and {HW_CLOCK_MHZ:g} MHz (ECP5 estimate; RTL simulation on the test "
             f"split + {HW_VECTORS} random vectors):", "",
             "| config | weight bits | act bits | test acc | est. LUTs | est. FFs | BRAMs | cycles (measured) | "
             "mismatches | same integers on pqhw_mvau, est. LUTs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        extra = "".join(f", {k} {v}" for k, v in r["overrides"].items())
        lines.append(f"| {r['config']}{extra} | {r['weight_bits']} | {r['act_bits']} | "
                     f"{100 * r['test_accuracy']:.2f} % | "
                     f"{r['est_luts']:,} | {r['est_ffs']:,} | {r['brams']} | {r['expected_cycles']:,} "
                     f"({r['measured_cycles']:g}) | {r['mismatches']} / {r['vectors']} | "
                     f"{_mvau_cell(r)} |")
    return "\n".join(lines)


def as_mvau_luts(hw_dir: Path) -> int | None:
    """The estimate of the same FINN graph and folding built on pqhw_mvau (the ALQ metadata dropped), or None
    where the MVAU block refuses its weights (wider than 8 bits)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from common.errors import UserError
    from hw.estimate import estimate_graph
    from hw.from_finn import graph_from_finn
    from hw.ir import Graph

    model = ModelWrapper(str(hw_dir / "finn_hw.onnx"))
    del model.model.graph.metadata_props[:]
    try:
        plain = graph_from_finn(model)
    except UserError:
        return None
    built = Graph.load(hw_dir / "graph.json")
    layers = [p.folded(**{k: getattr(b, k) for k in p.fold_totals()}) for p, b in zip(plain.layers, built.layers)]
    return estimate_graph(plain.model_copy(update={"layers": layers}), "ecp5")["total"]["luts"]


def _hw_config(name: str, bits: float | None, overrides: dict) -> dict:
    if bits is not None:
        cfg = _config(name, bits)
    else:
        cfg = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
        cfg["name"] = name
    if overrides:
        cfg["method"].update(overrides)
    cfg["name"] += "".join(f"_{k}{v}" for k, v in overrides.items())
    return cfg


def run_hw(work: Path, rows=HW_ROWS) -> dict:
    """Train, export, compile at HW_FPS and verify each row; hardware columns next to accuracy."""
    import json

    from hw.compile import compile_model
    from quant.config import parse_config
    from quant.export import export_run
    from quant.train import train_run
    from sim.verify import verify

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for name, bits, overrides in rows:
        cfg = parse_config(_hw_config(name, bits, overrides), f"{name}.yaml")
        run_dir = work / cfg.name
        m = train_run(cfg, run_dir, show_progress=False)
        export_run(run_dir)
        rep = compile_model(run_dir / "model.qonnx.onnx", run_dir / "hw", target_fps=HW_FPS, clock_mhz=HW_CLOCK_MHZ)
        rec = verify(run_dir / "hw", vectors=HW_VECTORS, sim="verilator", seed=1)
        comp = json.loads((run_dir / "hw" / "compile.json").read_text())
        est = comp["estimate_total"]
        wbits = m.get("avg_weight_bits") or round(m["weight_bits_total"] / m["params"], 3)
        alq = any(l["kind"] == "alq" for l in comp["layers"])
        out.append({"config": name, "target_bits": bits, "overrides": overrides, "weight_bits": wbits,
                    "kind": "alq" if alq else "mvau", "as_mvau_luts": as_mvau_luts(run_dir / "hw") if alq else None,
                    "act_bits": m.get("act_bits") or cfg.model.layers[0].act,
                    "test_accuracy": m["test_accuracy"], "float_accuracy": m.get("float_accuracy"),
                    "est_luts": est["luts"], "est_ffs": est["ffs"], "brams": est["brams"],
                    "layers": [{k: l.get(k) for k in ("name", "kind", "pe", "simd", "est_luts", "expected_cycles")}
                               for l in comp["layers"]],
                    "expected_cycles": rec["expected_cycles_per_frame"], "measured_cycles": rec["cycles_per_frame"],
                    "mismatches": rec["mismatches"], "vectors": rec["vectors"],
                    "compile_seconds": rep.get("compile_seconds", comp.get("compile_seconds"))})
        (work / "alq_hw_table.md").write_text(hw_table(out) + "\n")
    return {"rows": out, "fps": HW_FPS, "clock_mhz": HW_CLOCK_MHZ, "table": str(work / "alq_hw_table.md")}


# ------------------------------------------------------------------------------------------------- LeNet-5
# `make bench ONLY=alq_lenet5`: the ALQ LeNet-5 (configs/mnist5k_alq_lenet5_hw.yaml, classic LeNet-5 with
# channel-wise groups) through `pqhw flow --board ulx3s-85f` (train, export, compile at the fastest folding that
# fits, verify in RTL simulation, bitstream) next to the binary and 2-bit LeNet-5 of the same topology through
# the same flow; then its accuracy at the other target bits (training only).
LENET_CONFIG = "mnist5k_alq_lenet5_hw"
LENET_BITS = (2.0, 1.0, 0.7, 0.4)
LENET_HW = [("ALQ LeNet-5, 1 bit", LENET_CONFIG), ("LeNet-5 w1a1", "mnist5k_lenet5_w1a1_alqref"),
            ("LeNet-5 w2a2", "mnist5k_lenet5_w2a2")]


def _fmt(v, spec: str, unit: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{unit}"


def lenet_table(hw_rows: list[dict], acc_rows: list[dict]) -> str:
    lines = ["On the ULX3S (ECP5-85F), `pqhw flow --board ulx3s-85f` (the fastest folding that fits; RTL simulation "
             "on the test split + 100 random vectors, idle and backpressure; place and route at the 25 MHz board "
             "clock):", "",
             "| net | weight bits | test acc (float) | mismatches / vectors | measured / expected cycles | LUTs | FFs "
             "| BRAMs | Fmax | frames/s at Fmax |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in hw_rows:
        acc = r.get("test_accuracy")
        lines.append(
            f"| {r['net']} | {r.get('weight_bits', '-')} | {_fmt(acc and 100 * acc, '.2f', ' %')} "
            f"({_fmt(r.get('float_accuracy') and 100 * r['float_accuracy'], '.2f', ' %')}) | "
            f"{r.get('mismatches', '-')} / {r.get('vectors', '-')} | {_fmt(r.get('measured_cycles_per_frame'), ',.0f')}"
            f" / {_fmt(r.get('expected_cycles_per_frame'), ',')} | {_fmt(r.get('luts'), ',')} | "
            f"{_fmt(r.get('ffs'), ',')} | {_fmt(r.get('brams'), 'd')} | {_fmt(r.get('fmax_mhz'), '.1f', ' MHz')} | "
            f"{_fmt(r.get('fps_at_fmax'), ',.0f')} |" + (f" {r['error']}" if r.get("error") else ""))
    return "\n".join(lines + ["", "Accuracy against average weight bits (2-bit activations):", "", table(acc_rows)])


def run_lenet5(work: Path, bits=LENET_BITS, hw=LENET_HW, reuse: dict | None = None) -> dict:
    """`reuse`: earlier hw rows by config name (from results.json), taken instead of running their flow again
    (`python -m bench.alq_table --reuse-references`: the w1a1 / w2a2 rows do not depend on the ALQ config)."""
    import json

    from bench.conv_nets import flow_row
    from quant.config import parse_config
    from quant.train import train_run

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    hw_rows, acc_rows = [], []
    default_bits = yaml.safe_load((ROOT / "configs" / f"{LENET_CONFIG}.yaml").read_text())["method"]["target_bits"]

    def write():
        (work / "alq_lenet5.md").write_text(lenet_table(hw_rows, acc_rows) + "\n")

    for label, config in hw:
        if reuse and config in reuse:
            hw_rows.append({**reuse[config], "reused": True})
            write()
            continue
        row = flow_row(label, config, work)
        metrics = work / config / "metrics.json"
        if metrics.is_file():
            m = json.loads(metrics.read_text())
            row["weight_bits"] = m.get("avg_weight_bits") or round(m["weight_bits_total"] / m["params"], 3)
            if config == LENET_CONFIG:
                row["storage_kib"] = m["storage_kib"]
                acc_rows.append({"config": config, "target_bits": default_bits, **{k: m[k] for k in KEEP}})
        comp = work / config / "hw" / "compile.json"
        if comp.is_file():
            c = json.loads(comp.read_text())
            if c.get("estimate_total"):
                row["estimate"] = {k: c["estimate_total"][k] for k in ("luts", "ffs", "brams")}
            row["folding"] = [f"{l['name']} PE{l.get('pe')} SIMD{l.get('simd')}" for l in c["layers"]
                              if l["kind"] in ("alq", "mvau")]
        hw_rows.append(row)
        write()
    for b in bits:
        if b == default_bits and any(r["config"] == LENET_CONFIG for r in acc_rows):
            continue
        cfg = parse_config(_config(LENET_CONFIG, b), f"{LENET_CONFIG}.yaml (target_bits {b})")
        m = train_run(cfg, work / cfg.name, show_progress=False)
        acc_rows.append({"config": LENET_CONFIG, "target_bits": b, **{k: m[k] for k in KEEP}})
        acc_rows.sort(key=lambda r: -r["target_bits"])
        write()
    return {"hw_rows": hw_rows, "rows": acc_rows, "table": str(work / "alq_lenet5.md")}


def main(argv=None) -> int:
    """Re-run the ALQ LeNet-5 rows of bench/results.json's "alq_lenet5", keeping its reference rows."""
    import argparse
    import json
    import time

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--reuse-references", action="store_true", help="keep the w1a1 / w2a2 rows of results.json")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "alq_lenet5")
    args = ap.parse_args(argv)
    reuse = None
    if args.reuse_references:
        old = json.loads(args.results.read_text()).get("alq_lenet5", {})
        reuse = {r["config"]: r for r in old.get("hw_rows", []) if r.get("config") != LENET_CONFIG}
    t0 = time.perf_counter()
    row = run_lenet5(args.work, reuse=reuse)
    row["bench_seconds"] = round(time.perf_counter() - t0, 1)
    results = json.loads(args.results.read_text())  # read again: another benchmark may have written meanwhile
    results["alq_lenet5"] = row
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print((args.work / "alq_lenet5.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
