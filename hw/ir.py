"""The integer dataflow graph: a typed, JSON-serialisable list of layers read from FINN's HW graph.

Every later stage (reference model, RTL emitter, estimates, simulation) reads this and only this, so its
meaning is fixed here:

- Streams carry integers. An element of datatype D travels as D's bits (two's complement when signed);
  a stream beat of n elements packs element 0 in the least significant bits.
- `mvau`: out[n, r] = act(acc[n, r]) with acc = sum_k W[r, k] * x[n, k]   (modes "ternary", "int")
                                     or acc = sum_k (W[r, k] == x[n, k])  (mode "xnor": popcount of XNOR
       on {0,1} codes of bipolar values). act is MultiThreshold when thresholds are present:
       y = #{i : acc >= T[r, i]} + threshold_bias, else the identity (y = acc in acc_dtype).
       The input vector arrives MW/SIMD beats of SIMD elements; the output leaves MH/PE beats of PE
       elements, row r = nf * PE + p in beat nf, lane p.
- `threshold`: a standalone MultiThreshold on a vector of `channels` elements, PE per beat.
- `label_select`: the index of the largest of `channels` inputs, the lowest index on ties (ONNX TopK).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.dtypes import dtype_bits, dtype_range, dtype_signed, smallest_dtype  # noqa: F401
from common.errors import UserError

GRAPH_VERSION = 1


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    pe: int = 1


class MVAU(_Layer):
    kind: Literal["mvau"] = "mvau"
    mode: Literal["xnor", "ternary", "int"]
    mh: int
    mw: int
    simd: int = 1
    num_vectors: int = 1
    input_dtype: str
    weight_dtype: str
    acc_dtype: str
    output_dtype: str
    weights: list[list[int]]
    thresholds: list[list[int]] | None = None
    threshold_bias: int = 0
    weight_memory: Literal["auto", "const", "rom", "codebook"] = "auto"

    @model_validator(mode="after")
    def _check(self):
        w = np.asarray(self.weights)
        if w.shape != (self.mh, self.mw):
            raise ValueError(f"{self.name}: weights are {w.shape}, expected ({self.mh}, {self.mw})")
        if self.thresholds is not None:
            t = np.asarray(self.thresholds)
            if t.ndim != 2 or t.shape[0] not in (1, self.mh):
                raise ValueError(f"{self.name}: thresholds are {t.shape}, expected (1 or {self.mh}, T)")
        return self

    def weight_array(self) -> np.ndarray:
        return np.asarray(self.weights, dtype=np.int64)

    def threshold_array(self) -> np.ndarray | None:
        return None if self.thresholds is None else np.asarray(self.thresholds, dtype=np.int64)

    def costs(self) -> dict:
        """Bits and bit operations (paper 001, eq. 16): xnor counts 1x1-bit, ternary 2-bit weights."""
        w_bits = {"xnor": 1, "ternary": 2}.get(self.mode) or dtype_bits(self.weight_dtype)
        a_bits = 1 if self.mode == "xnor" else dtype_bits(self.input_dtype)
        macs = self.mh * self.mw * self.num_vectors
        return {"weight_bits": w_bits, "act_bits": a_bits, "macs": macs, "bops": macs * w_bits * a_bits}

    @property
    def in_channels(self) -> int:
        return self.mw

    @property
    def out_channels(self) -> int:
        return self.mh

    @property
    def in_fold(self) -> int:
        return self.simd


class Threshold(_Layer):
    kind: Literal["threshold"] = "threshold"
    channels: int
    num_vectors: int = 1
    input_dtype: str
    output_dtype: str
    thresholds: list[list[int]]
    threshold_bias: int = 0

    def threshold_array(self) -> np.ndarray:
        return np.asarray(self.thresholds, dtype=np.int64)

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.channels

    @property
    def in_fold(self) -> int:
        return self.pe


class LabelSelect(_Layer):
    kind: Literal["label_select"] = "label_select"
    channels: int
    k: int = 1
    input_dtype: str
    output_dtype: str

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.k

    @property
    def in_fold(self) -> int:
        return self.pe


Layer = Annotated[Union[MVAU, Threshold, LabelSelect], Field(discriminator="kind")]


class Graph(BaseModel):
    """A whole accelerator: the input stream's datatype and shape, then the layers in stream order."""

    model_config = ConfigDict(extra="forbid")
    version: int = GRAPH_VERSION
    input_dtype: str
    input_shape: list[int]
    layers: list[Layer]
    # How the float model's input maps to the integer input: x_int = round(x_float / input_scale).
    input_scale: float = 1.0

    @property
    def compute_layers(self) -> list[MVAU]:
        return [l for l in self.layers if l.kind == "mvau"]

    def save(self, path: Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: Path) -> "Graph":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: graph file not found; run `pqhw compile` first")
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (json.JSONDecodeError, ValueError) as err:
            first = str(err).splitlines()[0]
            raise UserError(f"{path}: not a valid pqhw graph ({first})") from None
