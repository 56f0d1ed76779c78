"""`pqhw flow`: train -> export -> compile -> verify -> bitstream -> report, in one run directory.

A step is skipped when its outputs exist with the content they had when it made them and its inputs and
options are the ones it was made from: DIR/flow.json records, per step, the options and the sha256 of every
input and output. File times play no part (a copy, a checkout or a touched file changes them, not the
content), so running the flow again after a change redoes exactly what the change touched.
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

from common.atomic import sha256_inputs, write_json
from common.cli_types import COUNT, MHZ, POSITIVE_FLOAT, SEED, OutDir, writable_dir
from common.errors import UserError

DEFAULT_BOARD = "icebreaker"
DEFAULT_TARGET_FPS = 10000  # without --target-fps; gives way to the fastest folding that fits the board
HW_SOURCES = Path(__file__).resolve().parent.parent / "hw"  # the hand-written blocks and templates


@dataclass
class Step:
    name: str
    inputs: Callable[[], list[Path]]
    outputs: Callable[[], list[Path]]
    options: dict
    run: Callable[[], str]


def step_record(step: Step) -> dict:
    """What a step was made from and what it made, by content."""
    return {"options": step.options, "inputs": sha256_inputs(step.inputs()), "outputs": sha256_inputs(step.outputs())}


def _fresh(step: Step, recorded: dict) -> bool:
    """Outputs present and unchanged since the step wrote them, inputs and options the same as then."""
    rec = recorded.get(step.name)
    if not isinstance(rec, dict) or rec.get("options") != step.options:
        return False
    outs = step.outputs()
    if not outs or not all(p.exists() for p in outs):
        return False
    return rec.get("inputs") == sha256_inputs(step.inputs()) and rec.get("outputs") == sha256_inputs(outs)


def build_steps(config: Path, out: Path, board: str, target_fps: float | None, clock_mhz: float, vectors: int,
                sim: str, seed: int) -> list[Step]:
    """The flow's steps; target_fps None: DEFAULT_TARGET_FPS, or the fastest folding that fits the board."""
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
        c = compile_model(out / "model.qonnx.onnx", hw, target_fps or DEFAULT_TARGET_FPS, clock_mhz, board=board,
                          target_required=target_fps is not None)
        fastest = "" if c["target_fps_reached"] else (
            f" (the fastest folding that fits {board}; {DEFAULT_TARGET_FPS:,} frames/s does not)")
        warn = f"\n{c['synthesis_warning']}" if c.get("synthesis_warning") else ""  # said before the bitstream step
        return (f"{len(c['layers'])} layers, reference == FINN on {c['reference_vs_finn_vectors']} vectors, "
                f"{c['expected_cycles_per_frame']} cycles/frame{fastest}{warn}")

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
    rtl = [HW_SOURCES / "rtl", HW_SOURCES / "templates"]  # the hand-written blocks and the top's templates
    return [
        Step("train", lambda: [Path(config)], lambda: run_files, {"config": cfg.model_dump(mode="json")}, train),
        Step("export", lambda: [out / "model.pt"],
             lambda: [out / "model.qonnx.onnx", out / "export.json", out / "test_split.npz"], {},
             export),
        Step("compile", lambda: [out / "model.qonnx.onnx"], lambda: [hw / "graph.json", hw / "compile.json"],
             {"target_fps": target_fps, "clock_mhz": clock_mhz, "board": board}, compile_),
        Step("verify", lambda: [hw / "graph.json", hw / "test_vectors.npz", *rtl],
             lambda: [hw / "verify.json", hw / "rtl"], {"vectors": vectors, "sim": sim, "seed": seed}, verify_),
        Step("bitstream", lambda: [hw / "graph.json", hw / "verify.json", hw / "rtl", hw / "estimate.json", *rtl],
             lambda: [hw / "bitstream.json", hw / board], {"board": board, "seed": seed + 1}, bitstream),
        Step("report", lambda: [hw / "bitstream.json", hw / "verify.json", hw / "compile.json"],
             lambda: [out / "report.html", out / "report.md"], {}, report),
    ]


def read_record(record_path: Path) -> dict:
    """DIR/flow.json; a damaged or foreign one only means that every step runs again."""
    try:
        recorded = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def run_flow(steps: list[Step], out: Path, echo=print) -> None:
    why = writable_dir(out)
    if why:
        raise UserError(f"--out {out}: {why}; give a directory that can be written")
    record_path = out / "flow.json"
    recorded = read_record(record_path)
    for i, step in enumerate(steps, 1):
        if _fresh(step, recorded):
            echo(f"[{i}/{len(steps)}] {step.name:9s} up to date")
            continue
        if recorded.pop(step.name, None) is not None:
            write_json(record_path, recorded, indent=1)  # until it has run again, its old record describes nothing
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # library chatter; progress goes to stderr
            said = step.run()
        recorded[step.name] = step_record(step)
        out.mkdir(parents=True, exist_ok=True)  # only now: a first step refused leaves no --out behind
        write_json(record_path, recorded, indent=1)
        echo(f"[{i}/{len(steps)}] {step.name:9s} {said} ({time.perf_counter() - t0:.0f} s)")


@click.command("flow")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=OutDir(), required=True, help="Run directory.")
@click.option("--board", default=DEFAULT_BOARD, show_default=True, help="Target board (see `pqhw boards`).")
@click.option("--target-fps", type=POSITIVE_FLOAT, default=None,
              help=f"Frames per second to reach (refused when no folding reaching it fits the board). "
                   f"Default: {DEFAULT_TARGET_FPS:,}, or the fastest folding that fits the board when "
                   f"{DEFAULT_TARGET_FPS:,} does not.")
@click.option("--clock-mhz", type=MHZ, default=None, help="Clock for the folding (default: the board clock).")
@click.option("--vectors", type=COUNT, default=100, show_default=True, help="Random vectors besides the test split.")
@click.option("--sim", type=click.Choice(["verilator", "icarus"]), default="verilator", show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
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
