"""pqhw_alq against the reference (hw/kinds/alq.py), with random idle cycles on the input and random
backpressure on the output: basis counts, empty slots and empty rows, shifts, signed and unsigned inputs of
1..8 bits, foldings from one element a beat to fully unrolled, constant and ROM bit planes, thresholds at
and beyond the accumulator's range, and the accumulator output of a classifier."""
import numpy as np
import pytest

from hw.kinds.alq import ALQ, weights_of
from hw.kinds.mvau import mvau_accumulate
from hw.layer_rtl import dtype_fmt, fmt_for_range
from sim import graphs
from sim.blocks import run_layer_block

pytestmark = pytest.mark.sim


def random_alq(rng, mh, mw, nb, input_dtype, pe=1, simd=1, nt=2, sh_max=3, empty=0.2, out_signed=False,
               edge=False, weight_memory="auto") -> ALQ:
    """An ALQ layer with random planes, shifts in 0..sh_max, a share `empty` of empty slots (whole rows too)."""
    shifts = rng.integers(0, sh_max + 1, (mh, nb))
    shifts[rng.random((mh, nb)) < empty] = -1
    planes = [[hex(int(rng.integers(0, 1 << mw))) for _ in range(nb)] for _ in range(mh)]
    w = weights_of(shifts.tolist(), planes, mw)
    f = dtype_fmt(input_dtype)
    lo = int(np.minimum(w * f.lo, w * f.hi).sum(axis=1).min())
    hi = int(np.maximum(w * f.lo, w * f.hi).sum(axis=1).max())
    acc = fmt_for_range(lo, hi)
    acc_dt = f"{'INT' if acc.signed else 'UINT'}{acc.bits}"
    base = dict(name="alq", mh=mh, mw=mw, pe=pe, simd=simd, input_dtype=input_dtype, acc_dtype=acc_dt,
                shifts=shifts.tolist(), planes=planes, weight_memory=weight_memory)
    if nt == 0:
        return ALQ(output_dtype=acc_dt, **base)
    t = graphs.random_thresholds(rng, lo, hi, mh, nt, edge)
    bias = -(nt // 2) - 1 if out_signed else 0
    g = fmt_for_range(bias, bias + nt)
    out = "BINARY" if nt == 1 and not out_signed else f"{'INT' if g.signed else 'UINT'}{g.bits}"
    return ALQ(output_dtype=out, thresholds=t.tolist(), threshold_bias=bias, **base)


def _run(layer, tmp_path, build_root, sim="icarus", n=16, seed=1, x=None):
    rng = np.random.default_rng(seed)
    if x is None:
        x = graphs.random_inputs(rng, layer.input_dtype, n, layer.mw)
    res = run_layer_block(layer, x, sim, build_root, tmp_path, seed=seed)
    assert res["mismatches"] == 0 and res["frames"] == len(x)
    assert res["cycles_per_frame"] == layer.cycles()
    return res


def test_bit_plane_reference_equals_integer_matmul():
    """The reference's bit-plane sums are the integer weights times the inputs, signed and unsigned."""
    rng = np.random.default_rng(0)
    for dt in ("BINARY", "UINT2", "UINT4", "INT3", "INT8"):
        layer = random_alq(rng, 7, 13, 4, dt, nt=0, sh_max=6)
        x = graphs.random_inputs(rng, dt, 50, 13)
        lo, hi = {"INT8": (-128, 127)}.get(dt, (dtype_fmt(dt).lo, dtype_fmt(dt).hi))
        x[:2] = [[lo] * 13, [hi] * 13]
        assert np.array_equal(layer.accumulate(x), mvau_accumulate(x, layer.weight_array(), "int"))


@pytest.mark.parametrize("mh,mw,nb,in_dt,pe,simd,nt,memory", [
    (4, 8, 1, "BINARY", 4, 8, 1, "const"),     # one basis, binary inputs, fully unrolled
    (6, 12, 3, "UINT2", 2, 4, 3, "rom"),       # empty slots and rows, ROM planes
    (4, 6, 4, "INT4", 1, 3, 0, "const"),       # signed inputs, the accumulator out (classifier)
    (3, 5, 2, "UINT8", 3, 1, 5, "rom"),        # 8-bit inputs, one element a beat
])
def test_alq_block(mh, mw, nb, in_dt, pe, simd, nt, memory, tmp_path, build_root):
    layer = random_alq(np.random.default_rng(mh * mw + nb), mh, mw, nb, in_dt, pe, simd, nt=nt, edge=nt >= 3,
                       out_signed=nt == 5, weight_memory=memory)
    _run(layer, tmp_path, build_root)


@pytest.mark.slow
def test_alq_block_verilator_wide_shifts(tmp_path, build_root):
    """Shifts up to 12 (SH_BITS 4) with signed inputs: terms far from the low bits, on Verilator (make test
    runs Verilator on the whole ALQ network, tests/hw/test_alq_net.py)."""
    layer = random_alq(np.random.default_rng(9), 4, 8, 3, "INT2", 2, 2, nt=3, sh_max=12, edge=True)
    _run(layer, tmp_path, build_root, sim="verilator")


@pytest.mark.slow
@pytest.mark.parametrize("in_dt", ["BINARY", "UINT2", "INT4", "UINT8"])
@pytest.mark.parametrize("mh,mw,nb,pe,simd", [(1, 1, 1, 1, 1), (6, 10, 2, 1, 1), (6, 10, 6, 6, 10),
                                              (6, 10, 3, 3, 5), (8, 15, 4, 4, 3)])
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_alq_sweep(in_dt, mh, mw, nb, pe, simd, sim, tmp_path, build_root):
    rng = np.random.default_rng(mh * 100 + mw + nb)
    layer = random_alq(rng, mh, mw, nb, in_dt, pe, simd, nt=3, sh_max=7, edge=True,
                       weight_memory="rom" if pe * simd < mh * mw else "const")
    _run(layer, tmp_path, build_root, sim=sim, n=20)


def test_alq_block_synthesises_in_yosys(tmp_path):
    """pqhw_alq with ROM planes and thresholds through Yosys' ECP5 synthesis (what `pqhw bitstream` runs)."""
    from bench.rtl_bench import synth_layer

    layer = random_alq(np.random.default_rng(11), 8, 16, 3, "UINT2", 2, 4, nt=3, sh_max=9, weight_memory="rom")
    res = synth_layer(layer, dtype_fmt("UINT2"), "ecp5", tmp_path)
    assert res["module"] == "pqhw_alq" and res["luts"] > 0 and res["ffs"] > 0


LINT_SOURCES = ["pqhw_alq.sv", "pqhw_mem.sv", "pqhw_mt.sv", "pqhw_credit_fifo.sv", "pqhw_fifo.sv"]


@pytest.mark.parametrize("params", [
    {},
    {"IN_SIGNED": 1, "SIMD": 4, "MW": 8, "NB": 3, "ACC_BITS": 4, "NT": 2, "TH_BITS": 6, "OUT_BITS": 2},
    {"MW": 1, "MH": 1, "IN_BITS": 8, "ACC_BITS": 2, "OUT_BITS": 2, "SH_BITS": 5, "MEM_STYLE": 1},
])
def test_verilator_lint_and_icarus_accept(params):
    """At its defaults and at edges (narrow accumulators, one input, signed planes), warnings included."""
    import subprocess

    from sim.runner import RTL_DIR

    srcs = [str(RTL_DIR / s) for s in LINT_SOURCES]
    gs = [f"-G{k}={v}" for k, v in params.items()]
    r = subprocess.run(["verilator", "--lint-only", *gs, "--top-module", "pqhw_alq", *srcs], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    ps = [f"-Ppqhw_alq.{k}={v}" for k, v in params.items()]
    r = subprocess.run(["iverilog", "-g2012", *ps, "-o", "/dev/null", "-s", "pqhw_alq", *srcs], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr


def test_illegal_folding_is_refused_at_elaboration():
    import subprocess

    from sim.runner import RTL_DIR

    srcs = [str(RTL_DIR / s) for s in LINT_SOURCES]
    r = subprocess.run(["verilator", "--lint-only", "-GMW=6", "-GSIMD=4", "--top-module", "pqhw_alq", *srcs],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "pqhw_error_alq_simd_must_divide_mw_and_pe_divide_mh" in r.stderr
