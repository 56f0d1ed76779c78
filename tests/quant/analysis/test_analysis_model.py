"""Per-tensor SNR and kurtosis of real weights, and reading every accepted model format."""
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from common.errors import UserError
from quant.analysis import empirical, model_io
from quant.analysis import distributions as dists
from quant.analysis.grids import magnitude_prune


def _state():
    gen = torch.Generator().manual_seed(0)
    return {"fc1.weight": torch.randn(16, 8, generator=gen), "fc1.bias": torch.randn(16, generator=gen),
            "conv.weight": torch.randn(4, 2, 3, 3, generator=gen), "steps": torch.tensor(3)}


def test_state_dict_run_dir_and_plain_file(tmp_path):
    torch.save(_state(), tmp_path / "sd.pt")
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"state_dict": _state(), "config": {"bits": 4}}, run / "model.pt")
    for source in (tmp_path / "sd.pt", run, run / "model.pt"):
        weights = model_io.load_weights(source)
        assert sorted(weights) == ["conv.weight", "fc1.weight"]
        assert weights["conv.weight"].shape == (4, 2, 3, 3)


def _onnx_model(path, w):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    inits = [numpy_helper.from_array(w.astype(np.float32), "W"), numpy_helper.from_array(w.T.astype(np.float32), "V"),
             numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0.0, np.float32), "z"),
             numpy_helper.from_array(np.array(4.0, np.float32), "b")]
    nodes = [helper.make_node("Quant", ["W", "s", "z", "b"], ["Wq"], domain="qonnx.custom_op.general", signed=1),
             helper.make_node("MatMul", ["x", "Wq"], ["h"]),
             helper.make_node("Gemm", ["h", "V"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    onnx.save(helper.make_model(graph), str(path))


def test_qonnx_weights_in_torch_layout(tmp_path):
    w = np.random.default_rng(0).normal(size=(8, 4))
    _onnx_model(tmp_path / "m.onnx", w)
    weights = model_io.load_weights(tmp_path / "m.onnx")
    assert sorted(weights) == ["V", "W"]
    np.testing.assert_allclose(weights["W"], w.T.astype(np.float32))  # MatMul (in, out) -> (out, in)
    np.testing.assert_allclose(weights["V"], w.T.astype(np.float32))  # Gemm transB=1 is already (out, in)


@pytest.mark.parametrize("make,needle", [
    (lambda p: p / "missing.pt", "no such file"),
    (lambda p: (p / "w.txt").write_text("x") and p / "w.txt", "unsupported file type"),
    (lambda p: (p / "bad.pt").write_bytes(b"not a checkpoint") and p / "bad.pt", "not a readable torch"),
    (lambda p: (p / "bad.onnx").write_bytes(b"\x00garbage") and p / "bad.onnx", "not a readable ONNX"),
    (lambda p: p, "has no model.pt"),
])
def test_user_errors_name_the_file(tmp_path, make, needle):
    source = make(tmp_path)
    with pytest.raises(UserError, match=needle):
        model_io.load_weights(source)


def test_nan_weights_are_rejected(tmp_path):
    state = _state()
    state["fc1.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(UserError, match="fc1.weight.*NaN"):
        model_io.load_weights(tmp_path / "nan.pt")


def test_tensor_snr_matches_analytic_normal():
    w = dists.normal().sample(200_000, seed=3)
    assert empirical.sample_kurtosis(w) == pytest.approx(3.0, abs=0.05)
    row = empirical.tensor_snr(w, 4)
    assert row["snr_quant_db"] == pytest.approx(19.26, abs=0.1)
    assert row["snr_prune_db"] == pytest.approx(5.585, abs=0.05)
    assert np.count_nonzero(magnitude_prune(w, 0.75)) == 50_000


def test_pruning_wins_only_for_heavy_tails_at_low_bits():
    weights = {f"normal{i}": dists.normal().sample(20_000, seed=i) for i in range(3)}
    weights.update({f"heavy{i}": dists.student_t(2.0, 70.0).sample(20_000, seed=i) for i in range(3)})
    records = empirical.analyze_tensors(weights, bits=(2, 8))
    kurt = {r["name"]: r["kurtosis"] for r in records}
    assert all(kurt[f"heavy{i}"] > 30 for i in range(3)) and all(kurt[f"normal{i}"] < 3.2 for i in range(3))
    regions = {r["bits"]: r for r in empirical.pruning_regions(records, bits=(2, 8))}
    assert regions[2]["tensors_prune_wins"] == 3 and regions[8]["tensors_prune_wins"] == 0
    spans = regions[2]["prune_preferred_kurtosis"]
    assert any(a <= kurt["heavy0"] <= b for a, b in spans)
    assert not any(a <= 3.0 <= b for a, b in spans)
    assert regions[8]["prune_preferred_kurtosis"] == []
