"""DJPQ on convolutions: eq. 15-16 of a conv layer by hand, conv channel removal keeps the integers, and a tiny
CNN whose VIB gates prune conv channels goes through export, compile and RTL verification bit-exact."""
import pytest
import torch

from common.errors import UserError
from quant import cost
from quant.config import ModelConfig, parse_config
from quant.djpq_net import DJPQNet
from quant.methods import djpq

CNN = {"layers": [{"kind": "conv", "channels": 4, "kernel": 3, "padding": 1, "weight": "int8", "act": "uint8",
                   "pool": 2},
                  {"kind": "conv", "channels": 6, "kernel": 3, "weight": "int8", "act": "uint8"},
                  {"kind": "linear", "features": 10, "weight": "int8"}]}
Q = dict(w_bits=6, a_bits=6, q_s_w=1e-4, q_s_a=1e-2, restrict="pow2", fixed_w=None, fixed_a=None,
         pow2_scale=False, alpha_th=1e-3, init_log_sigma2=-4.0)


def _net(fixed=(None, None)):
    torch.manual_seed(2)
    return DJPQNet(ModelConfig.model_validate(CNN), (1, 8, 8), 10, {**Q, "fixed_w": fixed[0], "fixed_a": fixed[1]},
                   input_bits=4)


def _prune(net):
    """One of conv 1's four channels and two of conv 2's six pruned (alpha = e^-30 / mu^2)."""
    with torch.no_grad():
        g0, g1 = net.gates()
        g0.log_sigma2[2] = 30.0
        g1.log_sigma2[[0, 4]] = 30.0


def test_conv_bops_by_hand():
    net = _net(fixed=(4, 2))
    djpq.configure(net, "djpq")
    _prune(net)
    rows = net.layer_costs()
    # 8x8 input, conv 3x3 padding 1 -> 8x8, pool -> 4x4, conv 3x3 -> 2x2, flatten 6 x 2 x 2 -> 10
    conv1 = 1 * 3 * 8 * 8 * 3 * 3            # 1 input channel, 3 of 4 kept, 8x8 outputs, 3x3 kernel
    conv2 = 3 * 4 * 2 * 2 * 3 * 3            # 3 of 4 inputs, 4 of 6 outputs kept, 2x2 outputs
    fc = 4 * 2 * 2 * 10                      # 4 kept channels of 2x2 positions each, 10 classes
    assert [r.macs for r in rows] == [conv1, conv2, fc]
    assert [(r.in_channels, r.out_channels) for r in rows] == [(1, 3), (3, 4), (16, 10)]
    assert [(r.weight_bits, r.act_bits) for r in rows] == [(4, 4), (4, 2), (4, 2)]
    assert cost.total_bops(rows) == conv1 * 4 * 4 + conv2 * 4 * 2 + fc * 4 * 2
    assert net.kept_weights() == [3 * 9, 3 * 4 * 9, 16 * 10]
    assert float(net.soft_bops(tau=1.0).detach()) == pytest.approx(cost.total_bops(rows), rel=0.02)
    dense = [1 * 4 * 64 * 9, 4 * 6 * 4 * 9, 24 * 10]
    assert [r.macs for r in net.dense_costs()] == dense
    assert cost.total_bops(net.dense_costs()) == sum(dense) * 32 * 32


def _pruned_cnn():
    net = _net()
    x = torch.randint(0, 16, (256, 64)).float()
    djpq.configure(net, "djpq")
    net.train()
    net(x)  # batch-norm running statistics
    djpq.calibrate(net, x, djpq.Config(name="djpq"))
    _prune(net)
    with torch.no_grad():
        net.gates()[0].mu[1] = -0.6          # a negative gate folds into the batch norm scale
        net.gates()[1].mu[:] = torch.linspace(0.5, 1.5, 6)
        net.blocks[1].bn.running_var.uniform_(0.5, 2.0)
    return net.eval(), x


def test_conv_channel_removal_keeps_the_integers():
    net, x = _pruned_cnn()
    exp = net.to_brevitas()
    assert [tuple(l.weight.shape) for l in exp.quant_layers()] == [(3, 1, 3, 3), (4, 3, 3, 3), (10, 16)]
    with torch.no_grad():
        a, b = net(x), exp(x)
    scale = float(net.blocks[-1].wq.step()) * float(net.blocks[1].aq.step())
    ia = torch.round(a / scale)
    assert torch.allclose(a / scale, ia, atol=0.05)
    assert torch.equal(ia, b)  # the export's logits are the integers themselves
    assert len(set(ia.argmax(1).tolist())) > 1   # the logits are not constant


def test_conv_config_errors():
    bad = {"layers": [{"kind": "linear", "features": 8, "weight": "int8", "act": "uint8"},
                      {"kind": "conv", "channels": 4, "weight": "int8", "act": "uint8"},
                      {"kind": "linear", "features": 10, "weight": "int8"}]}
    with pytest.raises(UserError, match="convs come first"):
        DJPQNet(ModelConfig.model_validate(bad), (1, 8, 8), 10, Q, 4)
    pool = {"layers": [{"kind": "conv", "channels": 4, "kernel": 3, "weight": "int8", "act": "uint8", "pool": 8},
                       {"kind": "linear", "features": 10, "weight": "int8"}]}
    with pytest.raises(UserError, match="pool: 8 is larger"):
        DJPQNet(ModelConfig.model_validate(pool), (1, 8, 8), 10, Q, 4)


TINY_CNN = {"name": "tiny_djpq_cnn", "dataset": {"name": "digits", "input_bits": 4},
            "model": {"layers": [{"kind": "conv", "channels": 8, "kernel": 3, "weight": "int8", "act": "uint8"},
                                 {"kind": "conv", "channels": 8, "kernel": 3, "weight": "int8", "act": "uint8",
                                  "pool": 2},
                                 {"kind": "linear", "features": 10, "weight": "int8"}]},
            "training": {"epochs": 4, "batch_size": 64, "seed": 0},
            # a strong gate term and fast gate steps, so that 4 epochs prune channels
            "method": {"name": "djpq", "variant": "djpq", "restrict": "pow2", "pretrain_epochs": 3,
                       "anneal_epochs": 1, "gamma": 0.05, "beta": 1e-6, "init_weight_bits": 4,
                       "init_act_bits": 4, "lr_gates": 0.2, "init_log_sigma2": -2.0}}


@pytest.mark.slow  # 63-77 s; make test keeps the conv BOPs, channel-removal and refusal tests above
@pytest.mark.sim
def test_pruned_cnn_exports_compiles_and_verifies(tmp_path):
    from hw.compile import compile_model
    from hw.ir import Graph
    from quant.export import export_run
    from quant.train import train_run
    from sim.verify import verify

    run = tmp_path / "run"
    m = train_run(parse_config(TINY_CNN), run, show_progress=False)
    assert m["test_accuracy"] > 0.5
    kept = m["kept_channels"]
    assert kept[0] < 8 or kept[1] < 8, m["kept_channels"]     # conv channels pruned ...
    assert export_run(run)["mismatches"] == 0               # ... and removed from the QONNX graph
    report = compile_model(run / "model.qonnx.onnx", tmp_path / "hw")
    assert report["reference_vs_finn_mismatches"] == 0
    mv = Graph.load(tmp_path / "hw" / "graph.json").compute_layers
    assert [l.mh for l in mv] == kept
    assert [l.mw for l in mv] == [1 * 9, kept[0] * 9, kept[1] * 2 * 2]
    rows = cost.graph_costs(Graph.load(tmp_path / "hw" / "graph.json"))
    assert [r.macs for r in rows] == m["macs_per_layer"]
    assert cost.total_bops(rows) == m["bops"]
    v = verify(tmp_path / "hw", vectors=8)
    assert v["vectors"] == 450 + 8 and v["mismatches"] == 0
    assert v["cycles_per_frame"] == v["expected_cycles_per_frame"]


def test_fit_board_refuses_a_conv_net_in_one_line(cli, tmp_path):
    import yaml

    config = tmp_path / "cnn.yaml"
    config.write_text(yaml.safe_dump(TINY_CNN))
    code, _, err = cli("train", config, "--out", tmp_path / "out", "--fit-board", "icebreaker",
                       "--target-fps", "1000")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "linear DJPQ networks only" in err, err
    assert not (tmp_path / "out").exists()
