"""pqhw sweep: a tiny grid on the embedded local Ray, reuse of finished steps, resuming a search, bad sweep
files, and (slow) the same sweep on a two-node Ray cluster through --address."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "digits_w2a2.yaml"
pytestmark = pytest.mark.xdist_group("sweep")  # one Ray session for the module's tests, in one worker

TINY = {  # one training (1 epoch, 64-16-10) and one FINN front-end shared by the trials: only the folding differs
    "name": "tiny",
    "base": str(CONFIG),
    "objectives": {"accuracy": "max", "luts": "min", "fps": "max"},
    "fixed": {"training.epochs": 1, "training.float_baseline": False, "flow.board": "ulx3s-85f",
              "model.layers": [{"kind": "linear", "features": 16, "weight": "int2", "act": "uint2"},
                               {"kind": "linear", "features": 10, "weight": "int2"}]},
    "params": {"cycles": {"path": "flow.cycles", "values": [64, 512]}},
}


def write_sweep(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file under root: a file written again gets a new inode (atomic replace)."""
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def step_dirs(out: Path, name: str) -> list[Path]:
    return sorted((out / "steps").glob(f"{name}-*"))


@pytest.fixture(scope="module")
def ray_local():
    """One embedded Ray for the module: its workers keep torch and FINN imported between sweeps."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import logging

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             object_store_memory=100 * 2**20)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(ray_local, tmp_path_factory):
    from pqhw.sweep import run_sweep

    work = tmp_path_factory.mktemp("sweep")
    out = work / "out"
    doc = run_sweep(write_sweep(work / "tiny.yaml", TINY), out, show_progress=False)
    return work, out, doc


def _accuracy_of_graph(fold_dir: Path) -> float:
    """Test accuracy of the trial's folded integer graph, by the numpy reference on its test split."""
    from hw.ir import Graph
    from hw.reference import run_graph

    tv = np.load(fold_dir / "test_vectors.npz")
    classes = run_graph(Graph.load(fold_dir / "graph.json"), tv["x"])[:, 0]
    return float(np.mean(classes == tv["y"]))


def test_tiny_sweep_table_and_report(tiny):
    from hw.estimate import estimate_graph
    from hw.folding import expected_cycles_per_frame
    from hw.ir import Graph

    work, out, doc = tiny
    rows = json.loads((out / "results.json").read_text())["trials"]
    assert [r["labels"]["cycles"] for r in rows] == [64, 512]
    assert all("metrics" in r for r in rows), [r.get("error") for r in rows]
    assert len(step_dirs(out, "train")) == 1 and len(step_dirs(out, "frontend")) == 1  # shared by both trials
    folds = {}
    for r in rows:
        m = r["metrics"]
        fold_dir = out / "steps" / f"fold-{next(s['key'] for s in r['steps'] if s['name'] == 'fold')}"
        folds[r["labels"]["cycles"]] = fold_dir
        graph = Graph.load(fold_dir / "graph.json")
        # the table's accuracy is what the integer accelerator graph computes on the test split
        assert m["accuracy"] == _accuracy_of_graph(fold_dir)
        assert expected_cycles_per_frame(graph) <= r["labels"]["cycles"]
        assert m["luts"] == estimate_graph(graph, "ecp5", "ulx3s-85f")["total"]["luts"]
        assert m["fps"] == pytest.approx(25e6 / expected_cycles_per_frame(graph), rel=1e-6)
    # the faster folding costs more LUTs: each trial is better in one objective, both on the front
    fast, slow = (next(r["metrics"] for r in rows if r["labels"]["cycles"] == c) for c in (64, 512))
    assert fast["luts"] > slow["luts"] and fast["fps"] > slow["fps"]
    assert all(r["pareto"] for r in rows)
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [t["trial"] for t in table] == [r["trial"] for r in rows]
    assert [float(t["accuracy"]) for t in table] == [r["metrics"]["accuracy"] for r in rows]
    html = (out / "report.html").read_text()
    assert "<svg" in html and all(r["trial"] in html for r in rows)


def test_pareto_front_is_the_non_dominated_set():
    from pqhw.sweep_report import pareto_front

    rng = np.random.default_rng(3)
    pts = rng.integers(0, 6, size=(40, 3))
    rows = [{"trial": str(i), "metrics": {"accuracy": float(a), "luts": int(b), "fps": float(c)}}
            for i, (a, b, c) in enumerate(pts)]
    objectives = {"accuracy": "max", "luts": "min", "fps": "max"}
    oriented = pts * np.array([1, -1, 1])
    expected = {str(i) for i, p in enumerate(oriented)
                if not any((q >= p).all() and (q > p).any() for q in oriented)}
    assert pareto_front(rows, objectives) == expected


def test_rerun_and_extended_sweep_reuse_finished_steps(tiny):
    from pqhw.sweep import run_sweep

    work, out, first = tiny
    before = snapshot(out / "steps")
    extended = {**TINY, "params": {"cycles": {"path": "flow.cycles", "values": [64, 512, 128]}}}
    doc = run_sweep(write_sweep(work / "extended.yaml", extended), out, show_progress=False)
    after = snapshot(out / "steps")
    assert {k: after[k] for k in before} == before  # nothing that was made is made again (nor retrained)
    new_dirs = {Path(k).parts[0] for k in set(after) - set(before)}
    assert len(new_dirs) == 1 and next(iter(new_dirs)).startswith("fold-")  # only the new folding
    rows = {r["labels"]["cycles"]: r for r in doc["trials"]}
    assert sorted(rows) == [64, 128, 512]
    old = {r["labels"]["cycles"]: r["metrics"] for r in first["trials"]}
    assert all(rows[c]["metrics"] == old[c] for c in (64, 512))
    assert rows[128]["metrics"]["accuracy"] == old[64]["accuracy"]  # the same trained network


def test_damaged_step_is_made_again(tiny):
    from pqhw.sweep import run_sweep

    work, out, first = tiny
    row = first["trials"][0]
    fold_dir = out / "steps" / f"fold-{next(s['key'] for s in row['steps'] if s['name'] == 'fold')}"
    graph = (fold_dir / "graph.json").read_bytes()
    (fold_dir / "graph.json").write_bytes(graph.replace(b'"pe": 1', b'"pe": 2', 1))
    trained = snapshot(step_dirs(out, "train")[0])
    doc = run_sweep(write_sweep(work / "tiny.yaml", TINY), out, show_progress=False)
    assert (fold_dir / "graph.json").read_bytes() == graph  # folded again, to the same graph
    assert snapshot(step_dirs(out, "train")[0]) == trained
    assert doc["trials"][0]["metrics"] == row["metrics"]


def test_search_resumes_a_killed_trial(tiny):
    """A search killed while a trial ran: the next run evaluates that trial's parameters, then the rest."""
    import optuna

    from pqhw.sweep import run_sweep

    work, out, _ = tiny
    search = {**TINY, "name": "tiny_search", "search": "optuna", "trials": 3, "sampler": "random",
              "objectives": {"accuracy": "max", "luts": "min"},
              "params": {"cycles": {"path": "flow.cycles", "values": [64, 128, 512]}}}
    sweep_file = write_sweep(work / "search.yaml", search)
    study = optuna.create_study(storage=f"sqlite:///{out / 'optuna.db'}", study_name="tiny_search",
                                directions=["maximize", "minimize"])
    study.enqueue_trial({"cycles": 128})
    killed = study.ask()  # RUNNING, as a kill leaves it
    killed.suggest_categorical("cycles", [64, 128, 512])
    doc = run_sweep(sweep_file, out, show_progress=False)
    trials = optuna.load_study(study_name="tiny_search", storage=f"sqlite:///{out / 'optuna.db'}").trials
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert trials[0].params == {"cycles": 128}
    by_cycles = {r["labels"]["cycles"]: r for r in doc["trials"]}
    assert trials[0].values == [by_cycles[128]["metrics"]["accuracy"], by_cycles[128]["metrics"]["luts"]]
    assert len(step_dirs(out, "train")) == 1  # every trial found the trained network of the grid


BAD = {
    "unknown key": ({"colour": "red"}, "unknown key 'colour'"),
    "path into nothing": ({"params": {"x": {"path": "model.layers.7.weight", "values": ["int2"]}}},
                          "index 7 is out of range"),
    "bad value": ({"params": {"x": {"path": "model.layers.0.weight", "values": ["int2", "int99"]}}}, "int99"),
    "unknown config key": ({"params": {"x": {"path": "training.epochz", "values": [1]}}}, "training.epochz"),
    "unknown flow option": ({"params": {"x": {"path": "flow.boards", "values": ["icebreaker"]}}}, "flow.boards"),
    "unknown board": ({"params": {"x": {"path": "flow.board", "values": ["de10"]}}}, "de10"),
    "two foldings": ({"fixed": {"flow.cycles": 64, "flow.target_fps": 1000.0}}, "cycles and target_fps"),
    "unknown objective": ({"objectives": {"accuracy": "max", "area": "min"}}, "unknown metric 'area'"),
    "optuna without trials": ({"search": "optuna"}, "needs trials"),
    "placed LUTs without bitstream": ({"objectives": {"accuracy": "max", "pnr_luts": "min"}},
                                      "flow.bitstream: true"),
    "missing base": ({"base": "nowhere.yaml"}, "nowhere.yaml"),
    "float range in a grid": ({"params": {"x": {"path": "training.lr", "low": 0.001, "high": 0.1}}}, "needs a step"),
    "no params": ({"params": {}}, "params"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_sweep_file_one_line_exit_2_nothing_written(case, tmp_path, capsys):
    from pqhw.cli import main

    change, said = BAD[case]
    doc = {**TINY, **change}
    if "fixed" in change:
        doc["fixed"] = {**TINY["fixed"], **change["fixed"]}
    sweep_file = write_sweep(tmp_path / "bad.yaml", doc)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", str(sweep_file), "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and said in lines[0], err
    assert not out.exists()


def test_not_yaml_and_not_a_mapping(tmp_path):
    from common.errors import UserError
    from pqhw.sweep_spec import load_sweep

    (tmp_path / "a.yaml").write_text("params: [unclosed\n")
    (tmp_path / "b.yaml").write_text("- just\n- a list\n")
    for name, said in (("a.yaml", "not valid YAML"), ("b.yaml", "a YAML mapping")):
        with pytest.raises(UserError, match=said):
            load_sweep(tmp_path / name)


@pytest.mark.slow
def test_sweep_on_a_two_node_cluster_through_address(tiny, tmp_path):
    """Two Ray nodes of one CPU each (ray.cluster_utils), the sweep submitted by `pqhw sweep --address`: both
    nodes run steps, and the trained networks are those of the embedded run (same seed, one thread)."""
    from ray.cluster_utils import Cluster

    _, _, local = tiny
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        seeds = {**TINY, "params": {"seed": {"path": "training.seed", "values": [0, 1]}}}
        sweep_file = write_sweep(tmp_path / "tiny.yaml", seeds)
        out = tmp_path / "cluster"
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        r = subprocess.run([sys.executable, "-m", "pqhw.cli", "sweep", str(sweep_file), "--out", str(out),
                            "--address", cluster.address], capture_output=True, text=True, cwd=ROOT, env=env,
                           timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
    finally:
        cluster.shutdown()
    doc = json.loads((out / "results.json").read_text())
    assert doc["ray"]["nodes"] == 2 and doc["ray"]["nodes_that_ran_steps"] == 2
    assert all("metrics" in row for row in doc["trials"])
    seed0 = next(r for r in doc["trials"] if r["labels"]["seed"] == 0)
    assert seed0["metrics"]["accuracy"] == local["trials"][0]["metrics"]["accuracy"]
    nodes = {s["node"] for row in doc["trials"] for s in row["steps"] if s["name"] == "train"}
    assert len(nodes) == 2  # the two trainings ran side by side, one on each node


@pytest.mark.slow
def test_search_killed_with_sigkill_resumes(tmp_path):
    """`pqhw sweep` killed (SIGKILL, its whole process group) once a trial has finished: the next run keeps
    that trial's steps, runs the trials the kill interrupted with their parameters, and ends with all trials."""
    import signal
    import time

    import optuna

    search = {**TINY, "name": "killed", "search": "optuna", "trials": 3, "sampler": "random", "parallel": 1,
              "objectives": {"accuracy": "max", "luts": "min"},
              "params": {"seed": {"path": "training.seed", "values": [0, 1, 2, 3, 4, 5]}}}
    sweep_file = write_sweep(tmp_path / "search.yaml", search)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pqhw.cli", "sweep", str(sweep_file), "--out", str(out)]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not list((out / "trials").glob("*.json")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = list((out / "trials").glob("*.json"))
    assert len(first) == 1, "the sweep ended or no trial finished before the kill"
    kept = json.loads(first[0].read_text())
    train_dir = out / "steps" / f"train-{kept['steps'][0]['key']}"
    before = snapshot(train_dir)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert snapshot(train_dir) == before
    trials = optuna.load_study(study_name="killed", storage=f"sqlite:///{out / 'optuna.db'}").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    doc = json.loads((out / "results.json").read_text())
    assert all("metrics" in row for row in doc["trials"]) and kept["trial"] in {row["trial"] for row in doc["trials"]}


def test_estimate_calibration_is_one_grid_of_every_config_folding_and_board(tmp_path):
    """bench.estimate_calibration runs its rows as one sweep: every (config, folding, board), folded without
    regard to the board at the folding's cycles, verified and placed and routed."""
    from bench.estimate_calibration import BOARDS, CONFIGS, FOLDINGS, calibration_sweep
    from pqhw.sweep_spec import load_sweep

    trials = load_sweep(write_sweep(tmp_path / "cal.yaml", calibration_sweep())).check()
    combos = [(t.labels["config"], t.labels["folding"], t.labels["board"]) for t in trials]
    assert combos == [(c, f, b) for c in CONFIGS for f in FOLDINGS for b in BOARDS]
    for t in trials:
        assert Path(t.config_file).name == f"{t.labels['config']}.yaml"
        assert t.flow.cycles == FOLDINGS[t.labels["folding"]] and t.flow.board == t.labels["board"]
        assert t.flow.bitstream and t.flow.verify and not t.flow.fit_board
        assert t.config["training"]["float_baseline"] is False
