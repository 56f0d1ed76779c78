"""`label_select`: the index of the largest of `channels` inputs, the lowest index on ties (ONNX TopK order).

Block: pqhw_label_select (hw/rtl), testbench sim/tb_label_select.
"""
from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np

from common.dtypes import smallest_dtype
from common.errors import UserError
from hw.kinds.base import LayerKind, register
from hw.layer_rtl import Fmt, LayerRTL, check_folding


def label_select(x: np.ndarray, k: int = 1) -> np.ndarray:
    """Top-k indices, largest first, lowest index first among equals (ONNX TopK order)."""
    order = np.argsort(-np.asarray(x, dtype=np.int64), axis=-1, kind="stable")
    return order[:, :k]


@register
class LabelSelect(LayerKind):
    kind: Literal["label_select"] = "label_select"
    channels: int
    k: int = 1
    input_dtype: str
    output_dtype: str

    finn_ops: ClassVar[tuple[str, ...]] = ("LabelSelect",)
    rtl_modules: ClassVar[dict[str, list[str]]] = {"pqhw_label_select": []}
    testbench: ClassVar[str] = "tb_label_select"
    ends_graph: ClassVar[bool] = True

    @classmethod
    def from_finn(cls, model, node, attrs: dict, prev_dtype: str | None) -> "LabelSelect":
        labels = int(attrs["Labels"])
        return cls(name=node.name, channels=labels, k=int(attrs["K"]), input_dtype=prev_dtype or attrs["inputDataType"],
                   output_dtype=smallest_dtype(0, labels - 1))

    def reference(self, x: np.ndarray) -> np.ndarray:
        return label_select(x, self.k)

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.k

    @property
    def out_fold(self) -> int:
        return 1

    def cycles(self) -> int:
        return self.channels // self.pe

    def rtl(self, in_fmt, prefix: str) -> LayerRTL:
        check_folding(self.name, self.channels, self.pe, "pe")
        if self.k != 1:
            raise UserError(f"layer {self.name}: label select with k={self.k} is not implemented; accepted k=1")
        out_bits = max(1, (self.channels - 1).bit_length())
        params = {"CH": self.channels, "PE": self.pe, "IN_BITS": in_fmt.bits, "IN_SIGNED": int(in_fmt.signed),
                  "OUT_BITS": out_bits}
        return LayerRTL("pqhw_label_select", params, {}, in_fmt, self.pe, Fmt(out_bits, False), 1)

    @classmethod
    def features(cls, module: str, p: dict, family: str) -> tuple[dict, list, int]:
        pe, bits, ch = p["PE"], p["IN_BITS"] + 1, p["CH"]
        iw = max(1, math.ceil(math.log2(max(ch, 2))))
        return ({"blocks": 1, "cmp_bits": pe * bits, "stream_bits": pe * p["IN_BITS"],
                 "reg_bits": 2 * pe * (bits + iw) + 2 * bits + 4 * iw}, [], 0)
