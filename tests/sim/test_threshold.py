"""pqhw_threshold (standalone MultiThreshold) against the reference."""
import numpy as np
import pytest

from hw.ir import dtype_range
from sim import graphs
from sim.blocks import run_layer_block

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("channels,pe,in_dt,nt,shared,bias,edge", [
    (6, 2, "INT4", 3, False, -2, False),
    (4, 4, "UINT8", 5, True, 0, True),      # PE = channels, thresholds at and past the input's limits
    (1, 1, "INT2", 1, False, 0, True),
])
def test_threshold(channels, pe, in_dt, nt, shared, bias, edge, tmp_path, build_root):
    rng = np.random.default_rng(channels + nt)
    layer = graphs.threshold(rng, "t", channels, pe, in_dt, nt, shared, bias, edge)
    lo, hi = dtype_range(in_dt)
    x = np.vstack([graphs.random_inputs(rng, in_dt, 10, channels), np.full((1, channels), lo),
                   np.full((1, channels), hi)])
    res = run_layer_block(layer, x, "icarus", build_root, tmp_path, seed=2)
    assert res["mismatches"] == 0 and res["frames"] == 12
    assert res["cycles_per_frame"] == channels // pe


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("channels,pe,in_dt,nt", [(8, 1, "INT8", 15), (8, 8, "UINT4", 3), (12, 3, "INT3", 7)])
def test_threshold_sweep(channels, pe, in_dt, nt, sim, tmp_path, build_root):
    rng = np.random.default_rng(channels * pe)
    layer = graphs.threshold(rng, "t", channels, pe, in_dt, nt, edge=True)
    x = graphs.random_inputs(rng, in_dt, 20, channels)
    res = run_layer_block(layer, x, sim, build_root, tmp_path, seed=3)
    assert res["mismatches"] == 0 and res["cycles_per_frame"] == channels // pe


def test_unsorted_thresholds_are_counted_not_decoded(tmp_path, build_root):
    """Rows that are not non-decreasing cannot use the thermometer decode: the unit adds the flags instead,
    and the result still equals the reference."""
    from hw.layer_rtl import Fmt

    rng = np.random.default_rng(7)
    layer = graphs.threshold(rng, "t", 4, 2, "INT4", 5)
    rows = np.array(layer.thresholds)[:, ::-1].copy()  # descending: still a valid MultiThreshold
    rows[:, 0] += 1                                     # and not all equal
    layer = layer.model_copy(update={"thresholds": rows.tolist()})
    assert layer.rtl(Fmt(4, True), "t").params["TH_SORTED"] == 0
    x = np.vstack([graphs.random_inputs(rng, "INT4", 12, 4), np.full((1, 4), -8), np.full((1, 4), 7)])
    res = run_layer_block(layer, x, "icarus", build_root, tmp_path, seed=4)
    assert res["mismatches"] == 0 and res["frames"] == 14


def test_sorted_thresholds_are_decoded(tmp_path):
    from hw.layer_rtl import Fmt

    layer = graphs.threshold(np.random.default_rng(8), "t", 4, 2, "INT4", 5)
    assert layer.rtl(Fmt(4, True), "t").params["TH_SORTED"] == 1
