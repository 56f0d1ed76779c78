"""`swg`: sliding-window generator, FINN's ConvolutionInputGenerator: the im2col stream of an NHWC image.

A frame is an ifm_h x ifm_w image of `channels` channels, pixel by pixel (NHWC, batch 1), SIMD channels a
beat. Out go the oh x ow windows, row-major, each k_h x k_w pixels of all channels in (kh, kw, channel) order:
out[oy, ox, (kh * k_w + kw) * C + c] = in[oy * stride_h + kh, ox * stride_w + kw, c], which is what FINN's
python execution (qonnx Im2Col) computes and the order LowerConvsToMatMul lays the weight matrix out in, so
the MVAU after it takes one window as one input vector (MW = k_h k_w C, num_vectors = oh ow). FINN's
depthwise flag (set when the windows feed a Pool) does not change that order in python execution, nor here.
Padding is a separate `pad` layer (InferConvInpGen puts an FMPadding in front). Dilation 1 only.

Block: pqhw_swg (hw/rtl): line buffers of `rows` input rows (see `rows`: the writer waits for the reader
neither inside a frame nor across a frame boundary), block RAM or distributed RAM as synthesis decides;
testbench sim/tb_swg.
"""
from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import model_validator

from common.errors import UserError
from hw.kinds.base import ImageStream, LayerKind, register
from hw.layer_rtl import Fmt, LayerRTL, check_folding
from hw.resources import Memory

OUT_DEPTH = 4


def out_dim(size: int, k: int, stride: int) -> int:
    return (size - k) // stride + 1


def im2col(x: np.ndarray, h: int, w: int, c: int, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """Windows [N, OH*OW*KH*KW*C] of images [N, H*W*C] (NHWC), in (oy, ox, kh, kw, c) order."""
    x = np.asarray(x, dtype=np.int64).reshape(len(x), h, w, c)
    oh, ow = out_dim(h, kh, sh), out_dim(w, kw, sw)
    out = np.empty((len(x), oh, ow, kh, kw, c), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j, :] = x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]
    return out.reshape(len(x), -1)


@register
class SWG(ImageStream, LayerKind):
    kind: Literal["swg"] = "swg"
    ifm_h: int
    ifm_w: int
    channels: int
    k_h: int
    k_w: int
    stride_h: int = 1
    stride_w: int = 1
    simd: int = 1
    depthwise: int = 0
    input_dtype: str
    output_dtype: str

    finn_ops: ClassVar[tuple[str, ...]] = ("ConvolutionInputGenerator",)
    rtl_modules: ClassVar[dict[str, list[str]]] = {"pqhw_swg": ["pqhw_credit_fifo", "pqhw_fifo"]}
    testbench: ClassVar[str] = "tb_swg"

    @model_validator(mode="after")
    def _check(self):
        for what, v in (("ifm_h", self.ifm_h), ("ifm_w", self.ifm_w), ("channels", self.channels),
                        ("k_h", self.k_h), ("k_w", self.k_w), ("stride_h", self.stride_h),
                        ("stride_w", self.stride_w), ("simd", self.simd)):
            if v < 1:
                raise ValueError(f"{self.name}: {what} = {v}, must be at least 1")
        if self.k_h > self.ifm_h or self.k_w > self.ifm_w:
            raise ValueError(f"{self.name}: window {self.k_h}x{self.k_w} larger than the image "
                             f"{self.ifm_h}x{self.ifm_w}")
        return self

    @classmethod
    def from_finn(cls, model, node, attrs: dict, prev_dtype: str | None) -> "SWG":
        dil = list(attrs.get("Dilation", [1, 1]))
        if dil != [1, 1]:
            raise UserError(f"node {node.name} (ConvolutionInputGenerator): dilation {dil} is not implemented; "
                            f"accepted [1, 1]")
        if attrs.get("parallel_window", 0) or attrs.get("dynamic_mode", 0):
            raise UserError(f"node {node.name} (ConvolutionInputGenerator): parallel_window and dynamic_mode are "
                            f"not implemented; accepted 0")
        (ih, iw), (kh, kw), (sh, sw) = attrs["IFMDim"], attrs["ConvKernelDim"], attrs.get("Stride", [1, 1])
        if kh > ih or kw > iw:
            raise UserError(f"node {node.name} (ConvolutionInputGenerator): kernel {kh}x{kw} larger than the "
                            f"input {ih}x{iw}")
        return cls(name=node.name, ifm_h=int(ih), ifm_w=int(iw), channels=int(attrs["IFMChannels"]),
                   k_h=int(kh), k_w=int(kw), stride_h=int(sh), stride_w=int(sw), simd=int(attrs["SIMD"]),
                   depthwise=int(attrs.get("depthwise", 0)), input_dtype=attrs["inputDataType"],
                   output_dtype=attrs["outputDataType"])

    @property
    def ofm_h(self) -> int:
        return out_dim(self.ifm_h, self.k_h, self.stride_h)

    @property
    def ofm_w(self) -> int:
        return out_dim(self.ifm_w, self.k_w, self.stride_w)

    @property
    def rows(self) -> int:
        """Input rows the line buffer holds: the current window row and the next (k_h + stride_h: the writer
        never waits for the reader inside a frame), and at the last window row of a frame the rows left to
        the frame's end plus the next frame's first window row (ifm_h - (ofm_h - 1) stride_h + k_h), so a
        producer that ran ahead has the next frame's first window in place when this frame's last one
        leaves: without them the reader waited for k_h rows at every frame boundary (digits CNN +7.2 %)."""
        return max(self.k_h + self.stride_h, self.ifm_h - (self.ofm_h - 1) * self.stride_h + self.k_h)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return im2col(x, self.ifm_h, self.ifm_w, self.channels, self.k_h, self.k_w, self.stride_h, self.stride_w)

    # Shapes: `in_channels` elements per input pixel, `num_vectors` pixels per frame; `out_channels` elements
    # per window (the next MVAU's MW), `out_vectors` windows per frame (its num_vectors).
    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.k_h * self.k_w * self.channels

    @property
    def num_vectors(self) -> int:
        return self.ifm_h * self.ifm_w

    @property
    def out_vectors(self) -> int:
        return self.ofm_h * self.ofm_w

    def cycles(self) -> int:
        """One beat a cycle on each side, the two sides overlapping: the longer of reading the image and
        writing the windows."""
        cf = self.channels // self.simd
        return max(self.ifm_h * self.ifm_w * cf, self.ofm_h * self.ofm_w * self.k_h * self.k_w * cf)

    def rtl(self, in_fmt: Fmt, prefix: str) -> LayerRTL:
        check_folding(self.name, self.channels, self.simd, "simd")
        params = {"IFM_H": self.ifm_h, "IFM_W": self.ifm_w, "CH": self.channels, "SIMD": self.simd,
                  "K_H": self.k_h, "K_W": self.k_w, "S_H": self.stride_h, "S_W": self.stride_w,
                  "BITS": in_fmt.bits, "ROWS": self.rows, "OUT_DEPTH": OUT_DEPTH}
        return LayerRTL("pqhw_swg", params, {}, in_fmt, self.simd, in_fmt, self.simd)

    @classmethod
    def features(cls, module: str, p: dict, family: str) -> tuple[dict, list[Memory], int]:
        cf = p["CH"] // p["SIMD"]
        width = p["SIMD"] * p["BITS"]
        depth = p["ROWS"] * p["IFM_W"] * cf
        ofm_w = out_dim(p["IFM_W"], p["K_W"], p["S_W"])
        ofm_h = out_dim(p["IFM_H"], p["K_H"], p["S_H"])

        def bits(n: int) -> int:
            return max(1, math.ceil(math.log2(max(n, 2))))

        # counters and address registers: write address, write column, row distance, read window counters,
        # column and two row bases; the read data register pair
        counters = (3 * bits(depth) + 2 * bits(p["IFM_W"] * cf + 1) + bits(p["ROWS"] + p["IFM_H"]) + 2
                    + bits(p["K_H"]) + bits(p["K_W"] * cf) + bits(ofm_w) + bits(ofm_h))
        # adders and comparators: five line-buffer address steps with their wrap (write address, next kernel
        # row, next window row, next frame, read address), and in-row column, window offset and availability
        # (ECP5, Yosys: 175-391 LUTs measured on four line buffers from 48 to 7,680 beats)
        f = {"blocks": 1, "stream_bits": 2 * width, "reg_bits": counters + 2 * width,
             "acc_bits": 5 * bits(depth) + 2 * bits(p["IFM_W"] * cf + 1)}
        mems = [Memory("line_buffer", width, depth, rom=False),
                Memory("output_fifo", width, p.get("OUT_DEPTH", OUT_DEPTH) + 3, rom=False)]
        return f, mems, 0

    def summary(self, p: dict) -> str:
        return (f"layer {self.name}, {p['IFM_H']}x{p['IFM_W']}x{p['CH']}, window {p['K_H']}x{p['K_W']} "
                f"stride {p['S_H']}x{p['S_W']}, SIMD={p['SIMD']}, line buffer {p['ROWS']} rows")

    def report_row(self) -> dict:
        return {"mh": self.out_channels, "mw": self.in_channels, "simd": self.simd, "weight_dtype": None,
                "ifm": [self.ifm_h, self.ifm_w, self.channels], "ofm": [self.ofm_h, self.ofm_w, self.out_channels],
                "window": [self.k_h, self.k_w], "stride": [self.stride_h, self.stride_w]}
