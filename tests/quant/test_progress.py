"""`pqhw train` is never silent: every phase of every method shows each epoch with its loss and training accuracy.
Run through the CLI with stderr captured (not a terminal), where the progress prints one line an epoch."""
from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import CONFIGS

LINE = re.compile(r"^(?P<label>.+) epoch (?P<e>\d+)/(?P<n>\d+) loss (?P<loss>\d+\.\d+) train acc "
                  r"(?P<acc>\d+\.\d) %$")


def _tiny(name: str, changes: dict) -> dict:
    cfg = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    for dotted, value in changes.items():
        node = cfg
        *path, last = dotted.split(".")
        for key in path:
            node = node[key]
        node[last] = value
    return cfg


# config, changes that make it tiny, the phases (labels end with them) and their epochs
METHODS = {
    "plain": ("digits_w1a1", {"training.epochs": 2, "training.float_baseline": False}, {"digits_w1a1": 2}),
    "plain_with_float": ("digits_w1a1", {"training.epochs": 1, "training.float_baseline": True},
                         {"digits_w1a1": 1, "(float)": 1}),
    "ptq": ("digits_ptq", {"training.float_baseline": False,
                           "method.epochs": {"float": 1, "pretrain": 1, "prune": 2, "quantize": 1}},
            {"float": 1, "pretrain": 1, "prune": 2, "quantize": 1}),
    "djpq": ("digits_djpq", {"training.epochs": 2, "method.pretrain_epochs": 1, "method.anneal_epochs": 1},
             {"pretrain": 1, "djpq": 2}),
    "djpq_vib_dq": ("digits_djpq", {"training.epochs": 1, "method.variant": "vib_dq", "method.restrict": "integer",
                                    "method.pretrain_epochs": 1, "method.vib_epochs": 1, "method.anneal_epochs": 1},
                    {"pretrain": 1, "vib": 1, "quant": 1}),
    "admm": ("digits_admm", {"training.float_baseline": False, "method.pretrain_epochs": 1,
                             "method.prune": {"steps": [0.5], "iterations": 1, "epochs_per_iteration": 1,
                                              "retrain_epochs": 1},
                             "method.quantize": {"steps": [[0, 1, 2]], "iterations": 1, "epochs_per_iteration": 1,
                                                 "retrain_epochs": 1}},
             None),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_train_shows_every_epoch_with_loss_and_accuracy(method, tmp_path, cli):
    name, changes, phases = METHODS[method]
    cfg = _tiny(name, changes)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, out, err = cli("train", tmp_path / "c.yaml", "--out", tmp_path / "run")
    assert code == 0, err[-2000:]
    shown = [m for m in map(LINE.match, err.splitlines()) if m]
    assert shown, err[-2000:]
    by_label: dict[str, list] = {}
    for m in shown:
        by_label.setdefault(m["label"], []).append(m)
    for label, lines in by_label.items():  # each phase counts its epochs 1..N, N being its own epoch count
        n = int(lines[0]["n"])
        assert [int(m["e"]) for m in lines] == list(range(1, n + 1)) and {int(m["n"]) for m in lines} == {n}, label
        assert all(0.0 <= float(m["acc"]) <= 100.0 for m in lines)
    if phases is None:  # ADMM: the phases its plan makes (pretrain, then a run of ADMM / retraining phases)
        from quant.config import parse_config
        from quant.methods.admm import plan

        run_cfg = parse_config(cfg)
        mcfg = run_cfg.method_parts()[1]
        phases = {p.name: p.epochs for p in plan(run_cfg, mcfg, len(cfg["model"]["layers"])) if p.epochs}
    assert len(by_label) == len(phases), sorted(by_label)
    for phase, epochs in phases.items():
        label = next((lab for lab in by_label if lab.endswith(phase)), None)
        assert label is not None, (phase, sorted(by_label))
        assert len(by_label[label]) == epochs, (phase, len(by_label[label]))


def test_alq_train_shows_every_epoch_with_loss_and_accuracy(tmp_path, cli):
    cfg = _tiny("digits_alq", {"method.pretrain_epochs": 1, "method.init_epochs": {"bases": 1, "coords": 1},
                               "method.round_epochs": {"bases": 1, "coords": 1},
                               "method.final_epochs": {"bases": 1, "coords": 1}, "method.prune_epochs": 1})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, out, err = cli("train", tmp_path / "c.yaml", "--out", tmp_path / "run")
    assert code == 0, err[-2000:]
    assert any(LINE.match(line) and "pretrain" in line for line in err.splitlines()), err[-2000:]
