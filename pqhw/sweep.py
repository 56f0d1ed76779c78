"""`pqhw sweep SWEEP.yaml --out DIR`: design-space exploration over training configs and flow options, on Ray.

A grid runs every combination of the parameters; `search: optuna` asks Optuna (multi-objective, e.g. accuracy
against LUTs) for `trials` points, keeping its study in DIR/optuna.db so a killed search resumes where it was
(a trial that was running is run again with the same parameters). Each trial is a chain of steps
(pqhw.sweep_steps) whose directories are shared by content between trials and runs, so a rerun or an
extended sweep does only what is new. Trials run as Ray tasks: on an embedded local Ray (a CPU each task,
all the machine's CPUs) unless --address names a running cluster, whose nodes must see DIR at the same path
and have pqhw installed. Results: DIR/results.json and .csv (one row a trial), DIR/report.html with the
Pareto plot (also DIR/pareto.svg), DIR/trials/ID.json per trial.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import click

from common.atomic import clean_stale_staging, refuse_inputs_inside, write_json
from common.cli_types import POSITIVE_INT, OutDir, writable_dir
from common.errors import UserError
from pqhw.sweep_report import pareto_front, write_report, write_table
from pqhw.sweep_spec import Sweep, Trial, load_sweep
from pqhw.sweep_steps import METRICS_VERSION, finish_trial, fresh, plan, pnr_digest, rtl_digest, run_step


class RaySession:
    """Connects to a cluster (address) or starts an embedded local Ray, quiet and without a dashboard;
    leaves a connection it did not make (ray.init before) open."""

    def __init__(self, address: str | None = None):
        self.address = address

    def __enter__(self):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        self.ray, self.owned = ray, not ray.is_initialized()
        if self.owned:
            quiet = dict(log_to_driver=False, logging_level=logging.ERROR)
            try:
                if self.address:
                    ray.init(address=self.address, **quiet)
                else:
                    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=200 * 2**20,
                             **quiet)
            except (ConnectionError, ValueError, RuntimeError) as err:
                where = f"--address {self.address}" if self.address else "the embedded local Ray"
                raise UserError(f"{where}: cannot connect ({str(err).splitlines()[0]}); give the address "
                                "`ray start --head` printed (host:port), or leave --address out") from None
        self.step = ray.remote(num_cpus=1, max_retries=0)(run_step)
        self.finish = ray.remote(num_cpus=1, max_retries=0)(finish_trial)  # imports torch and FINN: a CPU
        return self

    def __exit__(self, *exc):
        if self.owned:
            self.ray.shutdown()

    def describe(self) -> dict:
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        return {"address": self.address or "local", "nodes": len(nodes),
                "cpus": int(self.ray.cluster_resources().get("CPU", 0))}


class Runner:
    """Submits trials as chains of step tasks; a step that several trials share is submitted once."""

    def __init__(self, session: RaySession, out: Path):
        self.s, self.out = session, out
        self.steps_dir, self.trials_dir = out / "steps", out / "trials"
        self.steps_dir.mkdir(parents=True, exist_ok=True)
        self.trials_dir.mkdir(parents=True, exist_ok=True)
        self.rtl, self.pnr = rtl_digest(), pnr_digest()
        self.refs: dict[str, object] = {}  # step key -> ObjectRef of its result, in this run
        self.started: dict[object, float] = {}
        self.made: set[str] = set()  # keys of the steps this run makes (not fresh when submitted)

    def submit(self, trial: Trial):
        """ObjectRef of the trial's result (its steps' results and metrics). Steps found fresh here are not
        sent to Ray at all, and a trial whose steps are all fresh takes its metrics from DIR/trials/ID.json."""
        flow = {**trial.flow.model_dump(mode="json"), "clock": trial.flow.clock}
        specs = plan(trial.config, flow, self.steps_dir, self.rtl, self.pnr)
        prev, refs, all_fresh = None, [], True
        for spec in specs:
            if spec["key"] not in self.refs:
                if fresh(Path(spec["dir"]), spec["key"]):
                    done = {"name": spec["name"], "key": spec["key"], "dir": spec["dir"], "reused": True}
                    self.refs[spec["key"]] = self.s.ray.put({**done, "seconds": 0.0})
                else:
                    clean_stale_staging(Path(spec["dir"]))
                    cpus = trial.config["training"]["threads"] if spec["name"] == "train" else 1
                    task = self.s.step.options(num_cpus=cpus)
                    self.refs[spec["key"]] = task.remote(spec, prev) if prev is not None else task.remote(spec)
                    self.made.add(spec["key"])
            all_fresh = all_fresh and spec["key"] not in self.made
            prev = self.refs[spec["key"]]
            refs.append(prev)
        cached = self._cached(trial, specs) if all_fresh else None
        if cached is not None:
            ref = self.s.ray.put({"steps": self.s.ray.get(refs), "metrics": cached})
        else:
            ref = self.s.finish.remote(flow, *refs)
        self.started[ref] = time.perf_counter()
        return ref

    def _cached(self, trial: Trial, specs: list[dict]) -> dict | None:
        """The metrics a previous run recorded for exactly these (fresh) steps, if it recorded them."""
        try:
            row = json.loads((self.trials_dir / f"{trial.id}.json").read_text())
        except (OSError, ValueError):
            return None
        same = [s.get("key") for s in row.get("steps", [])] == [s["key"] for s in specs]
        ok = isinstance(row, dict) and same and row.get("metrics_version") == METRICS_VERSION
        return row.get("metrics") if ok else None

    def record(self, trial: Trial, result: dict, ref, number: int | None = None) -> dict:
        row = {"trial": trial.id, "label": ", ".join(f"{k}={v}" for k, v in trial.labels.items()),
               "labels": trial.labels, "number": number, "config_file": trial.config_file,
               "flow": trial.flow.model_dump(mode="json"), "config": trial.config,
               "seconds": round(time.perf_counter() - self.started.pop(ref, time.perf_counter()), 1),
               "steps": [{k: s.get(k) for k in ("name", "key", "reused", "seconds", "node", "host", "pid", "said")}
                         for s in result["steps"]]}
        if "metrics" in result:
            row.update(metrics=result["metrics"], metrics_version=METRICS_VERSION)
        else:
            row.update(error=result["error"], failed_step=result.get("failed_step"))
        write_json(self.trials_dir / f"{trial.id}.json", row, indent=1)
        return row


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        console = Console(stderr=True, width=200)  # a log file gets one line a trial, not wrapped ones
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def _say(progress, row: dict) -> None:
    m = row.get("metrics")
    reused = sum(1 for s in row["steps"] if s.get("reused"))
    if m:
        what = (f"{100 * m['accuracy']:.2f} %, {m['luts']:,} LUTs{'' if m['fits'] else ' (does not fit)'}, "
                f"{m['fps']:,.0f} fps, {m['bops']:,} BOPs")
        if m.get("pnr_luts") is not None:
            what += f", placed {m['pnr_luts']:,} LUTs at {m['fmax_mhz']} MHz"
    else:
        what = f"failed in {row['failed_step']}: {row['error'].splitlines()[0]}"
    progress.console.print(f"{row['label']}: {what} [{reused}/{len(row['steps'])} steps reused, {row['seconds']} s]",
                           markup=False, highlight=False)


def run_grid(runner: Runner, trials: list[Trial], progress) -> list[dict]:
    task = progress.add_task("trials", total=len(trials))
    pending = {runner.submit(t): t for t in trials}
    rows = {}
    while pending:
        ready, _ = runner.s.ray.wait(list(pending), num_returns=1)
        trial = pending.pop(ready[0])
        rows[trial.id] = runner.record(trial, runner.s.ray.get(ready[0]), ready[0])
        _say(progress, rows[trial.id])
        progress.advance(task)
    return [rows[t.id] for t in trials]


def _suggest(otrial, name: str, axis):
    if axis.values is not None:
        return otrial.suggest_categorical(name, axis.values)
    if axis.choices is not None:
        return otrial.suggest_categorical(name, list(axis.choices))
    if axis.is_int_range:
        return otrial.suggest_int(name, axis.low, axis.high, step=axis.step or 1, log=axis.log)
    return otrial.suggest_float(name, axis.low, axis.high, step=axis.step, log=axis.log)


def _sampler(spec):
    import optuna

    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=spec.seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    return optuna.samplers.TPESampler(seed=spec.seed)


def open_study(sweep: Sweep, out: Path):
    """The study in DIR/optuna.db, created or loaded; refuses one made with other objectives."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["maximize" if d == "max" else "minimize" for d in sweep.spec.objectives.values()]
    study = optuna.create_study(storage=f"sqlite:///{out / 'optuna.db'}", study_name=sweep.spec.name,
                                directions=directions, sampler=_sampler(sweep.spec), load_if_exists=True)
    have = ["maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize" for d in study.directions]
    objectives = study.user_attrs.get("objectives")
    if have != directions or (objectives is not None and objectives != list(sweep.spec.objectives)):
        raise UserError(f"{out / 'optuna.db'}: study {sweep.spec.name!r} was made with other objectives "
                        f"({objectives or have}); give another --out or another name")
    study.set_user_attr("objectives", list(sweep.spec.objectives))
    return study


def run_search(runner: Runner, sweep: Sweep, out: Path, parallel: int, progress) -> list[dict]:
    from optuna.trial import TrialState

    study = open_study(sweep, out)
    spec = sweep.spec
    old = study.get_trials(deepcopy=False)
    done = [t for t in old if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
    again = [t for t in old if t.state == TrialState.RUNNING]  # a killed run's trials: same parameters again
    task = progress.add_task("trials", total=spec.trials, completed=min(len(done), spec.trials))
    pending, n_done = {}, len(done)

    def evaluate(number: int, labels: dict):
        try:
            trial = sweep.trial(labels, f"trial {number}")
        except UserError as err:  # a combination the config refuses (each value alone was checked)
            study.tell(number, state=TrialState.FAIL)
            progress.console.print(f"trial {number} refused: {err}", markup=False)
            return None
        pending[runner.submit(trial)] = (number, trial)
        return trial

    while pending or again or n_done + len(pending) < spec.trials:
        while again and len(pending) < parallel:
            t = again.pop(0)
            evaluate(t.number, dict(t.params))
        while not again and len(pending) < parallel and n_done + len(pending) < spec.trials:
            ot = study.ask()
            if evaluate(ot.number, {n: _suggest(ot, n, a) for n, a in spec.params.items()}) is None:
                n_done += 1
                progress.advance(task)
        if not pending:
            continue
        ready, _ = runner.s.ray.wait(list(pending), num_returns=1)
        number, trial = pending.pop(ready[0])
        row = runner.record(trial, runner.s.ray.get(ready[0]), ready[0], number)
        m = row.get("metrics")
        if m:
            study.tell(number, [float(m[k]) for k in spec.objectives])
        else:
            study.tell(number, state=TrialState.FAIL)
        _say(progress, row)
        n_done += 1
        progress.advance(task)
    rows = {}  # one row a configuration: a sampler may propose the same one twice
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        try:
            trial = sweep.trial(dict(t.params), f"trial {t.number}")
        except UserError as err:
            rows[f"refused-{t.number}"] = {"trial": f"refused-{t.number}", "label": str(t.params),
                                           "labels": dict(t.params), "number": t.number, "steps": [],
                                           "error": str(err), "failed_step": "config"}
            continue
        path = runner.trials_dir / f"{trial.id}.json"
        if trial.id not in rows and path.is_file():
            rows[trial.id] = {**json.loads(path.read_text()), "number": t.number}
    return list(rows.values())


def run_sweep(sweep_file: str | Path, out: str | Path, address: str | None = None, parallel: int | None = None,
              show_progress: bool = True) -> dict:
    """Runs (or resumes) a sweep; returns the results.json document. Bad sweep files raise UserError before
    anything is written."""
    sweep_file, out = Path(sweep_file), Path(out)
    sweep = load_sweep(sweep_file)
    trials = sweep.check()
    why = writable_dir(out)
    if why:
        raise UserError(f"--out {out}: {why}; give a directory that can be written")
    refuse_inputs_inside(out, [sweep_file, *{t.config_file for t in trials or []}])
    t0 = time.perf_counter()
    with RaySession(address) as session:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sweep_file, out / ".sweep.yaml.tmp")
        os.replace(out / ".sweep.yaml.tmp", out / "sweep.yaml")
        runner = Runner(session, out)
        ray_info = session.describe()
        parallel = parallel or sweep.spec.parallel or max(1, ray_info["cpus"])
        with _progress() as progress:
            if not show_progress:
                progress.disable = True
            if trials is not None:
                rows = run_grid(runner, trials, progress)
            else:
                rows = run_search(runner, sweep, out, parallel, progress)
        nodes_used = sorted({s["node"] for r in rows for s in r["steps"] if s.get("node") and s.get("reused") is False})
    front = pareto_front(rows, sweep.spec.objectives)
    for r in rows:
        r["pareto"] = r["trial"] in front
    doc = {"sweep": sweep.spec.name, "search": sweep.spec.search, "objectives": sweep.spec.objectives,
           "params": list(sweep.spec.params), "trials": rows, "pareto": sorted(front),
           "wall_seconds": round(time.perf_counter() - t0, 1),
           "ray": {**ray_info, "nodes_that_ran_steps": len(nodes_used)},
           "steps_run": len({s["key"] for r in rows for s in r["steps"] if s.get("reused") is False}),
           "steps_reused": len({s["key"] for r in rows for s in r["steps"] if s.get("reused")})}
    write_table(out, doc)
    doc["report"] = str(write_report(out, doc))
    return doc


@click.command("sweep")
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=OutDir(), required=True, help="Sweep directory (results, steps, study).")
@click.option("--address", default=None,
              help="Ray cluster to run on (host:port of `ray start --head`); default: an embedded local Ray.")
@click.option("--parallel", type=POSITIVE_INT, default=None, help="Trials in flight at once [default: the CPUs].")
def cli(sweep_file, out_dir, address, parallel):
    """Run a grid or an Optuna search of flows; write a table and a Pareto report."""
    doc = run_sweep(sweep_file, out_dir, address, parallel)
    ok = sum(1 for r in doc["trials"] if r.get("metrics"))
    click.echo(f"{ok} of {len(doc['trials'])} trials finished ({doc['steps_run']} steps run, {doc['steps_reused']} "
               f"reused) in {doc['wall_seconds']} s; {len(doc['pareto'])} on the Pareto front")
    click.echo(f"table: {out_dir / 'results.csv'}  report: {doc['report']}")
