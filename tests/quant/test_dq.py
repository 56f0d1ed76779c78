"""DQ quantizer: forward of eq. 2, gradients of eq. 5-7, bit widths of eq. 3-4, Alg. 2 restriction."""
import math

import pytest
import torch

from common.errors import UserError
from quant.dq import (DQFunction, DQQuant, act_bits_eq4, bits_for_level, levels, restrict_bits,
                      weight_bits_eq3)

Q_S = 0.01


def _params(d=0.1, q_m=0.9, t=0.8):
    return (torch.tensor(d, dtype=torch.float64, requires_grad=True),
            torch.tensor(q_m, dtype=torch.float64, requires_grad=True),
            torch.tensor(t, dtype=torch.float64, requires_grad=True))


def _x():
    # below q_s, inside [q_s, q_m] (both signs), above q_m (both signs)
    return torch.tensor([0.005, -0.004, 0.2, -0.37, 0.55, 0.81, 1.3, -2.0], dtype=torch.float64,
                        requires_grad=True)


def _reference(x, d, q_m, t):
    """Eq. 2 written with autograd ops; round() passed straight through as u + (round(u) - u).detach()."""
    a = x.abs()
    mapped = torch.where(a < Q_S, torch.zeros_like(a),
                         torch.where(a > q_m, (q_m - Q_S) ** t, (a - Q_S).clamp_min(1e-30) ** t))
    u = mapped / d
    return torch.sign(x) * d * (u + (torch.round(u) - u).detach())


def test_forward_matches_eq2_by_hand():
    d, q_m, t = _params(d=0.1, q_m=0.9, t=1.0)
    x = torch.tensor([0.005, 0.26, -0.26, 0.5, 5.0], dtype=torch.float64)
    y = DQFunction.apply(x, d, q_m, t, Q_S)
    # |x|-q_s: -, 0.25 -> round(2.5)=2 (half to even), 0.49 -> 5, clipped 0.89 -> 9
    assert y.tolist() == pytest.approx([0.0, 0.2, -0.2, 0.5, 0.9])


def test_gradients_eq5_to_7_equal_autograd_of_ste_reference():
    g = torch.tensor([1.0, -2.0, 0.5, 1.5, -1.0, 0.25, 3.0, 2.0], dtype=torch.float64)
    p1, p2 = _params(), _params()
    x1, x2 = _x(), _x()
    (DQFunction.apply(x1, *p1, Q_S) * g).sum().backward()
    (_reference(x2, *p2) * g).sum().backward()
    for a, b in zip(p1, p2):
        assert float(a.grad) == pytest.approx(float(b.grad), rel=1e-12, abs=1e-12)
    # x gradient: straight through inside [q_s, q_m], zero in the dead zone and where clipped
    assert x1.grad.tolist() == pytest.approx([0, 0, 0.5, 1.5, -1.0, 0.25, 0, 0])


def test_gradients_eq5_to_7_closed_form_values():
    d, q_m, t = _params(d=0.1, q_m=0.9, t=0.8)
    x = torch.tensor([0.37, -2.0], dtype=torch.float64)
    DQFunction.apply(x, d, q_m, t, Q_S).sum().backward()
    m_in = (0.37 - Q_S) ** 0.8
    m_top = (0.9 - Q_S) ** 0.8
    eq5 = (round(m_in / 0.1) - m_in / 0.1) - (round(m_top / 0.1) - m_top / 0.1)
    eq6 = -0.8 * (0.9 - Q_S) ** (0.8 - 1)
    eq7 = m_in * math.log(0.37 - Q_S) - m_top * math.log(0.9 - Q_S)
    assert float(d.grad) == pytest.approx(eq5, rel=1e-12)
    assert float(q_m.grad) == pytest.approx(eq6, rel=1e-12)
    assert float(t.grad) == pytest.approx(eq7, rel=1e-12)


def test_eq6_eq7_against_finite_differences_of_the_mapping():
    """With the integers held fixed (what the straight-through estimate assumes), x_q moves as the mapping."""
    x = torch.tensor([0.42, -1.7], dtype=torch.float64)
    h = 1e-6

    def mapped(q_m, t):
        a = x.abs()
        return torch.sign(x) * torch.where(a > q_m, torch.tensor(q_m - Q_S, dtype=torch.float64) ** t,
                                           (a - Q_S) ** t)

    d, q_m, t = _params(d=0.05, q_m=0.9, t=1.3)
    DQFunction.apply(x, d, q_m, t, Q_S).sum().backward()
    fd_t = float((mapped(0.9, 1.3 + h) - mapped(0.9, 1.3 - h)).sum() / (2 * h))
    fd_qm = float((mapped(0.9 + h, 1.3) - mapped(0.9 - h, 1.3)).sum() / (2 * h))
    assert float(t.grad) == pytest.approx(fd_t, rel=1e-6)
    assert float(q_m.grad) == pytest.approx(fd_qm, rel=1e-6)


def test_eq3_weight_bits_at_edges():
    def b(ratio, t=1.0):
        q_m = torch.tensor(Q_S + 0.7, dtype=torch.float64)
        d = torch.tensor(0.7 ** t / ratio, dtype=torch.float64)
        return float(weight_bits_eq3(q_m, d, torch.tensor(t, dtype=torch.float64), Q_S))

    assert b(7.0) == pytest.approx(4.0)           # levels -7..7: exactly int4
    assert b(127.0) == pytest.approx(8.0)
    assert b(1.0) == pytest.approx(2.0)           # {-1, 0, 1}: ternary
    assert b(7.5) == pytest.approx(math.log2(9) + 1)   # ceil(8.5) = 9
    assert b(7.0, t=0.5) == pytest.approx(4.0)    # the mapped range (q_m - q_s)^t counts


def test_eq4_act_bits_at_edges():
    def b(ratio):
        return float(act_bits_eq4(torch.tensor(Q_S + 3.0), torch.tensor(3.0 / ratio), Q_S))

    assert b(16.0) == pytest.approx(4.0)
    assert b(15.0) == pytest.approx(math.log2(15), abs=1e-5)
    assert b(15.2) == pytest.approx(4.0)          # ceil(15.2) = 16
    assert b(256.0) == pytest.approx(8.0, abs=1e-5)
    assert b(1.0) == pytest.approx(0.0)


def test_bit_width_gradient_is_straight_through_the_ceiling():
    d = torch.tensor(0.1, requires_grad=True)
    weight_bits_eq3(torch.tensor(0.71), d, torch.tensor(1.0), Q_S).backward()
    r = 0.7 / 0.1
    assert float(d.grad) == pytest.approx(-(r / 0.1) / ((r + 1) * math.log(2)), rel=1e-4)


def test_alg2_rounding():
    # nearest power of two in log2 (Alg. 2: s' = round(log2 b)); 4 | 8 at 2^2.5 = 5.657, 8 | 16 at 11.31
    assert [restrict_bits(b, "pow2") for b in (1.2, 2.0, 2.8, 2.9, 3.99, 4.0, 5.3, 5.6, 5.7, 5.9, 6.1, 7.99,
                                               8.0, 11.3, 11.4, 16.0, 31.0, 40.0)] == \
        [2, 2, 2, 4, 4, 4, 4, 4, 8, 8, 8, 8, 8, 8, 16, 16, 32, 32]
    # footnote 2 (DQ-restrict): DQ's widths upper rounded
    assert [restrict_bits(b, "pow2_up") for b in (1.2, 2.0, 2.1, 4.0, 4.2, 5.9, 8.0, 8.5)] == [2, 2, 4, 4, 8, 8, 8, 16]
    for b in (float("nan"), float("inf")):  # a diverged run: one line, not a ValueError from math
        with pytest.raises(UserError, match="training diverged"):
            restrict_bits(b, "pow2")
    assert [restrict_bits(b, "integer") for b in (1.2, 4.0, 4.17, 7.99)] == [2, 4, 5, 8]
    with pytest.raises(UserError):
        restrict_bits(5.0, "none")


def test_alg2_adjusts_step_keeps_q_m():
    q = DQQuant(True, 5, q_m=1.0 + 1e-4, q_s=1e-4, restrict="pow2")   # eq. 3 gives 5 bits -> b' = 4
    assert float(q.continuous_bits()) == pytest.approx(5.0)
    assert q.target_bits() == 4
    assert float(q.step()) == pytest.approx(1.0 / 7)                  # (q_m - q_s)^t / (2^(4-1) - 1)
    assert float(q.q_m) == pytest.approx(1.0 + 1e-4)
    assert q.top_level() == 7 and q.hw_bits() == 4
    six = DQQuant(True, 6, q_m=1.0 + 1e-4, q_s=1e-4, restrict="pow2")  # 6 bits: log2 6 = 2.58 -> 8 bits
    assert six.target_bits() == 8 and six.top_level() == 127
    a = DQQuant(False, 5, q_m=3.0, q_s=0.0, restrict="pow2")           # eq. 4: log2(32) = 5 -> 4
    assert a.target_bits() == 4 and float(a.step()) == pytest.approx(3.0 / 15)
    out = a(torch.tensor([-1.0, 0.1, 0.31, 2.0, 9.0]))
    assert (out / (3.0 / 15)).round().tolist() == [0, 0, 2, 10, 15]   # uint4 grid, clipped at q_m


def test_alg2_backward_unchanged_step_takes_d_gradient():
    q = DQQuant(True, 5, q_m=1.0 + 1e-4, q_s=1e-4, restrict="pow2")
    x = torch.tensor([0.33, -0.6])
    q(x).sum().backward()
    step = 1.0 / 7
    m = torch.tensor([0.33 - 1e-4, 0.6 - 1e-4]) / step
    expect = float((m.round() - m)[0] - (m.round() - m)[1])
    assert float(q.d.grad) == pytest.approx(expect, rel=1e-4)


def test_fixed_bits_and_pow2_scale():
    q = DQQuant(True, 8, q_m=0.5, q_s=0.0, fixed_bits=2)
    assert q.hw_bits() == 2 and q.top_level() == 1 and not q.t.requires_grad
    p = DQQuant(True, 8, q_m=0.5, q_s=0.0, restrict="pow2", pow2_scale=True)
    s = float(p.step())
    assert math.log2(s) == round(math.log2(s)) and s >= 0.5 / 127
    assert p.top_level() <= levels(8, True)


def test_unrestricted_hardware_bits_follow_the_top_level():
    q = DQQuant(True, 8, q_m=0.5, q_s=0.0)
    with torch.no_grad():
        q.d.fill_(0.5 / 11)
    assert q.top_level() == 11 and q.hw_bits() == 5
    assert [bits_for_level(n, False) for n in (0, 1, 3, 4, 15, 16)] == [1, 1, 2, 3, 4, 5]
    assert [bits_for_level(n, True) for n in (1, 7, 8, 127)] == [2, 4, 5, 8]


def test_bad_parameters_are_user_errors():
    with pytest.raises(UserError):
        DQQuant(True, 8, q_m=0.5, q_s=0.6)
    with pytest.raises(UserError):
        DQQuant(True, 8, q_m=0.5, q_s=0.0, restrict="log")


def test_projection_keeps_q_m_above_q_s_and_the_grid_within_2_to_8_bits():
    # LeNet-5's DQ diverged when the BOPs term pushed a conv's q_m through q_s (eq. 6 then gives NaN)
    w = DQQuant(True, 8, 0.5, 1e-4)
    w.t.data.fill_(1.9)
    w.q_m.data.fill_(-1e-5)  # where one Adam step took seed 1's conv layer
    w.project_()
    assert float(w.q_m) > w.q_s
    assert float(w._range() / w._d()) == pytest.approx(levels(2, True))
    assert math.isfinite(float(w.continuous_bits()))
    x = torch.linspace(-1, 1, 41, requires_grad=True)
    w(x).sum().backward()
    assert all(math.isfinite(float(p.grad)) for p in (w.q_m, w.d, w.t))
    a = DQQuant(False, 8, 4.0, 1e-3)
    a.d.data.fill_(1e-6)  # a grid far finer than 8 bits: d is raised to the 8-bit grid's step
    a.project_()
    assert int(torch.round(a._range() / a._d())) == levels(8, False)
    assert float(a.q_m) == 4.0


def test_bit_width_has_no_gradient_at_the_two_bit_floor():
    w = DQQuant(True, 8, 0.5, 1e-4)
    w.d.data.fill_(float(w._range()) / 0.8)  # top level below 1: eq. 3 gives 2 bits
    b = w.continuous_bits()
    assert float(b) == 2.0
    g = torch.autograd.grad(b, w.q_m, allow_unused=True)[0] if b.requires_grad else None
    assert g is None or float(g) == 0.0
    w.d.data.fill_(float(w._range()) / 20)
    b = w.continuous_bits()
    assert float(torch.autograd.grad(b, w.q_m)[0]) > 0


def test_fixed_width_bits_carry_no_gradient():
    # VIBNet + fixed 8/8: the BOPs term cannot change a fixed width, so it may not move q_m or d
    q = DQQuant(True, 8, 0.5, 1e-4, fixed_bits=8)
    b = q.bits()
    assert float(b) == 8.0 and not b.requires_grad
