"""ALQ (paper 003): Alg. 1, the groupings, AMSGrad, eq. 19/23/13, alpha-domain pruning to a bit target, the
activation bases, config errors, and tiny digits runs that train, save and resume to the same result."""
import copy
import json
import math

import pytest
import torch

from common.errors import UserError
from quant.config import parse_config
from quant.methods import alq, alq_bases as ab
from quant.methods.alq_net import ALQAct
from quant.train import train_run

# 64 -> 16 -> 16 -> 10 with every group 16 weights (layer 0 cut into 4 sub-channels): N = 1,440 weights,
# so a 0.7-bit target is 1,008 bits = 63 bases of 16 and can be met exactly.
TINY = {
    "name": "tiny_alq",
    "dataset": {"name": "digits", "input_bits": 4},
    "model": {"layers": [{"kind": "linear", "features": 16, "weight": "int8", "act": "uint8"},
                         {"kind": "linear", "features": 16, "weight": "int8", "act": "uint8"},
                         {"kind": "linear", "features": 10, "weight": "int8"}]},
    "training": {"batch_size": 64, "seed": 0},
    "method": {"name": "alq", "target_bits": 0.7, "max_bits": 4, "act_bits": 2,
               "structures": ["subchannel4", "channel", "channel"], "pretrain_epochs": 8,
               "init_epochs": {"bases": 1, "coords": 1}, "round_epochs": {"bases": 1, "coords": 1},
               "final_epochs": {"bases": 2, "coords": 2}, "prune_ratio": 0.5, "prune_epochs": 2, "lr_bases": 0.03,
               "lr_coords": 0.001},
}


def _cfg(**method):
    d = copy.deepcopy(TINY)
    d["method"].update(method)
    return parse_config(d)


# ------------------------------------------------------------------------------------------- Alg. 1
def test_sketch_reconstructs_exactly_with_enough_bases_and_the_residual_falls_with_each():
    torch.manual_seed(0)
    w = torch.randn(5, 6, dtype=torch.float64)
    hist = []
    b, alpha, mask = ab.sketch(w, max_bits=6, sigma=0.0, history=hist)
    assert torch.allclose(ab.reconstruct(b, alpha, mask), w, atol=1e-9)  # n independent bases span R^n
    assert set(b.unique().tolist()) <= {-1.0, 1.0} and bool((alpha >= 0).all())
    res = torch.stack(hist)  # [bases, groups]
    for g in range(5):
        live = res[:, g][res[:, g] > 1e-18]
        assert len(live) >= 1 and bool((live[1:] < live[:-1]).all()), res[:, g]
    # with fewer bases than weights: strictly falling, never exact
    hist = []
    w = torch.randn(3, 64, dtype=torch.float64)
    ab.sketch(w, max_bits=5, history=hist)
    r = torch.stack(hist)
    assert bool((r[1:] < r[:-1]).all()) and bool((r[-1] > 0).all())
    # the first basis is sign(w) with alpha = mean |w| (least squares of one basis)
    b, alpha, mask = ab.sketch(w, max_bits=1)
    assert torch.equal(b[:, :, 0], torch.where(w >= 0, 1.0, -1.0).double())
    assert torch.allclose(alpha[:, 0], w.abs().mean(1))


def test_sketch_stops_at_sigma():
    w = torch.tensor([[1.0, -1.0, 1.0, 1.0], [3.0, 1.0, -2.0, 0.5]])
    b, alpha, mask = ab.sketch(w, max_bits=4, sigma=1e-12)
    assert mask[0].tolist() == [1, 0, 0, 0]  # one basis reproduces +-1 exactly
    assert mask[1].sum() > 1
    assert torch.allclose(ab.reconstruct(b, alpha, mask)[0], w[0])


@pytest.mark.parametrize("shape,spec,gn", [((6, 8), "channel", (6, 8)), ((6, 8), "subchannel2", (12, 4)),
                                           ((4, 3, 5, 5), "kernel", (12, 25)), ((4, 3, 5, 5), "pixel", (100, 3)),
                                           ((4, 3, 5, 5), "channel", (4, 75))])
def test_groupings_round_trip(shape, spec, gn):
    w = torch.randn(shape)
    kind, k = ab.parse_structure(spec, shape, "x")
    g = ab.to_groups(w, kind, k)
    assert tuple(g.shape) == gn
    assert torch.equal(ab.from_groups(g, kind, k, shape), w)
    if spec == "pixel":  # a group is w[c, :, h, w]
        assert torch.equal(g[1 * 25 + 2 * 5 + 3], w[1, :, 2, 3])
    if spec == "subchannel2":
        assert torch.equal(g[3], w[1, 4:])


# ------------------------------------------------------------------------------------------ AMSGrad
def test_amsgrad_step_against_hand_computation_and_torch():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    grads = [torch.tensor([0.1, -0.2], dtype=torch.float64), torch.tensor([0.3, -0.001], dtype=torch.float64)]
    # by hand, element 0 and 1, two steps
    m1 = [0.1 * 0.1, 0.1 * -0.2]
    v1 = [0.001 * 0.01, 0.001 * 0.04]
    m2 = [0.9 * m1[0] + 0.1 * 0.3, 0.9 * m1[1] + 0.1 * -0.001]
    v2 = [0.999 * v1[0] + 0.001 * 0.09, 0.999 * v1[1] + 0.001 * 0.000001]
    vmax2 = [max(v1[0], v2[0]), max(v1[1], v2[1])]  # element 1: v falls, the maximum keeps step 1's
    x_hand = [0.5, -0.5]
    for i in range(2):
        x_hand[i] -= lr * (m1[i] / 0.1) / (math.sqrt(v1[i] / 0.001) + eps)
        x_hand[i] -= lr * (m2[i] / (1 - b1 ** 2)) / (math.sqrt(vmax2[i] / (1 - b2 ** 2)) + eps)
    assert vmax2[1] == v1[1]
    state = {"m": torch.zeros(2, dtype=torch.float64), "v": torch.zeros(2, dtype=torch.float64),
             "vmax": torch.zeros(2, dtype=torch.float64), "step": torch.zeros((), dtype=torch.long)}
    x = torch.tensor([0.5, -0.5], dtype=torch.float64)
    p = torch.nn.Parameter(x.clone())
    opt = torch.optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, amsgrad=True)
    for gr in grads:
        g, h = ab.amsgrad_moments(gr, state, lr, (b1, b2), eps)
        x = x - g / h
        p.grad = gr.clone()
        opt.step()
    assert x.tolist() == pytest.approx(x_hand, rel=1e-12, abs=1e-15)
    assert torch.allclose(x, p.detach(), rtol=1e-12, atol=1e-15)
    assert int(state["step"]) == 2


# ----------------------------------------------------------------------------------- eq. 19, 23, 13
def test_nearest_codes_is_the_exhaustive_search():
    torch.manual_seed(1)
    coords = torch.rand(7, 3)
    target = torch.randn(7, 20)
    b = ab.nearest_codes(target, coords)
    codes = ab.all_codes(3)
    for g in range(7):
        vals = codes @ coords[g]
        best = (target[g][:, None] - vals[None, :]).abs().min(1).values
        got = (target[g] - b[g] @ coords[g]).abs()
        assert torch.allclose(got, best)


def test_refit_alpha_minimises_the_quadratic_model():
    torch.manual_seed(2)
    g_, n, i = 4, 30, 3
    b = torch.where(torch.rand(g_, n, i) > 0.5, 1.0, -1.0).double()
    h = torch.rand(g_, n).double() + 0.1
    grad = torch.randn(g_, n).double() * 0.01
    w_hat = torch.randn(g_, n).double()
    mask = torch.ones(g_, i).double()
    mask[1, 2] = 0
    a = ab.refit_alpha(b, h, grad, w_hat, mask)
    assert a[1, 2] == 0

    def f(alpha):  # eq. 10 at w = B alpha
        d = torch.einsum("gni,gi->gn", b, alpha * mask) - w_hat
        return (grad * d).sum() + 0.5 * (h * d * d).sum()

    best = f(a)
    for _ in range(20):
        assert f(a + 1e-3 * torch.randn_like(a) * mask) > best


def test_choose_pruned_removes_smallest_scores_to_the_goal_and_keeps_a_layer_alive():
    scores = [torch.tensor([[0.5, 0.1], [0.3, 0.9]]), torch.tensor([[0.2, 0.05]])]
    masks = [torch.ones(2, 2), torch.ones(1, 2)]
    # 16 bits an alpha in both layers: 6 alpha = 96 bits; goal 48 bits -> remove 3
    # in ascending order 0.05, 0.1, then 0.2 would empty layer 1, so 0.3 goes instead
    rem = ab.choose_pruned(scores, masks, [16, 16], 96, 48, k_percent=100)
    assert rem[0].tolist() == [[0, 1], [1, 0]] and rem[1].tolist() == [[0, 1]]
    # different bits per alpha: the goal is met at the first removal reaching it (32 + 16 >= 40)
    rem = ab.choose_pruned(scores, masks, [16, 32], 128, 88, k_percent=100)
    assert rem[0].tolist() == [[0, 1], [0, 0]] and rem[1].tolist() == [[0, 1]]
    # k % small: each layer still offers as many candidates as the iteration removes, and the scores decide
    rem = ab.choose_pruned(scores, masks, [16, 16], 96, 64, k_percent=1)
    assert rem[0].tolist() == [[0, 1], [0, 0]] and rem[1].tolist() == [[0, 1]]
    many = [torch.linspace(0, 1, 400).reshape(100, 4), torch.linspace(0.5, 2, 400).reshape(100, 4)]
    rem = ab.choose_pruned(many, [torch.ones(100, 4)] * 2, [1, 1], 800, 790, k_percent=1)
    assert [int(r.sum()) for r in rem] == [10, 0]
    # a goal of 0 bits cannot empty a layer
    rem = ab.choose_pruned(scores, masks, [16, 16], 96, 0, k_percent=1)
    assert all(int((m - r).sum()) == 1 for m, r in zip(masks, rem))
    # keep_groups: a classifier group keeps its last basis
    one = [torch.tensor([[0.1, 0.2], [0.3, 0.4]])]
    rem = ab.choose_pruned(one, [torch.ones(2, 2)], [8], 32, 0, k_percent=100, keep_groups=[True])
    assert rem[0].tolist() == [[1, 0], [1, 0]]
    f = ab.loss_increment(torch.tensor([0.1]), torch.tensor([2.0]), torch.tensor([0.5]))
    assert float(f) == pytest.approx(-0.05 + 0.25)


def test_schedule_is_eq28_ending_at_the_goal():
    assert alq.schedule(1000, 300, 0.4) == [600, 360, 300]
    assert alq.schedule(1000, 1000, 0.4) == []


# ------------------------------------------------------------------------------------- activations
def test_activation_levels_and_nearest_encoding():
    act = ALQAct(2, 0.9, pow2=False)
    act.x_ref.fill_(1.5)
    act.gamma.copy_(torch.tensor([1.0, 0.5]))
    act.enabled.fill_(True)
    vals, codes = act.levels()
    assert vals.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert torch.equal(vals, act.x_ref + codes @ act.gamma)
    act.eval()
    x = torch.tensor([-3.0, 0.4, 0.6, 1.49, 2.2, 9.0])
    assert act(x).tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 3.0]
    xg = x.clone().requires_grad_()
    act(xg).sum().backward()
    assert xg.grad.tolist() == [0, 1, 1, 1, 1, 0]  # straight through inside (0, top level]


def test_activation_running_average_moves_toward_the_least_squares_fit():
    torch.manual_seed(0)
    act = ALQAct(2, 0.5, pow2=False)
    act.enabled.fill_(True)
    act.train()
    r = torch.cat([torch.full((500,), v) for v in (0.0, 1.0, 2.0, 3.0)])  # exactly four levels
    for _ in range(30):
        act(r)
    vals, _ = act.levels()
    assert torch.allclose(vals, torch.tensor([0.0, 1.0, 2.0, 3.0]), atol=1e-3)


# -------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("method,match", [
    ({"target_bits": 7}, "above max_bits"),
    ({"bogus": 1}, "unknown key"),
    ({"target_bits": 0}, "target_bits"),
    ({"act_bits": 9}, "act_bits"),
    ({"prune_ratio": 1.0}, "prune_ratio"),
    ({"round_epochs": {"bases": -1}}, "bases"),
])
def test_bad_config_values_are_one_line_user_errors(method, match):
    with pytest.raises(UserError, match=match) as e:
        _cfg(**method)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("structures,match", [
    (["channel", "channel"], "2 entries for 3"),
    (["subchannel3", "channel", "channel"], "equal groups"),
    (["kernel", "channel", "channel"], "conv layers"),
    (["rows", "channel", "channel"], "not known"),
])
def test_bad_structures_are_one_line_user_errors(structures, match):
    cfg = _cfg(structures=structures)
    with pytest.raises(UserError, match=match) as e:
        alq.build_model(cfg, cfg.method_parts()[1], (1, 8, 8), 10)
    assert "\n" not in str(e.value)


def test_export_refuses_free_levels_in_one_line():
    """The paper's free x_ref + D gamma levels have no exact integer route (tests/quant/test_alq_export.py)."""
    from quant.build import make_model

    cfg = _cfg(pow2=True)
    with pytest.raises(UserError, match="act_levels: 'free' levels") as e:
        alq.export_model(cfg, cfg.method_parts()[1], make_model(cfg, (64,), 10))
    assert "\n" not in str(e.value)


# -------------------------------------------------------------------------------------- tiny runs
def _count_bits(state: dict) -> tuple[int, int]:
    bits, n = 0, 0
    for k, mask in state.items():
        if k.endswith(".w.mask"):
            b = state[k[:-len("mask")] + "B"]
            bits += int(mask.sum()) * b.shape[1]
            n += b.shape[0] * b.shape[1]
    return bits, n


def test_tiny_run_trains_prunes_to_the_target_exactly_and_saves(tmp_path):
    m = train_run(_cfg(), tmp_path, show_progress=False)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test_accuracy"] == m["test_accuracy"]
    assert m["test_accuracy"] > 0.6, m["test_accuracy"]  # chance: 0.1
    assert m["float_accuracy"] > 0.8
    state = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    bits, n = _count_bits(state)
    assert (bits, n) == (1008, 1440) and m["basis_bits"] == bits and m["params"] == n
    assert m["avg_weight_bits"] == 0.7
    table = 3 * (16 * 4 + 16 + 10)  # ceil(log2(4 + 1)) = 3 bits per group
    assert m["table_bits"] == table and m["avg_weight_bits_with_table"] == round((bits + table) / n, 4)
    assert m["storage_bits"] == bits + table + 32 * m["alpha_count"] == m["weight_bits_total"]
    assert m["schedule_bits"][-1] == 1008 and m["act_bits"] == 2
    # what the forward uses is B alpha, B in {-1, +1}
    for k, v in state.items():
        if k.endswith(".w.B"):
            assert set(v.unique().tolist()) <= {-1.0, 1.0}


def test_kill_and_resume_gives_the_same_result(tmp_path, monkeypatch):
    cfg = _cfg(target_bits=1.0)
    full = train_run(cfg, tmp_path / "full", show_progress=False)
    real = alq._run_phase
    calls = {"n": 0}

    def dies_in_bases2(name, *a, **k):
        if name == "bases2":
            raise KeyboardInterrupt
        return real(name, *a, **k)

    monkeypatch.setattr(alq, "_run_phase", dies_in_bases2)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, tmp_path / "cut", show_progress=False)
    monkeypatch.setattr(alq, "_run_phase", lambda *a, **k: (calls.__setitem__("n", calls["n"] + 1), real(*a, **k))[1])
    resumed = train_run(cfg, tmp_path / "cut", resume=True, show_progress=False)
    assert calls["n"] < len(full["phases"])  # the finished phases were not run again
    assert resumed["test_accuracy"] == full["test_accuracy"]
    assert resumed["phases"] == full["phases"]
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_config(tmp_path):
    train_run(_cfg(pretrain_epochs=1, round_epochs={"bases": 0, "coords": 0},
                   final_epochs={"bases": 0, "coords": 0}, init_epochs={"bases": 0, "coords": 0}),
              tmp_path, show_progress=False)
    with pytest.raises(UserError, match="another config"):
        train_run(_cfg(pretrain_epochs=2), tmp_path, resume=True, show_progress=False)


def test_pow2_option_gives_power_of_two_coordinates(tmp_path):
    cfg = _cfg(pow2=True, target_bits=1.5, pretrain_epochs=4)
    m = train_run(cfg, tmp_path, show_progress=False)
    from quant.build import make_model
    from quant.data import load_dataset

    split = load_dataset(cfg.dataset)
    net = make_model(cfg, split.image_shape, split.classes)
    net.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"])
    for w in net.alq_weights():
        c = w.coords()[w.mask > 0]
        assert torch.equal(torch.log2(c), torch.round(torch.log2(c)))
    for a in net.acts():
        assert torch.equal(torch.log2(a.coords()), torch.round(torch.log2(a.coords())))
    assert m["test_accuracy"] > 0.5 and m["pow2"] is True
