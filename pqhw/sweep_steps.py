"""The steps of one sweep trial, in a content-addressed store shared by all trials: DIR/steps/NAME-KEY/.

A step's key is the hash of what it is made from: its options and the keys of the steps before it (the
training config for `train`; the hand-written RTL for `verify` and `bitstream`), so trials that share a
prefix (same training config, other foldings) share those steps, and a rerun or an extended sweep finds
them done. Steps run what `pqhw flow` runs (train, export, compile, verify, bitstream), split so that the
FINN front-end runs once per trained model and each folding is its own cheap step. Each step directory is
written atomically (common.atomic) and holds step.json with the sha256 of every file in it; a directory
whose files no longer match is made again, as `pqhw flow` redoes a step whose outputs changed.

The functions here take and return plain dicts so that Ray can ship them between processes.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import socket
import time
import traceback
from pathlib import Path

from common.atomic import OUTPUT_MARK, atomic_dir, sha256_file, sha256_tree, write_json
from common.errors import UserError
from pqhw.flow import HW_SOURCES

STEPS = ("train", "export", "frontend", "fold", "verify", "bitstream")
RECORD = "step.json"
METRICS_VERSION = 1  # raise when trial_metrics changes: recorded metrics of older versions are computed again


def digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def rtl_digest() -> str:
    """The hand-written blocks and templates (what `pqhw flow` counts as inputs of verify and bitstream)."""
    return digest([sha256_tree(HW_SOURCES / "rtl"), sha256_tree(HW_SOURCES / "templates")])


def pnr_digest() -> str:
    """The code between verified RTL and a bitstream: the board wrapper, the tool flow and its netlist pass."""
    names = ("bitstream.py", "board_top.py", "ecp5_outreg.py")
    return digest([sha256_file(HW_SOURCES / n) for n in names])


def plan(config: dict, flow: dict, steps_dir: Path, rtl: str, pnr: str) -> list[dict]:
    """The chain of step specs of one trial: name, key, options, directory and the step it reads from."""
    fold_opts = {k: flow[k] for k in ("folding", "cycles", "target_fps", "weight_memory")}
    automatic = flow["folding"] is None and flow["cycles"] is None
    if automatic and (flow["target_fps"] is not None or flow["fit_board"]):
        fold_opts.update(clock_mhz=flow["clock"], board=flow["board"] if flow["fit_board"] else None)
    chain = [("train", {"config": config}, None), ("export", {}, None), ("frontend", {}, None),
             ("fold", fold_opts, None)]
    if flow["verify"]:
        chain.append(("verify", {"vectors": flow["vectors"], "sim": flow["sim"], "seed": flow["sim_seed"]}, rtl))
    if flow["bitstream"]:
        chain.append(("bitstream", {"board": flow["board"], "seed": flow["seed"], "clock_mhz": flow["clock_mhz"]},
                      digest(rtl, pnr)))
    specs, prev = [], None
    for name, options, code in chain:
        key = digest(name, options, prev["key"] if prev else None, code)
        specs.append({"name": name, "key": key, "options": options, "dir": str(Path(steps_dir) / f"{name}-{key}"),
                      "after": prev["dir"] if prev else None})
        prev = specs[-1]
    return specs


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in (RECORD, OUTPUT_MARK)}  # the mark comes after the record


def fresh(step_dir: Path, key: str) -> bool:
    """Made for this key, and every file it had is there with the content it was written with."""
    try:
        rec = json.loads((step_dir / RECORD).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(rec, dict) and rec.get("key") == key and rec.get("files") == _files(step_dir)


def _copy_from(src: Path, dst: Path, names=None) -> None:
    """Files of the step before, copied (not linked: a later writer must never change a finished step)."""
    for p in sorted(src.iterdir()):
        if p.name == RECORD or (names is not None and p.name not in names):
            continue
        if p.is_dir():
            shutil.copytree(p, dst / p.name)
        else:
            shutil.copy2(p, dst / p.name)


def _train(spec, tmp: Path, after: Path | None) -> str:
    import yaml

    from quant.config import parse_config
    from quant.train import train_run

    cfg = parse_config(spec["options"]["config"], "trial config")
    (tmp / "config.yaml").write_text(yaml.safe_dump(spec["options"]["config"], sort_keys=False))
    m = train_run(cfg, tmp, show_progress=False)
    (tmp / "checkpoint.pt").unlink(missing_ok=True)  # the finished model is model.pt; resuming is per step
    return f"{100 * m['test_accuracy']:.2f} %"


def _export(spec, tmp: Path, after: Path) -> str:
    from quant.export import export_run

    _copy_from(after, tmp, {"model.pt", "metrics.json", "config.yaml"})
    e = export_run(tmp)
    return f"QONNX == Brevitas on {e['vectors']} vectors"


def _frontend(spec, tmp: Path, after: Path) -> str:
    from hw.compile import compile_model

    c = compile_model(after / "model.qonnx.onnx", tmp / "hw")
    for p in (tmp / "hw").iterdir():
        p.rename(tmp / p.name)
    (tmp / "hw").rmdir()
    return f"{len(c['layers'])} layers, reference == FINN on {c['reference_vs_finn_vectors']} vectors"


def _fold(spec, tmp: Path, after: Path) -> str:
    from hw.compile import choose_folding, set_weight_memory
    from hw.folding import expected_cycles_per_frame, fold_for_cycles
    from hw.ir import Graph

    o = spec["options"]
    graph = set_weight_memory(Graph.load(after / "graph.json"), o["weight_memory"])
    if o["cycles"] is not None:
        graph = fold_for_cycles(graph, o["cycles"])
    else:
        folding_file = None
        if o["folding"] is not None:
            folding_file = tmp / "folding.json"
            write_json(folding_file, o["folding"])
        graph = choose_folding(graph, o.get("board"), o["target_fps"], o.get("clock_mhz") or 100.0, folding_file)
    graph.save(tmp / "graph.json")
    shutil.copy2(after / "test_vectors.npz", tmp / "test_vectors.npz")
    return f"{expected_cycles_per_frame(graph)} cycles/frame"


def _verify(spec, tmp: Path, after: Path) -> str:
    from sim.verify import verify

    _copy_from(after, tmp, {"graph.json", "test_vectors.npz"})
    o = spec["options"]
    v = verify(tmp, vectors=o["vectors"], sim=o["sim"], seed=o["seed"])
    if v["mismatches"]:
        raise RuntimeError(f"RTL simulation differs from the reference on {v['mismatches']} vectors")
    return f"0 mismatches on {v['vectors']} vectors, {v['cycles_per_frame']} cycles/frame"


def _bitstream(spec, tmp: Path, after: Path) -> str:
    from hw.bitstream import bitstream_for
    from hw.estimate import estimate_graph, family_of
    from hw.ir import Graph

    o = spec["options"]
    _copy_from(after, tmp)
    write_json(tmp / "estimate.json", estimate_graph(Graph.load(tmp / "graph.json"), family_of(o["board"]), o["board"]))
    b = bitstream_for(tmp, o["board"], o["seed"], o["clock_mhz"])
    return f"{b['luts']} LUTs, Fmax {b['fmax_mhz']} MHz"


RUNNERS = {"train": _train, "export": _export, "frontend": _frontend, "fold": _fold, "verify": _verify,
           "bitstream": _bitstream}


def run_step(spec: dict, *before: dict) -> dict:
    """Make one step's directory unless it is fresh; never raises (a failure is a result the sweep records).
    `before` are the results of the steps it depends on (Ray passes them once they are done)."""
    out = {"name": spec["name"], "key": spec["key"], "dir": spec["dir"], "host": socket.gethostname(),
           "pid": os.getpid(), "node": _node_id()}
    failed = [b for b in before if b.get("error")]
    if failed:
        return {**out, "error": failed[0]["error"], "failed_step": failed[0].get("failed_step", failed[0]["name"])}
    step_dir = Path(spec["dir"])
    if fresh(step_dir, spec["key"]):
        return {**out, "reused": True, "seconds": 0.0}
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()), atomic_dir(step_dir) as tmp:
            said = RUNNERS[spec["name"]](spec, tmp, Path(spec["after"]) if spec["after"] else None)
            write_json(tmp / RECORD, {"name": spec["name"], "key": spec["key"], "options": spec["options"],
                                      "after": spec["after"], "said": said,
                                      "seconds": round(time.perf_counter() - t0, 2), "files": _files(tmp)}, indent=1)
    except UserError as err:
        return {**out, "error": str(err), "failed_step": spec["name"]}
    except Exception as err:  # a trial's failure is recorded in the table; the sweep goes on
        tb = traceback.format_exc(limit=-3)
        return {**out, "error": f"{type(err).__name__}: {err}", "failed_step": spec["name"], "traceback": tb}
    return {**out, "reused": False, "seconds": round(time.perf_counter() - t0, 2), "said": said}


def _node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # outside Ray (the Python API used directly)
        return None


# Metrics of a finished trial ------------------------------------------------------------------------------


def trial_metrics(flow: dict, results: list[dict]) -> dict:
    """The table row's numbers, read from the trial's step directories: test accuracy (the integer graph
    computes the same classes, checked by the export and compile steps), estimate for the board, frames/s
    at the clock, BOPs, and measured cycles and placed resources when the trial verified or built them."""
    from boards.registry import get_board
    from hw.estimate import estimate_graph, family_of, over_budget
    from hw.folding import expected_cycles_per_frame
    from hw.ir import Graph
    from quant.cost import graph_costs, total_bops

    dirs = {r["name"]: Path(r["dir"]) for r in results}
    train = json.loads((dirs["train"] / "metrics.json").read_text())
    graph = Graph.load(dirs["fold"] / "graph.json")
    board = get_board(flow["board"])
    est = estimate_graph(graph, family_of(flow["board"]), flow["board"])["total"]
    cycles = expected_cycles_per_frame(graph)
    m = {"accuracy": train["test_accuracy"], "float_accuracy": train.get("float_accuracy"),
         "train_seconds": train["train_seconds"], "weight_bits_total": train["weight_bits_total"],
         "luts": est["luts"], "ffs": est["ffs"], "brams": est["brams"], "dsps": est["dsps"],
         "fits": not over_budget(est, board.resources, 0.0), "cycles_per_frame": cycles,
         "fps": round(flow["clock"] * 1e6 / cycles, 1), "clock_mhz": flow["clock"],
         "bops": int(total_bops(graph_costs(graph))),
         "folding": {l.name: {k: v for k, v in (("pe", getattr(l, "pe", None)), ("simd", getattr(l, "simd", None)))
                              if v is not None} for l in graph.layers}}
    if "verify" in dirs:
        v = json.loads((dirs["verify"] / "verify.json").read_text())
        m.update(verified_vectors=v["vectors"], mismatches=v["mismatches"],
                 measured_cycles_per_frame=v["cycles_per_frame"])
    if "bitstream" in dirs:
        b = json.loads((dirs["bitstream"] / "bitstream.json").read_text())
        m.update(pnr_luts=b["luts"], pnr_ffs=b["ffs"], pnr_brams=b["brams"], pnr_dsps=b["dsps"],
                 fmax_mhz=b["fmax_mhz"], meets_timing=b["meets_timing"], bitstream_sha256=b.get("sha256"))
    return m


def finish_trial(flow: dict, *results: dict) -> dict:
    """Last task of a trial: its steps' results and, when they all succeeded, its metrics."""
    out = {"steps": list(results)}
    failed = [r for r in results if r.get("error")]
    if failed:
        return {**out, "error": failed[0]["error"], "failed_step": failed[0].get("failed_step")}
    try:
        return {**out, "metrics": trial_metrics(flow, list(results))}
    except Exception as err:
        return {**out, "error": f"{type(err).__name__}: {err}", "failed_step": "metrics"}
