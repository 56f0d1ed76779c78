"""Checkpoints are data: a model.pt that carries a pickled object is refused before anything of it runs."""
from __future__ import annotations

import pytest
import torch

from common.errors import UserError
from quant.checkpoint import load_torch


class _Payload:
    """Unpickling this would create a file: the sign that a checkpoint ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoint_with_pickled_object_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {}, "config": {}, "extra": _Payload(marker)}, path)
    with pytest.raises(UserError, match="refused") as err:
        load_torch(path)
    assert not marker.exists()
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_plain_checkpoint_loads(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {"w": torch.arange(3.0)}, "config": {"name": "x"}, "metrics": {"acc": 0.5}}, path)
    obj = load_torch(path)
    assert obj["state_dict"]["w"].tolist() == [0.0, 1.0, 2.0] and obj["config"] == {"name": "x"}
