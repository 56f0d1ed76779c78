"""Estimate vs place and route: the four digits configs at a few foldings on the open boards.

Why: hw/estimate.py's coefficients are only as good as their last fit against the RTL as it is now. This
benchmark trains and compiles the configs, verifies and places and routes every folding on every board as one
`pqhw sweep` (pqhw.sweep: Ray tasks, each step cached by content in WORK/sweep/steps), compares them with
the estimate, and refits the coefficients by non-negative least squares so that a changed RTL can be
recalibrated by running it again (`python -m bench.estimate_calibration --work DIR` prints the new table).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ["digits_w1a1", "digits_tern_a2", "digits_w2a2", "digits_w4a4"]
BOARDS = ["ulx3s-85f", "icebreaker", "tangnano9k"]
# Folding name -> cycles per frame (None: the compile default, PE = SIMD = 1). "default" is the target set.
FOLDINGS = {"default": None, "c1000": 1000, "c512": 512, "c64": 64}


def fold_variant(hw_dir: Path, cycles: int | None, out: Path) -> Path:
    """graph.json folded to `cycles` per frame and its emitted RTL, in `out` (the default: hw_dir itself)."""
    from hw.emit import emit
    from hw.folding import fold_for_cycles
    from hw.ir import Graph

    graph = Graph.load(hw_dir / "graph.json")
    if cycles is None:
        out = hw_dir
    else:
        graph = fold_for_cycles(graph, cycles)
        out.mkdir(parents=True, exist_ok=True)
        graph.save(out / "graph.json")
    emit(graph, out)
    return out


def _rtl_digest(hw_dir: Path) -> str:
    """The RTL, the board wrapper and the netlist passes of the flow: a cached result is reused only when
    all of them are unchanged."""
    from hw import bitstream, ecp5_outreg
    from hw.board_top import RTL_DIR, WRAPPER_RTL

    h = hashlib.sha256()
    flow = [Path(bitstream.__file__), Path(ecp5_outreg.__file__)]
    for p in sorted((hw_dir / "rtl").iterdir()) + [RTL_DIR / n for n in WRAPPER_RTL] + flow:
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def place_and_route(hw_dir: Path, board_name: str) -> dict:
    """bitstream.json numbers for hw_dir on the board; reused while the RTL is byte-identical."""
    from boards.registry import get_board
    from hw.bitstream import build_bitstream
    from hw.board_top import board_sources
    from common.errors import UserError

    digest = _rtl_digest(hw_dir)
    cache = hw_dir / f"pnr_{board_name}.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("rtl_digest") == digest:
            return cached
    board = get_board(board_name)
    with tempfile.TemporaryDirectory() as tmp:
        sources, top, data = board_sources(hw_dir, board, Path(tmp))
        try:
            summary = build_bitstream(sources, top, board, hw_dir / board.name, data_files=data)
        except UserError as err:  # does not fit, or the tools failed: recorded, not fatal
            summary = {"error": str(err).splitlines()[0]}
    summary["rtl_digest"] = digest
    cache.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def design_features(graph, family: str) -> dict:
    """Summed model features of a whole design (what the linear model multiplies by its coefficients)."""
    from hw.estimate import layer_features

    total = {"one": 1.0}
    for lf in layer_features(graph, family).values():
        for k, v in lf["features"].items():
            total[k] = total.get(k, 0) + v
    return total


def calibration_sweep(configs=CONFIGS, boards=BOARDS, foldings=FOLDINGS) -> dict:
    """The sweep file: every config x folding x board, trained as the config says, folded without regard to
    the board (the compile default, or the cheapest folding within the cycles), verified in RTL simulation on
    the test split and placed and routed (seed 1, the board clock)."""
    return {
        "name": "estimate_calibration", "search": "grid", "objectives": {"luts": "min", "pnr_luts": "min"},
        "fixed": {"training.float_baseline": False, "flow.fit_board": False, "flow.bitstream": True,
                  "flow.vectors": 0},
        "params": {"config": {"choices": {c: {"config": str(ROOT / "configs" / f"{c}.yaml")} for c in configs}},
                   "folding": {"choices": {name: {"flow.cycles": cycles} for name, cycles in foldings.items()}},
                   "board": {"path": "flow.board", "values": list(boards)}},
    }


def collect(work: Path, configs=CONFIGS, boards=BOARDS, foldings=FOLDINGS, echo=print, address=None) -> list[dict]:
    """One row per (config, folding, board): estimate, place-and-route numbers, features, errors. Runs as a
    `pqhw sweep` in work/sweep (Ray; finished trainings, compiles and place-and-route runs are reused)."""
    import yaml

    from boards.registry import get_board
    from hw.estimate import estimate_graph
    from hw.folding import expected_cycles_per_frame
    from hw.ir import Graph
    from pqhw.sweep import run_sweep

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    sweep_file = work / "estimate_calibration_sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(calibration_sweep(configs, boards, foldings), sort_keys=False))
    doc = run_sweep(sweep_file, work / "sweep", address=address, show_progress=False)
    rows = []
    for trial in doc["trials"]:
        config, fold_name, board_name = (trial["labels"][k] for k in ("config", "folding", "board"))
        fold = next((s for s in trial["steps"] if s["name"] == "fold"), None)
        if fold is None or not (work / "sweep" / "steps" / f"fold-{fold['key']}" / "graph.json").is_file():
            raise RuntimeError(f"{config} {fold_name}: no folded graph ({trial.get('error')})")
        graph = Graph.load(work / "sweep" / "steps" / f"fold-{fold['key']}" / "graph.json")
        family = get_board(board_name).family
        est_doc = estimate_graph(graph, family, board_name)
        est = est_doc["total"]
        row = {"config": config, "folding": fold_name, "cycles_per_frame": expected_cycles_per_frame(graph),
               "board": board_name, "family": family, "estimate": est, "wrapper": est_doc["wrapper"],
               "features": design_features(graph, family)}
        m = trial.get("metrics")
        if m is None:  # does not fit, or the tools failed: recorded, not fatal
            row["error"] = trial["error"].splitlines()[0]
        else:
            row["actual"] = {k: m[f"pnr_{k}"] for k in ("luts", "ffs", "brams", "dsps")}
            row["fmax_mhz"] = m.get("fmax_mhz")
            row["error_pct"] = {k: _err(est[k], row["actual"][k]) for k in ("luts", "ffs", "brams")}
        rows.append(row)
        echo(f"{config:15s} {fold_name:8s} {board_name:11s} est {est['luts']:6d} LUTs "
             f"act {row.get('actual', {}).get('luts', '-')!s:>6} ({trial['seconds']:.0f} s)")
    return rows


def _err(est: float, act: float) -> float | None:
    return None if not act else round(100.0 * (est - act) / act, 1)


# Feature groups for the grouped fit: the arithmetic that grows with PE x SIMD, and the per-block overhead.
GROUPS = {"datapath": ("lanes", "acc_bits", "cmp_bits", "const_bits"),
          "overhead": ("one", "blocks", "links", "lutram", "ff_ram_bits", "ff_ram_words", "stream_bits", "reg_bits")}


def fit(rows: list[dict], family: str) -> dict:
    """New LUT and FF coefficients for a family from its measured rows, relative error weighted (small and
    large designs count alike): one non-negative scale per feature group (GROUPS) on the current
    coefficients, so the ratio of datapath to overhead is fitted while the structure within a group is
    kept (with fewer designs than groups, one scale for all). A free least-squares fit per feature zeroed
    whole features (constant tables, accumulators) on the 16 ECP5 designs, which other designs need."""
    from scipy.optimize import nnls

    from hw.estimate import CELLS_PER_FF, COEFFS, FEATURES

    data = [r for r in rows if r["family"] == family and "actual" in r]
    if not data:
        return {res: dict(COEFFS[family][res]) for res in ("luts", "ffs")}
    out = {}
    for res in ("luts", "ffs"):
        current = COEFFS[family][res]
        names = [f for f in FEATURES if f in current]
        a = np.array([[r["features"].get(f, 0.0) for f in names] for r in data], dtype=float)
        b = np.array([r["actual"][res] - r["wrapper"].get(res, 0) for r in data], dtype=float)  # the accelerator
        if res == "luts":  # LUT4s: the cells that hold a flip-flop alone are added by the estimate (CELLS_PER_FF)
            b -= CELLS_PER_FF.get(family, 0.0) * np.array([r["actual"]["ffs"] - r["wrapper"].get("ffs", 0)
                                                           for r in data], dtype=float)
        w = 1.0 / np.maximum(b, 1.0)
        cur = np.array([current[n] for n in names])
        seen = [i for i in range(len(names)) if a[:, i].any()]  # features these designs never use keep their value
        names_all, cur_all = names, cur
        names, a, cur = [names[i] for i in seen], a[:, seen], cur[seen]
        groups = [[i for i, n in enumerate(names) if n in members] for members in GROUPS.values()]
        groups = [g for g in groups if g]
        if len(data) < 2 * len(groups):
            groups = [list(range(len(names)))]
        cols = np.stack([a[:, g] @ cur[g] for g in groups], axis=1)
        scales, _ = nnls(cols * w[:, None], b * w)
        coef = cur.copy()
        for g, sc in zip(groups, scales):
            coef[g] = cur[g] * sc
        fitted = dict(zip(names, coef))
        out[res] = {n: round(float(fitted.get(n, c)), 4) for n, c in zip(names_all, cur_all)}
    return out


def table(rows: list[dict]) -> str:
    lines = ["| config | folding | board | cycles | LUTs est/act (err) | FFs est/act (err) | BRAM est/act |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        e, a = r["estimate"], r.get("actual")
        if a is None:
            lines.append(f"| {r['config']} | {r['folding']} | {r['board']} | {r['cycles_per_frame']} | "
                         f"{e['luts']} / - | {e['ffs']} / - | {e['brams']} / - ({r['error']}) |")
            continue
        p = r["error_pct"]
        lines.append(f"| {r['config']} | {r['folding']} | {r['board']} | {r['cycles_per_frame']} | "
                     f"{e['luts']} / {a['luts']} ({p['luts']:+.1f} %) | {e['ffs']} / {a['ffs']} ({p['ffs']:+.1f} %) | "
                     f"{e['brams']} / {a['brams']} |")
    return "\n".join(lines)


def run(work: Path) -> dict:
    """Benchmark entry: rows with errors, the worst LUT error at the default folding, and refitted
    coefficients (what COEFFS in hw/estimate.py would become)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    rows = collect(work)
    (work / "estimate_calibration.json").write_text(json.dumps(rows, indent=1) + "\n")
    (work / "estimate_calibration.md").write_text(table(rows) + "\n")
    default = [abs(r["error_pct"]["luts"]) for r in rows if r["folding"] == "default" and "error_pct" in r]
    families = sorted({r["family"] for r in rows})
    return {"rows": rows, "table": str(work / "estimate_calibration.md"),
            "max_abs_lut_error_pct_default": max(default) if default else None,
            "target_lut_error_pct": 25, "refit": {f: fit(rows, f) for f in families}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "estimate")
    parser.add_argument("--boards", nargs="*", default=BOARDS)
    parser.add_argument("--configs", nargs="*", default=CONFIGS)
    parser.add_argument("--foldings", nargs="*", default=list(FOLDINGS), help=f"subset of {list(FOLDINGS)}")
    parser.add_argument("--address", default=None, help="Ray cluster (host:port); default: an embedded local Ray")
    args = parser.parse_args(argv)
    rows = collect(args.work, args.configs, args.boards, {k: FOLDINGS[k] for k in args.foldings},
                   address=args.address)
    (args.work / "estimate_calibration.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    for family in sorted({r["family"] for r in rows}):
        print(family, json.dumps(fit(rows, family)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
