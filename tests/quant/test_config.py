from pathlib import Path

import pytest
import yaml

from common.errors import UserError
from quant.config import load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("digits_*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.model.layers[-1].features == 10


def _write(tmp_path, data):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


BASE = {"model": {"layers": [{"kind": "linear", "features": 16, "weight": "int4", "act": "uint4"},
                             {"kind": "linear", "features": 10, "weight": "int4"}]}}


def test_unknown_key_names_key_and_file(tmp_path):
    p = _write(tmp_path, {**BASE, "trainig": {"epochs": 3}})
    with pytest.raises(UserError) as e:
        load_config(p)
    assert str(p) in str(e.value) and "unknown key 'trainig'" in str(e.value)


def test_unknown_nested_key(tmp_path):
    data = {**BASE, "training": {"epoch": 3}}
    with pytest.raises(UserError, match=r"unknown key 'training.epoch'"):
        load_config(_write(tmp_path, data))


@pytest.mark.parametrize("spec", ["int9", "int1", "uint4", "quaternary"])
def test_unsupported_weight_bits(spec):
    data = {"model": {"layers": [{"kind": "linear", "features": 10, "weight": spec}]}}
    with pytest.raises(UserError, match=r"model.layers.0.weight.*accepted: binary, ternary, int2 .. int8"):
        parse_config(data, "x.yaml")


def test_last_layer_must_not_have_activation():
    data = {"model": {"layers": [{"kind": "linear", "features": 10, "weight": "int4", "act": "uint4"}]}}
    with pytest.raises(UserError, match="last layer has no activation"):
        parse_config(data)


def test_unknown_method():
    with pytest.raises(UserError, match="method.name: 'admmm' is not a known method"):
        parse_config({**BASE, "method": {"name": "admmm"}})


def test_unknown_method_key_is_named_in_full():
    with pytest.raises(UserError, match=r"x.yaml: unknown key 'method.delta'"):
        parse_config({**BASE, "method": {"name": "ptq", "delta": 1}}, "x.yaml")
