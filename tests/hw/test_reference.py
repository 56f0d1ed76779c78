import math

import numpy as np
import pytest

from hw.ir import Graph, dtype_range, smallest_dtype

from hw.kinds.mvau import MVAU

from hw.kinds.label_select import LabelSelect
from hw.reference import run_graph
from hw.kinds.label_select import label_select
from hw.kinds.threshold import multithreshold
from hw.kinds.mvau import mvau_accumulate


def test_multithreshold_counts_thresholds_reached_plus_bias():
    acc = np.array([[-5, 0, 3, 10]])
    t = np.array([[0, 3, 7]])
    assert multithreshold(acc, t, -1).tolist() == [[-1, 0, 1, 2]]
    per_channel = np.array([[0], [1], [4], [11]])
    assert multithreshold(acc, per_channel, 0).tolist() == [[0, 0, 0, 0]]


def test_label_select_ties_pick_lowest_index():
    assert label_select(np.array([[3, 7, 7, 1], [0, 0, 0, 0]]))[:, 0].tolist() == [1, 0]


@pytest.mark.parametrize("mw", [1, 2, 63, 64, 65, 255, 256])
def test_xnor_accumulator_boundary(mw):
    """All-ones inputs against all-ones weights reach MW, which needs ceil(log2(MW+1)) bits, no fewer."""
    x = np.ones((1, mw), dtype=np.int64)
    acc = mvau_accumulate(x, np.ones((3, mw)), "xnor")
    assert acc.tolist() == [[mw] * 3]
    bits = math.ceil(math.log2(mw + 1))
    assert smallest_dtype(0, mw) == f"UINT{bits}"
    assert dtype_range(f"UINT{bits}")[1] >= mw
    if bits > 1:
        assert dtype_range(f"UINT{bits - 1}")[1] < mw


def test_xnor_counts_equal_codes():
    x = np.array([[1, 0, 1, 0]])
    w = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [0, 1, 0, 1]])
    assert mvau_accumulate(x, w, "xnor").tolist() == [[2, 4, 0]]


def test_graph_json_roundtrip(tmp_path):
    g = Graph(input_dtype="UINT2", input_shape=[3], layers=[
        MVAU(name="m", mode="int", mh=2, mw=3, input_dtype="UINT2", weight_dtype="INT3", acc_dtype="INT6",
             output_dtype="UINT1", weights=[[-4, 3, 0], [1, 1, 1]], thresholds=[[0]]),
        LabelSelect(name="l", channels=2, input_dtype="UINT1", output_dtype="UINT1")])
    g.save(tmp_path / "g.json")
    g2 = Graph.load(tmp_path / "g.json")
    x = np.array([[3, 3, 3], [0, 1, 0]])
    assert run_graph(g2, x)[:, 0].tolist() == [1, 0]
    assert g2 == g
