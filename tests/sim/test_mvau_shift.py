"""pqhw_mvau's shift arithmetic (MODE 3) for power-of-two weights {0, +-2^k}: chosen from the integer weights,
forced or refused, and bit-exact against the reference at edge parameters (largest shift, signed inputs at
their limits, MW = 1, PE = MH, SIMD = MW, ROM and constant weights), with random idle and backpressure.

The default set runs on Icarus plus one Verilator build; the slow sweep runs on both simulators.
"""
import numpy as np
import pytest

from common.errors import UserError
from hw.kinds.mvau import MODES, acc_range, is_pow2, shift_codes
from hw.layer_rtl import Fmt, dtype_fmt, layer_rtl
from sim import graphs
from sim.blocks import run_layer_block

pytestmark = pytest.mark.sim


def pow2_layer(mh, mw, pe, simd, in_dt, k_max, nt=3, seed=0, zeros=0.3, memory="rom", arith="auto", **kw):
    """A layer of weights 0 or +-2^k, k <= k_max (INT(k_max + 2) as pow2:K exports them), with thresholds
    drawn in its accumulator range (edge values included)."""
    rng = np.random.default_rng(seed)
    w_dt = f"INT{k_max + 2}"
    layer = graphs.mvau(rng, "p", "int", mh, mw, pe, simd, in_dt, w_dt, nt=0, weight_memory=memory)
    k = rng.integers(0, k_max + 1, (mh, mw))
    w = np.where(rng.random((mh, mw)) < zeros, 0, (1 << k) * rng.choice([-1, 1], (mh, mw)))
    w[0, 0] = -(1 << k_max)  # the largest shift, subtracted
    layer = layer.model_copy(update={"weights": w.tolist(), "arith": arith})
    lo, hi = acc_range(layer, dtype_fmt(in_dt))
    acc = graphs._dtype_name(lo, hi)
    if nt == 0:
        return layer.model_copy(update={"acc_dtype": acc, "output_dtype": acc})
    t = graphs.random_thresholds(rng, lo, hi, mh, nt, edge=True)
    bias = -(nt // 2) - 1 if kw.get("out_signed") else 0
    return layer.model_copy(update={"acc_dtype": acc, "thresholds": t.tolist(), "threshold_bias": bias,
                                    "output_dtype": graphs._dtype_name(bias, bias + nt)})


def _run(layer, tmp_path, build_root, sim="icarus", n=20, seed=1, x=None):
    if x is None:
        x = graphs.random_inputs(np.random.default_rng(seed), layer.input_dtype, n, layer.mw)
    res = run_layer_block(layer, x, sim, build_root, tmp_path, seed=seed)
    assert res["mismatches"] == 0 and res["frames"] == len(x)
    assert res["cycles_per_frame"] == (layer.mh // layer.pe) * (layer.mw // layer.simd)
    return res


def test_shift_codes_decode_to_the_weights():
    w = np.array([[0, 1, -1, 2, -2, 4, -4, 64, -128]])
    codes = shift_codes(w)
    sb = 3  # shifts up to 7
    k, nz, neg = codes & 7, (codes >> sb) & 1, (codes >> (sb + 1)) & 1
    assert np.array_equal(np.where(nz == 1, (1 - 2 * neg) << k, 0), w)
    assert is_pow2(w) and not is_pow2(np.array([3])) and not is_pow2(np.array([-6]))


def test_auto_picks_shift_for_pow2_weights_only():
    """Power-of-two INT4 weights run in shift mode by default; any other integer keeps the integer mode;
    "int" keeps it for power-of-two weights too; ternary layers keep their own mode."""
    layer = pow2_layer(4, 8, 2, 4, "UINT2", 2)
    rtl = layer_rtl(layer, Fmt(2, False), "blk")
    assert rtl.params["MODE"] == MODES["shift"] and rtl.params["SH_MAX"] == 2 and rtl.params["W_BITS"] == 4
    assert "shift arithmetic" in layer.summary(rtl.params)
    w = layer.weight_array()
    w[1, 1] = 3
    other = layer.model_copy(update={"weights": w.tolist()})
    assert layer_rtl(other, Fmt(2, False), "blk").params["MODE"] == MODES["int"]
    forced_int = layer.model_copy(update={"arith": "int"})
    assert layer_rtl(forced_int, Fmt(2, False), "blk").params["MODE"] == MODES["int"]
    tern = graphs.mvau(np.random.default_rng(0), "t", "ternary", 4, 8, 2, 4, "UINT2", "INT2", nt=1,
                       weight_memory="rom").model_copy(update={"arith": "shift"})
    assert layer_rtl(tern, Fmt(2, False), "blk").params["MODE"] == MODES["ternary"]


def test_forced_shift_refuses_other_weights_in_one_line():
    layer = pow2_layer(4, 8, 2, 4, "UINT2", 2, arith="shift")
    w = layer.weight_array()
    w[2, 3] = -3
    with pytest.raises(UserError, match=r"layer p: arith 'shift' needs every weight 0 or \+-2\^k; weight -3"):
        layer_rtl(layer.model_copy(update={"weights": w.tolist()}), Fmt(2, False), "blk")
    xnor = graphs.mvau(np.random.default_rng(0), "x", "xnor", 4, 8, 2, 4, weight_memory="rom")
    with pytest.raises(UserError, match="layer x: arith 'shift' needs integer weights"):
        layer_rtl(xnor.model_copy(update={"arith": "shift"}), Fmt(1, False), "blk")


@pytest.mark.parametrize("mh,mw,pe,simd,in_dt,k_max,nt,memory", [
    (6, 12, 2, 4, "UINT2", 2, 3, "rom"),      # pow2:3 on 2-bit activations, the digits shape folded
    (4, 8, 4, 2, "INT4", 6, 0, "const"),      # signed inputs, shifts up to 6, the accumulator out
    (4, 1, 1, 1, "INT8", 6, 5, "rom"),        # MW = 1, 8-bit signed inputs, shifts up to 6 (INT8 weights)
    (3, 6, 1, 6, "UINT3", 0, 2, "rom"),       # only +-1 and 0 in integer mode: SH_MAX = 0
])
def test_shift_mode_matches_reference(mh, mw, pe, simd, in_dt, k_max, nt, memory, tmp_path, build_root):
    layer = pow2_layer(mh, mw, pe, simd, in_dt, k_max, nt=nt, memory=memory, arith="shift", seed=mh + mw)
    assert layer_rtl(layer, dtype_fmt(in_dt), "blk").params["MODE"] == MODES["shift"]
    _run(layer, tmp_path, build_root)


def test_shift_mode_inputs_at_their_limits(tmp_path, build_root):
    """All inputs at the most negative and most positive INT8 against -2^7 and 2^6: the accumulator's
    extremes (INT8 weights hold -128, not +128)."""
    layer = pow2_layer(2, 4, 1, 2, "INT8", 7, nt=0, arith="shift", zeros=0.0, memory="rom")
    w = np.array([[64, -128, 64, -128], [-128, -128, -128, -128]])
    layer = layer.model_copy(update={"weights": w.tolist(), "weight_dtype": "INT8"})
    lo, hi = acc_range(layer, dtype_fmt("INT8"))
    acc = graphs._dtype_name(lo, hi)
    layer = layer.model_copy(update={"acc_dtype": acc, "output_dtype": acc})
    x = np.array([[-128, 127, -128, 127], [127, -128, 127, -128], [-128] * 4, [127] * 4, [0, 1, -1, 0]])
    _run(layer, tmp_path, build_root, x=x)


def test_shift_mode_verilator(tmp_path, build_root):
    layer = pow2_layer(8, 16, 4, 4, "UINT4", 3, nt=3, memory="rom", arith="shift", seed=7)
    _run(layer, tmp_path, build_root, sim="verilator", n=24)


@pytest.mark.slow
@pytest.mark.parametrize("in_dt,k_max", [("UINT2", 2), ("INT3", 3), ("UINT8", 6)])
@pytest.mark.parametrize("mh,mw,pe,simd", [(1, 1, 1, 1), (6, 10, 1, 1), (6, 10, 3, 5), (8, 15, 4, 3)])
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_shift_sweep(in_dt, k_max, mh, mw, pe, simd, sim, tmp_path, build_root):
    layer = pow2_layer(mh, mw, pe, simd, in_dt, k_max, nt=3, arith="shift", seed=mh * 100 + mw,
                       memory="rom" if pe * simd < mh * mw else "const")
    _run(layer, tmp_path, build_root, sim=sim, n=20)
