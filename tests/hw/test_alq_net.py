"""A trained ALQ network (paper 003) through export, FINN's front-end, the alq layer kind and RTL simulation:
ALQNet == Brevitas == QONNX == FINN == reference == RTL on the test split plus random vectors, with random
idle and backpressure, measured cycles equal to the expected ones; and the refusal of bases that do not
reproduce FINN's weights. The same for a small ALQ CNN (padded conv, pool, conv, a 2x2 flatten): its conv
layers lowered by FINN (Im2Col rows in (kh, kw, C_in) order, the flatten in (H, W, C)) on the alq kind."""
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

# digits 8x8: conv 3x3 x8 (padding 1) - pool 2 - conv 3x3 x16 - linear 10 (16 x 2 x 2 inputs), channel-wise groups
TINY_CNN = copy.deepcopy(TINY_HW)
TINY_CNN["name"] = "tiny_alq_cnn_hw"
TINY_CNN["model"]["layers"] = [
    {"kind": "conv", "channels": 8, "kernel": 3, "padding": 1, "pool": 2, "weight": "int8", "act": "uint8"},
    {"kind": "conv", "channels": 16, "kernel": 3, "weight": "int8", "act": "uint8"},
    {"kind": "linear", "features": 10, "weight": "int8"}]
TINY_CNN["method"]["structures"] = ["channel", "channel", "channel"]


def _trained_and_compiled(tmp_path_factory, cfg: dict, name: str):
    run = tmp_path_factory.mktemp(name)
    metrics = train_run(parse_config(copy.deepcopy(cfg)), run, show_progress=False)
    export = export_run(run)
    compile_model(run / "model.qonnx.onnx", run / "hw", target_fps=None)
    return run, metrics, export


@pytest.fixture(scope="module")
def alq_hw(tmp_path_factory):
    return _trained_and_compiled(tmp_path_factory, TINY_HW, "alq_run")


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


@pytest.fixture(scope="module")
def alq_cnn(tmp_path_factory):
    return _trained_and_compiled(tmp_path_factory, TINY_CNN, "alq_cnn_run")


def test_trained_alq_cnn_is_bit_exact_in_rtl(alq_cnn, tmp_path):
    run, metrics, export = alq_cnn
    assert metrics["test_accuracy"] > 0.5 and metrics["avg_weight_bits"] <= 1.0
    assert export["mismatches"] == 0 and export["vectors"] == 450
    graph = Graph.load(run / "hw" / "graph.json")
    kinds = [l.kind for l in graph.layers]
    assert kinds.count("alq") == 3 and "mvau" not in kinds and "swg" in kinds and "pool" in kinds
    _check_trained_integers_permuted(run, graph)
    hw = tmp_path / "hw"
    shutil.copytree(run / "hw", hw)
    rec = verify(hw, vectors=30, sim="verilator", seed=3)
    assert rec["mismatches"] == 0, rec["first_mismatch"]
    assert rec["vectors"] == 480 and not rec["timed_out"]
    assert rec["cycles_per_frame"] == rec["expected_cycles_per_frame"]


def _check_trained_integers_permuted(run, graph):
    """The alq layers hold the trained W_int with each row in FINN's order: a conv's (C_in, kh, kw) as
    (kh, kw, C_in), the linear layer's (C, H, W) flatten as (H, W, C)."""
    from quant.checkpoint import load_run
    from quant.methods.alq_export import layer_integers

    model, _, _ = load_run(run)
    layers = [l for l in graph.layers if l.kind == "alq"]
    w_conv = [layer_integers(w)[0] for w in model.alq_weights()]
    assert np.array_equal(layers[0].weight_array(), w_conv[0].transpose(0, 2, 3, 1).reshape(8, -1))
    assert np.array_equal(layers[1].weight_array(), w_conv[1].transpose(0, 2, 3, 1).reshape(16, -1))
    fc = w_conv[2].reshape(10, 16, 2, 2).transpose(0, 2, 3, 1).reshape(10, -1)
    assert np.array_equal(layers[2].weight_array(), fc)
    assert not np.array_equal(layers[2].weight_array(), w_conv[2])  # the permutation is not the identity here


def test_cnn_bases_in_torch_order_are_refused(alq_cnn):
    """Without in_shape the planes stay in torch's row order, which is not FINN's: the check refuses them."""
    from qonnx.core.modelwrapper import ModelWrapper

    run, _, _ = alq_cnn
    model = ModelWrapper(str(run / "hw" / "finn_hw.onnx"))
    meta = json.loads(model.get_metadata_prop("pqhw.alq"))
    assert [e.get("in_shape") for e in meta["layers"]] == [[1, 3, 3], [8, 3, 3], [16, 2, 2]]
    del meta["layers"][1]["in_shape"]
    model.set_metadata_prop("pqhw.alq", json.dumps(meta))
    with pytest.raises(UserError, match=r"MVAU_1 \(MVAU, ALQ\): the ALQ bases .* do not reproduce") as e:
        graph_from_finn(model)
    assert "\n" not in str(e.value)
    meta["layers"][1]["in_shape"] = [8, 3, 4]
    model.set_metadata_prop("pqhw.alq", json.dumps(meta))
    with pytest.raises(UserError, match=r"in_shape \[8, 3, 4\] does not match the node's 72 inputs"):
        graph_from_finn(model)
