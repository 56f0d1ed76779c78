"""`pqhw analyze`: JSON with every number shown, PNG plots, and one-line errors with exit status 2."""
import json

import pytest
from click.testing import CliRunner

import pqhw.cli
from common.errors import UserError
from quant.analysis.cli import cli


def _run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=True)


def test_distributions_json(tmp_path):
    res = _run(["distributions", "--out", str(tmp_path / "d"), "--points", "3"])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "d" / "distributions.json").read_text())
    rows = data["rows"]
    keys = {"dist", "params", "kurtosis", "bits", "prune_ratio", "snr_quant_db", "snr_prune_db"}
    assert all(keys <= set(r) for r in rows)
    assert {r["bits"] for r in rows} == set(range(2, 9))
    normal4 = next(r for r in rows if r["dist"] == "normal" and r["bits"] == 4)
    assert abs(normal4["snr_quant_db"] - 19.26) < 0.02 and abs(normal4["snr_prune_db"] - 5.58) < 0.01
    assert data["normal_headline"]["snr_quant_int4_db"]["symmetric"] == pytest.approx(18.90, abs=0.02)
    assert (tmp_path / "d" / "snr_vs_bits.png").stat().st_size > 1000
    assert (tmp_path / "d" / "student_t_vs_kurtosis.png").stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left


@pytest.mark.parametrize("args,needle", [
    (["model", "nowhere.pt", "--out", "o"], "no such file"),
    (["model", "x.pt", "--out", "o", "--grid", "odd"], "unknown quantization grid"),
    (["distributions", "--out", "o", "--points", "1"], "--points"),
    (["layers", "digits", "--out", "o", "--bits", "9"], "bit width 9"),
    (["layers", "digits", "--out", "o", "--bits", "two"], "--bits"),
    (["finetune", "imagenet.yaml", "--out", "o"], "no such config"),
])
def test_bad_input_raises_user_error(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    res = _run(args)
    assert isinstance(res.exception, UserError)
    assert needle in str(res.exception)
    assert not (tmp_path / "o").exists()


def test_finetune_config_without_training_module(tmp_path, monkeypatch):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: mlp\n")
    import builtins
    real_import = builtins.__import__

    def no_train(name, *a, **k):
        if name == "quant.train":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_train)
    monkeypatch.setattr("importlib.import_module", lambda name: no_train(name))
    res = _run(["finetune", str(cfg), "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, UserError) and "quant.train" in str(res.exception)


def test_main_cli_prints_one_line_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(pqhw.cli.SUBCOMMANDS, "analyze", "quant.analysis.cli")
    with pytest.raises(SystemExit) as exc:
        pqhw.cli.main(["analyze", "model", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "none.onnx" in err[0]


def test_model_layers_finetune_on_digits(tmp_path):
    import torch

    from quant.analysis import digits

    torch.set_num_threads(1)
    net, _, _ = digits.trained_mlp(epochs=5)
    torch.save({"state_dict": net.state_dict(), "config": {}}, tmp_path / "model.pt")
    res = _run(["model", str(tmp_path), "--out", str(tmp_path / "m"), "--bits", "2,4"])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "m" / "model.json").read_text())
    assert [t["name"] for t in data["tensors"]] == ["0.weight", "2.weight", "4.weight"]
    assert all(r["snr_quant_db"] > r["snr_prune_db"] for t in data["tensors"] for r in t["snr"])
    res = _run(["layers", "digits", "--out", str(tmp_path / "l"), "--bits", "4", "--rows", "1",
                "--chunk", "4", "--exact-max", "4", "--epochs", "3", "--samples", "256"])
    assert res.exit_code == 0, res.output
    layers = json.loads((tmp_path / "l" / "layers.json").read_text())["layers"]
    assert len(layers) == 3
    for layer in layers:
        r = layer["bits"][0]
        assert r["snr_quant_best_db"] >= r["snr_quant_heuristic_db"]
        assert r["quant_chunks_exact"] == r["chunks"]
    res = _run(["finetune", "digits", "--out", str(tmp_path / "f"), "--bits", "4", "--epochs", "1",
                "--pretrain-epochs", "5"])
    assert res.exit_code == 0, res.output
    row = json.loads((tmp_path / "f" / "finetune.json").read_text())["rows"][0]
    assert row["prune_stats"]["sparsity"] == 0.75 and row["quant_stats"]["max_distinct_values"] <= 16
    assert (tmp_path / "f" / "accuracy_vs_bits.png").exists()
