"""ALQ's hardware form (quant/methods/alq_export.py): what the export refuses, and the pieces that make the
Brevitas network equal to the ALQNet integer for integer (the whole run is tests/hw/test_alq_net.py)."""
import copy

import pytest
import torch

from common.errors import UserError
from quant.build import make_model
from quant.config import parse_config
from quant.methods import alq
from quant.methods.alq_export import brevitas_act, check_exportable
from quant.methods.alq_net import ALQAct, ALQWeight

HW = {
    "name": "tiny_alq_hw",
    "dataset": {"name": "digits", "input_bits": 4},
    "model": {"layers": [{"kind": "linear", "features": 16, "weight": "int8", "act": "uint8"},
                         {"kind": "linear", "features": 10, "weight": "int8"}]},
    "training": {"batch_size": 64, "seed": 0},
    "method": {"name": "alq", "target_bits": 1.0, "max_bits": 4, "act_bits": 2, "pow2": True, "exp_window": 8,
               "act_levels": "uniform", "classifier_bias": False, "pretrain_epochs": 1},
}


def _cfg(**method):
    d = copy.deepcopy(HW)
    d["method"].update(method)
    return parse_config(d)


@pytest.mark.parametrize("method,match", [
    ({"pow2": False, "exp_window": None}, "needs pow2: true"),
    ({"act_levels": "free"}, "act_levels: 'free' levels"),
    ({"classifier_bias": True}, "classifier_bias: a float bias"),
    ({"structures": ["subchannel2", "channel"]}, r"structures.0: 'subchannel2' groups"),
    ({}, "not binary bases yet"),
])
def test_export_refuses_in_one_line(method, match):
    cfg = _cfg(**method)
    with pytest.raises(UserError, match=match) as e:
        check_exportable(cfg, cfg.method_parts()[1], make_model(cfg, (64,), 10))
    assert "\n" not in str(e.value)


def test_exp_window_needs_pow2():
    with pytest.raises(UserError, match="exp_window bounds power-of-two"):
        _cfg(pow2=False)


def test_uniform_levels_are_brevitas_quant_relu_bit_for_bit():
    """Levels 0, step, .., 3 step; ties at the midpoints round half to even, as Brevitas' QuantReLU."""
    act = ALQAct(2, 0.9, pow2=True, uniform=True)
    act.gamma.fill_(0.3)  # -> g = 0.25, step 0.5
    act.enabled.fill_(True)
    act.eval()
    assert float(act.step()) == 0.5
    assert act.levels()[0].tolist() == [0.0, 0.5, 1.0, 1.5]
    mids = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, -1.0, 0.0, 1.5, 100.0])
    x = torch.cat([mids, torch.randn(2000) * 2])
    got = act(x)
    assert got[:9].tolist() == [0.0, 1.0, 1.0, 1.5, 1.5, 0.0, 0.0, 1.5, 1.5]
    assert torch.equal(got, brevitas_act(act, "act").eval()(x))


def test_uniform_codes_are_the_bits_of_the_level():
    act = ALQAct(3, 0.9, pow2=True, uniform=True)
    act.gamma.fill_(1.0)
    vals, codes = act.levels()
    q = ((codes + 1) / 2) @ torch.tensor([1.0, 2.0, 4.0])
    assert torch.equal(vals, 2 * q)


def test_exp_window_raises_small_coordinates_to_the_floor():
    w = ALQWeight((2, 4), "channel", 3, pow2=True, where="w", exp_window=3)
    w.mask.fill_(1.0)
    w.mask[1, 2] = 0.0
    w.alpha.copy_(torch.tensor([[1.1, 0.01, 0.3], [0.0, 0.5, 7.0]]))
    c = w.coords()
    assert c.tolist() == [[1.0, 0.125, 0.25], [0.125, 0.5, 0.0]]


def test_mantissa_rounding_is_nearest_on_the_grid():
    from quant.methods.alq_bases import round_mantissa

    x = torch.tensor([0.0, 1.0, 1.1, 1.2, 1.3, 1.9, 0.3, 5.0, 7.4])
    assert round_mantissa(x, 3).tolist() == [0.0, 1.0, 1.0, 1.25, 1.25, 2.0, 0.3125, 5.0, 7.0]
    assert round_mantissa(x, 2).tolist() == [0.0, 1.0, 1.0, 1.0, 1.5, 2.0, 0.25, 4.0, 8.0]
    assert torch.equal(round_mantissa(x, 1), torch.tensor([0.0, 1, 1, 1, 1, 2, 0.25, 4, 8]))


def test_mantissa_terms_reproduce_the_weights():
    """A basis with alpha 1.75 * 2^-3 is three terms of one plane; W_int = sum of the terms, exactly."""
    from quant.methods.alq_export import layer_integers

    w = ALQWeight((2, 5), "channel", 2, pow2=True, where="w", exp_window=6, mantissa_bits=3)
    w.quantized.fill_(True)
    w.mask.fill_(1.0)
    w.mask[1, 1] = 0.0
    w.alpha.copy_(torch.tensor([[0.22, 0.5], [1.0, 0.3]]))  # -> 0.21875 = 7 * 2^-5, 0.5, 1.0
    w.B.copy_(torch.where(torch.rand(2, 5, 2) > 0.5, 1.0, -1.0))
    w_int, f, terms = layer_integers(w)
    assert f == 5 and [len(t) for t in terms] == [4, 1]
    assert [s for s, _ in terms[0]] == [0, 1, 2, 4]
    assert torch.equal(torch.as_tensor(w_int, dtype=torch.float64), w.w_hat().double() * 32)


def test_mantissa_bits_need_pow2():
    with pytest.raises(UserError, match="mantissa_bits rounds"):
        _cfg(pow2=False, exp_window=None, mantissa_bits=2)


def test_method_defaults_stay_the_papers():
    m = alq.Config(name="alq", target_bits=1.0)
    assert (m.pow2, m.act_levels, m.classifier_bias, m.exp_window, m.mantissa_bits) == (False, "free", True, None, 1)
