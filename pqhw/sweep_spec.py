"""The sweep file (`pqhw sweep SWEEP.yaml`): a pydantic schema and its expansion into trials.

A trial is a training config (the base config with dotted-path overrides, e.g. `training.epochs` or
`model.layers.*.weight`) plus the flow options of `FlowOptions` (paths `flow.board`, `flow.cycles`, ...).
Everything is validated before anything is written: a grid is expanded and every one of its trial configs
parsed up front; a search checks every value of every parameter on its own against the base config.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError
from pydantic import model_validator

from common.errors import UserError

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FlowOptions(_Strict):
    """What a trial does after training: compile (FINN front-end), fold, estimate for `board`, and, when asked,
    verify in RTL simulation and build a bitstream. Folding, in this order: `folding` (PE/SIMD per layer),
    `cycles` (cheapest folding within that many cycles a frame), `target_fps` (at `clock_mhz`); none of them:
    the fastest folding whose estimate fits `board` (`fit_board`), or PE = SIMD = 1 (`fit_board: false`)."""

    board: str = "icebreaker"
    clock_mhz: float | None = Field(None, gt=0, le=2000, allow_inf_nan=False)
    target_fps: float | None = Field(None, gt=0, allow_inf_nan=False)
    cycles: StrictInt | None = Field(None, ge=1)
    folding: dict[str, dict[str, StrictInt]] | None = None
    fit_board: StrictBool = True
    weight_memory: Literal["plain", "codebook"] = "plain"
    verify: StrictBool = False
    vectors: StrictInt = Field(100, ge=0)
    sim: Literal["verilator", "icarus"] = "verilator"
    sim_seed: StrictInt = Field(0, ge=0)
    bitstream: StrictBool = False
    seed: StrictInt = Field(1, ge=0, le=2**32 - 1, description="place-and-route seed")

    @model_validator(mode="after")
    def _check(self):
        from boards.registry import get_board
        from hw.estimate import family_of

        given = [k for k in ("folding", "cycles", "target_fps") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} both set the folding; give one of folding, cycles, target_fps")
        try:
            board = get_board(self.board)
            family_of(self.board)
        except UserError as err:
            raise ValueError(str(err)) from None
        if self.bitstream and board.toolchain != "open":
            raise ValueError(f"board {self.board!r} needs Vivado; sweep bitstreams use the open toolchain "
                             "(boards listed by `pqhw boards` as open)")
        if self.bitstream:
            self.verify = True  # a bitstream is built only from RTL verified from the current graph
        return self

    @property
    def clock(self) -> float:
        from boards.registry import get_board

        return self.clock_mhz or get_board(self.board).clock.mhz


FLOW_KEYS = tuple(FlowOptions.model_fields)


class Axis(_Strict):
    """One parameter: `path` with `values` (a list) or a range (`low`, `high`, optional `step`, `log`), or
    `choices` (label -> {path: value}) for fields that change together (e.g. all weight widths)."""

    path: str | None = None
    values: list[Scalar] | None = Field(None, min_length=1)
    low: StrictInt | StrictFloat | None = None
    high: StrictInt | StrictFloat | None = None
    step: StrictInt | StrictFloat | None = Field(None, gt=0)
    log: StrictBool = False
    choices: dict[str, dict[str, Any]] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self):
        kinds = [k for k, on in (("values", self.values is not None), ("choices", self.choices is not None),
                                 ("low/high", self.low is not None or self.high is not None)) if on]
        if len(kinds) != 1:
            raise ValueError("give exactly one of values, low/high, choices")
        if self.choices is not None:
            if self.path is not None:
                raise ValueError("choices name their own paths; drop path")
            for label, sets in self.choices.items():
                if not sets:
                    raise ValueError(f"choice {label!r} sets nothing")
        elif self.path is None:
            raise ValueError("path is required with values or low/high")
        if kinds == ["low/high"]:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError("a range needs low < high")
            if not all(math.isfinite(v) for v in (self.low, self.high)):
                raise ValueError("a range needs finite low and high")
            if self.log and (self.low <= 0 or self.step is not None):
                raise ValueError("a log range needs low > 0 and no step")
        return self

    @property
    def is_int_range(self) -> bool:
        return all(isinstance(v, int) for v in (self.low, self.high, self.step or 1))

    def grid_values(self, name: str) -> list:
        """Labels a grid walks through: the values, the choice labels, or the stepped range."""
        if self.values is not None:
            return list(self.values)
        if self.choices is not None:
            return list(self.choices)
        if self.step is None and not self.is_int_range:
            raise UserError(f"params.{name}: a float range needs a step in a grid (or search: optuna)")
        if self.log:
            raise UserError(f"params.{name}: a log range is for search: optuna; a grid takes values or a step")
        step = self.step or 1
        n = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        vals = [self.low + i * step for i in range(n)]
        return vals if self.is_int_range else [round(v, 12) for v in vals]

    def assignments(self, label) -> dict[str, Any]:
        """{dotted path: value} that a label of this parameter sets."""
        if self.choices is not None:
            return copy.deepcopy(self.choices[label])
        return {self.path: label}


OBJECTIVES: dict[str, tuple[str, str | None]] = {  # name -> (better direction, flow option it needs)
    "accuracy": ("max", None), "luts": ("min", None), "ffs": ("min", None), "brams": ("min", None),
    "fps": ("max", None), "bops": ("min", None), "cycles_per_frame": ("min", None),
    "measured_cycles_per_frame": ("min", "verify"), "pnr_luts": ("min", "bitstream"),
    "pnr_ffs": ("min", "bitstream"), "fmax_mhz": ("max", "bitstream"),
}


class SweepSpec(_Strict):
    name: str = Field("sweep", pattern=r"^[A-Za-z0-9_.-]+$")
    base: str | None = Field(None, description="training config, relative to the sweep file")
    search: Literal["grid", "optuna"] = "grid"
    trials: StrictInt | None = Field(None, ge=1, description="optuna: number of trials")
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"
    seed: StrictInt = Field(0, ge=0)
    parallel: StrictInt | None = Field(None, ge=1, description="trials in flight at once (default: cluster CPUs)")
    objectives: dict[str, Literal["max", "min"]] = Field(default_factory=lambda: {"accuracy": "max", "luts": "min"},
                                                         min_length=1)
    fixed: dict[str, Any] = Field(default_factory=dict, description="{dotted path: value} for every trial")
    params: dict[str, Axis] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self):
        if self.search == "optuna" and self.trials is None:
            raise ValueError("search: optuna needs trials (how many)")
        if self.search == "grid" and self.trials is not None:
            raise ValueError("trials is for search: optuna; a grid runs every combination")
        for name in self.objectives:
            if name not in OBJECTIVES:
                raise ValueError(f"objectives: unknown metric {name!r}; accepted: {', '.join(OBJECTIVES)}")
        return self


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"])
    if e["type"] == "extra_forbidden":
        return f"unknown key {where!r}"
    msg = e["msg"][len("Value error, "):] if e["msg"].startswith("Value error, ") else e["msg"]
    return f"{where}: {msg}" if where else msg


# Dotted paths -------------------------------------------------------------------------------------------


def _select(items: list, seg: str, where: str) -> list[int]:
    """List indices a path segment names: N, -N, `*` (all) or a slice `a:b`."""
    n = len(items)
    if seg == "*":
        return list(range(n))
    if ":" in seg:
        try:
            lo, hi = (int(p) if p.strip() else None for p in seg.split(":"))
        except ValueError:
            raise UserError(f"{where}: {seg!r} is not a list slice (accepted: N, *, a:b)") from None
        return list(range(n))[slice(lo, hi)]
    try:
        i = int(seg)
    except ValueError:
        raise UserError(f"{where}: {seg!r} is not a list index (accepted: N, *, a:b)") from None
    if not -n <= i < n:
        raise UserError(f"{where}: index {i} is out of range (the list has {n} items)")
    return [i % n]


def set_path(node, segs: list[str], value, where: str) -> None:
    seg, rest = segs[0], segs[1:]
    if isinstance(node, list):
        for i in _select(node, seg, where):
            if rest:
                set_path(node[i], rest, value, where)
            else:
                node[i] = copy.deepcopy(value)
        return
    if not isinstance(node, dict):
        raise UserError(f"{where}: {seg!r} goes into a {type(node).__name__}, which has no fields")
    if not rest:
        node[seg] = copy.deepcopy(value)
        return
    if node.get(seg) is None:
        node[seg] = {}
    set_path(node[seg], rest, value, where)


# Trials -------------------------------------------------------------------------------------------------


class Trial(BaseModel):
    """One point of the sweep: what it is called (labels), its config and flow options, and its id (their hash)."""

    labels: dict[str, Any]
    config: dict
    flow: FlowOptions
    config_file: str

    @property
    def id(self) -> str:
        doc = json.dumps({"config": self.config, "flow": self.flow.model_dump(mode="json")}, sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:12]


class Sweep:
    """A validated sweep file, able to turn parameter labels into trials."""

    def __init__(self, spec: SweepSpec, source: Path):
        self.spec, self.source = spec, Path(source)
        self._bases: dict[str, dict] = {}

    def _config_path(self, value, where: str) -> Path:
        if not isinstance(value, str):
            raise UserError(f"{self.source}: {where}: config: a config file path, got {value!r}")
        p = Path(value)
        p = p if p.is_absolute() else self.source.parent / p
        if not p.is_file():
            raise UserError(f"{self.source}: {where}: config file {p} not found")
        return p

    def _base(self, path: Path) -> dict:
        from quant.config import load_config

        key = str(path.resolve())
        if key not in self._bases:
            load_config(path)  # a broken base config says so in its own words
            self._bases[key] = yaml.safe_load(path.read_text(encoding="utf-8"))
        return self._bases[key]

    def trial(self, labels: dict[str, Any], where: str = "") -> Trial:
        """The trial that these labels (parameter name -> value or choice label) select, validated."""
        from quant.config import parse_config

        sets = dict(self.spec.fixed)
        for name, label in labels.items():
            sets.update(self.spec.params[name].assignments(label))
        where = where or "trial " + ", ".join(f"{k}={v}" for k, v in labels.items())
        if "config" in sets:
            config_file = self._config_path(sets.pop("config"), where)
        elif self.spec.base is not None:
            config_file = self._config_path(self.spec.base, "base")
        else:
            raise UserError(f"{self.source}: no training config: give base (a config file) or a `config` parameter")
        raw = copy.deepcopy(self._base(config_file))
        flow = {}
        for path, value in sets.items():
            segs = path.split(".")
            if segs[0] == "flow":
                if len(segs) != 2 or segs[1] not in FLOW_KEYS:
                    raise UserError(f"{self.source}: {where}: {path!r}: accepted flow options: "
                                    f"{', '.join('flow.' + k for k in FLOW_KEYS)}")
                flow[segs[1]] = value
                continue
            if not all(segs):
                raise UserError(f"{self.source}: {where}: {path!r} is not a dotted path (e.g. training.epochs)")
            set_path(raw, segs, value, f"{self.source}: {where}: {path}")
        cfg = parse_config(raw, f"{self.source}: {where}")
        try:
            options = FlowOptions.model_validate(flow)
        except ValidationError as err:
            said = _first_error(err)
            raise UserError(f"{self.source}: {where}: flow{'.' if ':' in said.split(' ')[0] else ': '}{said}") from None
        return Trial(labels=labels, config=cfg.model_dump(mode="json"), flow=options, config_file=str(config_file))

    def grid(self) -> list[Trial]:
        """Every combination, in parameter order, each validated; equal trials once."""
        names = list(self.spec.params)
        try:
            axes = [self.spec.params[n].grid_values(n) for n in names]
        except UserError as err:
            raise UserError(f"{self.source}: {err}") from None
        trials, seen = [], set()
        for combo in itertools.product(*axes):
            t = self.trial(dict(zip(names, combo)))
            if t.id not in seen:
                seen.add(t.id)
                trials.append(t)
        return trials

    def check_each_value(self) -> None:
        """For a search: every value of every parameter, alone on the base config, makes a valid trial."""
        first = {n: (a.values[0] if a.values is not None else next(iter(a.choices)) if a.choices is not None
                     else a.low) for n, a in self.spec.params.items()}
        for name, axis in self.spec.params.items():
            labels = axis.values if axis.values is not None else list(axis.choices or []) or [axis.low, axis.high]
            for label in labels:
                self.trial({**first, name: label})

    def _needs(self, metric: str, option: str) -> None:
        flows = [self.spec.fixed.get(f"flow.{option}"), self.spec.fixed.get("flow.bitstream")]
        if option == "verify" and any(flows) or option == "bitstream" and flows[1]:
            return
        raise UserError(f"{self.source}: objectives: {metric} needs flow.{option}: true in fixed")

    def check(self) -> list[Trial] | None:
        """Validates everything; returns the grid's trials (None for a search)."""
        for name, needs in ((n, OBJECTIVES[n][1]) for n in self.spec.objectives):
            if needs is not None:
                self._needs(name, needs)
        if self.spec.search == "grid":
            return self.grid()
        self.check_each_value()
        return None


def load_sweep(path: str | Path) -> Sweep:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: sweep file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a UTF-8 text file (byte {err.start}); a sweep file is YAML text") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a sweep file is a YAML mapping with keys base, search, params, objectives")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise UserError(f"{path}: {_first_error(err)}") from None
    return Sweep(spec, path)
