"""A trained ALQ network (paper 003) through export, FINN's front-end, the alq layer kind and RTL simulation:
ALQNet == Brevitas == QONNX == FINN == reference == RTL on the test split plus random vectors, with random
idle and backpressure, measured cycles equal to the expected ones; and the refusal of bases that do not
reproduce FINN's weights."""
import copy
import json
import shutil

import numpy as np
import onnx
import pytest

from common.errors import UserError
from hw.compile import compile_model
from hw.from_finn import graph_from_finn
from hw.ir import Graph
from quant.config import parse_config
from quant.export import export_run
from quant.train import train_run
from sim.verify import verify

pytestmark = pytest.mark.sim

# 64 -> 16 -> 16 -> 10, channel-wise groups, the hardware options of configs/digits_alq_hw.yaml, a few epochs
TINY_HW = {
    "name": "tiny_alq_hw",
    "dataset": {"name": "digits", "input_bits": 4},
    "model": {"layers": [{"kind": "linear", "features": 16, "weight": "int8", "act": "uint8"},
                         {"kind": "linear", "features": 16, "weight": "int8", "act": "uint8"},
                         {"kind": "linear", "features": 10, "weight": "int8"}]},
    "training": {"batch_size": 64, "seed": 0},
    "method": {"name": "alq", "target_bits": 1.0, "max_bits": 4, "act_bits": 2, "pow2": True, "exp_window": 8,
               "mantissa_bits": 2,
               "act_levels": "uniform", "classifier_bias": False, "pretrain_epochs": 6,
               "init_epochs": {"bases": 1, "coords": 1}, "round_epochs": {"bases": 1, "coords": 1},
               "final_epochs": {"bases": 1, "coords": 1}, "prune_ratio": 0.5, "prune_epochs": 1,
               "lr_bases": 0.03, "lr_coords": 0.001},
}


@pytest.fixture(scope="module")
def alq_hw(tmp_path_factory):
    run = tmp_path_factory.mktemp("alq_run")
    metrics = train_run(parse_config(copy.deepcopy(TINY_HW)), run, show_progress=False)
    export = export_run(run)
    compile_model(run / "model.qonnx.onnx", run / "hw", target_fps=None)
    return run, metrics, export


def test_trained_alq_net_is_bit_exact_in_rtl(alq_hw, tmp_path):
    run, metrics, export = alq_hw
    assert metrics["test_accuracy"] > 0.5 and metrics["avg_weight_bits"] <= 1.0
    assert export["mismatches"] == 0 and export["vectors"] == 450
    graph = Graph.load(run / "hw" / "graph.json")
    assert [l.kind for l in graph.layers] == ["alq", "alq", "alq", "label_select"]
    _check_trained_integers(run, graph)
    hw = tmp_path / "hw"
    shutil.copytree(run / "hw", hw)
    rec = verify(hw, vectors=30, sim="verilator", seed=2)
    assert rec["mismatches"] == 0, rec["first_mismatch"]
    assert rec["vectors"] == 480 and not rec["timed_out"]
    assert rec["cycles_per_frame"] == rec["expected_cycles_per_frame"]
    assert rec["expected_cycles_per_frame"] == max(l.cycles() for l in graph.layers)


def _check_trained_integers(run, graph):
    """The hardware holds the trained network's integers: its weights are the ALQNet's W_int, and its terms
    are those bases (one per set mantissa bit)."""
    from quant.checkpoint import load_run
    from quant.methods.alq_export import layer_integers

    model, _, _ = load_run(run)
    for w, layer in zip(model.alq_weights(), [l for l in graph.layers if l.kind == "alq"]):
        w_int, _, terms = layer_integers(w)
        assert np.array_equal(layer.weight_array(), w_int)
        assert int((layer.shift_array() >= 0).sum()) == sum(len(t) for t in terms) >= int(w.mask.sum())


def test_bases_that_do_not_reproduce_the_weights_are_refused(alq_hw, tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    run, _, _ = alq_hw
    model = ModelWrapper(str(run / "hw" / "finn_hw.onnx"))
    meta = json.loads(model.get_metadata_prop("pqhw.alq"))
    shift, plane = meta["layers"][1]["terms"][3][0]
    meta["layers"][1]["terms"][3][0] = [shift, hex(int(plane, 16) ^ 1)]
    model.set_metadata_prop("pqhw.alq", json.dumps(meta))
    with pytest.raises(UserError, match=r"MVAU_1 \(MVAU, ALQ\): the ALQ bases .* do not reproduce") as e:
        graph_from_finn(model)
    assert "\n" not in str(e.value)
    meta["layers"] = meta["layers"][:1]
    model.set_metadata_prop("pqhw.alq", json.dumps(meta))
    with pytest.raises(UserError, match="has no bases for MVAU number 1"):
        graph_from_finn(model)


def test_without_the_metadata_the_mvau_refuses_the_wide_weights(alq_hw):
    """The same FINN graph without ALQ's bases: its integer weights (10 bits here) are beyond the MVAU's 8, and
    the alq layers hold exactly FINN's weights."""
    from qonnx.core.modelwrapper import ModelWrapper

    run, _, _ = alq_hw
    m = onnx.load(str(run / "hw" / "finn_hw.onnx"))
    del m.graph.metadata_props[:]
    model = ModelWrapper(m)
    with pytest.raises(UserError, match=r"\(MVAU\): weights are INT\d+; the hardware takes"):
        graph_from_finn(model)
    alq_graph = Graph.load(run / "hw" / "graph.json")
    for node, layer in zip(model.get_nodes_by_op_type("MVAU"), alq_graph.layers[:3]):
        assert np.array_equal(model.get_initializer(node.input[1]).T, layer.weight_array())
