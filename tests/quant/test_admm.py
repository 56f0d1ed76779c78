"""ADMM (paper 002): projections against brute force, the dual update and rho schedule by hand, config
mistakes, and a tiny progressive run on digits that trains, resumes after a kill and exports exactly."""
import copy
import itertools

import numpy as np
import pytest
import torch

from common.errors import UserError
from quant.config import parse_config
from quant.methods import admm as admm_mod
from quant.methods.admm_proj import (admm_update, fit_scale, levels_for, nearest_level, project_quant,
                                     prune_mask, rho_at)


def _vec(n, seed=0):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_unstructured_pruning_keeps_exactly_the_top_magnitudes(sparsity):
    v = _vec(200).reshape(10, 20)
    mask = prune_mask(v, sparsity)
    k = round(sparsity * v.numel())
    assert int((mask == 0).sum()) == k
    kept = set(v.abs().flatten().argsort(descending=True)[:v.numel() - k].tolist())
    assert set(torch.nonzero(mask.flatten()).flatten().tolist()) == kept


def test_unstructured_pruning_is_the_euclidean_projection_by_brute_force():
    v = _vec(8, 3)
    mask = prune_mask(v, 5 / 8)
    best = min(itertools.combinations(range(8), 3), key=lambda s: float(((v - v * _ind(8, s)) ** 2).sum()))
    assert torch.equal(mask, _ind(8, best))


def _ind(n, idx):
    m = torch.zeros(n, dtype=torch.float64)
    m[list(idx)] = 1
    return m


def test_a_progressive_step_only_prunes_further():
    v = _vec(100)
    first = prune_mask(v, 0.5)
    v2 = v.clone()
    v2[first == 0] = 10.0  # even if a pruned weight came back large, it stays pruned
    second = prune_mask(v2 * first, 0.8, prev=first)
    assert int((second == 0).sum()) == 80 and bool((second[first == 0] == 0).all())


GROUPS = {  # structure -> (weight shape, function giving the group ids of every element)
    "filter": lambda w: torch.arange(w.shape[0]).reshape(-1, *[1] * (w.dim() - 1)).expand_as(w),
    "channel": lambda w: torch.arange(w.shape[1]).reshape(1, -1, *[1] * (w.dim() - 2)).expand_as(w),
    "column": lambda w: torch.arange(w[0].numel()).reshape(1, *w.shape[1:]).expand_as(w),
}


@pytest.mark.parametrize("structure", ["filter", "channel", "column"])
@pytest.mark.parametrize("shape", [(5, 6), (4, 3, 2, 2)])
def test_structured_pruning_zeros_whole_groups_and_is_the_projection(structure, shape):
    w = _vec(int(np.prod(shape)), 7).reshape(shape)
    gid = GROUPS[structure](w)
    n_groups = int(gid.max()) + 1
    mask = prune_mask(w, 0.5, structure)
    zero_groups = {g for g in range(n_groups) if bool((mask[gid == g] == 0).all())}
    assert len(zero_groups) == round(0.5 * n_groups)
    for g in range(n_groups):  # every group all-zero or all-kept
        assert bool((mask[gid == g] == 0).all()) or bool((mask[gid == g] == 1).all())
    keep = n_groups - len(zero_groups)

    def dist(kept):
        m = torch.zeros_like(w)
        for g in kept:
            m[gid == g] = 1
        return float(((w - w * m) ** 2).sum())

    best = min(itertools.combinations(range(n_groups), keep), key=dist)
    assert set(best) == set(range(n_groups)) - zero_groups


@pytest.mark.parametrize("spec", ["binary", "ternary", "int2", "int3", "int4", "pow2:3"])
def test_nearest_level_against_brute_force(spec):
    ints = levels_for(spec).ints
    y = _vec(3000, 1) * max(abs(i) for i in ints)
    lv = torch.tensor(ints, dtype=y.dtype)
    assert torch.equal(nearest_level(y, ints), lv[(y[:, None] - lv[None]).abs().argmin(dim=1)])


def test_levels_of_each_spec():
    assert levels_for("binary").ints == (-1, 1)
    assert levels_for("ternary").ints == (-1, 0, 1)
    assert levels_for("int2").ints == (-2, -1, 0, 1)
    assert levels_for("int3").ints == (-3, -2, -1, 0, 1, 2, 3)
    assert levels_for("pow2:3").ints == (-4, -2, -1, 0, 1, 2, 4) and levels_for("pow2:3").bits == 4
    assert levels_for("pow2:3").kept() == (-4, -2, -1, 1, 2, 4)


@pytest.mark.parametrize("spec", ["binary", "ternary", "int3", "pow2:3"])
def test_quantization_projection_is_nearest_level_and_its_scale_is_near_the_best(spec):
    lv = levels_for(spec)
    v = _vec(400, 5) * 0.1
    z, alpha = project_quant(v, lv)
    assert torch.allclose(z, alpha * nearest_level(v / alpha, lv.ints))
    d = float(((v - z) ** 2).sum())
    grid = np.linspace(0.002, 0.3, 1500)
    best = min(float(((v - a * nearest_level(v / a, lv.ints)) ** 2).sum()) for a in grid)
    assert d <= best * 1.01


def test_a_pruned_layer_is_quantized_onto_nonzero_levels_only():
    v = _vec(300, 2)
    mask = prune_mask(v, 0.8)
    z, alpha = project_quant(v * mask, levels_for("ternary"), mask)
    assert bool((z[mask == 0] == 0).all()) and bool((z[mask > 0] != 0).all())
    assert set((z[mask > 0] / alpha).round().unique().tolist()) <= {-1.0, 1.0}


def test_fit_scale_of_levels_already_on_a_grid_recovers_it():
    q = torch.tensor([-3, -1, 0, 2, 3, 1, -2], dtype=torch.float64)
    alpha, got = fit_scale(0.25 * q, levels_for("int3").ints)
    assert alpha == pytest.approx(0.25) and torch.equal(got, q)


def test_admm_dual_update_by_hand():
    def project(x):
        return x * prune_mask(x, 0.5)  # keep the 2 largest of 4

    w0 = torch.tensor([3.0, -1.0, 0.5, 2.0])
    z, u = admm_update(w0, torch.zeros(4), project)
    assert torch.equal(z, torch.tensor([3.0, 0.0, 0.0, 2.0]))
    assert torch.equal(u, torch.tensor([0.0, -1.0, 0.5, 0.0]))
    w1 = torch.tensor([2.5, -0.8, 0.4, 1.5])  # W + U = [2.5, -1.8, 0.9, 1.5]
    z, u = admm_update(w1, u, project)
    assert torch.equal(z, torch.tensor([2.5, -1.8, 0.0, 0.0]))
    assert torch.allclose(u, torch.tensor([0.0, 0.0, 0.9, 1.5]))


def test_rho_schedule_by_hand():
    assert [rho_at(k, 1.5e-3, 2.0, 0.01) for k in range(5)] == pytest.approx([1.5e-3, 3e-3, 6e-3, 0.01, 0.01])


TINY = {
    "name": "tiny_admm",
    "dataset": {"name": "digits", "input_bits": 4},
    "model": {"layers": [{"kind": "linear", "features": 32, "weight": "int3", "act": "uint2"},
                         {"kind": "linear", "features": 32, "weight": "pow2:2", "act": "uint2"},
                         {"kind": "linear", "features": 10, "weight": "ternary"}]},
    "training": {"epochs": 6, "lr": 0.01, "batch_size": 64, "seed": 0},
    "method": {"name": "admm", "pretrain_epochs": 6, "lr": 0.003, "rho": {"init": 0.05, "factor": 2.0, "max": 10},
               "prune": {"steps": [0.4, [0.8, 0.7, 0.4]], "iterations": 2, "epochs_per_iteration": 1,
                         "retrain_epochs": 2},
               "quantize": {"iterations": 1, "epochs_per_iteration": 1, "retrain_epochs": 1,
                            "finetune_epochs": 1}},
}


def _cfg(**method):
    d = copy.deepcopy(TINY)
    d["method"].update(method)
    return parse_config(d)


def _one_line_error(match, **method):
    from quant.build import make_model

    with pytest.raises(UserError, match=match) as err:
        make_model(_cfg(**method), (1, 8, 8), 10)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("method, match", [
    ({"prune": {"steps": [1.2]}}, r"method\.prune\.steps.*fraction"),
    ({"prune": {"steps": [0.4, [0.8, 0.7]]}}, r"method\.prune\.steps\.1: 2 values for 3 weight layers"),
    ({"prune": {"steps": [0.8, 0.5]}}, r"method\.prune\.steps\.1: a step may not prune less"),
    ({"prune": {"steps": [0.5], "structure": "filter"}}, r"filter pruning of the last layer"),
    ({"prune": {"steps": [0.5], "structure": "rows"}}, r"method\.prune\.structure"),
    ({"quantize": {"steps": [[0, 1]]}}, r"method\.quantize\.steps.*every weight layer"),
    ({"rho": {"init": 0}}, r"method\.rho\.init"),
    ({"rhoo": 1}, r"unknown key 'method\.rhoo'"),
])
def test_bad_config_values_are_one_line_user_errors(method, match):
    _one_line_error(match, **method)


def test_plan_follows_the_paper_steps():
    phases = admm_mod.plan(_cfg(), _cfg().method_parts()[1], 3)
    assert [p.name for p in phases] == ["pretrain", "prune1.admm", "prune1.retrain", "prune2.admm",
                                        "prune2.retrain", "quant1.admm", "quant1.retrain", "quant2.admm",
                                        "quant2.retrain", "finetune"]
    assert phases[5].layers == [1] and phases[7].layers == [0, 2]  # middle layers first, then first and last
    assert phases[3].sparsity == [0.8, 0.7, 0.4] and phases[1].sparsity == [0.4] * 3


def _train(tmp_path, cfg=None, resume=False):
    from quant.train import train_run

    return train_run(cfg or _cfg(), tmp_path, resume=resume, show_progress=False)


def _weights(path):
    from quant.checkpoint import load_torch

    return load_torch(path / "model.pt")["state_dict"]


def test_tiny_run_reaches_its_sparsity_exactly_on_its_levels_and_exports(tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper

    from quant.build import exportable
    from quant.checkpoint import load_run
    from quant.export import export_run

    m = _train(tmp_path)
    assert m["test_accuracy"] > 0.6  # chance: 0.1
    sizes = [32 * 64, 32 * 32, 10 * 32]
    assert m["zeros"] == sum(round(s * n) for s, n in zip([0.8, 0.7, 0.4], sizes))
    model, cfg, _ = load_run(tmp_path)
    net = exportable(cfg, model)
    for layer, spec, kept in zip(model.quant_layers(), ("int3", "pow2:2", "ternary"),
                                 ((1, 2, 3), (1, 2), (1,))):
        w = layer.weight.detach().double()
        q = w / float(layer.alpha)
        assert torch.allclose(q, q.round(), atol=1e-5)
        assert set(q.round().abs().unique().tolist()) <= {0.0, *map(float, kept)}
    assert export_run(tmp_path)["mismatches"] == 0
    mw = ModelWrapper(str(tmp_path / "model.qonnx.onnx"))
    ints = [np.round(mw.get_initializer(n.input[0]) / mw.get_initializer(n.input[1]))
            for n in mw.graph.node if n.op_type == "Quant" and mw.get_initializer(n.input[0]) is not None
            and mw.get_initializer(n.input[0]).ndim == 2]
    for got, layer, brev in zip(ints, model.quant_layers(), net.quant_layers()):
        assert np.array_equal(got, np.round(layer.weight.detach().numpy() / float(layer.alpha)))
        assert np.array_equal(got, brev.quant_weight().int().detach().numpy())


def test_resume_after_a_kill_gives_the_same_weights(tmp_path, monkeypatch):
    _train(tmp_path / "whole")
    saves = {"n": 0}
    real = admm_mod.atomic_torch_save

    def killed_after_seven(obj, path):
        real(obj, path)
        saves["n"] += 1
        if saves["n"] == 7:  # pretrain saves 6: inside prune1.admm, after its first ADMM iteration
            raise KeyboardInterrupt

    monkeypatch.setattr(admm_mod, "atomic_torch_save", killed_after_seven)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "killed")
    monkeypatch.setattr(admm_mod, "atomic_torch_save", real)
    m = _train(tmp_path / "killed", resume=True)
    assert m["phases_resumed"] == ["pretrain"]  # and prune1.admm continues from its epoch 1
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_another_config_is_refused(tmp_path, monkeypatch):
    real = admm_mod.atomic_torch_save

    def killed(obj, path):
        real(obj, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(admm_mod, "atomic_torch_save", killed)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path)
    monkeypatch.setattr(admm_mod, "atomic_torch_save", real)
    with pytest.raises(UserError, match="another config"):
        _train(tmp_path, _cfg(lr=0.001), resume=True)


def test_export_before_quantization_is_refused():
    from quant.build import exportable, make_model

    cfg = _cfg()
    with pytest.raises(UserError, match="not quantized yet"):
        exportable(cfg, make_model(cfg, (1, 8, 8), 10))


@pytest.mark.parametrize("structure", ["filter", "channel", "column"])
def test_structured_run_zeros_whole_groups(tmp_path, structure):
    steps = [[0.25, 0.25, 0.0], [0.5, 0.5, 0.0]] if structure == "filter" else [0.25, 0.5]
    m = _train(tmp_path, _cfg(pretrain_epochs=2, prune={"structure": structure, "steps": steps, "iterations": 1,
                                                          "epochs_per_iteration": 1, "retrain_epochs": 1}))
    from quant.checkpoint import load_run

    model, _, _ = load_run(tmp_path)
    for layer in model.quant_layers()[:2]:
        w = layer.weight.detach()
        dim = 1 if structure == "filter" else 0
        groups = w.abs().sum(dim=dim)
        assert int((groups == 0).sum()) == round(0.5 * groups.numel())
    assert m["structure"] == structure


def test_training_shift_moves_the_images_of_every_phase(tmp_path):
    """ADMM takes `training.shift` (its phases move the training images, as plain training does): the same
    seed with and without it gives other weights, phase by phase, from the pretrained network on."""
    quick = {"pretrain_epochs": 1, "prune": {"steps": [0.5], "iterations": 1, "epochs_per_iteration": 1,
                                             "retrain_epochs": 1},
             "quantize": {"iterations": 1, "epochs_per_iteration": 1, "retrain_epochs": 1, "finetune_epochs": 0}}
    runs = {}
    for shift in (0, 1):
        d = copy.deepcopy(TINY)
        d["method"].update(quick)
        d["training"]["shift"] = shift
        m = _train(tmp_path / f"s{shift}", parse_config(d))
        runs[shift] = (m, _weights(tmp_path / f"s{shift}"))
    (m0, w0), (m1, w1) = runs[0], runs[1]
    assert m0["zeros"] == m1["zeros"]  # both reach the target exactly
    assert any(not torch.equal(w0[k], w1[k]) for k in w0 if k.endswith("weight"))
