"""`pqhw verify DIR`: the generated accelerator against the numpy reference, in RTL simulation.

Runs the dataset's test vectors (DIR/test_vectors.npz, if present) plus N random vectors drawn uniformly
over the input datatype's range through pqhw_top with random input idle cycles and output backpressure,
compares every class with hw.reference, then measures the steady-state frame interval and the latency with
neither. Writes DIR/verify.json. The RTL is (re)written into DIR/rtl from DIR/graph.json first.

Two ways to drive it, the same checks either way:
- "harness" (default): sim/harness.py, a SystemVerilog harness that keeps stimulus, seeded random idle and
  backpressure and capture inside the simulator, so it runs at the simulator's own speed; it reports the
  idle and stall cycles it inserted. --per-layer captures each layer's stream in the harness too.
- "cocotb": per-cycle cocotb drivers and monitors (sim/tb_accelerator.py), the way block tests run;
  kept for comparison (bench/sim_speed.py).
"""
from __future__ import annotations

import math
import time
import zipfile
from pathlib import Path

import click
import numpy as np

from hw.emit import TOP, Design, emit
from common.atomic import sha256_file, sha256_tree, write_json
from common.cli_types import COUNT, SEED
from common.errors import UserError
from hw.ir import Graph, dtype_range
from hw.reference import run_graph
from sim.harness import HARNESS, HarnessRun
from sim.runner import build, check_simulator, run

RATE_FRAMES = 48  # frames in the no-backpressure pass; the interval is taken over its second half
IDLE = BACKPRESSURE = 0.3  # probability of an input idle cycle / an output stall cycle in the stress pass
STIMULI = ("harness", "cocotb")


def load_vectors(out_dir: Path, graph: Graph, n_random: int, seed: int) -> tuple[np.ndarray, int]:
    """Test-split vectors (if written by `pqhw compile`) then n_random uniform ones; returns (x, n_test)."""
    length = math.prod(graph.input_shape)
    lo, hi = dtype_range(graph.input_dtype)
    parts = []
    path = out_dir / "test_vectors.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                if "x" not in data:
                    raise UserError(f"{path}: no array 'x'; expected integer inputs [N, ...]")
                xt = np.asarray(data["x"]).reshape(len(data["x"]), -1)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as err:
            raise UserError(f"{path}: not a readable .npz of test vectors ({type(err).__name__}); "
                            f"run `pqhw compile` again to write it") from None
        if xt.shape[1] != length:
            raise UserError(f"{path}: vectors have {xt.shape[1]} elements, the graph's input has {length}")
        if xt.size and (xt.min() < lo or xt.max() > hi or not np.issubdtype(xt.dtype, np.integer)):
            raise UserError(f"{path}: inputs must be integers in [{lo}, {hi}] ({graph.input_dtype})")
        parts.append(xt.astype(np.int64))
    n_test = len(parts[0]) if parts else 0
    rng = np.random.default_rng(seed)
    parts.append(rng.integers(lo, hi + 1, (n_random, length)))
    x = np.concatenate(parts)
    if len(x) == 0:
        raise UserError(f"{out_dir}: nothing to verify: no test_vectors.npz and --vectors 0")
    return x, n_test


def _probe_config(design: Design) -> list[dict]:
    return [{"prefix": f"l{i}", "n": st.out_n, "bits": st.rtl.out_fmt.bits, "signed": st.rtl.out_fmt.signed}
            for i, st in enumerate(design.stages)]


def _first_failure(x, expected, got, n_test) -> dict | None:
    for i in range(len(expected)):
        g = got[i] if i < len(got) else None
        if g != expected[i]:
            return {"vector": i, "source": "test" if i < n_test else "random", "input": x[i].tolist(),
                    "expected": int(expected[i]), "got": g}
    return None


def _timeout_cycles(design, frames: int) -> int:
    beats = max(st.rtl.params.get("MH", 1) // st.out_n * st.rtl.params.get("MW", 1) // st.in_n
                for st in design.stages)
    return 2000 + 8 * frames * max(beats, design.expected_cycles_per_frame)


def _simulate_harness(design, sim, x, inter, seed, per_layer, build_root, run_dir) -> tuple[dict, float]:
    """The harness run; returns (result, build seconds)."""
    h = HarnessRun(design, x, sim, run_dir, seed=seed, idle=IDLE, backpressure=BACKPRESSURE,
                   rate_frames=RATE_FRAMES, timeout_cycles=_timeout_cycles(design, len(x)),
                   inter=inter if per_layer else None)
    t0 = time.monotonic()
    build(sim, HARNESS, h.sources, {}, build_root, h.build_args)
    build_seconds = time.monotonic() - t0
    res = run(sim, HARNESS, h.sources, {}, "tb_harness", build_root, run_dir, h.config, None, seed,
              build_args=h.build_args)
    return h.collect(res), build_seconds


def _simulate_cocotb(design, sim, x, inter, seed, per_layer, build_root, run_dir) -> tuple[dict, float]:
    """The per-cycle cocotb testbench; returns (result, build seconds)."""
    t0 = time.monotonic()
    build(sim, TOP, design.sources, {}, build_root)
    build_seconds = time.monotonic() - t0
    data_file = run_dir / "vectors.npz"
    np.savez(data_file, x=x, **{f"layer{i}": v for i, v in enumerate(inter)})
    cfg = {"data_file": str(data_file), "in_n": design.in_n, "in_bits": design.in_bits, "seed": seed,
           "idle": IDLE, "backpressure": BACKPRESSURE, "per_layer": per_layer, "probes": _probe_config(design),
           "rate_frames": min(len(x), RATE_FRAMES), "timeout_cycles": _timeout_cycles(design, len(x))}
    res = run(sim, TOP, design.sources, {}, "tb_accelerator", build_root, run_dir, cfg, None, seed)
    return res, build_seconds


def verify(out_dir, vectors: int = 100, sim: str = "verilator", seed: int = 0, per_layer: bool = False,
           status=None, stimulus: str = "harness") -> dict:
    """Simulate DIR's accelerator; returns and writes the verify.json record."""
    say = status or (lambda msg: None)
    out_dir = Path(out_dir).resolve()  # the testbench reads its files from inside the simulator's directory
    if not out_dir.is_dir():
        raise UserError(f"{out_dir}: directory not found; run `pqhw compile MODEL --out {out_dir}` first")
    graph = Graph.load(out_dir / "graph.json")
    check_simulator(sim)
    if sim == "verilator" and any(c.isspace() for c in str(out_dir)):
        raise UserError(f"{out_dir}: the path has a space, which Verilator's generated make build cannot take; "
                        "verify a copy or a symbolic link of the directory at a path without spaces")
    if stimulus not in STIMULI:
        raise UserError(f"stimulus {stimulus!r} is not supported; accepted: {', '.join(STIMULI)}")
    if vectors < 0:
        raise UserError(f"--vectors {vectors}: must be 0 or more")
    try:
        x, n_test = load_vectors(out_dir, graph, vectors, seed)
        say(f"reference model on {len(x)} vectors")
        classes, inter = run_graph(graph, x, keep_intermediates=True)
    except MemoryError:
        raise UserError(f"--vectors {vectors}: the vectors and the reference's layer outputs for them do not fit "
                        "in memory; verify fewer vectors (a few thousand cover every test vector and more)") from None
    expected = classes[:, 0]
    say("writing RTL")
    graph_sha256 = sha256_file(out_dir / "graph.json")
    (out_dir / "verify.json").unlink(missing_ok=True)  # rtl/ is rewritten: the old record no longer holds
    design = emit(graph, out_dir, provenance={"graph_sha256": graph_sha256})
    run_dir = out_dir / "sim_run" / sim
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in design.memory_files:
        (run_dir / name).write_text((design.rtl_dir / name).read_text())
    say(f"building and simulating {len(x)} vectors with {sim} ({stimulus})")
    simulate = _simulate_harness if stimulus == "harness" else _simulate_cocotb
    t0 = time.monotonic()
    res, build_seconds = simulate(design, sim, x, inter, seed, per_layer, out_dir / "sim_build", run_dir)
    sim_seconds = time.monotonic() - t0 - build_seconds
    got = res["classes"]
    mismatches = sum(1 for i, e in enumerate(expected) if i >= len(got) or got[i] != e)
    rate_ok = res.get("rate_classes") == expected[: min(len(x), RATE_FRAMES)].tolist()
    if "rate_classes" in res and not rate_ok:
        mismatches += 1
    cycles, run_seconds = res.get("sim_cycles"), res.get("run_seconds")
    record = {
        "simulator": sim, "stimulus": stimulus, "vectors": len(x), "test_vectors": n_test,
        "random_vectors": len(x) - n_test, "seed": seed, "mismatches": mismatches,
        "first_mismatch": _first_failure(x, expected, got, n_test),
        "timed_out": res["timeout"], "cycles_per_frame": res.get("cycles_per_frame"),
        "expected_cycles_per_frame": design.expected_cycles_per_frame,
        "latency_cycles": res.get("latency_cycles"),
        "idle_cycles": res.get("idle_cycles"), "stall_cycles": res.get("stall_cycles"),
        "simulated_cycles": cycles,
        "cycles_per_second": round(cycles / run_seconds) if cycles and run_seconds else None,
        "run_seconds": None if run_seconds is None else round(run_seconds, 3),
        "run_cpu_seconds": None if res.get("run_cpu_seconds") is None else round(res["run_cpu_seconds"], 3),
        "sim_seconds": round(sim_seconds, 2), "build_seconds": round(build_seconds, 2),
        "graph_sha256": graph_sha256, "rtl_sha256": sha256_tree(design.rtl_dir),
    }
    if per_layer:
        flm = res.get("first_layer_mismatch")
        record["first_failing_layer"] = None if flm is None else {
            "layer": graph.layers[flm["layer"]].name, "index": flm["layer"], "vector": flm["vector"]}
    write_json(out_dir / "verify.json", record, indent=1)
    return record


@click.command("verify")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--vectors", type=COUNT, default=100, show_default=True,
              help="Random vectors in addition to the test split.")
@click.option("--sim", type=click.Choice(["verilator", "icarus"]), default="verilator", show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed for random vectors, idle and backpressure.")
@click.option("--per-layer", is_flag=True, help="Name the first layer whose output stream differs.")
@click.option("--stimulus", type=click.Choice(STIMULI), default="harness", show_default=True,
              help="harness: stimulus, stalls and capture inside the simulator; cocotb: per-cycle drivers.")
@click.pass_context
def cli(ctx, out_dir, vectors, sim, seed, per_layer, stimulus):
    """Verify DIR's accelerator bit for bit against the reference in RTL simulation."""
    from rich.console import Console

    console = Console()
    with console.status("verifying") as status:
        rec = verify(out_dir, vectors, sim, seed, per_layer, status=lambda m: status.update(m), stimulus=stimulus)
    console.print(f"{rec['vectors']} vectors ({rec['test_vectors']} test, {rec['random_vectors']} random) on "
                  f"{sim}: {rec['mismatches']} mismatches; {rec['cycles_per_frame']} cycles/frame measured, "
                  f"{rec['expected_cycles_per_frame']} expected; latency {rec['latency_cycles']} cycles; "
                  f"{rec['sim_seconds']} s simulated")
    if rec["idle_cycles"] is not None:
        console.print(f"{rec['simulated_cycles']} cycles at {rec['cycles_per_second']} cycles/s; "
                      f"{rec['idle_cycles']} input idle and {rec['stall_cycles']} output stall cycles inserted")
    if rec["mismatches"]:
        fm = rec["first_mismatch"]
        if fm is not None:
            console.print(f"first failing vector: #{fm['vector']} ({fm['source']}): expected class "
                          f"{fm['expected']}, got {fm['got']}; input {fm['input']}")
        elif rec["timed_out"] is False:
            console.print("the no-backpressure pass returned different classes than the reference")
        if per_layer and rec.get("first_failing_layer"):
            fl = rec["first_failing_layer"]
            console.print(f"first layer whose output differs: {fl['layer']} "
                          f"(layer {fl['index']}, vector {fl['vector']})")
        ctx.exit(1)
