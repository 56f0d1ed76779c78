"""PTQ gradients: eq. 20-21 (L2 normalisation), eq. 24 (refined STE) and eq. 25 (threshold), and LSQ levels."""
import pytest
import torch

from quant.methods.ptq_layers import L2Normalize, LSQAct, RefinedTernarySTE, m_w_times, ternarize


def _m_w_matrix(w: torch.Tensor) -> torch.Tensor:
    """Eq. 21 written out: (I - w w^T / ||w||^2) / ||w|| for one vector."""
    n = w.norm()
    return (torch.eye(len(w), dtype=w.dtype) - torch.outer(w, w) / n ** 2) / n


def test_m_w_times_equals_the_eq21_matrix_per_row():
    torch.manual_seed(0)
    w = torch.randn(4, 7, dtype=torch.float64)
    g = torch.randn(4, 7, dtype=torch.float64)
    got = m_w_times(w, g, per_tensor=False)
    for r in range(4):
        assert torch.allclose(got[r], _m_w_matrix(w[r]) @ g[r], atol=1e-12)
    flat = m_w_times(w, g, per_tensor=True).flatten()
    assert torch.allclose(flat, _m_w_matrix(w.flatten()) @ g.flatten(), atol=1e-12)


@pytest.mark.parametrize("per_tensor", [False, True])
def test_l2_normalize_gradient_matches_autograd_and_finite_differences(per_tensor):
    torch.manual_seed(1)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)  # a small conv weight
    x = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    y = torch.randn((), dtype=torch.float64)

    def loss(v, ours=True):  # eq. 19: (w^T x / ||w|| - y)^2, summed over the normalised vectors
        dims = tuple(range(v.dim())) if per_tensor else tuple(range(1, v.dim()))
        vn = L2Normalize.apply(v, per_tensor) if ours else v / v.pow(2).sum(dim=dims, keepdim=True).sqrt()
        return ((vn * x).sum() - y) ** 2

    (g_ours,) = torch.autograd.grad(loss(w), w)
    (g_auto,) = torch.autograd.grad(loss(w, ours=False), w)
    assert torch.allclose(g_ours, g_auto, atol=1e-10)
    fd = torch.zeros_like(w)
    eps = 1e-6
    with torch.no_grad():
        for i in range(w.numel()):
            d = torch.zeros(w.numel(), dtype=torch.float64)
            d[i] = eps
            d = d.view_as(w)
            fd.view(-1)[i] = (loss(w + d) - loss(w - d)) / (2 * eps)
    assert torch.allclose(g_ours, fd, atol=1e-6)
    assert g_ours.abs().max() > 1e-3  # the check is not vacuous


def test_refined_ste_forward_is_normalised_ternary():
    w = torch.tensor([[0.9, -0.05, -0.4, 0.02], [0.0, 0.0, 0.0, 0.0]])
    out = RefinedTernarySTE.apply(w, torch.tensor(0.1), False)
    s = 1 / 2 ** 0.5
    assert torch.allclose(out, torch.tensor([[s, 0.0, -s, 0.0], [0.0, 0.0, 0.0, 0.0]]))


def test_refined_ste_gradient_is_m_w_at_the_latent_weights():
    torch.manual_seed(2)
    w = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    delta = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, 6, dtype=torch.float64)
    (RefinedTernarySTE.apply(w, delta, False) * g).sum().backward()
    for r in range(5):
        assert torch.allclose(w.grad[r], _m_w_matrix(w.detach()[r]) @ g[r], atol=1e-12)


def test_refined_ste_equals_autograd_of_normalisation_when_weights_are_ternary():
    # after the resetting step w = Quant(w, 0), so Quant is the identity on w and eq. 24 is exact
    torch.manual_seed(3)
    q = ternarize(torch.randn(4, 9, dtype=torch.float64), 0.5)
    w1 = q.clone().requires_grad_(True)
    w2 = q.clone().requires_grad_(True)
    g = torch.randn(4, 9, dtype=torch.float64)
    (RefinedTernarySTE.apply(w1, torch.tensor(0.1, dtype=torch.float64), False) * g).sum().backward()
    (w2 / w2.norm(dim=1, keepdim=True) * g).sum().backward()
    nz = q != 0
    assert torch.allclose(w1.grad[nz], w2.grad[nz], atol=1e-12)


def test_delta_gradient_is_the_sum_over_nonzero_ternary_weights():
    torch.manual_seed(4)
    w = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    delta = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 8, dtype=torch.float64)
    (RefinedTernarySTE.apply(w, delta, False) * g).sum().backward()
    nonzero = ternarize(w.detach(), 0.5) != 0
    assert 0 < nonzero.sum() < w.numel()  # both kinds present
    expected = w.grad[nonzero].sum()
    assert delta.grad.shape == ()
    assert torch.allclose(delta.grad, expected, atol=1e-12)
    assert not torch.allclose(delta.grad, w.grad.sum())  # zeros really are left out


def test_lsq_levels_and_step_gradient():
    act = LSQAct(2, signed=False, levels="lsq")
    act.init_step(torch.full((4, 3), 1.5))
    assert bool(act.enabled)
    assert act.step.item() == pytest.approx(2 * 1.5 / 3 ** 0.5)
    with torch.no_grad():
        act.step.fill_(0.5)
    x = torch.tensor([[-1.0, 0.2, 0.3, 0.74, 0.76, 9.0]], requires_grad=True)
    y = act(x)
    assert y.tolist() == [[0.0, 0.0, 0.5, 0.5, 1.0, 1.5]]
    y.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 1.0, 1.0, 1.0, 0.0]]  # STE inside the clip range only
    # LSQ step gradient: (round(x/s) - x/s) inside, the clip level outside, scaled by 1/sqrt(N Qp)
    inside = [0.0 - 0.4, 1 - 0.6, 1 - 1.48, 2 - 1.52]
    expected = (sum(inside) + 3) / (6 * 3) ** 0.5
    assert act.step.grad.item() == pytest.approx(expected, rel=1e-5)
    signed = LSQAct(3, signed=True)
    signed.init_step(torch.ones(2, 2))
    with torch.no_grad():
        signed.step.fill_(1.0)
    assert signed(torch.tensor([[-9.0, -1.2, 2.6, 9.0]])).tolist() == [[-4.0, -1.0, 3.0, 3.0]]


def test_eq26_levels_are_zero_to_two_to_the_k_minus_one_minus_one():
    act = LSQAct(3, signed=False)  # the default: eq. 26, clip(y / s, 0, 2^(k-1) - 1)
    assert (act.lo, act.hi, act.hw_bits) == (0, 3, 2)
    act.init_step(torch.ones(2, 2))
    with torch.no_grad():
        act.step.fill_(1.0)
    assert act(torch.tensor([[-2.0, 1.2, 2.6, 9.0]])).tolist() == [[0.0, 1.0, 3.0, 3.0]]
    assert (LSQAct(2, signed=False).hi, LSQAct(2, signed=False, levels="lsq").hi) == (1, 3)
