"""Models as FINN users export them (brevitas export_qonnx, qonnx cleanup, an integer input annotation), one
test per import case: batch-pinned Reshape shapes, a leading flatten, BIPOLAR/BINARY/INT/UINT graph inputs,
pre-processing by a constant, the scalar affine after the last layer, and the one-line refusals."""
import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
from torch import nn

from common.errors import UserError
from common.qonnx_exec import classes_from_logits, execute
from hw.compile import compile_model
from hw.finn_flow import load_model
from hw.finn_import import MakeReshapeBatchAgnostic, RemoveLeadingFlatten, leading_flatten
from hw.ir import Graph
from hw.reference import run_graph
from quant.export import brevitas_logits


def export(model, shape, dtype: str, path):
    """As FINN's end-to-end tests do: export_qonnx, qonnx cleanup, graph input annotated."""
    from brevitas.export import export_qonnx
    from qonnx.core.datatype import DataType
    from qonnx.util.cleanup import cleanup_model

    model.eval()
    export_qonnx(model, torch.zeros(shape), export_path=str(path))
    m = cleanup_model(load_model(path))
    m.set_tensor_datatype(m.graph.input[0].name, DataType[dtype])
    m.save(str(path))
    return path


def randomise_norms(model, seed: int):
    """Batch-norm statistics and affine parameters (and TensorNorm's) away from their initial values, so the
    thresholds are not trivial."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, TensorNorm)):
            n = m.running_mean.numel()
            m.running_mean.data = torch.randn(n, generator=g)
            m.running_var.data = torch.rand(n, generator=g) * 2 + 0.5
            m.weight.data = torch.randn(n, generator=g)
            m.bias.data = torch.randn(n, generator=g)
    return model


def binary_linear(i, o, bits=1):
    return qnn.QuantLinear(i, o, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=bits)


def act(bits):
    return qnn.QuantIdentity(act_quant=CommonActQuant, bit_width=bits)


class MLP(nn.Module):
    """A two-layer BNN-PYNQ-style MLP: optional pre-processing, view(batch, -1), optional input quantizer,
    QuantLinear + BatchNorm + QuantIdentity, QuantLinear, optional tail (TensorNorm, BatchNorm)."""

    def __init__(self, features=16, hidden=24, classes=6, w_bits=1, a_bits=1, in_quant=None, pre=None,
                 tail=None, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.pre = pre
        self.inq = act(in_quant) if in_quant else None
        self.fc0, self.bn0, self.act0 = binary_linear(features, hidden, w_bits), nn.BatchNorm1d(hidden), act(a_bits)
        self.fc1 = binary_linear(hidden, classes, w_bits)
        self.tail = tail
        for fc in (self.fc0, self.fc1):
            nn.init.uniform_(fc.weight.data, -1, 1)
        randomise_norms(self, seed + 1)

    def forward(self, x):
        if self.pre is not None:
            x = self.pre(x)
        x = x.view(x.shape[0], -1)
        if self.inq is not None:
            x = self.inq(2.0 * x - 1.0)
        x = self.fc1(self.act0(self.bn0(self.fc0(x))))
        return x if self.tail is None else self.tail(x)


class Scale(nn.Module):
    def __init__(self, op, c):
        super().__init__()
        self.op, self.c = op, c

    def forward(self, x):
        return x / self.c if self.op == "div" else x * self.c


def values(dtype: str, n: int, shape, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "BIPOLAR":
        return rng.choice(np.array([-1, 1]), size=(n, *shape))
    lo, hi = {"BINARY": (0, 1), "INT4": (-8, 7), "UINT3": (0, 7), "UINT8": (0, 255)}[dtype]
    return rng.integers(lo, hi + 1, size=(n, *shape))


def compiled(model, shape, dtype, tmp_path):
    path = export(model, (1, *shape), dtype, tmp_path / "model.onnx")
    report = compile_model(path, tmp_path / "hw")
    return Graph.load(tmp_path / "hw" / "graph.json"), report


def assert_exact(model, graph, x, hw_x=None):
    """Classes of the integer graph == classes of the Brevitas forward, on every vector."""
    want = classes_from_logits(brevitas_logits(model, x))
    got = run_graph(graph, (x if hw_x is None else hw_x).reshape(len(x), -1))[:, 0]
    assert np.array_equal(got, want), f"{np.sum(got != want)} of {len(x)} differ"
    assert len(np.unique(want)) > 1  # the classes are not one constant


def test_batch_pinned_reshape_runs_at_any_batch(tmp_path):
    model = MLP(in_quant=1).eval()
    path = export(model, (1, 1, 4, 4), "UINT8", tmp_path / "m.onnx")
    m = load_model(path)
    reshape = next(n for n in m.graph.node if n.op_type == "Reshape")
    assert m.get_initializer(reshape.input[1]).tolist() == [1, -1]  # as the export traced it
    m, changed = MakeReshapeBatchAgnostic().apply(m)
    assert changed and m.get_initializer(reshape.input[1]).tolist() == [-1, 16]
    x = values("UINT3", 40, (1, 4, 4))
    out = execute(m, x)  # all 40 at once
    assert out.shape[0] == 40
    assert np.array_equal(classes_from_logits(out), classes_from_logits(brevitas_logits(model, x)))
    assert not MakeReshapeBatchAgnostic().apply(m)[1]


def test_leading_flatten_is_left_out_of_the_stream(tmp_path):
    model = MLP(in_quant=1)
    graph, report = compiled(model, (1, 4, 4), "UINT3", tmp_path)
    assert graph.input_shape == [16] and graph.input_dtype == "UINT3"
    assert report["model_input"]["shape"] == [1, 4, 4] and report["hw_input"]["shape"] == [16]
    assert report["flow_steps"]["leading_flatten"] == 64
    assert [l.kind for l in graph.layers] == ["threshold", "mvau", "mvau", "label_select"]
    # the C-order flatten keeps the element order: the stream is x.reshape(N, 16) (a permuted stream is
    # not the same network, which random weights would show)
    x = values("UINT3", 300, (1, 4, 4), seed=3)
    assert_exact(model, graph, x)
    perm = np.random.default_rng(0).permutation(16)
    moved = run_graph(graph, x.reshape(len(x), -1)[:, perm])[:, 0]
    assert not np.array_equal(moved, run_graph(graph, x.reshape(len(x), -1))[:, 0])


def test_only_a_c_order_flatten_to_two_axes_is_removed(tmp_path):
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper

    def graph(op, **attrs):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])
        inputs = ["x"]
        inits = []
        if op == "Reshape":
            inits = [helper.make_tensor("s", TensorProto.INT64, [3], attrs.pop("shape"))]
            inputs.append("s")
        nodes = [helper.make_node(op, inputs, ["y"], name="r0", **attrs), helper.make_node("Relu", ["y"], ["z"])]
        z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
        m = ModelWrapper(helper.make_model(helper.make_graph(nodes, "g", [x], [z], initializer=inits)))
        from qonnx.transformation.infer_shapes import InferShapes

        m = m.transform(InferShapes())
        m.set_tensor_datatype("x", DataType["UINT4"])
        return m

    assert leading_flatten(graph("Flatten", axis=2)) is None
    assert leading_flatten(graph("Reshape", shape=[1, 6, 4])) is None
    m, changed = RemoveLeadingFlatten().apply(graph("Flatten", axis=1))
    assert changed and m.graph.input[0].name == "y" and m.get_tensor_shape("y") == [1, 24]
    assert m.get_tensor_datatype("y").name == "UINT4" and [n.op_type for n in m.graph.node] == ["Relu"]


@pytest.mark.parametrize("dtype", ["BIPOLAR", "BINARY", "INT4", "UINT3"])
def test_graph_input_datatypes(dtype, tmp_path):
    """No input quantizer: the first QuantLinear takes the graph input as declared."""
    model = MLP(w_bits=1, a_bits=1 if dtype == "BIPOLAR" else 2, seed=4)
    graph, _ = compiled(model, (16,), dtype, tmp_path)
    x = values(dtype, 300, (16,), seed=5)
    if dtype == "BIPOLAR":  # the xnor rewrite re-declares the input BINARY: bit = (x + 1) / 2
        assert graph.input_dtype == "BINARY" and graph.layers[0].mode == "xnor"
        assert_exact(model, graph, x, hw_x=(x + 1) // 2)
    else:
        assert graph.input_dtype == dtype
        assert_exact(model, graph, x)


@pytest.mark.parametrize("op", ["div", "mul"])
def test_pre_processing_goes_into_the_first_thresholds(op, tmp_path):
    """x / 255 (or x * (1/255)) on UINT8 pixels in front of a 2-bit input quantizer: streamlining takes the
    constant into the input thresholds, which then compare the integer pixels."""
    model = MLP(in_quant=2, w_bits=2, a_bits=2, pre=Scale(op, 255.0 if op == "div" else 1 / 255), seed=6)
    graph, _ = compiled(model, (1, 4, 4), "UINT8", tmp_path)
    assert graph.input_dtype == "UINT8" and graph.layers[0].kind == "threshold"
    t = np.asarray(graph.layers[0].thresholds)
    assert t.min() > 0 and t.max() < 255  # on the pixel scale, not on [0, 1]
    assert_exact(model, graph, values("UINT8", 300, (1, 4, 4), seed=7))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_tensor_norm_after_the_last_layer(sign, tmp_path):
    """The TensorNorm of BNN-PYNQ's nets after the last layer; a negative weight reverses the class order,
    so it moves into the last layer's weights before the arg-max takes the rest."""
    tail = TensorNorm()
    model = MLP(in_quant=1, tail=tail, seed=8)
    tail.weight.data = torch.tensor([sign * 0.7])
    graph, _ = compiled(model, (1, 4, 4), "UINT8", tmp_path)
    assert [l.kind for l in graph.layers] == ["threshold", "mvau", "mvau", "label_select"]
    assert_exact(model, graph, values("UINT8", 300, (1, 4, 4), seed=9))


def test_negative_scale_that_streamlining_cannot_take(tmp_path):
    """INT3 weights with -4 cannot hold -W, so FINN leaves the sign of a negative TensorNorm in front of the
    arg-max; NegativeScaleBeforeTopK negates the last layer in INT4 weights instead."""
    from brevitas.quant import Int8WeightPerTensorFloat

    tail = TensorNorm()
    model = MLP(in_quant=2, w_bits=2, a_bits=2, tail=tail, seed=8)
    torch.manual_seed(3)
    model.fc1 = qnn.QuantLinear(24, 6, bias=False,
                                weight_quant=Int8WeightPerTensorFloat.let(bit_width=3, narrow_range=False))
    nn.init.uniform_(model.fc1.weight.data, -1, 1)
    tail.weight.data = torch.tensor([-0.7])
    graph, _ = compiled(model, (1, 4, 4), "UINT8", tmp_path)
    assert [l.kind for l in graph.layers] == ["threshold", "mvau", "mvau", "label_select"]
    w = np.asarray(graph.layers[2].weights)
    assert graph.layers[2].weight_dtype == "INT4" and w.max() == 4  # -W of INT3 weights holding -4
    assert_exact(model, graph, values("UINT8", 300, (1, 4, 4), seed=9))


def test_per_channel_affine_after_the_last_layer_is_one_line(tmp_path):
    model = MLP(in_quant=1, tail=nn.BatchNorm1d(6), seed=12)
    randomise_norms(model, 13)
    path = export(model, (1, 1, 4, 4), "UINT8", tmp_path / "m.onnx")
    with pytest.raises(UserError, match=r"^node \S+ \((Mul|Add)\) was left after conversion to HW layers: a "
                                        r"per-channel affine .*; end the model with a scalar affine") as err:
        compile_model(path, tmp_path / "hw")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "hw").exists()


def bnn_pynq(name: str, seed: int = 0):
    """FINN's reference network with random weights and batch-norm statistics, /255 in front."""
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    net, _ = model_with_cfg(name, pretrained=False)
    randomise_norms(net, seed + 1)
    return nn.Sequential(Scale("div", 255.0), net).eval()


@pytest.mark.slow
def test_real_cnv_1w1a_compiles_exactly(tmp_path):
    """FINN's CNV (32x32x3 UINT8, six 3x3 convs, two max-pools, three FC): every front-end step verified,
    the integer graph of swg/MVAU/pool layers equal to FINN's execution and to the Brevitas forward."""
    model = bnn_pynq("cnv_1w1a")
    graph, report = compiled(model, (3, 32, 32), "UINT8", tmp_path)
    kinds = [l.kind for l in graph.layers]
    assert graph.input_shape == [32, 32, 3] and report["reference_vs_finn_mismatches"] == 0
    assert kinds.count("swg") == 8 and kinds.count("pool") == 2 and kinds.count("mvau") == 9
    x = values("UINT8", 8, (3, 32, 32), seed=2)
    assert_exact(model, graph, x, hw_x=x.transpose(0, 2, 3, 1))


def test_real_tfc_1w1a(tmp_path):
    model = bnn_pynq("tfc_1w1a")
    graph, report = compiled(model, (1, 28, 28), "UINT8", tmp_path)
    assert [l.kind for l in graph.layers] == ["threshold"] + ["mvau"] * 4 + ["label_select"]
    assert graph.input_shape == [784] and report["reference_vs_finn_mismatches"] == 0
    assert_exact(model, graph, values("UINT8", 200, (1, 28, 28), seed=2))
