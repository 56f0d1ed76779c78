"""`pqhw flow`: train -> export -> compile -> verify -> bitstream -> report, in one run directory.

A step is skipped when its outputs exist, are newer than its inputs and were made with the same options
(recorded in DIR/flow.json), so running the flow again after a change redoes only what the change touched.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click

from common.errors import UserError

DEFAULT_BOARD = "icebreaker"


@dataclass
class Step:
    name: str
    inputs: Callable[[], list[Path]]
    outputs: Callable[[], list[Path]]
    options: dict
    run: Callable[[], str]


def _fresh(step: Step, recorded: dict) -> bool:
    outs, ins = step.outputs(), step.inputs()
    if not outs or not all(p.exists() for p in outs) or recorded.get(step.name) != step.options:
        return False
    newest_in = max((p.stat().st_mtime for p in ins if p.exists()), default=0.0)
    return min(p.stat().st_mtime for p in outs) >= newest_in


def build_steps(config: Path, out: Path, board: str, target_fps: float, clock_mhz: float, vectors: int,
                sim: str, seed: int) -> list[Step]:
    from hw.bitstream import bitstream_for
    from hw.compile import compile_model
    from hw.report import write_report
    from sim.verify import verify
    from quant.config import load_config
    from quant.export import export_run
    from quant.train import train_run

    cfg = load_config(config)
    hw = out / "hw"

    def train():
        m = train_run(cfg, out)
        return f"{100 * m['test_accuracy']:.2f} % test accuracy (float {100 * m.get('float_accuracy', 0):.2f} %)"

    def export():
        e = export_run(out)
        return f"QONNX == Brevitas on {e['vectors']} test vectors"

    def compile_():
        c = compile_model(out / "model.qonnx.onnx", hw, target_fps, clock_mhz, board=board)
        return (f"{len(c['layers'])} layers, reference == FINN on {c['reference_vs_finn_vectors']} vectors, "
                f"{c['expected_cycles_per_frame']} cycles/frame")

    def verify_():
        v = verify(hw, vectors=vectors, sim=sim, seed=seed)
        if v["mismatches"]:
            raise RuntimeError(f"RTL simulation differs from the reference on {v['mismatches']} vectors; "
                               f"see {hw / 'verify.json'}")
        return (f"{v['vectors']} vectors on {sim}: 0 mismatches, {v['cycles_per_frame']} cycles/frame "
                f"(expected {v['expected_cycles_per_frame']})")

    def bitstream():
        b = bitstream_for(hw, board, seed + 1)
        return (f"{b['board']}: {b['luts']} LUTs, {b['ffs']} FFs, {b['brams']} BRAMs, Fmax {b['fmax_mhz']} MHz "
                f"(target {b['target_mhz']:g}, {'met' if b['meets_timing'] else 'NOT met'})")

    def report():
        return str(write_report(out, hw))

    run_files = [out / "model.pt", out / "metrics.json"]
    rtl = sorted((Path(__file__).resolve().parent / "rtl").glob("*.sv"))  # the hand-written blocks
    return [
        Step("train", lambda: [Path(config)], lambda: run_files, {"config": cfg.model_dump(mode="json")}, train),
        Step("export", lambda: [out / "model.pt"],
             lambda: [out / "model.qonnx.onnx", out / "export.json", out / "test_split.npz"], {},
             export),
        Step("compile", lambda: [out / "model.qonnx.onnx"], lambda: [hw / "graph.json", hw / "compile.json"],
             {"target_fps": target_fps, "clock_mhz": clock_mhz, "board": board}, compile_),
        Step("verify", lambda: [hw / "graph.json", *rtl], lambda: [hw / "verify.json"],
             {"vectors": vectors, "sim": sim, "seed": seed}, verify_),
        Step("bitstream", lambda: [hw / "graph.json", *rtl], lambda: [hw / "bitstream.json"],
             {"board": board, "seed": seed + 1}, bitstream),
        Step("report", lambda: [hw / "bitstream.json", hw / "verify.json", hw / "compile.json"],
             lambda: [out / "report.html", out / "report.md"], {}, report),
    ]


def run_flow(steps: list[Step], out: Path, echo=print) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "flow.json"
    recorded = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for i, step in enumerate(steps, 1):
        if _fresh(step, recorded):
            echo(f"[{i}/{len(steps)}] {step.name:9s} up to date")
            continue
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            said = step.run()
        recorded[step.name] = step.options
        record_path.write_text(json.dumps(recorded, indent=1) + "\n")
        echo(f"[{i}/{len(steps)}] {step.name:9s} {said} ({time.perf_counter() - t0:.0f} s)")


@click.command("flow")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Run directory.")
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Target board (see `pqhw boards`).")
@click.option("--target-fps", type=float, default=10000, show_default=True, help="Frames per second to reach.")
@click.option("--clock-mhz", type=float, default=None, help="Clock for the folding (default: the board clock).")
@click.option("--vectors", type=int, default=100, show_default=True, help="Random vectors besides the test split.")
@click.option("--sim", type=click.Choice(["verilator", "icarus"]), default="verilator", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def cli(config, out_dir, board, target_fps, clock_mhz, vectors, sim, seed):
    """Train, export, compile, verify in RTL simulation, build a bitstream and write the report."""
    from boards.registry import get_board

    b = get_board(board)
    if b.toolchain != "open":
        raise UserError(f"board {board!r} needs Vivado; `pqhw flow` builds with the open toolchain, choose one of "
                        "the open boards listed by `pqhw boards`")
    steps = build_steps(config, out_dir, board, target_fps, clock_mhz or b.clock.mhz, vectors, sim, seed)
    run_flow(steps, out_dir, echo=click.echo)
    click.echo(f"report: {out_dir / 'report.html'}")
