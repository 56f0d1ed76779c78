"""Folding against the one cycle model (hw.cycles): the cheapest folding whose every layer meets the budget;
and the model against cycles measured in RTL simulation: the slowest layer's own cycles, exactly, also where
a narrow producer feeds a wide-SIMD MVAU through a width converter."""
import itertools
import json

import numpy as np
import pytest

from common.errors import UserError
from hw.cycles import stage_cycles
from hw.folding import (apply_folding_file, expected_cycles_per_frame, fit_at_budget,
                        fold_for_cycles, fold_for_fps, lanes, layer_cycles, reachable_cycles,
                        with_folding)
from hw.ir import Graph
from hw.kinds.label_select import LabelSelect
from hw.kinds.mvau import MVAU
from sim import graphs


def _graph():
    z = [[0] * 64 for _ in range(32)]
    return Graph(input_dtype="UINT4", input_shape=[64], layers=[
        MVAU(name="a", mode="int", mh=32, mw=64, input_dtype="UINT4", weight_dtype="INT4", acc_dtype="INT16",
             output_dtype="INT16", weights=z),
        LabelSelect(name="ls", channels=32, input_dtype="INT16", output_dtype="UINT5")])


def _thresholded(channels=96, hidden=16, classes=4, seed=0, folds=None):
    """Standalone input thresholding, then an xnor MVAU reading it, a last MVAU and label select (FINN's TFC
    shape, smaller). folds: (pe of the thresholding, (pe, simd), (pe, simd), pe of label select)."""
    rng = np.random.default_rng(seed)
    t_pe, f1, f2, ls_pe = folds or (1, (1, 1), (1, 1), 1)
    th = graphs.threshold(rng, "th", channels, t_pe, "UINT4", 1).model_copy(update={"output_dtype": "BINARY"})
    m1 = graphs.mvau(rng, "m1", "xnor", hidden, channels, *f1, "BINARY", "BINARY", nt=1, weight_memory="rom")
    m2 = graphs.mvau(rng, "m2", "xnor", classes, hidden, *f2, "BINARY", "BINARY", nt=0, weight_memory="rom")
    ls = LabelSelect(name="ls", channels=classes, pe=ls_pe, input_dtype=m2.output_dtype,
                     output_dtype="UINT%d" % max(1, (classes - 1).bit_length()))
    return Graph(input_dtype="UINT4", input_shape=[channels], layers=[th, m1, m2, ls])


def _folds(g):
    return [(l.pe, getattr(l, "simd", None)) for l in g.layers]


def _all_foldings(graph):
    return itertools.product(*[l.fold_options() for l in graph.layers])


# ---- the cycle model ------------------------------------------------------------------------------------

def test_a_layer_takes_its_own_cycles_whatever_its_producer():
    g = _thresholded(96, 16)
    m1 = g.layers[1]
    for opt in m1.fold_options():
        m = m1.model_copy(update=opt)
        for pe in (d for d in range(1, 97) if 96 % d == 0):
            chain = with_folding(g, [{"pe": pe}, opt, {"pe": 1, "simd": 1}, {"pe": 1}])
            assert stage_cycles(chain)[1] == layer_cycles(m) == m.cycles()


def test_one_formula_fully_unrolled_mvau_then_pe1_label_select(tmp_path):
    """emit, compile and folding agree: a fully unrolled MVAU (1 cycle) in front of a PE-1 label select over
    10 classes runs at the label select's 10 cycles a frame."""
    from hw.emit import emit

    g = graphs.mlp(4, "int", [16, 10], [(10, 16)], "UINT2", "INT2", "UINT2")
    g = g.model_copy(update={"layers": [g.layers[0], g.layers[1].model_copy(update={"pe": 1})]})
    assert g.layers[0].cycles() == 1
    design = emit(g, tmp_path)
    assert design.expected_cycles_per_frame == expected_cycles_per_frame(g) == g.layers[1].cycles()


# ---- folding -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [48, 60, 96, 200])
def test_every_layer_is_folded_within_the_budget(budget):
    folded = fold_for_cycles(_thresholded(96, 16), budget)
    assert expected_cycles_per_frame(folded) <= budget
    assert all(c <= budget for c in stage_cycles(folded))


@pytest.mark.parametrize("budget", [1, 3, 8, 24, 48, 60, 96, 400, 10 ** 6])
def test_balanced_folding_is_the_cheapest_that_meets_the_budget(budget):
    """Against every combination of every layer's foldings: none with fewer lanes meets the budget."""
    g = _thresholded(24, 8, 4)
    try:
        got = fold_for_cycles(g, budget)
    except UserError:
        assert all(expected_cycles_per_frame(with_folding(g, list(c))) > budget for c in _all_foldings(g))
        return
    cost = sum(lanes({k: getattr(l, k) for k in l.fold_options()[0]}) for l in got.layers)
    assert expected_cycles_per_frame(got) <= budget
    best = min(sum(lanes(o) for o in combo) for combo in _all_foldings(g)
               if expected_cycles_per_frame(with_folding(g, list(combo))) <= budget)
    assert cost == best


@pytest.mark.parametrize("budget", [1, 2, 7, 64, 100, 2048, 10 ** 6])
def test_cheapest_folding_meets_budget(budget):
    g = fold_for_cycles(_graph(), budget)
    mv = g.layers[0]
    assert layer_cycles(mv) <= budget
    # no folding with fewer lanes meets the budget
    lanes_used = mv.pe * mv.simd
    for pe in (d for d in range(1, 33) if 32 % d == 0):
        for simd in (d for d in range(1, 65) if 64 % d == 0):
            if (32 // pe) * (64 // simd) <= budget:
                assert pe * simd >= lanes_used
    assert expected_cycles_per_frame(g) <= budget


def test_unreachable_budget_names_the_layer():
    g = _thresholded(96, 16)
    g = g.model_copy(update={"layers": [l.model_copy(update={"num_vectors": 3}) if l.name == "m1" else l
                                        for l in g.layers]})
    with pytest.raises(UserError, match="layer m1: cannot reach 2 cycles per frame even fully unrolled"):
        fold_for_cycles(g, 2)


def test_reachable_cycles_hold_every_interval_a_folding_gives():
    g = _thresholded(24, 8, 4)
    every = {expected_cycles_per_frame(with_folding(g, list(c))) for c in _all_foldings(g)}
    assert every == set(reachable_cycles(g))


def test_board_folding_keeps_the_pipeline_within_the_budget():
    from boards.registry import get_board
    from hw.estimate import estimate_total

    g = _thresholded(96, 16)
    board = get_board("icebreaker")
    for budget in (48, 96):
        chosen, total, _ = fit_at_budget(g, budget, "ice40", board.resources)
        assert expected_cycles_per_frame(chosen) <= budget
        assert total == estimate_total(chosen, "ice40")


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
    f.write_text(json.dumps({"ls": {"simd": 2}}))
    with pytest.raises(UserError, match=r"ls: expected keys \['pe'\]"):
        apply_folding_file(_graph(), f)
    f.write_text(json.dumps({"zz": {"pe": 1}}))
    with pytest.raises(UserError, match="layer 'zz' is not in the graph"):
        apply_folding_file(_graph(), f)


# ---- measured in RTL simulation --------------------------------------------------------------------------

def _measure(tmp_path, graph, vectors=48, sim="verilator"):
    from sim.verify import verify

    graph.save(tmp_path / "graph.json")
    rec = verify(tmp_path, vectors=vectors, sim=sim, seed=2)
    assert rec["mismatches"] == 0 and not rec["timed_out"]
    return rec


@pytest.mark.sim
@pytest.mark.parametrize("folds", [
    (1, (1, 32), (1, 4), 1),    # thresholding at PE 1 in front of SIMD 32 (it stalled the first fold when
                                # the FIFO stood in front of the width converter)
    (2, (1, 48), (2, 2), 1),    # PE 2 into SIMD 48
    (4, (2, 16), (1, 8), 2),    # PE 4 into SIMD 16, then PE 2 into SIMD 8 and PE 1 into label select PE 2
    (32, (1, 32), (1, 4), 1),   # PE 32 into SIMD 32: no converter
    (96, (16, 1), (1, 16), 4),  # downsizing converters: PE 96 into SIMD 1, PE 16 into SIMD 1
])
def test_measured_cycles_match_the_model_with_thresholding_in_front(folds, tmp_path):
    g = _thresholded(96, 16, 4, seed=3, folds=folds)
    rec = _measure(tmp_path, g)
    expected = expected_cycles_per_frame(g)
    assert rec["expected_cycles_per_frame"] == expected
    assert rec["cycles_per_frame"] == expected


@pytest.mark.sim
@pytest.mark.parametrize("budget", [48, 96])
def test_folded_for_a_budget_measures_within_it(budget, tmp_path):
    """What fold_for_cycles picks for a thresholding in front of a wide MVAU runs at its expected interval,
    and that interval meets the budget."""
    g = fold_for_cycles(_thresholded(96, 16, 4, seed=4), budget)
    rec = _measure(tmp_path, g)
    expected = expected_cycles_per_frame(g)
    assert expected <= budget
    assert rec["cycles_per_frame"] == expected


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("name", ["digits_w1a1", "digits_tern_a2", "digits_w4a4"])
def test_digits_at_200k_fps_measure_the_expected_cycles(name, shared_dir, tmp_path):
    """The shipped digits nets compiled with --target-fps 200000 --clock-mhz 100 (500 cycles a frame)."""
    from hw.compile import compile_model
    from sim.verify import verify
    from tests.conftest import build_run

    run = build_run(shared_dir, name)
    out = tmp_path / "hw"
    report = compile_model(run / "model.qonnx.onnx", out, target_fps=200000, clock_mhz=100)
    g = Graph.load(out / "graph.json")
    assert report["expected_cycles_per_frame"] == expected_cycles_per_frame(g) <= 500
    rec = verify(out, vectors=16, sim="verilator", seed=1)
    assert rec["mismatches"] == 0
    expected = rec["expected_cycles_per_frame"]
    assert expected == expected_cycles_per_frame(g)
    assert abs(rec["cycles_per_frame"] - expected) <= 0.05 * expected, (rec["cycles_per_frame"], expected)
