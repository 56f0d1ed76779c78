"""The integer form (quant/integer_form.py): what `pqhw export` writes for 8-bit nets with learned scales."""
import contextlib
import io
import warnings

import numpy as np
import pytest
import torch

from quant.config import ModelConfig
from quant.export import brevitas_integer_logits, classifier_scales, qonnx_integer_logits
from quant.integer_form import NotIntegerForm, integer_form
from quant.layers import build_model


def _net(seed: int, act: str = "uint8", weight: str = "int8"):
    """A digits-sized CNN with random weights, batch-norm statistics and learned (non-power-of-two) scales."""
    torch.manual_seed(seed)
    cfg = ModelConfig(layers=[{"kind": "conv", "channels": 8, "kernel": 3, "weight": weight, "act": act},
                              {"kind": "conv", "channels": 8, "kernel": 3, "weight": weight, "act": act, "pool": 2},
                              {"kind": "linear", "features": 10, "weight": weight}])
    net = build_model(cfg, (1, 8, 8), 10).eval()
    with torch.no_grad():
        for m in net.body:
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.05, 0.5)
                m.weight.uniform_(-0.2, 0.2)  # negative gammas too; small: levels inside the range
                m.bias.uniform_(-0.5, 0.5)
    return net


def _pixels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 16, size=(n, 64)).astype(np.float32)


def _qonnx(model, tmp_path):
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = tmp_path / "m.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.zeros(1, 64), export_path=str(path))
    return cleanup_model(ModelWrapper(str(path)))


@pytest.mark.parametrize("seed", [0, 1])
def test_integer_form_exports_with_the_same_integer_logits_on_every_vector(seed, tmp_path):
    """Brevitas and the QONNX execution of the integer form agree on every vector: every sum is over
    integers, and the per-channel multiply and add are single float32 operations in both."""
    x = _pixels(400, seed)
    form = integer_form(_net(seed))
    assert classifier_scales(form) == (1.0, 1.0)
    ref = brevitas_integer_logits(form, x)
    assert np.array_equal(qonnx_integer_logits(_qonnx(form, tmp_path), x, 1.0, 1.0), ref)
    assert len(np.unique(ref)) > 1000  # logits that vary with the input, not saturated ones


def _tie_free(model, x: np.ndarray, margin: float) -> np.ndarray:
    """Vectors whose every activation lies at least `margin` steps from a rounding tie (k + 1/2)."""
    worst = np.full(len(x), np.inf)
    hooks = []
    for m in model.body:
        if hasattr(m, "act_quant"):
            def hook(mod, inp):
                z = inp[0].detach().double() / float(mod.act_quant.scale().detach())
                gap = ((z - torch.floor(z)) - 0.5).abs().flatten(1).min(1).values.numpy()
                np.minimum(worst, gap, out=worst)
            hooks.append(m.register_forward_pre_hook(hook))
    with torch.no_grad():
        model(torch.as_tensor(x))
    for h in hooks:
        h.remove()
    return worst >= margin


def test_integer_form_is_the_trained_network_away_from_rounding_ties():
    """Same integer logits as the trained network on every vector without a near-tie (the two round their
    float32 sums differently only within about 1e-5 of a step from a tie)."""
    net, x = _net(2), _pixels(400, 2)
    keep = _tie_free(net, x, 1e-4)
    assert keep.mean() > 0.9
    assert np.array_equal(brevitas_integer_logits(integer_form(net), x[keep]), brevitas_integer_logits(net, x[keep]))


def test_binary_and_ternary_nets_take_the_integer_form():
    x = _pixels(50, 3)
    for act, weight in (("binary", "binary"), ("uint2", "ternary"), ("int4", "pow2:3")):
        net = _net(3, act, weight)
        keep = _tie_free(net, x, 1e-4)
        assert np.array_equal(brevitas_integer_logits(integer_form(net), x[keep]),
                              brevitas_integer_logits(net, x[keep])), (act, weight)


def test_a_network_outside_the_form_is_named():
    net = _net(4)
    net.body.append(torch.nn.ReLU())
    with pytest.raises(NotIntegerForm, match="modules after the classifier|ReLU"):
        integer_form(net)


def test_a_network_not_built_by_pqhw_is_named():
    """FINN's reference TFC (brevitas_examples) keeps its layers in lists, not one Sequential body."""
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    tfc, _ = model_with_cfg("tfc_2w2a", pretrained=False)
    with pytest.raises(NotIntegerForm, match="FC has no Sequential body"):
        integer_form(tfc.eval())
