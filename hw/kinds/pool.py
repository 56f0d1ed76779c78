"""`pool`: max-pool over window streams, FINN's Pool node with Function MaxPool.

FINN (finn-plus 1.6.1) builds a max-pool from two nodes: InferPool turns MaxPool / MaxPoolNHWC into Im2Col
(depthwise=1) plus Pool, and InferConvInpGen turns that Im2Col into a ConvolutionInputGenerator, read here as
a `swg` layer. Pool then takes, per output pixel, the window of k_h k_w pixels of C channels in (kh, kw, c)
order and puts out the channel-wise maximum: out[o, c] = max_k in[o, k * C + c] (FINN's python execution:
reshape to (..., k_h k_w, C), max over the window axis). k x k with stride k is a swg with stride k in front;
overlapping windows (stride < k) work the same way. Integer activations only (after thresholding).

Block: pqhw_pool (hw/rtl), PE channels a beat; testbench sim/tb_pool.
"""
from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np

from common.errors import UserError
from hw.kinds.base import LayerKind, register
from hw.layer_rtl import Fmt, LayerRTL, check_folding
from hw.resources import Memory

OUT_DEPTH = 4


def maxpool_windows(x: np.ndarray, kk: int, channels: int) -> np.ndarray:
    """[N, P*KK*C] window streams -> [N, P*C] channel-wise maxima over each window's KK positions."""
    x = np.asarray(x, dtype=np.int64)
    return x.reshape(len(x), -1, kk, channels).max(axis=2).reshape(len(x), -1)


@register
class Pool(LayerKind):
    kind: Literal["pool"] = "pool"
    channels: int
    k_h: int
    k_w: int
    ofm_h: int
    ofm_w: int
    input_dtype: str
    output_dtype: str

    finn_ops: ClassVar[tuple[str, ...]] = ("Pool",)
    rtl_modules: ClassVar[dict[str, list[str]]] = {"pqhw_pool": ["pqhw_credit_fifo", "pqhw_fifo"]}
    testbench: ClassVar[str] = "tb_pool"

    @classmethod
    def from_finn(cls, model, node, attrs: dict, prev_dtype: str | None) -> "Pool":
        fxn = attrs.get("Function", "")
        if fxn != "MaxPool":
            raise UserError(f"node {node.name} (Pool): Function {fxn!r} is not implemented; accepted: MaxPool")
        if int(attrs.get("BatchSize", 1)) != 1:
            raise UserError(f"node {node.name} (Pool): BatchSize {attrs['BatchSize']} is not implemented; "
                            f"accepted 1")
        kh, kw = (list(attrs["KernelSize"]) + list(attrs["KernelSize"]))[:2]
        oh, ow = (list(attrs["OutImgDims"]) + [1])[:2]
        return cls(name=node.name, channels=int(attrs["Channels"]), pe=int(attrs.get("PE", 1)), k_h=int(kh),
                   k_w=int(kw), ofm_h=int(oh), ofm_w=int(ow), input_dtype=attrs["InputDataType"],
                   output_dtype=attrs["OutputDataType"])

    @property
    def kk(self) -> int:
        return self.k_h * self.k_w

    def reference(self, x: np.ndarray) -> np.ndarray:
        return maxpool_windows(x, self.kk, self.channels)

    # `in_channels` elements per window (the swg's out_channels), `out_channels` per output pixel;
    # `num_vectors` windows (output pixels) per frame.
    @property
    def in_channels(self) -> int:
        return self.kk * self.channels

    @property
    def out_channels(self) -> int:
        return self.channels

    @property
    def num_vectors(self) -> int:
        return self.ofm_h * self.ofm_w

    def fold_totals(self) -> dict[str, int]:
        return {"pe": self.channels}

    def cycles(self) -> int:
        """FINN's Pool exp_cycles: every input beat takes a cycle."""
        return self.kk * self.channels // self.pe * self.num_vectors

    def rtl(self, in_fmt: Fmt, prefix: str) -> LayerRTL:
        check_folding(self.name, self.channels, self.pe, "pe")
        if self.input_dtype != self.output_dtype:
            raise UserError(f"layer {self.name}: max-pool keeps its datatype, got {self.input_dtype} in and "
                            f"{self.output_dtype} out")
        params = {"CH": self.channels, "PE": self.pe, "KK": self.kk, "BITS": in_fmt.bits,
                  "SIGNED": int(in_fmt.signed), "OUT_DEPTH": OUT_DEPTH}
        return LayerRTL("pqhw_pool", params, {}, in_fmt, self.pe, in_fmt, self.pe)

    @classmethod
    def features(cls, module: str, p: dict, family: str) -> tuple[dict, list[Memory], int]:
        width = p["PE"] * p["BITS"]
        cf = p["CH"] // p["PE"]
        counters = max(1, math.ceil(math.log2(max(cf, 2)))) + max(1, math.ceil(math.log2(max(p["KK"], 2))))
        f = {"blocks": 1, "cmp_bits": p["PE"] * p["BITS"], "stream_bits": 2 * width,
             "reg_bits": width + counters + 3}
        mems = [Memory("running_max", width, cf, rom=False),
                Memory("output_fifo", width, p.get("OUT_DEPTH", OUT_DEPTH) + 2, rom=False)]
        return f, mems, 0

    def summary(self, p: dict) -> str:
        return f"layer {self.name}, max over {self.k_h}x{self.k_w} of {p['CH']} channels, PE={p['PE']}"

    def report_row(self) -> dict:
        return {"mh": self.out_channels, "mw": self.in_channels, "simd": None, "weight_dtype": None,
                "ofm": [self.ofm_h, self.ofm_w, self.channels], "window": [self.k_h, self.k_w]}
