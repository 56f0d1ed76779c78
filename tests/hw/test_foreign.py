"""A QONNX model that pqhw did not build (plain brevitas.nn layers) compiles the same way."""
import brevitas.nn as qnn
import numpy as np
import onnx
import pytest
import torch
from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerTensorFloat, Uint8ActPerTensorFloat
from onnx import TensorProto, helper
from torch import nn

from hw.compile import compile_model
from common.errors import UserError
from hw.finn_flow import load_model
from hw.ir import Graph
from hw.reference import run_graph
from quant.export import brevitas_logits, classes_from_logits


class ForeignMLP(nn.Module):
    def __init__(self):
        super().__init__()
        w3 = Int8WeightPerTensorFloat.let(bit_width=3)
        self.body = nn.Sequential(
            qnn.QuantLinear(16, 24, bias=False, weight_quant=w3),
            nn.BatchNorm1d(24),
            qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat.let(bit_width=3)),
            qnn.QuantLinear(24, 12, bias=False, weight_quant=w3),
            nn.BatchNorm1d(12),
            qnn.QuantHardTanh(act_quant=Int8ActPerTensorFloat.let(bit_width=2), min_val=-1.0, max_val=1.0),
            qnn.QuantLinear(12, 5, bias=False, weight_quant=w3),
        )

    def forward(self, x):
        return self.body(x)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    from brevitas.export import export_qonnx
    from qonnx.core.datatype import DataType

    torch.manual_seed(0)
    model = ForeignMLP()
    x = torch.randint(0, 4, (256, 16)).float()
    opt = torch.optim.Adam(model.parameters(), 0.01)
    y = (x[:, :5] * torch.arange(1, 6)).argmax(1)
    for _ in range(40):  # a few steps so that batch norm and scales are not at their initial values
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    path = tmp_path_factory.mktemp("foreign") / "foreign.onnx"
    export_qonnx(model, torch.zeros(1, 16), export_path=str(path))
    m = load_model(path)
    m.set_tensor_datatype(m.graph.input[0].name, DataType["UINT2"])
    m.save(str(path))
    return model, path


def test_foreign_brevitas_model_compiles_exactly(foreign, tmp_path):
    model, path = foreign
    report = compile_model(path, tmp_path / "hw")
    graph = Graph.load(tmp_path / "hw" / "graph.json")
    assert [l.kind for l in graph.layers] == ["mvau", "mvau", "mvau", "label_select"]
    assert graph.input_dtype == "UINT2" and report["reference_vs_finn_mismatches"] == 0
    x = np.random.default_rng(1).integers(0, 4, (300, 16))
    assert np.array_equal(run_graph(graph, x)[:, 0], classes_from_logits(brevitas_logits(model, x)))
    assert graph.layers[1].output_dtype == "INT2" and graph.layers[1].threshold_bias == -2


def test_unsupported_op_names_node(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], name="soft0")], "g", [x], [y])
    path = tmp_path / "soft.onnx"
    onnx.save(helper.make_model(g), str(path))
    m = load_model(path)
    from qonnx.core.datatype import DataType

    m.set_tensor_datatype("x", DataType["UINT4"])
    m.save(str(path))
    with pytest.raises(UserError, match=r"node soft0 \(Softmax\) is not supported by the pqhw front-end; "
                                        r"supported: .*MatMul"):
        compile_model(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_weights_wider_than_the_rtl_are_refused(tmp_path):
    from brevitas.export import export_qonnx
    from qonnx.core.datatype import DataType

    torch.manual_seed(0)
    model = nn.Sequential(qnn.QuantLinear(8, 4, bias=False, weight_quant=Int8WeightPerTensorFloat.let(bit_width=12)))
    model.eval()
    path = tmp_path / "wide.onnx"
    export_qonnx(model, torch.zeros(1, 8), export_path=str(path))
    m = load_model(path)
    m.set_tensor_datatype(m.graph.input[0].name, DataType["UINT4"])
    m.save(str(path))
    with pytest.raises(UserError, match=r"weights are INT12; the hardware takes binary, ternary and integers of "
                                        r"2..8 bits"):
        compile_model(path, tmp_path / "out")


class ForeignW1A1(nn.Module):
    """Brevitas' own binary quantizers, no input quantizer: the first layer takes the BIPOLAR graph input."""

    def __init__(self):
        super().__init__()
        from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

        self.body = nn.Sequential(
            qnn.QuantLinear(32, 48, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
            nn.BatchNorm1d(48),
            qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
            qnn.QuantLinear(48, 7, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
        )

    def forward(self, x):
        return self.body(x)


def test_foreign_w1a1_with_a_bipolar_input(tmp_path):
    """The xnor rewrite re-declares a BIPOLAR graph input BINARY; the flow compares with (x + 1) / 2 from
    there on, and the hardware takes those bits."""
    from brevitas.export import export_qonnx
    from qonnx.core.datatype import DataType

    torch.manual_seed(2)
    model = ForeignW1A1()
    x = torch.randint(0, 2, (256, 32)).float() * 2 - 1
    opt = torch.optim.Adam(model.parameters(), 0.01)
    y = (x[:, :7] * torch.arange(1, 8)).argmax(1)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    path = tmp_path / "w1a1.onnx"
    export_qonnx(model, torch.zeros(1, 32), export_path=str(path))
    m = load_model(path)
    m.set_tensor_datatype(m.graph.input[0].name, DataType["BIPOLAR"])
    m.save(str(path))
    report = compile_model(path, tmp_path / "hw")
    assert report["flow_steps"]["xnor_popcount"] == 64
    graph = Graph.load(tmp_path / "hw" / "graph.json")
    assert graph.input_dtype == "BINARY" and [l.mode for l in graph.layers[:2]] == ["xnor", "xnor"]
    assert report["model_input"] == {"dtype": "BIPOLAR", "shape": [32]}
    assert report["hw_input"] == {"dtype": "BINARY", "shape": [32]}
    xs = np.random.default_rng(3).choice(np.array([-1, 1]), size=(300, 32))
    want = classes_from_logits(brevitas_logits(model, xs))
    assert len(np.unique(want)) > 1
    assert np.array_equal(run_graph(graph, (xs + 1) // 2)[:, 0], want)
