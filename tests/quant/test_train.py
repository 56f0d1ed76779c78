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
