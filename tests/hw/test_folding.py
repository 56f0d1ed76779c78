import json

import pytest

from common.errors import UserError
from hw.folding import apply_folding_file, expected_cycles_per_frame, fold_for_cycles, fold_for_fps, layer_cycles
from hw.ir import Graph
from hw.kinds.mvau import MVAU
from hw.kinds.label_select import LabelSelect


def _graph():
    z = [[0] * 64 for _ in range(32)]
    return Graph(input_dtype="UINT4", input_shape=[64], layers=[
        MVAU(name="a", mode="int", mh=32, mw=64, input_dtype="UINT4", weight_dtype="INT4", acc_dtype="INT16",
             output_dtype="INT16", weights=z),
        LabelSelect(name="ls", channels=32, input_dtype="INT16", output_dtype="UINT5")])


@pytest.mark.parametrize("budget", [1, 2, 7, 64, 100, 2048, 10 ** 6])
def test_cheapest_folding_meets_budget(budget):
    g = fold_for_cycles(_graph(), budget)
    mv = g.layers[0]
    assert layer_cycles(mv) <= budget
    # no folding with fewer lanes meets the budget
    lanes = mv.pe * mv.simd
    for pe in (d for d in range(1, 33) if 32 % d == 0):
        for simd in (d for d in range(1, 65) if 64 % d == 0):
            if (32 // pe) * (64 // simd) <= budget:
                assert pe * simd >= lanes
    assert expected_cycles_per_frame(g) <= budget


def test_target_fps_too_high():
    with pytest.raises(UserError, match="at least 1 is needed"):
        fold_for_fps(_graph(), 2e8, 100)


def test_folding_file_and_illegal_fold(tmp_path):
    f = tmp_path / "fold.json"
    f.write_text(json.dumps({"a": {"pe": 4, "simd": 16}}))
    g = apply_folding_file(_graph(), f)
    assert (g.layers[0].pe, g.layers[0].simd) == (4, 16) and layer_cycles(g.layers[0]) == 32
    f.write_text(json.dumps({"a": {"pe": 3}}))
    with pytest.raises(UserError, match=r"a.pe = 3 does not divide 32; accepted: \[1, 2, 4, 8, 16, 32\]"):
        apply_folding_file(_graph(), f)
    f.write_text(json.dumps({"zz": {"pe": 1}}))
    with pytest.raises(UserError, match="layer 'zz' is not in the graph"):
        apply_folding_file(_graph(), f)
