"""Whole accelerators from small random graphs: emitted RTL against the reference, 0 mismatches, and the
measured frame interval against the slowest MVAU's (MH/PE)(MW/SIMD)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from hw.emit import emit, plan
from common.errors import UserError
from sim.verify import cli, verify
from sim import graphs

pytestmark = pytest.mark.sim


def _dir(tmp_path, graph, test_x=None):
    graph.save(tmp_path / "graph.json")
    if test_x is not None:
        np.savez(tmp_path / "test_vectors.npz", x=test_x)
    return tmp_path


def _check(rec, expected_cycles, vectors):
    assert rec["mismatches"] == 0 and rec["first_mismatch"] is None
    assert rec["vectors"] == vectors
    assert rec["expected_cycles_per_frame"] == expected_cycles
    assert rec["cycles_per_frame"] <= 1.05 * expected_cycles
    assert rec["latency_cycles"] > 0


def test_xnor_mlp_mixed_folding_with_test_vectors(tmp_path):
    """PE != next SIMD on both links (width converters), weights from ROM, test split + random vectors."""
    g = graphs.mlp(1, "xnor", [32, 16, 12, 10], [(2, 8), (3, 4), (5, 4)], "BINARY", "BINARY", "BINARY",
                   weight_memory="rom")
    stages = plan(g)
    assert [s.dwc for s in stages[:3]] == [True, True, False]
    # two input vectors of the consumer, in its own beats (the FIFO sits behind the width converter)
    assert [s.fifo_depth for s in stages[:3]] == [2 * 16 // 4, 2 * 12 // 4, 4]
    x_test = np.random.default_rng(0).integers(0, 2, (20, 32))
    rec = verify(_dir(tmp_path, g, x_test), vectors=60, sim="verilator", seed=3)
    _check(rec, 32, 80)
    assert rec["test_vectors"] == 20 and rec["cycles_per_frame"] == 32
    assert json.loads((tmp_path / "verify.json").read_text())["mismatches"] == 0


def test_ternary_two_bit_activations(tmp_path):
    g = graphs.mlp(2, "ternary", [24, 12, 8], [(4, 6), (2, 4)], "UINT2", "INT2", "UINT2")
    rec = verify(_dir(tmp_path, g), vectors=80, sim="icarus", seed=4)
    _check(rec, 12, 80)
    assert rec["cycles_per_frame"] == 12


def test_int4_signed_activations(tmp_path):
    g = graphs.mlp(3, "int", [16, 8, 10], [(2, 4), (5, 4)], "UINT4", "INT4", "INT4")
    rec = verify(_dir(tmp_path, g), vectors=80, sim="verilator", seed=5)
    _check(rec, 16, 80)
    assert rec["cycles_per_frame"] == 16


@pytest.mark.parametrize("folds,expected", [([(12, 16), (4, 12)], 1), ([(1, 1), (1, 1)], 192)])
def test_fully_unrolled_and_fully_folded(folds, expected, tmp_path):
    """Same network both ways: constants in logic at 1 cycle a frame, ROMs at MH*MW cycles a frame."""
    g = graphs.mlp(6, "int", [16, 12, 4], folds, "INT3", "INT2", "UINT2")
    # small layers: "auto" bakes the weights into logic either way (a fully unrolled one into
    # pqhw_sparse_unrolled, which has no weight memory at all)
    styles = [s.rtl.params.get("MEM_STYLE", 0) for s in plan(g)[:2]]
    assert styles == [0, 0]
    g = g.model_copy(update={"layers": [l.model_copy(update={"weight_memory": "rom" if expected > 1 else "const"})
                                        if l.kind == "mvau" else l for l in g.layers]})
    rec = verify(_dir(tmp_path, g), vectors=40, sim="icarus", seed=6)
    _check(rec, expected, 40)
    assert rec["cycles_per_frame"] == expected


def test_per_layer_names_first_wrong_layer_and_cli_exits_1(tmp_path, corrupt_layer1_weights):
    """Corrupt the second layer's weight ROM after emission: the CLI exits 1 and names that layer."""
    g = graphs.mlp(7, "xnor", [16, 8, 8, 4], [(2, 4), (2, 2), (2, 2)], "BINARY", "BINARY", "BINARY",
                   weight_memory="rom")
    out = _dir(tmp_path, g)
    result = CliRunner().invoke(cli, [str(out), "--vectors", "30", "--sim", "icarus", "--per-layer"])
    assert result.exit_code == 1, result.output
    rec = json.loads((out / "verify.json").read_text())
    assert rec["mismatches"] > 0 and rec["first_failing_layer"]["layer"] == "mvau1"
    assert "first failing vector" in result.output and "mvau1" in result.output


def test_user_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="directory not found"):
        verify(tmp_path / "missing")
    with pytest.raises(UserError, match="graph file not found"):
        verify(tmp_path)
    g = graphs.mlp(8, "xnor", [8, 4], [(1, 1)], "BINARY", "BINARY", "BINARY")
    _dir(tmp_path, g)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UserError, match="`iverilog` not found"):
        verify(tmp_path, sim="icarus")
    monkeypatch.undo()
    coded = g.model_copy(update={"layers": [g.layers[0].model_copy(update={"weight_memory": "codebook"}), g.layers[1]]})
    with pytest.raises(UserError, match="mvau0: weight_memory 'codebook' stores ternary weights; this layer is xnor"):
        emit(coded, tmp_path / "out")


def test_ternary_codebook_weight_memory_network(tmp_path):
    """Codebook ROMs (5-bit codes, SIMD 6 and 4: whole and padded groups) in a whole network, with random
    idle and backpressure; the emitted memory holds the codes of common.codebook."""
    from common.codebook import CODE_BITS, groups_per_row

    g = graphs.mlp(10, "ternary", [24, 12, 8], [(2, 6), (2, 4)], "UINT2", "INT2", "UINT2", weight_memory="codebook")
    stages = plan(g)
    assert [s.rtl.params["W_CODEBOOK"] for s in stages[:2]] == [1, 1]
    widths = [2 * groups_per_row(6) * CODE_BITS, 2 * groups_per_row(4) * CODE_BITS]
    assert [len(s.rtl.files[f"l{i}_w.memh"].split()) for i, s in enumerate(stages[:2])] == [6 * 4, 4 * 3]
    assert [max(int(w, 16) for w in s.rtl.files[f"l{i}_w.memh"].split()).bit_length() <= widths[i]
            for i, s in enumerate(stages[:2])] == [True, True]
    rec = verify(_dir(tmp_path, g), vectors=60, sim="verilator", seed=10)
    _check(rec, 24, 60)
    assert rec["cycles_per_frame"] == 24


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("mode,act", [("xnor", "BINARY"), ("ternary", "UINT2"), ("int", "INT4")])
def test_accelerator_sweep(mode, act, sim, tmp_path):
    in_dt = "BINARY" if mode == "xnor" else "UINT4"
    w_dt = {"xnor": "BINARY", "ternary": "INT2", "int": "INT4"}[mode]
    g = graphs.mlp(9, mode, [64, 32, 24, 10], [(4, 16), (8, 8), (2, 12)], in_dt, w_dt, act, weight_memory="rom")
    rec = verify(_dir(tmp_path, g), vectors=300, sim=sim, seed=9)
    _check(rec, 32, 300)


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_codebook_network_sweep(sim, tmp_path):
    """Ternary network, codebook ROMs in every layer, folds with SIMD 3, 12 and 48 (padding-free) and 16."""
    g = graphs.mlp(12, "ternary", [48, 36, 24, 10], [(4, 48), (6, 12), (2, 3)], "UINT4", "INT2", "UINT2",
                   weight_memory="codebook")
    rec = verify(_dir(tmp_path, g), vectors=300, sim=sim, seed=12)
    _check(rec, 40, 300)
