"""pqhw_mvau against the reference: three arithmetic modes, foldings, memories, edges.

The default set runs on Icarus (sub-second builds) plus one Verilator build; whole accelerators run on
Verilator in tests/hw. The slow sweep runs every case on both simulators.
"""
import numpy as np
import pytest

from sim import graphs
from sim.blocks import run_layer_block

pytestmark = pytest.mark.sim


def _run(layer, tmp_path, build_root, sim="icarus", n=12, seed=1, x=None):
    rng = np.random.default_rng(seed)
    if x is None:
        x = graphs.random_inputs(rng, layer.input_dtype, n, layer.mw)
    res = run_layer_block(layer, x, sim, build_root, tmp_path, seed=seed)
    assert res["mismatches"] == 0 and res["frames"] == len(x)
    return res


def _expected(layer):
    return (layer.mh // layer.pe) * (layer.mw // layer.simd)


@pytest.mark.parametrize("mode,in_dt,w_dt,mh,mw,pe,simd,nt,memory", [
    ("xnor", "BINARY", "BINARY", 8, 16, 2, 4, 1, "rom"),
    ("ternary", "UINT2", "INT2", 6, 12, 3, 4, 3, "rom"),
    ("int", "INT4", "INT4", 4, 8, 2, 2, 0, "const"),
    ("int", "UINT3", "UINT2", 4, 6, 4, 6, 7, "const"),       # PE=MH, SIMD=MW
])
def test_mvau_modes(mode, in_dt, w_dt, mh, mw, pe, simd, nt, memory, tmp_path, build_root):
    layer = graphs.mvau(np.random.default_rng(3), "l", mode, mh, mw, pe, simd, in_dt, w_dt, nt=nt,
                        out_signed=nt > 1, weight_memory=memory)
    res = _run(layer, tmp_path, build_root, n=16)
    assert res["cycles_per_frame"] == _expected(layer)


def test_mvau_verilator_shared_thresholds(tmp_path, build_root):
    layer = graphs.mvau(np.random.default_rng(4), "l", "ternary", 4, 6, 2, 3, "INT3", "INT2", nt=2,
                        shared=True, weight_memory="rom")
    res = _run(layer, tmp_path, build_root, sim="verilator")
    assert res["cycles_per_frame"] == _expected(layer) == 4


def test_xnor_all_ones_at_accumulator_boundary(tmp_path, build_root):
    """MW = 2^k - 1 with weights and inputs all ones: acc = MW fills all clog2(MW+1) bits exactly."""
    mw = 7
    layer = graphs.mvau(np.random.default_rng(5), "l", "xnor", 2, mw, 1, 7, nt=0, weight_memory="const")
    layer = layer.model_copy(update={"weights": np.ones((2, mw), dtype=int).tolist()})
    x = np.vstack([np.ones((3, mw), dtype=int), np.zeros((1, mw), dtype=int)])
    res = _run(layer, tmp_path, build_root, x=x)
    assert res["frames"] == 4 and res["cycles_per_frame"] == 2


def test_k1_and_thresholds_at_limits(tmp_path, build_root):
    """MW = 1 (one input), thresholds at and beyond the accumulator's range, per-channel, signed output."""
    layer = graphs.mvau(np.random.default_rng(6), "l", "int", 4, 1, 1, 1, "INT8", "INT8", nt=5,
                        out_signed=True, edge=True, weight_memory="rom")
    x = np.array([[-128], [127], [0], [-1], [1], [64]])
    _run(layer, tmp_path, build_root, x=x)


@pytest.mark.slow
@pytest.mark.parametrize("mode,in_dt,w_dt", [("xnor", "BINARY", "BINARY"), ("ternary", "INT4", "INT2"),
                                             ("int", "UINT8", "INT8"), ("int", "INT2", "UINT8")])
@pytest.mark.parametrize("mh,mw,pe,simd", [(1, 1, 1, 1), (6, 10, 1, 1), (6, 10, 6, 10), (6, 10, 3, 5), (8, 15, 4, 3)])
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_mvau_sweep(mode, in_dt, w_dt, mh, mw, pe, simd, sim, tmp_path, build_root):
    rng = np.random.default_rng(mh * 100 + mw)
    nt = 1 if mode == "xnor" else 3
    layer = graphs.mvau(rng, "l", mode, mh, mw, pe, simd, in_dt, w_dt, nt=nt, edge=True,
                        weight_memory="rom" if pe * simd < mh * mw else "const")
    res = _run(layer, tmp_path, build_root, sim=sim, n=20)
    assert res["cycles_per_frame"] == _expected(layer)


def _every_code_layer(mh, mw, pe, simd, in_dt):
    """Ternary weights whose consecutive triples run through all 27 codes of common.codebook (rows padded)."""
    from common.codebook import TABLE

    layer = graphs.mvau(np.random.default_rng(11), "cb", "ternary", mh, mw, pe, simd, in_dt, "INT2", nt=3,
                        weight_memory="codebook")
    flat = np.tile(TABLE.ravel(), -(-mh * mw // TABLE.size))[: mh * mw]
    return layer.model_copy(update={"weights": flat.reshape(mh, mw).tolist()})


@pytest.mark.parametrize("mh,mw,pe,simd,in_dt", [
    (9, 9, 3, 9, "INT3"),     # 27 codes exactly once, three codes per lane and word
    (6, 10, 2, 5, "UINT2"),   # SIMD not a multiple of 3: each lane's chunk padded with zero weights
])
def test_codebook_weight_memory_at_every_code(mh, mw, pe, simd, in_dt, tmp_path, build_root):
    """Codebook ROM decoded in logic equals the reference for every code; the ROM holds 5-bit codes."""
    from hw.layer_rtl import dtype_fmt, layer_rtl
    from common.codebook import CODE_BITS, decode_rows, groups_per_row

    layer = _every_code_layer(mh, mw, pe, simd, in_dt)
    rtl = layer_rtl(layer, dtype_fmt(in_dt), "blk")
    assert rtl.params["W_CODEBOOK"] == 1 and rtl.params["MEM_STYLE"] == 1
    cg = groups_per_row(simd)
    words = [int(w, 16) for w in rtl.files["blk_w.memh"].split()]
    codes = [[(words[n * (mw // simd) + s] >> ((p * cg + g) * CODE_BITS)) & 31 for s in range(mw // simd)
              for g in range(cg)] for n in range(mh // pe) for p in range(pe)]
    chunks = [decode_rows(np.asarray(row).reshape(-1, cg), simd).ravel() for row in codes]
    assert np.array_equal(np.asarray(chunks), layer.weight_array())
    used = {c for row in codes for c in row}
    assert max(used) < 27 and (mw % 3 or used == set(range(27)))
    res = _run(layer, tmp_path, build_root, n=16)
    assert res["cycles_per_frame"] == _expected(layer)


def test_codebook_verilator(tmp_path, build_root):
    layer = _every_code_layer(4, 12, 2, 6, "UINT4")
    res = _run(layer, tmp_path, build_root, sim="verilator", n=12)
    assert res["cycles_per_frame"] == _expected(layer) == 4


@pytest.mark.parametrize("mode,in_dt,w_dt,w,x_rows", [
    ("int", "INT4", "INT4", -8, [-8, 7, 0]),        # products +64 and -56: every tree node at its largest sum
    ("ternary", "UINT4", "INT2", -1, [15, 0, 15]),  # -15 a term: ~x leaves plus their correction leaves
    ("ternary", "INT3", "INT2", 1, [-4, 3, -4]),
])
def test_tree_nodes_at_their_exact_width(mode, in_dt, w_dt, w, x_rows, tmp_path, build_root):
    """Adder-tree nodes are only as wide as their leaves' range: constant weights and inputs at the extremes
    put every node at the edge of its width, where one bit too few would wrap."""
    from hw.kinds.mvau import acc_range
    from hw.layer_rtl import dtype_fmt

    mh, mw = 2, 24
    layer = graphs.mvau(np.random.default_rng(7), "l", mode, mh, mw, 1, 24, in_dt, w_dt, nt=0,
                        weight_memory="rom")
    layer = layer.model_copy(update={"weights": np.full((mh, mw), w, dtype=int).tolist()})
    lo, hi = acc_range(layer, dtype_fmt(in_dt))
    acc = graphs._dtype_name(lo, hi)
    layer = layer.model_copy(update={"acc_dtype": acc, "output_dtype": acc})
    x = np.array([np.full(mw, v) for v in x_rows])
    res = _run(layer, tmp_path, build_root, x=x)
    assert res["cycles_per_frame"] == _expected(layer) == 2
