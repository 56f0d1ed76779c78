"""PTQ trains as paper 000's Section 5 by default: SGD momentum 0.9, lr 1e-3, batch 128, cosine restarted every
10 epochs, from a pretrained float model, the first layer in float, no classifier gain."""
import copy

import pytest
import torch
from torch import nn

from common.errors import UserError
from quant.build import make_model
from quant.config import parse_config
from quant.methods.ptq import _optimizer, _phase_epochs, schedule

BASE = {
    "name": "ptq_paper",
    "dataset": {"name": "digits", "input_bits": 4},
    "model": {"layers": [{"kind": "linear", "features": 16, "weight": "ternary", "act": "uint3"},
                         {"kind": "linear", "features": 10, "weight": "ternary"}]},
    "training": {"epochs": 2, "seed": 0},
    "method": {"name": "ptq"},
}


def _cfg(**method):
    d = copy.deepcopy(BASE)
    d["method"].update(method)
    return parse_config(d)


def test_defaults_are_the_papers():
    m = _cfg().method_parts()[1]
    assert (m.optimizer, m.lr, m.momentum, m.batch_size, m.restart_epochs, m.weight_decay) == \
        ("sgd", 1e-3, 0.9, 128, 10, 1e-4)
    assert (m.pretrained, m.first_layer, m.last_layer, m.classifier_gain, m.act_levels) == \
        (True, "float", "ternary", False, "eq26")


def test_sgd_momentum_and_lr_come_from_the_method_config():
    cfg = _cfg(momentum=0.5, lr=0.02)
    model = make_model(cfg, (64,), 10)
    opt, _ = _optimizer(model, cfg.training, cfg.method_parts()[1], 20, "prune")
    assert isinstance(opt, torch.optim.SGD)
    assert {g["momentum"] for g in opt.param_groups} == {0.5}
    assert opt.param_groups[0]["lr"] == 0.02
    adam, _ = _optimizer(model, cfg.training, _cfg(optimizer="adam").method_parts()[1], 20, "prune")
    assert isinstance(adam, torch.optim.Adam)
    # the float pre-training uses training.optimizer (adam by default), not the PTQ phases' SGD
    fl, _ = _optimizer(model, cfg.training, cfg.method_parts()[1], 20, "float")
    assert isinstance(fl, torch.optim.Adam)


def test_cosine_restarts_every_ten_epochs():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1e-3)
    sched = schedule(opt, 30, 10)
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == lrs[10] == lrs[20] == pytest.approx(1e-3)
    assert lrs[9] < 1e-4 and lrs[19] < 1e-4 and lrs[5] < lrs[4]
    one = torch.optim.SGD([p], lr=1e-3)
    s1 = schedule(one, 30, 0)
    for _ in range(10):
        one.step()
        s1.step()
    assert one.param_groups[0]["lr"] < 1e-3 and one.param_groups[0]["lr"] > 5e-4  # no restart at 10


def test_first_layer_float_by_default_and_no_classifier_gain():
    model = make_model(_cfg(), (64,), 10)
    layers = model.quant_layers()
    assert type(layers[0]) is nn.Linear and len(model.ptq_layers()) == 1
    assert not hasattr(model.ptq_layers()[0].w, "log_gain")
    gained = make_model(_cfg(classifier_gain=True), (64,), 10)
    assert hasattr(gained.ptq_layers()[-1].w, "log_gain")


def test_pretrained_adds_a_float_phase_first():
    cfg = _cfg(epochs={"float": 4, "pretrain": 2, "prune": 1, "quantize": 3})
    assert _phase_epochs(cfg, cfg.method_parts()[1]) == {"float": 4, "pretrain": 2, "prune": 1, "quantize": 3}
    scratch = _cfg(pretrained=False)
    assert list(_phase_epochs(scratch, scratch.method_parts()[1])) == ["pretrain", "prune", "quantize"]


def test_float_phase_forward_is_the_plain_weight():
    model = make_model(_cfg(first_layer="ternary"), (64,), 10)
    w = model.ptq_layers()[0].w
    w.stage.fill_(-1)
    assert torch.equal(w(), w.weight * w.mask)
    w.stage.fill_(0)
    assert torch.allclose(w().norm(dim=1), torch.ones(16))


def test_eq26_on_uint1_is_a_user_error():
    d = copy.deepcopy(BASE)
    d["model"]["layers"][0]["act"] = "uint1"
    with pytest.raises(UserError, match="eq. 26"):
        make_model(parse_config(d), (64,), 10)
