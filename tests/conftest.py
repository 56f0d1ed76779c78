"""Shared fixtures: trained, exported and compiled digits runs, built once per test session and shared
between xdist workers through a file lock, since training four configs is the slow part."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
FOUR_CONFIGS = ["digits_w1a1", "digits_tern_a2", "digits_w2a2", "digits_w4a4"]
TEST_EPOCHS = 6  # enough for a meaningful network; the accuracy targets live in `make bench`


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    torch.set_num_threads(1)  # two xdist workers on two cores


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory, worker_id):
    base = tmp_path_factory.getbasetemp()
    return base.parent if worker_id != "master" else base


def build_run(shared_dir: Path, name: str, epochs: int = TEST_EPOCHS, fold: dict | None = None) -> Path:
    """Train (few epochs), export and compile one shipped config; cached across workers."""
    from hw.compile import compile_model
    from quant.config import load_config
    from quant.export import export_run
    from quant.train import train_run

    run = shared_dir / "runs" / name
    with FileLock(str(shared_dir / f"{name}.lock")):
        if not (run / "hw" / "graph.json").is_file():
            cfg = load_config(CONFIGS / f"{name}.yaml")
            cfg.training.epochs = epochs
            cfg.training.float_baseline = False
            train_run(cfg, run, show_progress=False)
            export_run(run)
            compile_model(run / "model.qonnx.onnx", run / "hw", target_fps=100000, clock_mhz=100)
    return run


@pytest.fixture(scope="session", params=FOUR_CONFIGS)
def digits_run(request, shared_dir) -> Path:
    return build_run(shared_dir, request.param)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture
def cli(capsys):
    """Runs `pqhw ARGS` in-process; returns (exit status, stdout, stderr)."""
    from pqhw.cli import main

    def run(*args):
        try:
            code = main([str(a) for a in args]) or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


os.environ.setdefault("PYTHONHASHSEED", "0")
