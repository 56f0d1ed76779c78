"""The exactness chain on trained digits networks, each link its own assertion, integer for integer:
Brevitas == QONNX execution == FINN python execution == numpy reference, on the whole test split."""
import math

import numpy as np
import pytest

from hw.finn_flow import execute_classes, finn_environment, load_model
from hw.ir import Graph
from hw.reference import run_graph
from quant.checkpoint import load_run
from quant.build import exportable
from quant.export import brevitas_integer_logits, brevitas_logits, classes_from_logits, qonnx_integer_logits
from quant.integer_form import integer_form
from tests.conftest import read_json

pytestmark = pytest.mark.xdist_group("digits_runs")


def test_qonnx_equals_brevitas_integer_logits(digits_run):
    """The exported graph is the trained network's integer form: equal to it in Brevitas on every vector,
    and to the trained network itself except on the near-ties export.json counts."""
    model, cfg, split = load_run(digits_run)
    trained = exportable(cfg, model).eval()
    got = qonnx_integer_logits(load_model(digits_run / "model.qonnx.onnx"), split.x_test, 1.0, 1.0)
    assert np.array_equal(brevitas_integer_logits(integer_form(trained), split.x_test), got)
    parted = int((brevitas_integer_logits(trained, split.x_test) != got).any(axis=1).sum())
    report = read_json(digits_run / "export.json")
    assert report["mismatches"] == 0 and report["near_ties_parted"] == parted


def test_finn_equals_reference_on_test_split(digits_run, tmp_path):
    _, _, split = load_run(digits_run)
    graph = Graph.load(digits_run / "hw" / "graph.json")
    hw_model = load_model(digits_run / "hw" / "finn_hw.onnx")
    with finn_environment(tmp_path):
        finn = execute_classes(hw_model, split.x_test)[:, 0]
    assert np.array_equal(run_graph(graph, split.x_test)[:, 0], finn)


def test_reference_equals_brevitas(digits_run):
    """Classes, and the last layer's integers themselves (xnor popcount p maps to the dot 2p - K)."""
    model, _, split = load_run(digits_run)
    graph = Graph.load(digits_run / "hw" / "graph.json")
    classes, per_layer = run_graph(graph, split.x_test, keep_intermediates=True)
    logits = brevitas_logits(model, split.x_test)
    assert np.array_equal(classes[:, 0], classes_from_logits(logits))
    last = graph.compute_layers[-1]
    acc = per_layer[graph.layers.index(last)]
    dot = 2 * acc - last.mw if last.mode == "xnor" else acc
    assert np.array_equal(dot, brevitas_integer_logits(model, split.x_test))
    stored = np.load(digits_run / "hw" / "test_vectors.npz")
    assert np.array_equal(stored["classes"], classes[:, 0])


def test_compile_report(digits_run):
    c = read_json(digits_run / "hw" / "compile.json")
    assert c["reference_vs_finn_mismatches"] == 0 and c["reference_vs_finn_vectors"] >= 450
    for layer in c["layers"]:
        assert layer["expected_cycles"] == layer["finn_exp_cycles"], layer["name"]
        if layer.get("mode") == "xnor":  # FINN reports 32 bits; the popcount needs ceil(log2(K+1))
            assert layer["acc_dtype"] == f"UINT{math.ceil(math.log2(layer['mw'] + 1))}"
    assert c["expected_cycles_per_frame"] == max(l["expected_cycles"] for l in c["layers"])
    assert c["expected_fps"] >= 100000


def test_training_reaches_useful_accuracy(digits_run):
    # six epochs only; the targets of the full configs are measured by `make bench`
    assert read_json(digits_run / "metrics.json")["test_accuracy"] > 0.8
