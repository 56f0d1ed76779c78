"""Bad input: one line naming what, where and what is accepted; exit status 2; no traceback; nothing written."""
import json

import pytest
import torch

from tests.conftest import CONFIGS


def _one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_help_lists_commands(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for name in ("train", "export", "compile", "demo"):
        assert name in out


def test_missing_model_file(cli, tmp_path):
    code, _, err = cli("compile", tmp_path / "nope.onnx", "--out", tmp_path / "o")
    _one_line_error(code, err, "nope.onnx", "not found")


def test_not_an_onnx_file(cli, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01 definitely not protobuf \xff" * 10)
    code, _, err = cli("compile", bad, "--out", tmp_path / "o")
    _one_line_error(code, err, "bad.onnx", "not an ONNX model")
    assert not (tmp_path / "o").exists()


def test_unknown_config_key(cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text((CONFIGS / "digits_w1a1.yaml").read_text().replace("seed: 0", "sead: 0"))
    code, _, err = cli("train", cfg, "--out", tmp_path / "run")
    _one_line_error(code, err, str(cfg), "unknown key 'training.sead'")
    assert not (tmp_path / "run").exists()


def test_unsupported_bit_width(cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text((CONFIGS / "digits_w4a4.yaml").read_text().replace("act: uint4", "act: uint12", 1))
    code, _, err = cli("train", cfg, "--out", tmp_path / "run")
    _one_line_error(code, err, "model.layers.0.act", "uint12", "accepted")


def test_corrupted_checkpoint(cli, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"PK\x03\x04 truncated zip")
    code, _, err = cli("export", run)
    _one_line_error(code, err, "model.pt", "corrupted")


def test_nan_weights_in_checkpoint(cli, tmp_path):
    from quant.config import load_config
    from quant.train import train_run

    cfg = load_config(CONFIGS / "digits_w4a4.yaml")
    cfg.training.epochs = 1
    cfg.training.float_baseline = False
    train_run(cfg, tmp_path / "run", show_progress=False)
    ckpt = torch.load(tmp_path / "run" / "model.pt", weights_only=False)
    ckpt["state_dict"]["body.0.weight"][0, 0] = float("nan")
    torch.save(ckpt, tmp_path / "run" / "model.pt")
    code, _, err = cli("export", tmp_path / "run")
    _one_line_error(code, err, "body.0.weight", "NaN")
    assert not (tmp_path / "run" / "model.qonnx.onnx").exists()


@pytest.mark.xdist_group("digits_runs")
def test_illegal_folding(cli, tmp_path, shared_dir):
    from tests.conftest import build_run

    run = build_run(shared_dir, "digits_w2a2")
    fold = tmp_path / "fold.json"
    fold.write_text(json.dumps({"MVAU_0": {"pe": 5, "simd": 8}}))
    code, _, err = cli("compile", run / "model.qonnx.onnx", "--out", tmp_path / "hw", "--folding", fold)
    _one_line_error(code, err, "MVAU_0.pe = 5 does not divide 64", "accepted: [1, 2, 4, 8, 16, 32, 64]")
    assert not (tmp_path / "hw").exists()
