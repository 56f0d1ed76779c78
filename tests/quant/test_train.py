import pytest
import torch

from quant.config import parse_config
from quant.train import train_run

CFG = {"name": "tiny", "model": {"layers": [{"kind": "linear", "features": 16, "weight": "ternary", "act": "uint2"},
                                            {"kind": "linear", "features": 10, "weight": "int4"}]},
       "training": {"epochs": 3, "batch_size": 128, "seed": 3}}


def _state(path):
    return torch.load(path, weights_only=False)["state_dict"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_deterministic_for_a_seed(tmp_path):
    m1 = train_run(parse_config(CFG), tmp_path / "a", show_progress=False)
    m2 = train_run(parse_config(CFG), tmp_path / "b", show_progress=False)
    assert _same(_state(tmp_path / "a" / "model.pt"), _state(tmp_path / "b" / "model.pt"))
    assert m1["test_accuracy"] == m2["test_accuracy"]
    for key in ("test_accuracy", "train_seconds", "epochs", "params", "weight_bits_total"):
        assert key in m1
    assert m1["params"] == 64 * 16 + 16 * 10 and m1["weight_bits_total"] == 64 * 16 * 2 + 16 * 10 * 4


def test_resume_after_interruption_gives_the_same_model(tmp_path, monkeypatch):
    import quant.train as train_mod

    train_run(parse_config(CFG), tmp_path / "full", show_progress=False)
    real_save = train_mod.atomic_torch_save
    calls = {"n": 0}

    def crash_after_two(obj, path):
        real_save(obj, path)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "atomic_torch_save", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        train_run(parse_config(CFG), tmp_path / "cut", show_progress=False)
    assert not (tmp_path / "cut" / "model.pt").exists()
    monkeypatch.setattr(train_mod, "atomic_torch_save", real_save)
    train_run(parse_config(CFG), tmp_path / "cut", resume=True, show_progress=False)
    assert _same(_state(tmp_path / "full" / "model.pt"), _state(tmp_path / "cut" / "model.pt"))


def test_analyze_finetune_takes_a_training_config(tmp_path, cli):
    import json

    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**CFG, "training": {**CFG["training"], "epochs": 4}}))
    code, out, err = cli("analyze", "finetune", cfg, "--out", tmp_path / "ft", "--bits", "4", "--epochs", "1")
    assert code == 0, err
    rows = json.loads((tmp_path / "ft" / "finetune.json").read_text())["rows"]
    assert [r["bits"] for r in rows] == [4] and rows[0]["prune_ratio"] == 0.75
    assert 0.5 < rows[0]["baseline_accuracy"] <= 1.0


def _with(training=None, **top):
    return {**CFG, **top, "training": {**CFG["training"], **(training or {})}}


@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_and_threads_give_the_same_weights(tmp_path, threads):
    cfg = _with({"threads": threads, "epochs": 1})
    m1 = train_run(parse_config(cfg), tmp_path / "a", show_progress=False)
    m2 = train_run(parse_config(cfg), tmp_path / "b", show_progress=False)
    assert _same(_state(tmp_path / "a" / "model.pt"), _state(tmp_path / "b" / "model.pt"))
    assert m1["threads"] == threads and m1["test_accuracy"] == m2["test_accuracy"]


def test_threads_apply_during_training_and_are_restored(tmp_path, monkeypatch):
    import quant.train as train_mod

    seen = []
    real_fit = train_mod.fit
    monkeypatch.setattr(train_mod, "fit", lambda *a, **k: (seen.append(torch.get_num_threads()), real_fit(*a, **k)))
    torch.set_num_threads(1)
    train_run(parse_config(_with({"threads": 2, "epochs": 1})), tmp_path / "r", show_progress=False)
    assert seen == [2] and torch.get_num_threads() == 1


def test_cli_threads_overrides_the_config(tmp_path, cli):
    import json

    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_with({"epochs": 1})))
    code, out, err = cli("train", cfg, "--out", tmp_path / "r", "--threads", "2")
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["threads"] == 2
    code, out, err = cli("train", cfg, "--out", tmp_path / "r0", "--threads", "0")
    assert code == 2 and "--threads" in err and not (tmp_path / "r0" / "model.pt").exists()


def test_random_shift_moves_each_image_by_its_own_offset():
    from quant.train import random_shift

    x = torch.zeros(200, 1, 6, 6)
    x[:, 0, 2, 3] = 1.0  # one lit pixel, two from every border
    gen = torch.Generator().manual_seed(0)
    moved = random_shift(x.reshape(200, -1), (1, 6, 6), 2, gen).reshape(200, 6, 6)
    assert torch.equal(moved.sum((1, 2)), torch.ones(200))  # nothing lost, nothing added
    rows, cols = (moved == 1).nonzero()[:, 1], (moved == 1).nonzero()[:, 2]
    assert set((rows - 2).tolist()) == {-2, -1, 0, 1, 2} and set((cols - 3).tolist()) <= {-2, -1, 0, 1, 2}
    edge = torch.zeros(1, 36)
    edge[0, 0] = 5.0  # the corner pixel leaves the image when moved up or left, zeros come in
    outs = {tuple(random_shift(edge, (1, 6, 6), 1, gen)[0].nonzero().flatten().tolist()) for _ in range(60)}
    assert outs == {(), (0,), (1,), (6,), (7,)}


# A tiny network on the real MNIST sample: 784 -> 32 -> 10, binarised pixels, 3 epochs (about a second).
MNIST_TINY = {"name": "mnist_tiny", "dataset": {"name": "mnist5k", "input_bits": 1},
              "model": {"layers": [{"kind": "linear", "features": 32, "weight": "int2", "act": "uint2"},
                                   {"kind": "linear", "features": 10, "weight": "int2"}]},
              "training": {"epochs": 3, "batch_size": 64, "lr": 0.01, "seed": 0}}


def test_tiny_net_learns_mnist5k(tmp_path):
    m = train_run(parse_config(MNIST_TINY), tmp_path / "r", show_progress=False)
    assert m["test_accuracy"] >= 0.80  # chance is 0.10
    assert m["params"] == 784 * 32 + 32 * 10 and m["weight_bits_total"] == 2 * m["params"]


def test_shift_is_reproducible_and_trains(tmp_path):
    cfg = {**MNIST_TINY, "training": {**MNIST_TINY["training"], "epochs": 2, "shift": 1}}
    m1 = train_run(parse_config(cfg), tmp_path / "a", show_progress=False)
    train_run(parse_config(cfg), tmp_path / "b", show_progress=False)
    assert _same(_state(tmp_path / "a" / "model.pt"), _state(tmp_path / "b" / "model.pt"))
    assert m1["test_accuracy"] >= 0.75
