"""DJPQ method: config errors, physical channel removal keeps the function, tiny runs, the hardware chain."""
import json

import numpy as np
import pytest
import torch

from common.errors import UserError
from quant.config import ModelConfig, parse_config
from quant.djpq_net import DJPQNet
from quant.methods import djpq
from quant.train import train_run


def _run_cfg(method: dict, hidden: int = 16, epochs: int = 2) -> dict:
    return {"name": "tiny", "dataset": {"name": "digits", "input_bits": 4},
            "model": {"layers": [{"kind": "linear", "features": hidden, "weight": "int8", "act": "uint8"},
                                 {"kind": "linear", "features": hidden, "weight": "int8", "act": "uint8"},
                                 {"kind": "linear", "features": 10, "weight": "int8"}]},
            "training": {"epochs": epochs, "batch_size": 64, "seed": 0},
            "method": {"name": "djpq", "pretrain_epochs": 2, "vib_epochs": 2, "anneal_epochs": 1, **method}}


def test_config_errors_are_user_errors():
    with pytest.raises(UserError, match="fixed_bits"):
        parse_config(_run_cfg({"variant": "fixed"}))
    with pytest.raises(UserError, match="unknown key"):
        parse_config(_run_cfg({"bogus": 1}))
    with pytest.raises(UserError, match="2..8"):
        parse_config(_run_cfg({"variant": "fixed", "fixed_bits": [16, 8]}))
    conv = _run_cfg({})
    conv["model"]["layers"][0] = {"kind": "conv", "channels": 4, "weight": "int8", "act": "uint8"}
    cfg = parse_config(conv)
    with pytest.raises(UserError, match="needs image data"):
        djpq.build_model(cfg, cfg.method_parts()[1], (64,), 10)


def _pruned_net(restrict="pow2"):
    torch.manual_seed(1)
    cfg = ModelConfig.model_validate(_run_cfg({})["model"])
    q = dict(w_bits=6, a_bits=6, q_s_w=1e-4, q_s_a=1e-2, restrict=restrict, fixed_w=None, fixed_a=None,
             pow2_scale=False, alpha_th=1e-3, init_log_sigma2=-4.0)
    net = DJPQNet(cfg, (64,), 10, q, input_bits=4)
    x = torch.randint(0, 16, (256, 64)).float()
    djpq.configure(net, "djpq")
    net.train()
    net(x)  # batch-norm running statistics
    m = djpq.Config(name="djpq")
    djpq.calibrate(net, x, m)
    with torch.no_grad():
        g0, g1 = net.gates()
        g0.log_sigma2[[1, 5, 6]] = 30.0          # pruned: alpha ~ e^-30
        g0.mu[3] = -0.7                          # a negative gate folds into batch norm too
        g1.mu[:] = torch.linspace(0.5, 1.5, 16)
        g1.log_sigma2[[0, 15]] = 30.0
        net.blocks[0].bn.running_var.uniform_(0.5, 2.0)
    return net.eval(), x


def test_channel_removal_keeps_the_function():
    net, x = _pruned_net()
    exp = net.to_brevitas()
    lin = exp.quant_layers()
    assert [tuple(l.weight.shape) for l in lin] == [(13, 64), (14, 13), (10, 14)]
    with torch.no_grad():
        a, b = net(x), exp(x)
    scale = float(net.blocks[-1].wq.step().detach()) * float(net.blocks[1].aq.step().detach())
    ia = torch.round(a / scale)
    assert torch.allclose(a / scale, ia, atol=0.05)
    assert torch.equal(ia, b)  # the export's logits are the integers themselves
    # exported datatypes are the learned, restricted bit widths
    assert [int(l.quant_weight().bit_width) for l in lin] == [b.wq.hw_bits() for b in net.blocks]
    assert all(int(l.quant_weight().bit_width) in (2, 4, 8) for l in lin)


def test_export_refuses_an_unaligned_activation_grid():
    net, _ = _pruned_net(restrict="none")
    with torch.no_grad():
        q = net.act_quantizers()[0]
        q.d.fill_(float(q.q_m - q.q_s) / 11)   # top level 11: no uintN grid holds exactly 0..11
    with pytest.raises(UserError, match="restrict: integer or pow2"):
        net.to_brevitas()


@pytest.mark.parametrize("method,check", [
    ({"variant": "fixed", "fixed_bits": [2, 2]}, lambda m: m["weight_bits_per_layer"] == [2, 2, 2]
     and m["act_bits_per_layer"] == [2, 2] and m["bops"] == 16 * 64 * 2 * 4 + 16 * 16 * 4 + 16 * 10 * 4),
    ({"variant": "vib_dq", "gamma": 0.05}, lambda m: set(m["phases"]) == {"pretrain", "vib", "quant"}
     and "pruned_float_accuracy" in m),
    ({"variant": "djpq", "restrict": "integer"}, lambda m: all(2 <= b <= 8 for b in m["weight_bits_per_layer"])),
])
def test_tiny_runs(tmp_path, method, check):
    m = train_run(parse_config(_run_cfg(method)), tmp_path, show_progress=False)
    assert check(m), m
    assert m["test_accuracy"] > 0.3
    assert m["bop_compression"] == pytest.approx(m["float_bops"] / m["bops"], rel=1e-3)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["params"] == sum(a * b for a, b in zip([64] + saved["kept_channels"][:-1], saved["kept_channels"]))


def test_resume_skips_finished_phases(tmp_path):
    cfg = parse_config(_run_cfg({"variant": "dq"}))
    first = train_run(cfg, tmp_path, show_progress=False)
    again = train_run(cfg, tmp_path, resume=True, show_progress=False)
    assert again["phases"] == first["phases"] and again["test_accuracy"] == first["test_accuracy"]


@pytest.mark.slow
def test_tiny_djpq_run_exports_and_compiles_exactly(tmp_path):
    from hw.compile import compile_model
    from hw.ir import Graph
    from quant import cost
    from quant.export import export_run

    run = tmp_path / "run"
    m = train_run(parse_config(_run_cfg({"variant": "djpq", "gamma": 0.02, "beta": 2e-6}, epochs=4)), run,
                  show_progress=False)
    assert export_run(run)["mismatches"] == 0
    report = compile_model(run / "model.qonnx.onnx", tmp_path / "hw")
    assert report["reference_vs_finn_mismatches"] == 0
    graph = Graph.load(tmp_path / "hw" / "graph.json")
    mv = graph.compute_layers
    assert [l.mh for l in mv] == m["kept_channels"]
    rows = cost.graph_costs(graph)
    assert [r.weight_bits for r in rows] == m["weight_bits_per_layer"]
    assert [r.act_bits for r in rows] == [4] + m["act_bits_per_layer"]
    assert cost.total_bops(rows) == m["bops"]
    assert np.isfinite(report["expected_fps"])


def test_dq_restrict_trains_unrestricted_then_upper_rounds_to_powers_of_two(tmp_path):
    """Paper 001 footnote 2: DQ-restrict is DQ's learned widths upper rounded, not Alg. 2 in the loop."""
    from quant.dq import restrict_bits

    cfg = parse_config(_run_cfg({"variant": "dq", "restrict": "pow2_up", "restrict_after": True,
                                 "init_weight_bits": 6, "init_act_bits": 5}))
    m = train_run(cfg, tmp_path, show_progress=False)
    free = m["phases"]["unrestricted"]
    assert m["restrict_after"] and "test_accuracy" in free
    assert m["weight_bits_per_layer"] == [restrict_bits(b, "pow2_up") for b in m["weight_bits_continuous"]]
    assert all(b in (2, 4, 8, 16, 32) for b in m["weight_bits_per_layer"] + m["act_bits_per_layer"])
    assert all(r >= u for r, u in zip(m["weight_bits_per_layer"], free["weight_bits_per_layer"]))
    assert m["bops"] >= free["bops"]
    with pytest.raises(UserError, match="restrict_after needs"):
        parse_config(_run_cfg({"variant": "dq", "restrict": "none", "restrict_after": True}))


def test_float_pretraining_layers_end_in_a_relu():
    """The float phases train f_l with its nonlinearity: a disabled activation quantizer is a ReLU (it once
    passed values through, so pre-training fitted a linear network)."""
    net, x = _pruned_net()
    djpq.configure(net, "pretrain")
    b = net.blocks[0]
    pre = b.pre_activation(net.prepare(x))
    assert (pre < 0).any()
    assert torch.equal(b.activate(pre), pre.clamp_min(0))
    assert torch.equal(b.wq(b.weight), b.weight)   # weights stay float


def test_cached_pretraining_gives_the_same_run_as_training_it(tmp_path):
    # the table trains the float pre-training once a seed; a row that loads it must equal one that trains it
    fixed = {"variant": "fixed", "fixed_bits": [4, 4]}
    plain = train_run(parse_config(_run_cfg(fixed)), tmp_path / "plain", show_progress=False)
    with djpq.pretrain_cache(tmp_path / "cache"):
        train_run(parse_config(_run_cfg({"variant": "dq", "restrict": "none"})), tmp_path / "dq",
                  show_progress=False)  # fills the cache with its (identical) pre-training
        cached = train_run(parse_config(_run_cfg(fixed)), tmp_path / "cached", show_progress=False)
    assert cached["phases"]["pretrain"].get("cached") is True
    assert cached["test_accuracy"] == plain["test_accuracy"]
    assert cached["float_accuracy"] == plain["float_accuracy"]
    a = torch.load(tmp_path / "plain" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "cached" / "model.pt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
