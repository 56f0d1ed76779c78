"""The example sweep (configs/sweep_digits.yaml) from nothing on the embedded local Ray, again with every step
cached, and from nothing on a two-node local Ray cluster (one CPU a node, ray.cluster_utils) through
`pqhw sweep --address`: wall times, where the table and the Pareto report are, and whether the cluster's
trials give the same numbers as the embedded run's (same seeds, one training thread)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "configs" / "sweep_digits.yaml"


def _cli(out: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([sys.executable, "-m", "pqhw.cli", "sweep", str(SWEEP), "--out", str(out), *extra], check=True,
                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return round(time.perf_counter() - t0, 1)


def _summary(out: Path, wall: float) -> dict:
    doc = json.loads((out / "results.json").read_text())
    return {"command_seconds": wall, "sweep_seconds": doc["wall_seconds"], "trials": len(doc["trials"]),
            "finished": sum(1 for r in doc["trials"] if r.get("metrics")), "steps_run": doc["steps_run"],
            "steps_reused": doc["steps_reused"], "ray": doc["ray"], "pareto": len(doc["pareto"]),
            "table": str(out / "results.csv"), "report": str(out / "report.html")}


def _metrics(out: Path) -> dict:
    doc = json.loads((out / "results.json").read_text())
    return {r["trial"]: {k: v for k, v in r.get("metrics", {}).items() if k != "train_seconds"} for r in doc["trials"]}


def run(work: Path) -> dict:
    from ray.cluster_utils import Cluster

    work = Path(work)
    shutil.rmtree(work, ignore_errors=True)
    local = _summary(work / "local", _cli(work / "local"))
    cached = _summary(work / "local", _cli(work / "local"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        two = _summary(work / "cluster", _cli(work / "cluster", "--address", cluster.address))
    finally:
        cluster.shutdown()
    return {"sweep": str(SWEEP.relative_to(ROOT)), "embedded": local, "embedded_rerun": cached,
            "cluster_2_nodes": two, "cluster_same_metrics": _metrics(work / "local") == _metrics(work / "cluster")}
