"""NaN/inf in a model's parameters are refused with the tensor's name before FINN sees the model (a NaN in a
batch-norm parameter sent FINN's threshold rounding into a loop that did not end)."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from common.errors import UserError
from hw.finn_flow import load_model
from hw.model_checks import non_finite_tensors


def _model(path, bn_var, const=1.0):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    inits = [numpy_helper.from_array(np.ones(4, np.float32), "bn.weight"),
             numpy_helper.from_array(np.zeros(4, np.float32), "bn.bias"),
             numpy_helper.from_array(np.zeros(4, np.float32), "bn.running_mean"),
             numpy_helper.from_array(np.asarray(bn_var, np.float32), "bn.running_var")]
    c = helper.make_node("Constant", [], ["c"], name="scale_const",
                         value=numpy_helper.from_array(np.full(4, const, np.float32)))
    mul = helper.make_node("Mul", ["x", "c"], ["m"], name="mul")
    bn = helper.make_node("BatchNormalization", ["m", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
                          ["y"], name="bn")
    onnx.save(helper.make_model(helper.make_graph([c, mul, bn], "g", [x], [y], inits)), str(path))
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_batch_norm_parameter_is_named(tmp_path, bad):
    path = _model(tmp_path / "m.onnx", [1.0, bad, 1.0, 1.0])
    with pytest.raises(UserError) as exc:
        load_model(path)
    msg = str(exc.value)
    assert "'bn.running_var'" in msg and "1 NaN or infinite values of 4" in msg and str(path) in msg
    assert "\n" not in msg


def test_non_finite_constant_node_is_named(tmp_path):
    path = _model(tmp_path / "m.onnx", [1.0] * 4, const=float("nan"))
    with pytest.raises(UserError, match="scale_const"):
        load_model(path)


def test_finite_model_loads(tmp_path):
    path = _model(tmp_path / "m.onnx", [1.0, 2.0, 0.5, 1.0])
    assert non_finite_tensors(onnx.load(str(path))) == []
    assert load_model(path).graph.node[2].op_type == "BatchNormalization"
