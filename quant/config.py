"""Typed, validated run configuration loaded from YAML; a typo in a key is an error, never a default."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, ValidationInfo, field_validator

from common.errors import UserError
from quant.quantizers import act_quant, weight_quant


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


EMBEDDED = ("digits", "mnist5k")  # shipped in installed packages; the others load from dataset.data_dir


class DatasetConfig(_Strict):
    """digits and mnist5k are embedded and split here (stratified, seeded); mnist and cifar10 come from
    local files with their own train/test files, so a test_fraction there would be silently ignored."""

    name: Literal["digits", "mnist5k", "mnist", "cifar10"] = "digits"
    data_dir: Path | None = None
    input_bits: StrictInt = Field(4, ge=1, le=8, description="pixels enter the accelerator as UINT<input_bits>")
    test_fraction: float | None = Field(None, gt=0, lt=1, description="embedded datasets only; default: the "
                                        "fixed split, digits 0.25 (1,347 / 450), mnist5k 0.2 (4,000 / 1,000)")
    split_seed: StrictInt = 0

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, v, info: ValidationInfo):
        name = info.data.get("name")
        if v is not None and name in EMBEDDED:
            raise ValueError(f"{name!r} is embedded and reads no files; data_dir is for mnist and cifar10")
        return v

    @field_validator("test_fraction")
    @classmethod
    def _test_fraction(cls, v, info: ValidationInfo):
        name = info.data.get("name")
        if v is not None and name not in (None, *EMBEDDED):
            raise ValueError(f"{name!r} uses the test files in data_dir; test_fraction is for "
                             f"{' and '.join(EMBEDDED)}")
        return v


def _checked(make_quant, spec: str) -> str:
    try:
        make_quant(spec)
    except UserError as err:
        raise ValueError(str(err)) from None
    return spec


class LinearLayer(_Strict):
    kind: Literal["linear"] = "linear"
    features: StrictInt = Field(gt=0)
    weight: str
    act: str | None = Field(None, description="activation after batch norm; none on the last layer")

    @field_validator("weight")
    @classmethod
    def _weight(cls, v):
        return _checked(weight_quant, v)

    @field_validator("act")
    @classmethod
    def _act(cls, v):
        return v if v is None else _checked(act_quant, v)


class ConvLayer(_Strict):
    """A convolution (stride 1, `padding` zero rows/columns on each side, optional k x k max-pool)."""

    kind: Literal["conv"]
    channels: StrictInt = Field(gt=0)
    kernel: StrictInt = Field(3, gt=0)
    padding: StrictInt = Field(0, ge=0)
    weight: str
    act: str | None = None
    pool: StrictInt = Field(1, ge=1)

    _weight = field_validator("weight")(classmethod(lambda cls, v: _checked(weight_quant, v)))
    _act = field_validator("act")(classmethod(lambda cls, v: v if v is None else _checked(act_quant, v)))


Layer = Annotated[Union[LinearLayer, ConvLayer], Field(discriminator="kind")]


class ModelConfig(_Strict):
    layers: list[Layer] = Field(min_length=1)


class TrainingConfig(_Strict):
    """threads defaults to 1: torch's default (a thread per core) made three quantized TFC epochs take 38.5 s
    instead of 1.4 s on a shared 2-core machine, since these layers are too small to split and the threads
    wait for each other and for other jobs. More threads help only wide layers on idle cores. The weights are
    the same for the same seed and thread count (another count may change the order of float sums)."""

    epochs: StrictInt = Field(30, ge=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(0.01, gt=0, allow_inf_nan=False)
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False)
    batch_size: StrictInt = Field(64, ge=1)
    seed: StrictInt = 0
    float_baseline: bool = Field(False, description="also train the same topology in float and report it")
    threads: StrictInt = Field(1, ge=1, le=256, description="torch CPU threads while training")
    shift: StrictInt = Field(0, ge=0, le=4, description="move each training image by up to this many pixels "
                       "(random per image and batch; plain training and the float baseline)")


class RunConfig(_Strict):
    name: str = "run"
    dataset: DatasetConfig = DatasetConfig()
    model: ModelConfig
    training: TrainingConfig = TrainingConfig()
    method: dict | None = Field(None, description="a paper's training method; see quant/methods/__init__.py")

    def method_parts(self):
        """(module, validated method config), or (None, None) for plain quantization-aware training."""
        from quant.methods import method_config

        return method_config(self.method) if self.method is not None else (None, None)


def _first_error(err: ValidationError, section: tuple = ()) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in (*section, *e["loc"]) if p not in ("linear", "conv")) or "(top level)"
    if e["type"] == "extra_forbidden":
        return f"unknown key {where!r}"
    msg = e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return f"{where}: {msg}"


def parse_config(data: dict, source: str = "<config>") -> RunConfig:
    if not isinstance(data, dict):
        raise UserError(f"{source}: a config is a YAML mapping with keys dataset, model, training")
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as err:
        raise UserError(f"{source}: {_first_error(err)}") from None
    except UserError as err:
        raise UserError(f"{source}: {err}") from None
    if cfg.model.layers[-1].act is not None:
        raise UserError(f"{source}: model.layers.{len(cfg.model.layers) - 1}.act: the last layer has no "
                        "activation (its outputs go to the arg-max)")
    for i, layer in enumerate(cfg.model.layers[:-1]):
        if layer.act is None:
            raise UserError(f"{source}: model.layers.{i}.act: hidden layers need an activation quantizer")
    try:
        module, _ = cfg.method_parts()
    except ValidationError as err:
        raise UserError(f"{source}: {_first_error(err, ('method',))}") from None
    except UserError as err:
        raise UserError(f"{source}: {err}") from None
    if module is not None and cfg.training.shift and not getattr(module, "TAKES_SHIFT", False):
        raise UserError(f"{source}: training.shift: method {cfg.method.get('name')!r} trains through its own "
                        "phases, which do not shift images; shift is for plain training and admm, set it to 0")
    return cfg


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a UTF-8 text file (byte {err.start}); a config is YAML text") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return parse_config(data, str(path))
