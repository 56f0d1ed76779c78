"""Power-of-two weights (pow2:K): nearest level, the Brevitas quantizer, its spec, and the QONNX export."""
import copy

import brevitas.nn as qnn
import numpy as np
import pytest
import torch

from common.errors import UserError
from quant.config import parse_config
from quant.quantizers import nearest_pow2, pow2_levels, weight_bits, weight_quant


def _brute(y, k, zero=True):
    mags = pow2_levels(k)[0 if zero else 1:]
    cands = torch.tensor(sorted({-m for m in mags} | set(mags)), dtype=y.dtype)
    return cands[(y[:, None] - cands[None, :]).abs().argmin(dim=1)]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("zero", [True, False])
def test_nearest_pow2_is_the_brute_force_nearest_level(k, zero):
    y = torch.randn(4000, generator=torch.Generator().manual_seed(k)) * (1 << k) / 2
    assert torch.equal(nearest_pow2(y, k, zero), _brute(y, k, zero))


def test_levels_and_bits():
    assert pow2_levels(3) == [0, 1, 2, 4]
    assert [weight_bits(f"pow2:{k}") for k in (1, 2, 3, 4, 7)] == [2, 3, 3, 4, 4]  # ceil(log2(2K + 1))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_brevitas_pow2_weights_are_exactly_powers_of_two_times_one_scale(k):
    torch.manual_seed(k)
    layer = qnn.QuantLinear(40, 12, bias=False, weight_quant=weight_quant(f"pow2:{k}"))
    qw = layer.quant_weight()
    scale = float(qw.scale.detach())
    assert scale == pytest.approx(float(layer.weight.abs().max()) / (1 << (k - 1)), rel=1e-6)
    ints = qw.value.detach() / scale
    assert torch.equal(ints, torch.round(ints))
    assert set(ints.unique().tolist()) <= {float(s * m) for m in pow2_levels(k) for s in (-1, 1)}
    assert float(ints.abs().max()) == 1 << (k - 1)  # the largest weight sits on the largest level
    assert int(qw.bit_width) == k + 1
    expect = _brute((layer.weight.detach() / scale).flatten(), k).reshape(ints.shape)
    assert torch.equal(ints, expect)


def test_pow2_gradient_passes_straight_through():
    layer = qnn.QuantLinear(8, 4, bias=False, weight_quant=weight_quant("pow2:3"))
    layer(torch.ones(2, 8)).sum().backward()
    assert layer.weight.grad is not None and float(layer.weight.grad.abs().sum()) > 0


CFG = {"name": "tiny_pow2", "dataset": {"name": "digits", "input_bits": 4},
       "model": {"layers": [{"kind": "linear", "features": 24, "weight": "pow2:3", "act": "uint2"},
                            {"kind": "linear", "features": 10, "weight": "pow2:2"}]},
       "training": {"epochs": 2, "seed": 0}}


@pytest.mark.parametrize("spec", ["pow2:0", "pow2:8", "pow2", "pow2:x"])
def test_bad_pow2_specs_are_one_line_user_errors(spec):
    d = copy.deepcopy(CFG)
    d["model"]["layers"][0]["weight"] = spec
    with pytest.raises(UserError) as err:
        parse_config(d)
    assert "\n" not in str(err.value) and "pow2:1 .. pow2:7" in str(err.value)


def test_pow2_as_activation_is_refused():
    d = copy.deepcopy(CFG)
    d["model"]["layers"][0]["act"] = "pow2:3"
    with pytest.raises(UserError, match="activation"):
        parse_config(d)


def test_plain_training_with_mixed_pow2_layers_exports_those_integers(tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    from quant.checkpoint import load_run
    from quant.export import export_run
    from quant.train import train_run

    m = train_run(parse_config(copy.deepcopy(CFG)), tmp_path, show_progress=False)
    assert m["test_accuracy"] > 0.5
    assert m["weight_bits_total"] == 24 * 64 * 3 + 10 * 24 * 3
    report = export_run(tmp_path)  # raises unless QONNX execution equals Brevitas on every test vector
    assert report["mismatches"] == 0
    model, _, _ = load_run(tmp_path)
    expect = [l.quant_weight().int().detach().numpy() for l in model.quant_layers()]
    mw = ModelWrapper(str(tmp_path / "model.qonnx.onnx"))
    got = []
    for node in mw.graph.node:
        w = mw.get_initializer(node.input[0]) if node.op_type == "Quant" else None
        if w is not None and w.ndim == 2:
            scale = mw.get_initializer(node.input[1])
            got.append((np.round(w / scale), int(mw.get_initializer(node.input[3]))))
    assert [bw for _, bw in got] == [4, 3]  # pow2:3 -> INT4, pow2:2 -> INT3
    for (ints, _), ref, k in zip(got, expect, (3, 2)):
        assert np.array_equal(ints, ref)
        assert set(np.unique(ints).tolist()) <= {s * v for v in pow2_levels(k) for s in (-1, 1)}
        assert np.abs(ints).max() == 1 << (k - 1)
