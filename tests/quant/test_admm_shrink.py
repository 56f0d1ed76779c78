"""ADMM's dead channels leave the exported network (quant/methods/admm_shrink.py): filter-pruned MLP and CNN
runs on digits export smaller layers that give the same integer logits as the full network, and the QONNX
graph carries the smaller weight matrices."""
import copy

import numpy as np
import pytest
import torch

from quant.config import parse_config

QUICK = {"name": "admm", "pretrain_epochs": 2, "lr": 0.003, "rho": {"init": 0.05, "factor": 2.0, "max": 10},
         "prune": {"structure": "filter", "steps": [[0.25, 0.25, 0.0], [0.5, 0.5, 0.0]], "iterations": 1,
                   "epochs_per_iteration": 1, "retrain_epochs": 1},
         "quantize": {"iterations": 1, "epochs_per_iteration": 1, "retrain_epochs": 1, "finetune_epochs": 1}}
MLP = [{"kind": "linear", "features": 24, "weight": "int3", "act": "uint2"},
       {"kind": "linear", "features": 16, "weight": "ternary", "act": "uint2"},
       {"kind": "linear", "features": 10, "weight": "int3"}]
CNN = [{"kind": "conv", "channels": 8, "kernel": 3, "padding": 1, "weight": "int3", "act": "uint2", "pool": 2},
       {"kind": "conv", "channels": 8, "kernel": 3, "weight": "ternary", "act": "uint2"},
       {"kind": "linear", "features": 10, "weight": "int3"}]


def _run(tmp_path, layers):
    from quant.train import train_run

    cfg = parse_config({"name": "shrink", "dataset": {"name": "digits", "input_bits": 4},
                        "model": {"layers": layers},
                        "training": {"epochs": 2, "lr": 0.01, "batch_size": 64, "seed": 0},
                        "method": copy.deepcopy(QUICK)})
    train_run(cfg, tmp_path, show_progress=False)
    return cfg


def _int_logits(net, x):
    from quant.export import brevitas_logits, logit_scale, to_integers

    return to_integers(brevitas_logits(net.eval(), x), logit_scale(net), "Brevitas")


@pytest.mark.parametrize("layers", [MLP, CNN], ids=["mlp", "cnn"])
def test_dead_channels_leave_the_export_and_the_integers_stay(tmp_path, layers):
    from qonnx.core.modelwrapper import ModelWrapper

    from quant.checkpoint import load_run
    from quant.export import export_run
    from quant.methods.admm_shrink import _constants, export_net

    cfg = _run(tmp_path, layers)
    model, _, split = load_run(tmp_path)
    full, small = export_net(cfg, model, shrink=False), export_net(cfg, model)
    rows = [layer.weight.detach().flatten(1) for layer in model.quant_layers()]
    dead = [(r == 0).all(dim=1) for r in rows]
    # the first layer's dead channels feed a layer with a batch norm: all go; the second's feed the classifier:
    # only those whose constant output is 0 can go
    pos = [j for j, m in enumerate(model.body) if m in model.quant_layers()]
    k1 = _constants(model.body[pos[1] + 1], model.body[pos[1] + 2], rows[1].shape[0], layers[1]["kind"] == "conv")
    expect = [int(dead[0].sum()), int((dead[1] & (k1 == 0)).sum()), 0]
    assert int(dead[0].sum()) > 0
    assert small.removed_channels == expect
    assert [m.weight.shape[0] for m in small.quant_layers()] == [r.shape[0] - e for r, e in zip(rows, expect)]
    x = split.x_test
    assert np.array_equal(_int_logits(full, x), _int_logits(small, x))

    report = export_run(tmp_path)
    assert report["mismatches"] == 0 and report["removed_channels"] == expect
    mw = ModelWrapper(report["model"])
    shapes = [mw.get_initializer(n.input[0]).shape for n in mw.graph.node
              if n.op_type == "Quant" and mw.get_initializer(n.input[0]) is not None
              and mw.get_initializer(n.input[0]).ndim in (2, 4)]
    assert [s[0] for s in shapes] == [m.weight.shape[0] for m in small.quant_layers()]


def test_a_constant_channel_into_a_batch_norm_is_folded_exactly():
    """By hand: a dead neuron whose constant output is not zero, removed, the next batch norm takes it back."""
    from quant.methods.admm_model import AdmmNet
    from quant.methods.admm_shrink import remove_dead_channels

    cfg = parse_config({"name": "hand", "dataset": {"name": "digits", "input_bits": 4},
                        "model": {"layers": MLP}, "method": copy.deepcopy(QUICK)})
    net = AdmmNet(cfg, (1, 8, 8), 10).eval()
    lin, bn = net.body[0], net.body[1]
    with torch.no_grad():
        lin.weight[3] = 0
        bn.bias[3] = 2.0  # act(bn(0)) = 2 steps of the quantizer's range: a nonzero constant
    from quant.methods.admm_shrink import _constants

    assert float(_constants(bn, net.body[2], 24, conv=False)[3]) > 0
    x = torch.randint(0, 16, (64, 64)).float()
    before = net(x)
    removed = remove_dead_channels(net)
    assert removed[0] == 1 and net.body[0].weight.shape[0] == 23 and net.body[3].weight.shape[1] == 23
    torch.testing.assert_close(net(x), before, rtol=0, atol=1e-4)
