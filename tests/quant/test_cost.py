"""MACs and BOPs (eq. 14-16) by hand: formulas, a quant.layers.Net, a DJPQ network, a compiled graph."""
import pytest
import torch

from hw.ir import Graph

from hw.kinds.mvau import MVAU

from hw.kinds.label_select import LabelSelect
from quant import cost
from quant.config import ModelConfig
from quant.djpq_net import DJPQNet
from quant.layers import build_model


def test_formulas_eq14_to_16():
    assert cost.layerwise_pruning_ratio(0.25, 0.5) == pytest.approx(1 - 0.75 * 0.5)
    assert cost.macs(16, 8, 0.25, 0.5) == pytest.approx(12 * 4)
    assert cost.macs(3, 4, out_hw=(6, 6), kernel=(3, 3)) == 3 * 4 * 36 * 9
    assert cost.bops(48, 4, 2) == 384


def test_quantized_mlp_by_hand():
    cfg = ModelConfig.model_validate({"layers": [
        {"kind": "linear", "features": 8, "weight": "int4", "act": "uint2"},
        {"kind": "linear", "features": 10, "weight": "ternary"}]})
    rows = cost.net_costs(build_model(cfg, (64,), 10), input_bits=4)
    assert [(r.macs, r.weight_bits, r.act_bits) for r in rows] == [(512, 4, 4), (80, 2, 2)]
    assert cost.total_bops(rows) == 512 * 4 * 4 + 80 * 2 * 2
    s = cost.summary(rows, cost.at_float(rows))
    assert s["bop_compression"] == pytest.approx(592 * 1024 / (8192 + 320))
    assert s["mac_compression"] == 1.0


def test_float_conv_net_by_hand():
    cfg = ModelConfig.model_validate({"layers": [
        {"kind": "conv", "channels": 4, "kernel": 3, "weight": "int8", "act": "uint8"},
        {"kind": "linear", "features": 10, "weight": "int8"}]})
    rows = cost.net_costs(build_model(cfg, (1, 8, 8), 10, quantized=False))
    assert [r.macs for r in rows] == [1 * 4 * 6 * 6 * 9, 144 * 10]
    assert all(r.weight_bits == 32 and r.act_bits == 32 for r in rows)


def _djpq(fixed=(4, 2)):
    cfg = ModelConfig.model_validate({"layers": [
        {"kind": "linear", "features": 8, "weight": "int8", "act": "uint8"},
        {"kind": "linear", "features": 10, "weight": "int8"}]})
    q = dict(w_bits=8, a_bits=8, q_s_w=1e-4, q_s_a=1e-3, restrict="pow2", fixed_w=fixed[0], fixed_a=fixed[1],
             pow2_scale=False, alpha_th=1e-3, init_log_sigma2=-4.0)
    return DJPQNet(cfg, (64,), 10, q, input_bits=4)


def test_djpq_costs_with_pruning_and_soft_bops():
    net = _djpq()
    with torch.no_grad():
        net.gates()[0].log_sigma2[:2] = 20.0   # two of eight channels pruned (alpha = e^-20)
    rows = net.layer_costs()
    assert [(r.in_channels, r.out_channels) for r in rows] == [(64, 6), (6, 10)]
    assert cost.total_bops(rows) == 64 * 6 * 4 * 4 + 6 * 10 * 4 * 2
    # soft pruning at the threshold-free alphas (e^4 and e^-20) is within 2 % of hard pruning
    assert float(net.soft_bops(tau=1.0).detach()) == pytest.approx(cost.total_bops(rows), rel=0.02)
    assert cost.total_bops(net.dense_costs()) == (64 * 8 + 8 * 10) * 1024


def test_compiled_graph_costs():
    w = [[1, 0], [0, 1], [1, 1]]
    g = Graph(input_dtype="UINT4", input_shape=[2], layers=[
        MVAU(name="a", mode="int", mh=3, mw=2, input_dtype="UINT4", weight_dtype="INT4", acc_dtype="INT8",
             output_dtype="UINT2", weights=w, thresholds=[[0, 1, 2]] * 3),
        MVAU(name="b", mode="ternary", mh=3, mw=3, input_dtype="UINT2", weight_dtype="INT2", acc_dtype="INT4",
             output_dtype="INT4", weights=[[1, 0, -1]] * 3),
        LabelSelect(name="c", channels=3, input_dtype="INT4", output_dtype="UINT2")])
    rows = cost.graph_costs(g)
    assert [(r.macs, r.weight_bits, r.act_bits) for r in rows] == [(6, 4, 4), (9, 2, 2)]
    assert cost.total_bops(rows) == 6 * 16 + 9 * 4
