"""Whole-accelerator simulation speed: the SystemVerilog harness (sim/harness.py) against the per-cycle cocotb
drivers (sim/tb_accelerator.py), side by side on the same TFC-sized design (784-64-64-64-10, xnor, random
weights; sim/graphs.py), on Verilator and Icarus, plus the time `pqhw verify` takes for 10,000 vectors.

For each design and simulator: simulated cycles per second and frames per second of
- cocotb:            verify(stimulus="cocotb"), every clock edge and stream beat from Python;
- harness:           verify(stimulus="harness"), the harness clocking itself (the default);
- harness_cocotb_clk: the same harness with cocotb's Clock driving clk (to choose between the two);
both wall time and CPU time of the simulator process (the machine is shared: CPU time is the steadier
figure). Every run must have 0 mismatches; the record says if one did not. Target: >= 1e6 cycles/s on
Verilator and a 10k-vector verify under a minute (recorded next to the measurements, not asserted). On
Verilator the harness row is that 10k-vector `verify` (wall time with and without the build).

    python -m bench.sim_speed [--quick]       # or: make bench ONLY=sim_speed
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hw.cycles import expected_cycles_per_frame
from hw.emit import emit
from hw.ir import Graph
from hw.reference import run_graph
from sim import graphs
from sim.harness import run_harness
from sim.verify import BACKPRESSURE, IDLE, RATE_FRAMES, verify

TARGET_CYCLES_PER_SECOND = 1_000_000
TARGET_10K_SECONDS = 60.0
SIZES = [784, 64, 64, 64, 10]
# (PE, SIMD) per MVAU: FINN's TFC-w1a1 example folding (64 cycles a frame), and a folding at about the
# 2,048 cycles a frame `pqhw flow --board ulx3s-85f` picks for the digits nets.
DESIGNS = {
    "tfc_64": [(16, 49), (16, 32), (16, 32), (10, 16)],
    "tfc_2048": [(2, 14), (1, 2), (1, 2), (1, 1)],
}
# simulated cycles per measurement, (cocotb, harness) per simulator: enough for each run to last seconds
CYCLES = {"verilator": (20_000, 4_000_000), "icarus": (4_000, 20_000)}
QUICK_DIV = 5
TEN_K = 10_000


def tfc(folds) -> Graph:
    return graphs.mlp(0, "xnor", SIZES, folds, "BINARY", "BINARY", "BINARY")


def vectors_for(cycles: int, per_frame: int) -> int:
    """Vectors whose stress pass plus rate pass (up to RATE_FRAMES more frames) take about `cycles`."""
    frames = cycles // per_frame
    return max(4, frames - RATE_FRAMES) if frames > 2 * RATE_FRAMES else max(4, frames // 2)


def _speed(rec: dict, frames: int) -> dict:
    ok = rec["mismatches"] == 0 and not rec["timed_out"]
    return {"vectors": rec["vectors"], "frames": frames, "mismatches": rec["mismatches"], "ok": ok,
            "cycles": rec["simulated_cycles"], "run_seconds": rec["run_seconds"],
            "run_cpu_seconds": rec["run_cpu_seconds"],
            "cycles_per_second": round(rec["simulated_cycles"] / rec["run_seconds"]),
            "cycles_per_cpu_second": round(rec["simulated_cycles"] / rec["run_cpu_seconds"]),
            "frames_per_second": round(frames / rec["run_seconds"], 1),
            "cycles_per_frame": rec["cycles_per_frame"], "expected_cycles_per_frame": rec["expected_cycles_per_frame"],
            "latency_cycles": rec["latency_cycles"], "idle_cycles": rec.get("idle_cycles"),
            "stall_cycles": rec.get("stall_cycles"), "build_seconds": rec["build_seconds"]}


def _cocotb_clock(out: Path, sim: str, vectors: int) -> dict:
    """The harness with cocotb's Clock on clk: same stimulus, checked against the reference here."""
    g = Graph.load(out / "graph.json")
    x = graphs.random_inputs(np.random.default_rng(1), g.input_dtype, vectors, SIZES[0])
    expected = run_graph(g, x)[:, 0]
    design = emit(g, out)
    run_dir = out / "sim_run" / f"{sim}_cocotb_clk"
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in design.memory_files:
        (run_dir / name).write_text((design.rtl_dir / name).read_text())
    t0 = time.monotonic()
    res = run_harness(design, x, sim, out / "sim_build", run_dir, seed=1, idle=IDLE, backpressure=BACKPRESSURE,
                      rate_frames=RATE_FRAMES, timeout_cycles=2000 + 8 * vectors * expected_cycles_per_frame(g),
                      self_clock=False)
    wall = time.monotonic() - t0
    mism = int(sum(g_ != e for g_, e in zip(res["classes"], expected))) + (len(expected) - len(res["classes"]))
    mism += res["rate_classes"] != expected[:RATE_FRAMES].tolist()
    frames = vectors + min(vectors, RATE_FRAMES)
    return {"vectors": vectors, "frames": frames, "mismatches": mism, "ok": mism == 0 and not res["timeout"],
            "cycles": res["sim_cycles"], "run_seconds": round(res["run_seconds"], 3),
            "run_cpu_seconds": round(res["run_cpu_seconds"], 3),
            "cycles_per_second": round(res["sim_cycles"] / res["run_seconds"]),
            "cycles_per_cpu_second": round(res["sim_cycles"] / res["run_cpu_seconds"]),
            "frames_per_second": round(frames / res["run_seconds"], 1), "wall_seconds_with_build": round(wall, 1)}


def measure(work: Path, name: str, sim: str, quick: bool = False) -> dict:
    """One design on one simulator. On Verilator the harness measurement is the 10k-vector verify itself
    (its memories are sized for 16,384 frames, so every harness run of the design shares one build)."""
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    g = tfc(DESIGNS[name])
    g.save(out / "graph.json")
    per_frame = expected_cycles_per_frame(g)
    div = QUICK_DIV if quick else 1
    n_old, n_new = (vectors_for(c // div, per_frame) for c in CYCLES[sim])
    if sim == "verilator":
        n_new = TEN_K // div
    row: dict = {"design": name, "folds": DESIGNS[name], "simulator": sim, "cycles_per_frame_model": per_frame}
    rec = verify(out, vectors=n_old, sim=sim, seed=1, stimulus="cocotb")
    row["cocotb"] = _speed(rec, rec["vectors"] + min(rec["vectors"], RATE_FRAMES))
    t0 = time.monotonic()
    rec = verify(out, vectors=n_new, sim=sim, seed=1)
    wall = time.monotonic() - t0
    row["harness"] = _speed(rec, rec["vectors"] + min(rec["vectors"], RATE_FRAMES))
    row["harness"]["verify_seconds"] = round(wall, 1)
    row["harness"]["verify_seconds_without_build"] = round(wall - rec["build_seconds"], 1)
    row["harness_cocotb_clk"] = _cocotb_clock(out, sim, min(n_new, 2000))
    row["speedup"] = round(row["harness"]["cycles_per_second"] / row["cocotb"]["cycles_per_second"], 1)
    row["speedup_cpu"] = round(row["harness"]["cycles_per_cpu_second"] / row["cocotb"]["cycles_per_cpu_second"], 1)
    return row


def run(work: Path, quick: bool = False, sims=("verilator", "icarus"), designs=tuple(DESIGNS)) -> dict:
    """bench/run.py entry: every design on every simulator; the 10k verify on Verilator."""
    work = Path(work)
    rows = []
    for name in designs:
        for sim in sims:
            print(f"  {name} on {sim}", flush=True)
            rows.append(measure(work, name, sim, quick))
    return {"rows": rows, "target_cycles_per_second": TARGET_CYCLES_PER_SECOND,
            "target_10k_seconds": TARGET_10K_SECONDS, "table": table(rows)}


def table(rows: list[dict]) -> str:
    lines = ["| design | sim | path | vectors | cycles/s | cycles/CPU-s | frames/s | verify s (without build) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        for path in ("cocotb", "harness", "harness_cocotb_clk"):
            m = r[path]
            secs = f"{m['verify_seconds']} ({m['verify_seconds_without_build']})" if "verify_seconds" in m else ""
            lines.append(f"| {r['design']} | {r['simulator']} | {path} | {m['vectors']:,} | "
                         f"{m['cycles_per_second']:,} | {m['cycles_per_cpu_second']:,} | "
                         f"{m['frames_per_second']:,} | {secs} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run alone; merges its key into bench/results.json like bench/run.py does."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer vectors per measurement")
    parser.add_argument("--sims", nargs="*", default=["verilator", "icarus"])
    parser.add_argument("--designs", nargs="*", default=list(DESIGNS), choices=list(DESIGNS))
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--work", type=Path, default=root / "runs" / "bench" / "sim_speed")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results.json")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    res = run(args.work, args.quick, tuple(args.sims), tuple(args.designs))
    res["bench_seconds"] = round(time.perf_counter() - t0, 1)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["sim_speed"] = res
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(res["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
