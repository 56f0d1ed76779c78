"""`pqhw compile`: QONNX model -> verified FINN HW graph -> folded integer graph (graph.json, compile.json,
estimate.json with the resources per layer and in total for the board's family, or ECP5 without a board).

The output directory is built beside its final place and renamed into it, so an interrupted compile never
leaves a graph that a later step would trust.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click
import numpy as np

from common.atomic import atomic_dir, write_json
from common.cli_types import MHZ, POSITIVE_FLOAT, OutDir
from common.errors import UserError
from hw.finn_flow import finn_environment, load_model, run_flow
from hw.finn_import import hw_inputs
from hw.estimate import estimate_graph
from hw.synth_time import synthesis_estimate
from hw.folding import (apply_folding_file, apply_to_finn, expected_cycles_per_frame, fold_for_board, fold_for_fps,
                        layer_cycles)
from hw.from_finn import graph_from_finn
from hw.ir import Graph, dtype_range
from hw.reference import run_graph

ESTIMATE_PART = "xc7z020clg400-1"  # FINN's estimates are per Xilinx part; a Zynq-7020 as the anchor
DEFAULT_FAMILY = "ecp5"  # family of estimate.json when no board is named
WEIGHT_MEMORIES = ("plain", "codebook")


def set_weight_memory(graph: Graph, weight_memory: str) -> Graph:
    """`codebook` stores the weights of ternary MVAUs as packed 5-bit codes (three weights a code)."""
    if weight_memory not in WEIGHT_MEMORIES:
        raise UserError(f"--weight-memory {weight_memory!r}: accepted {', '.join(WEIGHT_MEMORIES)}")
    if weight_memory == "plain":
        return graph
    g = graph.model_copy(deep=True)
    ternary = [l for l in g.layers if "codebook" in l.weight_memories()]
    if not ternary:
        raise UserError("--weight-memory codebook: the graph has no ternary MVAU; codebook memories hold ternary "
                        "weights only (accepted for this graph: plain)")
    for l in ternary:
        l.weight_memory = "codebook"
    return g


def choose_folding(graph: Graph, board: str | None, target_fps: float | None, clock_mhz: float,
                   folding_file: Path | None, target_required: bool = True) -> Graph:
    """An explicit folding file wins; with a board, the fastest (or cheapest reaching --target-fps) folding
    that fits it (a target that is only a default, target_required False, gives way to the fastest that
    fits); else the cheapest folding reaching --target-fps; else the graph's own folding."""
    if folding_file is not None:
        return apply_folding_file(graph, folding_file)
    if board is not None:
        from boards.registry import get_board

        return fold_for_board(graph, get_board(board), clock_mhz, target_fps, target_required=target_required)
    if target_fps is not None:
        return fold_for_fps(graph, target_fps, clock_mhz)
    return graph


def _external_data(model_path: Path) -> list[Path]:
    """Weight files an ONNX model refers to beside itself (the dynamo exporter's MODEL.onnx.data)."""
    p = Path(model_path)
    return [q for q in (p.with_name(p.name + ".data"), p.with_suffix(".data")) if q.exists()]


RANDOM_VECTORS = 64
RANDOM_VECTORS_CONV = 16  # FINN's python execution of a CNV-sized conv graph takes ~1 s a vector and step
CONV_TEST_VECTORS = 100  # test-split vectors every front-end step of a conv graph is checked on


def sample_vectors(model_path: Path, graph_input_dtype: str, shape, rng_seed: int = 0, n_random: int = RANDOM_VECTORS):
    """The dataset's test split when `pqhw export` left one beside the model, plus random vectors."""
    run_dir = Path(model_path).parent
    tests = None
    split = run_dir / "test_split.npz"
    if split.is_file():
        try:
            with np.load(split, allow_pickle=False) as z:
                tests = z["x_test"], z["y_test"]
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"{split}: not a test split written by `pqhw export` ({err}); run the export again") \
                from None
        if tests[0].ndim < 2 or int(np.prod(tests[0].shape[1:])) != int(np.prod(shape)):
            raise UserError(f"{split}: test vectors of shape {tests[0].shape[1:]} do not fit the model input {shape}")
        tests = tests[0].reshape(len(tests[0]), *shape), tests[1]
    elif (run_dir / "model.pt").is_file():
        raise UserError(f"{run_dir}: no test_split.npz beside the model (exported by an older pqhw); run "
                        f"`pqhw export {run_dir}` again")
    rng = np.random.default_rng(rng_seed)
    if graph_input_dtype == "BIPOLAR":  # the model's own values; hw_inputs maps them to the hardware's bits
        rand = rng.choice(np.array([-1, 1]), size=(n_random, *shape))
    else:
        lo, hi = dtype_range(graph_input_dtype)
        rand = rng.integers(lo, hi + 1, size=(n_random, *shape))
    return tests, rand


def finn_estimates(hw_model, graph: Graph) -> tuple[dict, dict]:
    """FINN's exp_cycles and LUT estimates on a specialised copy, keyed by our layer names."""
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer
    from finn.analysis.fpgadataflow.res_estimation import res_estimation
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    folded = apply_to_finn(hw_model.transform(_Identity()), graph)
    spec = folded.transform(SpecializeLayers(ESTIMATE_PART))
    names = [n.name for n in spec.graph.node]
    cycles = spec.analysis(exp_cycles_per_layer)
    res = spec.analysis(lambda m: res_estimation(m, ESTIMATE_PART))
    ours = [l.name for l in graph.layers]
    return ({o: int(cycles[n]) for o, n in zip(ours, names)},
            {o: int(res[n]["LUT"]) for o, n in zip(ours, names)})


class _Identity:
    """A no-op transformation: ModelWrapper.transform returns a deep copy we may change."""

    def apply(self, model):
        return model, False


def _hw(shape) -> str:
    return "x".join(str(d) for d in shape)


def _feature_maps(graph: Graph, rows: list[dict]) -> None:
    """Each row's input and output feature map (H x W x C of its stream; 1x1xC once flattened) and the window
    of the sliding-window generator feeding it, for a graph whose input is an NHWC image. A kind's own
    report_row wins; the rest follows the stream."""
    if len(graph.input_shape) != 3:
        return
    fm, window = list(graph.input_shape), None
    for l, row in zip(graph.layers, rows):
        row.setdefault("ifm", fm)
        if "ofm" not in row:
            row["ofm"] = [fm[0], fm[1], l.out_channels] if l.out_vectors == fm[0] * fm[1] else [1, 1, l.out_channels]
        if window is not None and l.kind != "swg":
            row.setdefault("window", window)
        window = [row["window"][0], row["window"][1]] if l.kind == "swg" else None
        fm = row["ofm"]
        row["fmap"] = f"{_hw(row['ifm'])} -> {_hw(row['ofm'])}"


def compile_report(graph: Graph, clock_mhz: float, finn_cycles: dict, finn_luts: dict) -> dict:
    layers = []
    for l in graph.layers:
        row = {"name": l.name, "kind": l.kind, "pe": l.pe, "input_dtype": l.input_dtype,
               "output_dtype": l.output_dtype, "expected_cycles": layer_cycles(l),
               "finn_exp_cycles": finn_cycles.get(l.name), "finn_est_luts": finn_luts.get(l.name)}
        row.update(l.report_row())
        layers.append(row)
    _feature_maps(graph, layers)
    cycles = expected_cycles_per_frame(graph)
    return {"layers": layers, "expected_cycles_per_frame": cycles, "clock_mhz": clock_mhz,
            "macs": sum(l.get("macs", 0) for l in layers), "bops": sum(l.get("bops", 0) for l in layers),
            "expected_fps": round(clock_mhz * 1e6 / cycles, 1)}


def _write_estimate(graph: Graph, board: str | None, staging: Path, report: dict) -> dict:
    """estimate.json for the graph; a graph the RTL cannot build yet (e.g. convolutions) gets none, and
    compile.json says why."""
    try:
        estimate = estimate_graph(graph, DEFAULT_FAMILY, board)
    except UserError as err:
        if board is not None:
            raise
        return {"estimate_family": None, "estimate_total": None, "estimate_error": str(err)}
    (staging / "estimate.json").write_text(json.dumps(estimate, indent=1) + "\n")
    for row in report["layers"]:
        row["est_luts"] = estimate["layers"][row["name"]]["luts"]
    return {"estimate_family": estimate["family"], "estimate_total": estimate["total"]}


def compile_model(model_path: Path, out_dir: Path, target_fps: float | None = None, clock_mhz: float | None = None,
                  folding_file: Path | None = None, progress=None, board: str | None = None,
                  weight_memory: str = "plain", target_required: bool = True) -> dict:
    """Compile, fold and estimate; clock_mhz defaults to the board's clock, or 100 MHz without a board.
    target_required False: target_fps is a default that gives way to the fastest folding that fits `board`."""
    t0 = time.perf_counter()
    if weight_memory not in WEIGHT_MEMORIES:
        raise UserError(f"--weight-memory {weight_memory!r}: accepted {', '.join(WEIGHT_MEMORIES)}")
    if board is not None:
        from boards.registry import get_board
        from hw.estimate import family_of

        family_of(board)  # refuses boards without an estimate before FINN runs
        clock_mhz = clock_mhz or get_board(board).clock.mhz
    clock_mhz = clock_mhz or 100.0
    model_path, out_dir = Path(model_path), Path(out_dir)
    model = load_model(model_path)
    iname = model.graph.input[0].name
    dt = model.get_tensor_datatype(iname).name
    if not (dt.startswith("INT") or dt.startswith("UINT") or dt in ("BINARY", "BIPOLAR")):
        raise UserError(f"{model_path}: graph input {iname!r} has datatype {dt}; declare an integer datatype "
                        "(e.g. UINT4) with qonnx's set_tensor_datatype")
    shape = [int(d) for d in model.get_tensor_shape(iname)[1:]]
    conv = any(n.op_type == "Conv" for n in model.graph.node)
    tests, rand = sample_vectors(model_path, dt, shape, n_random=RANDOM_VECTORS_CONV if conv else RANDOM_VECTORS)
    samples = rand if tests is None else np.concatenate([tests[0].reshape(len(tests[0]), *shape), rand])
    # FINN's python execution of a conv graph runs a vector at a time: its steps see the first
    # CONV_TEST_VECTORS test vectors and the random ones; the numpy reference takes the whole split
    n_test = 0 if tests is None else len(tests[0])
    checked = np.arange(len(samples))
    if conv and n_test > CONV_TEST_VECTORS:
        checked = np.concatenate([np.arange(CONV_TEST_VECTORS), np.arange(n_test, len(samples))])
    with atomic_dir(out_dir, inputs=[model_path, *_external_data(model_path)]) as staging:
        hw_model, record = run_flow(model, samples[checked], staging / "finn_build", on_step=progress)
        samples = hw_inputs(samples, dt, hw_model)  # as the hardware takes them (flattened, BIPOLAR as bits)
        graph = graph_from_finn(hw_model)
        ref = run_graph(graph, samples)[:, 0]
        from hw.finn_flow import execute_classes

        with finn_environment(staging / "finn_build"):
            finn = execute_classes(hw_model, samples[checked])[:, 0]
        bad = checked[np.nonzero(ref[checked] != finn)[0]]
        if len(bad):
            raise RuntimeError(f"numpy reference differs from FINN execution on {len(bad)} vectors "
                               f"(first: vector {bad[0]}: {ref[bad[0]]} vs {finn[list(checked).index(bad[0])]})")
        graph = set_weight_memory(graph, weight_memory)
        graph = choose_folding(graph, board, target_fps, clock_mhz, folding_file, target_required)
        with finn_environment(staging / "finn_build"):
            finn_cycles, finn_luts = finn_estimates(hw_model, graph)
            hw_model.save(str(staging / "finn_hw.onnx"))
        graph.save(staging / "graph.json")
        report = compile_report(graph, clock_mhz, finn_cycles, finn_luts)
        report.update(board=board, weight_memory=weight_memory, **_write_estimate(graph, board, staging, report))
        if board is not None:  # a folding whose synthesis will take long is said before anything runs it
            report.update(synthesis_estimate(report["estimate_family"], report["estimate_total"]))
        if target_fps is not None:
            report.update(target_fps=target_fps, target_fps_reached=bool(
                clock_mhz * 1e6 / report["expected_cycles_per_frame"] >= target_fps))
        # what the hardware's input stream holds: the model's input flattened in C order; a BIPOLAR input as
        # bits (x + 1) / 2
        report.update(model_input={"dtype": dt, "shape": shape},
                      hw_input={"dtype": graph.input_dtype, "shape": graph.input_shape})
        report.update(model=str(model_path), flow_steps=record, reference_vs_finn_vectors=len(checked),
                      reference_vs_finn_mismatches=0, compile_seconds=round(time.perf_counter() - t0, 2))
        write_json(staging / "compile.json", report)
        if tests is not None:
            n = len(tests[0])
            np.savez(staging / "test_vectors.npz", x=samples[:n], y=tests[1], classes=ref[:n])
        shutil.rmtree(staging / "finn_build", ignore_errors=True)
    return report


@click.command("compile")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=OutDir(), required=True, help="Output directory.")
@click.option("--target-fps", type=POSITIVE_FLOAT, default=None,
              help="Frames per second to reach (cheapest folding).")
@click.option("--clock-mhz", type=MHZ, default=None,
              help="Clock for the folding [default: the board clock, or 100 MHz without --board].")
@click.option("--folding", "folding_file", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Explicit folding JSON: {layer: {pe, simd}}.")
@click.option("--board", default=None,
              help="Fold for this board: the fastest folding whose estimate fits (see `pqhw boards`).")
@click.option("--weight-memory", type=click.Choice(WEIGHT_MEMORIES), default="plain", show_default=True,
              help="codebook: ternary MVAU weights as packed 5-bit codes.")
def cli(model, out_dir, target_fps, clock_mhz, folding_file, board, weight_memory):
    """Compile a QONNX model into a folded integer graph (graph.json, compile.json)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a log file gets the whole table rather than wrapped cells
    with console.status("FINN front-end") as status:
        report = compile_model(model, out_dir, target_fps, clock_mhz, folding_file,
                               progress=lambda s: status.update(f"FINN front-end: {s} verified"), board=board,
                               weight_memory=weight_memory)
    est = report["estimate_total"]
    said = (f"estimate {report['estimate_family']}{' ' + board if board else ''}: {est['luts']} LUTs, {est['ffs']} "
            f"FFs, {est['brams']} BRAMs with the board wrapper" if est else "no estimate: " + report["estimate_error"])
    table = Table(title=f"{out_dir} ({report['expected_cycles_per_frame']} cycles/frame, "
                        f"{report['expected_fps']:.0f} fps at {report['clock_mhz']:g} MHz; {said})")
    for col in ("layer", "kind", "MH x MW", "PE", "SIMD", "weights", "in", "out", "w/a bits", "BOPs", "cycles",
                "FINN cycles", "FINN LUTs", "est. LUTs"):
        table.add_column(col)
    for l in report["layers"]:
        bits = f"{l['weight_bits']}/{l['act_bits']}" if "weight_bits" in l else "-"
        table.add_row(l["name"], l.get("mode", l["kind"]), f"{l['mh']} x {l['mw']}", str(l["pe"]),
                      str(l["simd"] or "-"), str(l["weight_dtype"] or "-"), l["input_dtype"], l["output_dtype"],
                      bits, f"{l.get('bops', 0):,}" if "bops" in l else "-", str(l["expected_cycles"]),
                      str(l["finn_exp_cycles"]), str(l["finn_est_luts"]), str(l.get("est_luts", "-")))
    console.print(table)
    if report.get("synthesis_warning"):
        click.echo(report["synthesis_warning"], err=True)
