"""`pqhw flow` end to end on a tiny network: every step runs once, a second run redoes nothing, and the
report carries the measured numbers of each step."""
import json

import pytest
import yaml

pytestmark = [pytest.mark.sim, pytest.mark.bitstream]

TINY = {"name": "tiny_flow", "dataset": {"name": "digits", "input_bits": 2},
        "model": {"layers": [{"kind": "linear", "features": 16, "weight": "binary", "act": "binary"},
                             {"kind": "linear", "features": 10, "weight": "binary"}]},
        "training": {"epochs": 2, "batch_size": 128, "float_baseline": True}}


def test_flow_runs_every_step_then_skips_them(tmp_path, cli, monkeypatch):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    monkeypatch.chdir(tmp_path)  # a relative --out, as `make demo` gives it
    out = tmp_path / "run"
    code, said, err = cli("flow", cfg, "--out", "run", "--board", "icebreaker", "--vectors", "5")
    assert code == 0, err
    for step in ("train", "export", "compile", "verify", "bitstream", "report"):
        assert f"{step} " in said and f"{step}     up to date" not in said
    verify = json.loads((out / "hw" / "verify.json").read_text())
    bits = json.loads((out / "hw" / "bitstream.json").read_text())
    assert verify["mismatches"] == 0 and verify["vectors"] == 455
    assert (out / "hw" / "icebreaker" / "pqhw_board_top.bin").stat().st_size > 100_000
    report = (out / "report.md").read_text()
    assert f"{bits['luts']} |" in report and "0 mismatches" in report
    assert (out / "accuracy.png").is_file() and (out / "report.html").is_file()

    code, said, err = cli("flow", cfg, "--out", "run", "--board", "icebreaker", "--vectors", "5")
    assert code == 0, err
    assert said.count("up to date") == 6


def test_flow_refuses_a_vivado_board(tmp_path, cli):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    code, _, err = cli("flow", cfg, "--out", tmp_path / "run", "--board", "pynq-z2")
    assert code == 2 and "needs Vivado" in err and not (tmp_path / "run").exists()
