"""The integer dataflow graph: a typed, JSON-serialisable list of layers read from FINN's HW graph.

Every later stage (reference model, RTL emitter, estimates, simulation) reads this and only this, so its
meaning is fixed here:

- Streams carry integers. An element of datatype D travels as D's bits (two's complement when signed);
  a stream beat of n elements packs element 0 in the least significant bits.
- Each layer is one of the registered kinds of hw/kinds (one module each, which documents its meaning),
  told apart in graph.json by its `kind` field.
"""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from common.dtypes import dtype_bits, dtype_range, dtype_signed, smallest_dtype  # noqa: F401
from common.errors import UserError
from hw.kinds import layer_union

GRAPH_VERSION = 1


Layer = layer_union()


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
    def compute_layers(self) -> list:
        """The layers that hold weights (MACs and BOPs are counted over these)."""
        return [l for l in self.layers if l.computes]

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
