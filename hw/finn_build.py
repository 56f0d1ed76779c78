"""Vivado boards (Pynq-Z2, ZCU104, KV260) through FINN's own builder.

A directory written by `pqhw compile` holds finn_hw.onnx (FINN's graph after convert_to_hw: MVAU,
Thresholding, LabelSelect, not yet specialised) and compile.json (our folding: PE/SIMD per layer name). This
module turns the two into a FINN DataflowBuildConfig for a board: a folding config that carries our PE/SIMD
under the names FINN gives the layers once it has specialised them, the board's part and FINN board name,
synth_clk_period_ns from the target MHz, the vivado_zynq shell flow, and FINN's steps from the HW graph on.

- `finn_estimate` runs the steps that need no Xilinx tool (up to generate_estimate_reports) and returns
  FINN's per-layer and total estimates, after checking that FINN folded every layer as we did.
- `finn_bitstream` first checks that the programs FINN calls are there (vivado; vitis_hls, or vitis-run
  after Vivado 2024.2; XILINX_VIVADO), then runs FINN's whole build and summarises its reports with the keys
  of the open flow's bitstream.json.

FINN reads FINN_BUILD_DIR per run (hw.finn_flow.finn_environment); nothing FINN is imported at module load.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import click

from boards.registry import Board, all_boards, get_board
from common.atomic import atomic_dir, write_json
from common.cli_types import MHZ
from common.errors import UserError
from hw.finn_flow import finn_environment

# FINN's steps from the HW graph that compile wrote; none of them runs a Xilinx tool.
ESTIMATE_STEPS = ["step_create_dataflow_partition", "step_specialize_layers", "step_apply_folding_config",
                  "step_minimize_bit_width", "step_generate_estimate_reports"]
# Then code generation, HLS synthesis, FIFO sizing, the stitched IP and the Zynq project (Vivado / Vitis HLS).
BUILD_STEPS = ESTIMATE_STEPS + ["step_hw_codegen", "step_hw_ipgen", "step_set_fifo_depths",
                                "step_create_stitched_ip", "step_synthesize_bitfile", "step_make_driver",
                                "step_deployment_package"]
# Report and output files FINN 1.6.1 writes (finn.builder.build_dataflow_steps), relative to its output_dir.
RESOURCES_REPORT = "report/estimate_layer_resources.json"
CYCLES_REPORT = "report/estimate_layer_cycles.json"
PERFORMANCE_REPORT = "report/estimate_network_performance.json"
FOLDED_MODEL = "intermediate_models/step_generate_estimate_reports.onnx"
POST_SYNTH_REPORT = "report/post_synth_resources.json"
TIMING_REPORT = "report/post_route_timing.rpt"
BITFILE = "bitfile/finn-accel.bit"
BUILD_LOG = "build_dataflow.log"
# FINN's dependencies (fetched by `finn deps update`) that HLS synthesis and the Zynq project read.
FINN_DEPS = ("finn-hlslib", "board_files")


def vivado_board(board: Board | str) -> Board:
    board = get_board(board) if isinstance(board, str) else board
    if board.toolchain != "vivado":
        raise UserError(f"board {board.name} is built with the open toolchain: use `pqhw bitstream DIR --board "
                        f"{board.name}`; FINN's builder takes the Vivado boards: {', '.join(_boards('vivado'))}")
    return board


def _boards(toolchain: str) -> list[str]:
    return [b.name for b in all_boards().values() if b.toolchain == toolchain]


# Xilinx tools ------------------------------------------------------------------------------------------------

def _vivado_version(root: str | None) -> tuple[int, int] | None:
    """FINN reads the Vivado version from the XILINX_VIVADO path (.../Vivado/2024.2)."""
    match = re.search(r"\b(20\d{2})\.(1|2)\b", root or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _on_path(tool: str) -> bool:
    """FINN runs a tool from FINN_TOOL_DIR_OVERRIDE when that is set, else from PATH."""
    override = os.environ.get("FINN_TOOL_DIR_OVERRIDE")
    if override:
        path = Path(override) / tool
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(tool) is not None


def missing_xilinx_tools() -> list[str]:
    """What FINN 1.6.1 needs for a bitstream and does not find (vivado; vitis_hls, or vitis-run after Vivado
    2024.2; XILINX_VIVADO, whose path FINN reads the Vivado version from), each in a few words."""
    root = os.environ.get("XILINX_VIVADO")
    version = _vivado_version(root)
    hls = "vitis-run" if version is not None and version > (2024, 2) else "vitis_hls"
    tools = [tool for tool in ("vivado", hls) if not _on_path(tool)]
    missing = [f"{' and '.join(tools)} not found on PATH"] if tools else []
    if not root:
        missing.append("XILINX_VIVADO is not set")
    elif version is None:
        missing.append(f"XILINX_VIVADO={root!r} names no Vivado version (FINN expects .../Vivado/<year>.<1|2>)")
    return missing


def require_xilinx_tools(board: Board) -> None:
    """One line naming what is missing and how to get it; nothing is read or written before this."""
    missing = missing_xilinx_tools()
    if missing:
        raise UserError(f"board {board.name} ({board.device}) is built with AMD Vivado and Vitis HLS through "
                        f"FINN's builder; {'; '.join(missing)}. Source Vivado's and Vitis' settings64.sh (e.g. "
                        f"`source /tools/Xilinx/Vivado/2024.2/settings64.sh`), or choose an open-toolchain board: "
                        f"{', '.join(_boards('open'))}")


def _require_finn_deps() -> None:
    from finn.util.settings import get_settings

    deps = get_settings().finn_deps
    missing = [name for name in FINN_DEPS if not (deps / name).is_dir()]
    if missing:
        raise UserError(f"FINN's dependencies {', '.join(missing)} are not in {deps}; fetch them with "
                        f"`finn deps update` (finn-plus' command, needs network) or set FINN_DEPS to a copy")


# What compile wrote ------------------------------------------------------------------------------------------

def compile_layers(hw_dir: Path) -> list[dict]:
    """compile.json's layers; the files FINN's builder starts from must both be there."""
    hw_dir = Path(hw_dir)
    for name in ("compile.json", "finn_hw.onnx"):
        if not (hw_dir / name).is_file():
            raise UserError(f"{hw_dir / name} not found; run `pqhw compile MODEL --out {hw_dir}` first "
                            f"(it writes finn_hw.onnx and compile.json)")
    try:
        layers = json.loads((hw_dir / "compile.json").read_text())["layers"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise UserError(f"{hw_dir / 'compile.json'}: not a compile report ({err!r}); run `pqhw compile` again") \
            from None
    return layers


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _hw_nodes(model) -> list:
    return [n for n in model.graph.node if n.domain.startswith("finn.custom_op.fpgadataflow")]


def folding_config(hw_dir: Path, board: Board | str) -> dict:
    """FINN's folding config for our folding: {FINN node name after specialisation: {"PE", "SIMD"}}.

    FINN renames the layers when it specialises them (MVAU_0 becomes MVAU_hls_0 or MVAU_rtl_0, numbered per
    type), so the names are those SpecializeLayers gives for the board's part, matched to our layers through
    their output tensors, which it keeps.
    """
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.core.modelwrapper import ModelWrapper

    board = vivado_board(board)
    hw_dir = Path(hw_dir)
    layers = compile_layers(hw_dir)
    model = ModelWrapper(str(hw_dir / "finn_hw.onnx"))
    nodes = {n.name: n for n in _hw_nodes(model)}
    ours = [l["name"] for l in layers]
    only_ours, only_finn = sorted(set(ours) - set(nodes)), sorted(set(nodes) - set(ours))
    if only_ours or only_finn:
        raise UserError(f"{hw_dir}: compile.json and finn_hw.onnx name different layers (only in compile.json: "
                        f"{', '.join(only_ours) or '-'}; only in finn_hw.onnx: {', '.join(only_finn) or '-'}); "
                        f"run `pqhw compile` again so that both come from one run")
    specialised = {n.output[0]: n.name for n in _hw_nodes(model.transform(SpecializeLayers(board.device)))}
    config = {}
    for layer in layers:
        node = nodes[layer["name"]]
        wanted = {"PE": int(layer["pe"])}
        if layer.get("simd") is not None:
            wanted["SIMD"] = int(layer["simd"])
        # a FINN op without the attribute (a sliding window has SIMD, no PE) is folded by it only at 1
        attrs = _attrs(node)
        missing = [k for k, v in wanted.items() if k not in attrs and v != 1]
        if missing:
            raise UserError(f"{hw_dir / 'finn_hw.onnx'}: node {node.name} ({node.op_type}) has no attribute "
                            f"{', '.join(missing)}, but compile.json folds it with {wanted}")
        config[specialised[node.output[0]]] = {k: v for k, v in wanted.items() if k in attrs}
    return config


# FINN's builder ------------------------------------------------------------------------------------------------

def dataflow_config(board: Board, output_dir: Path, folding_file: Path, target_mhz: float, steps: list[str],
                    outputs: list[str]):
    """The DataflowBuildConfig for one board: its part, FINN's name for it, the Zynq shell, our folding."""
    from finn.builder.build_dataflow_config import DataflowBuildConfig, DataflowOutputType, ShellFlowType
    from finn.util.basic import pynq_part_map

    if pynq_part_map.get(board.finn_board) != board.device:
        raise UserError(f"board {board.name}: FINN's Zynq flow knows {board.finn_board!r} as "
                        f"{pynq_part_map.get(board.finn_board)!r}, the board description says {board.device!r}; "
                        f"FINN's boards: {', '.join(sorted(pynq_part_map))}")
    return DataflowBuildConfig(
        output_dir=str(output_dir), synth_clk_period_ns=1000.0 / target_mhz, board=board.finn_board,
        fpga_part=board.device, shell_flow_type=ShellFlowType.VIVADO_ZYNQ, folding_config_file=Path(folding_file),
        steps=list(steps), generate_outputs=[DataflowOutputType(o) for o in outputs], save_intermediate_models=True)


class _SimEngineStandIn:
    """Bound as finn.xsi.SimEngine while FINN's step module is imported (see _step_lookup)."""


def _step_lookup() -> dict:
    """FINN's registry of build steps. finn.builder.build_dataflow_steps names finn.xsi.SimEngine only in a type
    annotation, but importing that name makes finn.xsi look for Vivado's simulator (and fail without
    XILINX_VIVADO); a stand-in is bound for that one import and removed again."""
    import finn.xsi as xsi

    if "finn.builder.build_dataflow_steps" not in sys.modules and "SimEngine" not in vars(xsi):
        xsi.SimEngine = _SimEngineStandIn
        try:
            import finn.builder.build_dataflow_steps  # noqa: F401
        finally:
            if vars(xsi).get("SimEngine") is _SimEngineStandIn:
                del xsi.SimEngine
    from finn.builder.build_dataflow_steps import build_dataflow_step_lookup

    return build_dataflow_step_lookup


@contextmanager
def _finn_run(build_dir: Path):
    """FINN_BUILD_DIR for this run; FINN caches its settings per process, so they are rebuilt from it."""
    import finn.util.settings as finn_settings

    with finn_environment(build_dir):
        saved, finn_settings._SETTINGS = finn_settings._SETTINGS, None
        try:
            yield
        finally:
            finn_settings._SETTINGS = saved


@contextmanager
def _own_console():
    """FINN's build_dataflow_cfg redirects sys.stdout/stderr into its log and resets the root logger."""
    root = logging.getLogger()
    saved = sys.stdout, sys.stderr, root.handlers[:], root.level
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved[0], saved[1]
        root.handlers[:] = saved[2]
        root.setLevel(saved[3])
        logging.captureWarnings(False)


def _staging(out_dir: Path) -> Path:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    work.chmod(0o755)  # mkdtemp's 0700 would stay on the published directory
    return work


def _publish(work: Path, out_dir: Path) -> None:
    shutil.rmtree(work / "finn_tmp", ignore_errors=True)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(work, out_dir)


def _write_folding(hw_dir: Path, board: Board, work: Path) -> Path:
    path = work / "folding_config.json"
    path.write_text(json.dumps(folding_config(hw_dir, board), indent=1) + "\n")
    return path


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        log = path.parents[1] / BUILD_LOG
        raise UserError(f"{path} not found: FINN's builder did not write {what}"
                        + (f"; see {log}" if log.is_file() else ""))
    return json.loads(path.read_text())


# Estimates -----------------------------------------------------------------------------------------------------

def read_estimate(finn_out: Path, hw_dir: Path, board: Board, target_mhz: float) -> dict:
    """FINN's estimate reports in finn_out, per pqhw layer, with the PE/SIMD FINN folded each layer with (read
    back from the folded ONNX); a layer FINN folded otherwise than compile.json is an error."""
    from qonnx.core.modelwrapper import ModelWrapper

    finn_out, hw_dir = Path(finn_out), Path(hw_dir)
    res = _read_json(finn_out / RESOURCES_REPORT, "the resource estimates")
    cycles = _read_json(finn_out / CYCLES_REPORT, "the cycle estimates")
    perf = _read_json(finn_out / PERFORMANCE_REPORT, "the performance estimate")
    if not (finn_out / FOLDED_MODEL).is_file():
        raise UserError(f"{finn_out / FOLDED_MODEL} not found: FINN's builder did not save the folded model")
    folded = {n.output[0]: n for n in _hw_nodes(ModelWrapper(str(finn_out / FOLDED_MODEL)))}
    ours = {n.name: n for n in _hw_nodes(ModelWrapper(str(hw_dir / "finn_hw.onnx")))}
    rows = []
    for layer in compile_layers(hw_dir):
        node = folded.get(ours[layer["name"]].output[0]) if layer["name"] in ours else None
        if node is None:
            raise UserError(f"{finn_out / FOLDED_MODEL}: no FINN layer computes the output of {layer['name']}")
        attrs = _attrs(node)
        pe = attrs.get("PE", 1)  # an op folded by SIMD only (a sliding window) has no PE
        simd = attrs.get("SIMD") if layer.get("simd") is not None else None
        if (pe, simd) != (layer["pe"], layer.get("simd")):
            raise UserError(f"FINN folded {node.name} ({layer['name']}) with PE={pe}, SIMD={simd}, but compile.json "
                            f"says PE={layer['pe']}, SIMD={layer.get('simd')}: the folding config did not reach "
                            f"this layer")
        r = res.get(node.name, {})
        rows.append({"name": layer["name"], "finn_node": node.name, "op_type": node.op_type, "pe": pe, "simd": simd,
                     "cycles": int(cycles[node.name]), "luts": int(r.get("LUT", 0)),
                     "brams_18k": r.get("BRAM_18K", 0), "urams": r.get("URAM", 0), "dsps": int(r.get("DSP", 0))})
    total = res.get("total", {})
    avail = board.resources
    return {
        "board": board.name, "device": board.device, "finn_board": board.finn_board, "target_mhz": target_mhz,
        "layers": rows,
        "total": {"luts": int(total.get("LUT", 0)), "brams_18k": total.get("BRAM_18K", 0),
                  "urams": total.get("URAM", 0), "dsps": int(total.get("DSP", 0))},
        "available": {"luts": avail.luts, "brams_18k": 2 * avail.bram_blocks, "dsps": avail.dsps},
        "max_cycles": int(perf["max_cycles"]), "slowest_node": perf.get("max_cycles_node_name"),
        "critical_path_cycles": int(perf["critical_path_cycles"]),
        "estimated_fps": round(float(perf["estimated_throughput_fps"]), 1),
        "estimated_latency_ns": float(perf["estimated_latency_ns"]),
        "finn_output": str(finn_out), "finn_version": importlib.metadata.version("finn-plus"),
    }


def finn_estimate(hw_dir: Path, board: Board | str, out_dir: Path, target_mhz: float | None = None) -> dict:
    """Run FINN's builder on hw_dir up to generate_estimate_reports (no Xilinx tool needed) into out_dir
    (replaced atomically) and return its per-layer and total estimates (see read_estimate)."""
    from finn.util.exception import FINNUserError
    from qonnx.core.modelwrapper import ModelWrapper

    board = vivado_board(board)
    hw_dir, out_dir = Path(hw_dir), Path(out_dir)
    compile_layers(hw_dir)
    target = float(target_mhz or board.clock.mhz)
    t0 = time.monotonic()
    with atomic_dir(out_dir, inputs=[hw_dir]) as work:
        with _finn_run(work / "finn_tmp"):
            cfg = dataflow_config(board, work, _write_folding(hw_dir, board, work), target, ESTIMATE_STEPS,
                                  ["estimate_reports"])
            lookup = _step_lookup()
            model = ModelWrapper(str(hw_dir / "finn_hw.onnx"))
            (work / "intermediate_models").mkdir(exist_ok=True)
            try:
                for step in ESTIMATE_STEPS:  # what build_dataflow_cfg does, which reads XILINX_VIVADO at the end
                    model = lookup[step](model, cfg)
                    model.save(str(work / "intermediate_models" / f"{step}.onnx"))
            except FINNUserError as err:
                raise UserError(f"FINN's builder stopped in {step} for {hw_dir}: {err}") from None
        result = read_estimate(work, hw_dir, board, target)
        result["finn_output"] = str(out_dir)
        result["seconds"] = round(time.monotonic() - t0, 2)
        shutil.rmtree(work / "finn_tmp", ignore_errors=True)
    return result


# Bitstream -------------------------------------------------------------------------------------------------------

def parse_timing(text: str) -> dict:
    """Worst negative slack and the PL clock period from Vivado's report_timing_summary."""
    wns = period = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.split()[:1] == ["WNS(ns)"] and i + 2 < len(lines):
            first = lines[i + 2].split()[:1]
            if first and re.fullmatch(r"-?\d+(\.\d+)?", first[0]):
                wns = float(first[0])
            break
    clock = re.search(r"^\s*(clk_fpga_0|clk_pl_0)\s+\{[^}]*\}\s+([\d.]+)\s", text, re.M)
    if clock:
        period = float(clock.group(2))
    return {"wns_ns": wns, "clock_period_ns": period}


def read_bitstream(finn_out: Path, board: Board, target_mhz: float) -> dict:
    """Post-synthesis resources of the whole design (accelerator plus Zynq shell), Fmax after routing and the
    bit file's sha256, from FINN's reports in finn_out."""
    finn_out = Path(finn_out)
    synth = _read_json(finn_out / POST_SYNTH_REPORT, "the post-synthesis resources")
    top = synth.get("(top)")
    if top is None:
        raise UserError(f"{finn_out / POST_SYNTH_REPORT}: no (top) entry with the whole design's resources")
    for name in (TIMING_REPORT, BITFILE):
        if not (finn_out / name).is_file():
            raise UserError(f"{finn_out / name} not found: FINN's builder did not write it; see "
                            f"{finn_out / BUILD_LOG}")
    timing = parse_timing((finn_out / TIMING_REPORT).read_text(errors="replace"))
    if timing["wns_ns"] is None:
        raise UserError(f"{finn_out / TIMING_REPORT}: no WNS(ns) in the Design Timing Summary")
    period = timing["clock_period_ns"] or 1000.0 / target_mhz
    fmax = round(1000.0 / (period - timing["wns_ns"]), 2)
    meta = finn_out / "report" / "metadata_builder.json"
    vivado = json.loads(meta.read_text()).get("tool_version") if meta.is_file() else None
    return {"luts": int(top.get("LUT", 0)), "ffs": int(top.get("FF", 0)),
            "brams": top.get("BRAM_36K", 0) + top.get("BRAM_18K", 0) / 2, "dsps": int(top.get("DSP", 0)),
            "fmax_mhz": fmax, "meets_timing": timing["wns_ns"] >= 0, "wns_ns": timing["wns_ns"],
            "tool_versions": {"finn-plus": importlib.metadata.version("finn-plus"),
                              "vivado": vivado or Path(os.environ.get("XILINX_VIVADO", "")).name},
            "sha256": hashlib.sha256((finn_out / BITFILE).read_bytes()).hexdigest()}


def finn_bitstream(hw_dir: Path, board: Board | str, out_dir: Path, seed: int = 1,
                   target_mhz: float | None = None) -> dict:
    """FINN's whole build of hw_dir for a Vivado board into out_dir (replaced atomically on success; a failed
    build stays in a hidden directory beside it, named in the error). Returns the summary with the keys of
    hw.bitstream.SUMMARY_KEYS and writes it to out_dir/bitstream.json, FINN's estimates to finn_estimate.json.
    FINN's Zynq flow takes no placement seed: `seed` is recorded, not used."""
    board = vivado_board(board)
    require_xilinx_tools(board)
    hw_dir, out_dir = Path(hw_dir), Path(out_dir)
    compile_layers(hw_dir)
    target = float(target_mhz or board.clock.mhz)
    t0 = time.monotonic()
    work = _staging(out_dir)
    started = False
    try:
        with _finn_run(work / "finn_tmp"):
            _require_finn_deps()
            cfg = dataflow_config(board, work, _write_folding(hw_dir, board, work), target, BUILD_STEPS,
                                  ["estimate_reports", "stitched_ip", "bitfile", "pynq_driver", "deployment_package"])
            _step_lookup()
            from finn.builder.build_dataflow import build_dataflow_cfg

            started = True  # from here on the directory holds FINN's log: kept when the build fails
            with _own_console():
                status = build_dataflow_cfg(str(hw_dir / "finn_hw.onnx"), cfg)
    except BaseException:
        if not started:
            shutil.rmtree(work, ignore_errors=True)
        raise
    if status != 0:
        log = work / BUILD_LOG
        errors = [l for l in log.read_text(errors="replace").splitlines() if "ERROR" in l] if log.is_file() else []
        last = re.sub(r"^\[[^]]*\]\s*ERROR:\s*", "", errors[-1].strip()) if errors else ""
        raise UserError(f"FINN's build for {board.name} failed (status {status}); log {log}"
                        + (f": {last}" if last else ""))
    n = read_bitstream(work, board, target)
    steps = work / "report" / "time_per_step.json"
    summary = {"board": board.name, "device": board.device, "luts": n["luts"], "ffs": n["ffs"], "brams": n["brams"],
               "dsps": n["dsps"], "fmax_mhz": n["fmax_mhz"], "target_mhz": target, "meets_timing": n["meets_timing"],
               "seconds": round(time.monotonic() - t0, 2), "tool_versions": n["tool_versions"], "sha256": n["sha256"],
               "bitstream": str(out_dir / BITFILE), "wns_ns": n["wns_ns"], "seed": seed, "finn_board": board.finn_board,
               "steps_seconds": json.loads(steps.read_text()) if steps.is_file() else None}
    estimate = read_estimate(work, hw_dir, board, target)
    estimate["finn_output"] = str(out_dir)
    write_json(work / "finn_estimate.json", estimate, indent=1)
    write_json(work / "bitstream.json", summary, indent=1)
    _publish(work, out_dir)
    return summary


# CLI -------------------------------------------------------------------------------------------------------------

def estimate_table(result: dict):
    from rich.table import Table

    table = Table(title=f"FINN's estimates for {result['board']} ({result['device']})")
    for col in ("layer", "FINN node", "PE", "SIMD", "cycles", "LUTs", "BRAM18", "URAM", "DSPs"):
        table.add_column(col, justify="left" if col in ("layer", "FINN node") else "right", no_wrap=True)
    for r in result["layers"]:
        table.add_row(r["name"], r["finn_node"], str(r["pe"]), "-" if r["simd"] is None else str(r["simd"]),
                      f"{r['cycles']:,}", f"{r['luts']:,}", f"{r['brams_18k']:g}", f"{r['urams']:g}", str(r["dsps"]))
    t, a = result["total"], result["available"]
    table.add_row("total", "", "", "", f"{result['max_cycles']:,}", f"{t['luts']:,} / {a['luts']:,}",
                  f"{t['brams_18k']:g} / {a['brams_18k']}", f"{t['urams']:g}", f"{t['dsps']:,} / {a['dsps']:,}",
                  style="bold")
    return table


def _write_json(data: dict, path: Path) -> None:
    write_json(path, data, indent=1)


@click.command("finn-estimate")
@click.argument("hw_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--board", "board_name", required=True, help="A Vivado board: pynq-z2, zcu104 or kv260.")
@click.option("--freq", "freq_mhz", type=MHZ, default=None,
              help="Clock in MHz for the frames/s estimate (default: the board clock).")
def cli(hw_dir: Path, board_name: str, freq_mhz: float | None):
    """FINN's own resource and cycle estimates for the accelerator in HW_DIR on a Vivado board (runs FINN's
    builder up to its estimate reports; needs no Vivado). Writes HW_DIR/<board>/finn_estimate.json."""
    from rich.console import Console

    board = vivado_board(board_name)
    result = finn_estimate(hw_dir, board, hw_dir / board.name / "finn_estimate", target_mhz=freq_mhz)
    path = hw_dir / board.name / "finn_estimate.json"
    _write_json(result, path)
    console = Console()
    if not console.is_terminal:
        console.width = 160
    console.print(estimate_table(result))
    click.echo(f"{result['estimated_fps']:,.0f} frames/s at {result['target_mhz']:g} MHz (slowest: "
               f"{result['slowest_node']}, {result['max_cycles']:,} cycles); FINN estimates no flip-flops  ->  {path}")
