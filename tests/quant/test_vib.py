"""VIBNet gates: alpha, eq. 13 bound, hard (eq. 18) and soft (eq. 19) pruning ratios, sampling (eq. 10)."""
import math

import pytest
import torch

from quant.vib import VIBGate, vib_loss


def _gate():
    g = VIBGate(4, alpha_th=1e-3)
    with torch.no_grad():
        g.mu.copy_(torch.tensor([1.0, 0.01, -0.5, 0.02]))
        g.log_sigma2.copy_(torch.log(torch.tensor([0.01, 1.0, 0.25, 0.04])))
    return g


def test_alpha_and_eq13_term():
    g = _gate()
    alpha = [1.0 / 0.01, 1e-4 / 1.0, 0.25 / 0.25, 4e-4 / 0.04]
    assert g.alpha().tolist() == pytest.approx(alpha, rel=1e-5)
    assert float(g.kl()) == pytest.approx(sum(math.log1p(a) for a in alpha), rel=1e-5)
    ce = torch.tensor(0.7)
    assert float(vib_loss(ce, [g, g], 0.5)) == pytest.approx(0.7 + 0.5 * 2 * sum(math.log1p(a) for a in alpha),
                                                             rel=1e-5)


def test_hard_pruning_eq18():
    g = _gate()  # alphas 100, 1e-4, 1, 1e-2 against 1e-3: one channel pruned
    assert g.keep_mask().tolist() == [1, 0, 1, 1]
    assert g.pruned_ratio() == pytest.approx(0.25)
    assert g.gate_values().tolist() == pytest.approx([1.0, 0.0, -0.5, 0.02])


def test_soft_pruning_eq19_and_its_gradient():
    g = VIBGate(2, alpha_th=1e-3)
    with torch.no_grad():
        g.mu.fill_(1.0)
        g.log_sigma2.copy_(torch.tensor([-math.log(1e-3), -math.log(1e-3) - 2.0]))  # alpha = th, alpha = th*e^2
    p = g.soft_pruned_ratio(tau=1.0)
    assert float(p) == pytest.approx((0.5 + 1 / (1 + math.exp(2.0))) / 2, rel=1e-5)
    p.backward()
    assert (g.log_sigma2.grad > 0).all()   # more noise -> smaller alpha -> more pruned
    assert float(g.soft_pruned_ratio(tau=1e-3)) == pytest.approx(0.25, abs=1e-3)  # -> eq. 18 as tau -> 0


def test_sampling_eq10_train_and_mean_at_eval():
    torch.manual_seed(0)
    g = _gate()
    x = torch.ones(20000, 4)
    z = g.train()(x)
    assert z[:, 0].mean().item() == pytest.approx(1.0, abs=0.005)
    assert z[:, 0].std().item() == pytest.approx(0.1, rel=0.03)
    assert z[:, 2].std().item() == pytest.approx(0.5, rel=0.03)
    assert (z[:, 1] == 0).all()            # pruned channels stay exactly zero
    assert torch.allclose(g.eval()(torch.ones(3, 4)), torch.tensor([[1.0, 0.0, -0.5, 0.02]] * 3))
    g.frozen = True
    assert torch.allclose(g.train()(torch.ones(2, 4)), torch.tensor([[1.0, 0.0, -0.5, 0.02]] * 2))
    assert float(g.kl()) == 0.0


def test_disabled_gate_is_identity_and_conv_shapes():
    g = _gate()
    g.enabled = False
    x = torch.randn(3, 4)
    assert torch.equal(g(x), x) and g.pruned_ratio() == 0.0
    g.enabled = True
    y = g.eval()(torch.ones(2, 4, 3, 3))
    assert y[:, 1].abs().sum() == 0 and y[0, 2, 1, 1] == -0.5
