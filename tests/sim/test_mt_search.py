"""pqhw_mvau with thresholds by binary search (pqhw_mt_search) against the reference, with random idle input
and backpressure (sim/tb_mvau): 8-bit outputs (255 thresholds a channel) and a count that is not 2^S - 1,
signed and unsigned accumulators, per-channel and shared rows, ROM files and constant tables; the cycles a
frame stay the MVAU's (MH/PE)(MW/SIMD): the search takes one input a cycle."""
import numpy as np
import pytest

from hw.layer_rtl import dtype_fmt
from sim import graphs
from sim.blocks import run_layer_block

pytestmark = pytest.mark.sim


def _layer(seed, in_dt, w_dt, mh, mw, pe, simd, nt, shared=False, out_signed=False, memory="rom"):
    layer = graphs.mvau(np.random.default_rng(seed), "l", "int", mh, mw, pe, simd, in_dt, w_dt, nt=nt,
                        shared=shared, out_signed=out_signed, edge=True, weight_memory=memory)
    layer = layer.model_copy(update={"threshold_search": "search"})
    assert layer.rtl(dtype_fmt(in_dt), "blk").params.get("TH_SEARCH") == 1
    return layer


def _run(layer, tmp_path, build_root, sim, n=16, seed=1):
    x = graphs.random_inputs(np.random.default_rng(seed), layer.input_dtype, n, layer.mw)
    res = run_layer_block(layer, x, sim, build_root, tmp_path, seed=seed)
    assert res["mismatches"] == 0 and res["frames"] == n
    assert res["cycles_per_frame"] == (layer.mh // layer.pe) * (layer.mw // layer.simd)
    return res


@pytest.mark.parametrize("case", [
    # 255 thresholds per channel, signed accumulator, ROM files (deep stages with registered words)
    dict(seed=1, in_dt="INT4", w_dt="INT4", mh=8, mw=16, pe=2, simd=4, nt=255, sim="icarus"),
    # 100 thresholds (padded to 127), unsigned accumulator, signed outputs, constant tables
    dict(seed=2, in_dt="UINT4", w_dt="UINT3", mh=6, mw=12, pe=3, simd=4, nt=100, out_signed=True, memory="const",
         sim="icarus"),
    # one row shared by all channels: every lane reads its own copy of the stage tables
    dict(seed=3, in_dt="UINT3", w_dt="INT4", mh=8, mw=8, pe=4, simd=2, nt=255, shared=True, sim="icarus"),
])
def test_search_matches_reference(case, tmp_path, build_root):
    case = dict(case)
    sim = case.pop("sim")
    _run(_layer(**case), tmp_path, build_root, sim)


@pytest.mark.parametrize("in_dt,channels,pe,nt,shared,sim", [
    ("UINT8", 8, 4, 255, False, "icarus"),     # 8-bit in and out, per-channel rows
    ("INT6", 6, 3, 40, True, "icarus"),        # shared row of 40 (padded to 63), signed input
    pytest.param("INT8", 16, 2, 255, False, "verilator", marks=pytest.mark.slow),  # a 40,800-bit table literal:
    # more than Icarus takes as -P; a Verilator build takes 1-2 minutes on the shared machine
])
def test_standalone_threshold_search(in_dt, channels, pe, nt, shared, sim, tmp_path, build_root):
    layer = graphs.threshold(np.random.default_rng(nt), "t", channels, pe, in_dt, nt, shared, bias=-3, edge=True)
    layer = layer.model_copy(update={"threshold_search": "search"})
    assert layer.rtl(dtype_fmt(in_dt), "blk").params["TH_SEARCH"] == 1
    x = graphs.random_inputs(np.random.default_rng(5), in_dt, 12, channels)
    res = run_layer_block(layer, x, sim, build_root, tmp_path, seed=2)
    assert res["mismatches"] == 0 and res["frames"] == 12 and res["cycles_per_frame"] == channels // pe


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("nt,shared,memory", [(255, False, "rom"), (255, True, "const"), (31, False, "const"),
                                              (200, False, "rom"), (15, True, "rom")])
@pytest.mark.parametrize("mh,mw,pe,simd", [(6, 10, 1, 1), (6, 10, 6, 5), (12, 9, 4, 3)])
def test_search_sweep(sim, nt, shared, memory, mh, mw, pe, simd, tmp_path, build_root):
    layer = graphs.mvau(np.random.default_rng(nt + mh * pe), "l", "int", mh, mw, pe, simd, "INT8", "INT8", nt=nt,
                        shared=shared, out_signed=nt % 2 == 1, edge=True, weight_memory=memory)
    _run(layer.model_copy(update={"threshold_search": "search"}), tmp_path, build_root, sim, n=20)
