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


MNIST5K = {"tfc": 64, "sfc": 256, "lfc": 1024}


FINN_FC = sorted(p for a in MNIST5K for p in (ROOT / "configs").glob(f"mnist5k_{a}_*.yaml"))


@pytest.mark.parametrize("path", FINN_FC, ids=lambda p: p.stem)
def test_mnist5k_configs_are_finns_fc_nets(path):
    """TFC / SFC / LFC: 784 -> 3 hidden layers of 64 / 256 / 1024 -> 10; w1a1 on binarised pixels
    (UINT1), w2a2 on 2-bit pixels, as FINN's BNN-PYNQ nets."""
    cfg = load_config(path)
    arch, prec = path.stem.split("_")[1:]
    assert cfg.name == path.stem and cfg.dataset.name == "mnist5k"
    assert [layer.features for layer in cfg.model.layers] == [MNIST5K[arch]] * 3 + [10]
    weight, act, bits = {"w1a1": ("binary", "binary", 1), "w2a2": ("int2", "uint2", 2)}[prec]
    assert cfg.dataset.input_bits == bits
    assert {layer.weight for layer in cfg.model.layers} == {weight}
    assert [layer.act for layer in cfg.model.layers] == [act] * 3 + [None]
    assert cfg.training.float_baseline and cfg.training.threads == 1


def test_six_finn_fc_configs_ship():
    assert [p.stem for p in FINN_FC] == [
        f"mnist5k_{a}_{p}" for a in ("lfc", "sfc", "tfc") for p in ("w1a1", "w2a2")]


def test_dataset_defaults():
    cfg = parse_config(BASE)
    assert cfg.dataset.name == "digits" and cfg.dataset.test_fraction is None
    assert cfg.training.threads == 1 and cfg.training.shift == 0


@pytest.mark.parametrize("dataset, match", [
    ({"name": "mnist5k", "split": 0.2}, r"unknown key 'dataset.split'"),
    ({"name": "mnist5"}, r"dataset.name: Input should be 'digits', 'mnist5k', 'mnist' or 'cifar10'"),
    ({"name": "mnist", "test_fraction": 0.2, "data_dir": "."},
     r"dataset.test_fraction: 'mnist' uses the test files in data_dir; test_fraction is for digits and mnist5k"),
    ({"name": "mnist5k", "data_dir": "/data"},
     r"dataset.data_dir: 'mnist5k' is embedded and reads no files; data_dir is for mnist and cifar10"),
    ({"name": "mnist5k", "test_fraction": 1.0}, r"dataset.test_fraction: Input should be less than 1"),
    ({"name": "mnist5k", "input_bits": 0}, r"dataset.input_bits: Input should be greater than or equal to 1"),
])
def test_bad_dataset_section(dataset, match):
    with pytest.raises(UserError, match=rf"^x.yaml: {match}"):
        parse_config({**BASE, "dataset": dataset}, "x.yaml")


@pytest.mark.parametrize("training, match", [
    ({"threads": 0}, r"training.threads: Input should be greater than or equal to 1"),
    ({"threads": "two"}, r"training.threads: Input should be a valid integer"),
    ({"epochs": True}, r"training.epochs: Input should be a valid integer"),  # a YAML true is not a count
    ({"lr": float("inf")}, r"training.lr: Input should be a finite number"),
    ({"shift": -1}, r"training.shift: Input should be greater than or equal to 0"),
    ({"shift": 5}, r"training.shift: Input should be less than or equal to 4"),
])
def test_bad_training_section(training, match):
    with pytest.raises(UserError, match=rf"^x.yaml: {match}$"):
        parse_config({**BASE, "training": training}, "x.yaml")


def test_user_errors_are_one_line():
    for data in ({**BASE, "dataset": {"name": "cifar10", "test_fraction": 0.5}}, {**BASE, "training": {"threads": 0}}):
        with pytest.raises(UserError) as e:
            parse_config(data, "x.yaml")
        assert "\n" not in str(e.value)


def test_shift_with_a_method_is_refused():
    with pytest.raises(UserError, match=r"^x.yaml: training.shift: method 'ptq' trains through its own phases"):
        parse_config({**BASE, "training": {"shift": 1}, "method": {"name": "ptq"}}, "x.yaml")
