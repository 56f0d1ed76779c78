"""`pad`: feature-map padding, FINN's FMPadding: an NHWC image surrounded by rows and columns of one value.

A frame is an img_h x img_w image of `channels` channels (NHWC, batch 1), SIMD channels a beat; out goes the
(pad_top + img_h + pad_bottom) x (pad_left + img_w + pad_right) image, the added elements equal to `value`
(FINN's python execution: np.pad with constant 0; InferConvInpGen inserts an FMPadding in front of the
ConvolutionInputGenerator of a padded convolution and refuses pad values other than 0). FINN's Padding
attribute is [top, left, bottom, right].

Block: pqhw_pad (hw/rtl); testbench sim/tb_pad.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import model_validator

from common.errors import UserError
from hw.kinds.base import ImageStream, LayerKind, register
from hw.layer_rtl import Fmt, LayerRTL, check_folding
from hw.resources import Memory


@register
class Pad(ImageStream, LayerKind):
    kind: Literal["pad"] = "pad"
    img_h: int
    img_w: int
    channels: int
    pad_top: int = 0
    pad_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0
    value: int = 0
    simd: int = 1
    input_dtype: str
    output_dtype: str

    finn_ops: ClassVar[tuple[str, ...]] = ("FMPadding",)
    rtl_modules: ClassVar[dict[str, list[str]]] = {"pqhw_pad": ["pqhw_fifo"]}
    testbench: ClassVar[str] = "tb_pad"

    @model_validator(mode="after")
    def _check(self):
        if min(self.img_h, self.img_w, self.channels, self.simd) < 1:
            raise ValueError(f"{self.name}: image {self.img_h}x{self.img_w}x{self.channels}, SIMD {self.simd}: "
                             f"all must be at least 1")
        if min(self.pad_top, self.pad_left, self.pad_bottom, self.pad_right) < 0:
            raise ValueError(f"{self.name}: negative padding")
        return self

    @classmethod
    def from_finn(cls, model, node, attrs: dict, prev_dtype: str | None) -> "Pad":
        if int(attrs.get("numInputVectors", 1)) != 1:
            raise UserError(f"node {node.name} (FMPadding): numInputVectors {attrs['numInputVectors']} is not "
                            f"implemented; accepted 1")
        (h, w), pads = attrs["ImgDim"], list(attrs["Padding"])
        if len(pads) != 4:
            raise UserError(f"node {node.name} (FMPadding): Padding {pads}; accepted [top, left, bottom, right]")
        dt = attrs["inputDataType"]
        return cls(name=node.name, img_h=int(h), img_w=int(w), channels=int(attrs["NumChannels"]),
                   pad_top=int(pads[0]), pad_left=int(pads[1]), pad_bottom=int(pads[2]), pad_right=int(pads[3]),
                   simd=int(attrs.get("SIMD", 1)), input_dtype=dt, output_dtype=dt)

    @property
    def out_h(self) -> int:
        return self.pad_top + self.img_h + self.pad_bottom

    @property
    def out_w(self) -> int:
        return self.pad_left + self.img_w + self.pad_right

    def reference(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.int64).reshape(len(x), self.img_h, self.img_w, self.channels)
        y = np.pad(x, ((0, 0), (self.pad_top, self.pad_bottom), (self.pad_left, self.pad_right), (0, 0)),
                   mode="constant", constant_values=self.value)
        return y.reshape(len(x), -1)

    # `in_channels` / `out_channels` elements per pixel; `num_vectors` input pixels, `out_vectors` output
    # pixels per frame.
    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.channels

    @property
    def num_vectors(self) -> int:
        return self.img_h * self.img_w

    @property
    def out_vectors(self) -> int:
        return self.out_h * self.out_w

    def cycles(self) -> int:
        """FINN's FMPadding exp_cycles: one output beat a cycle."""
        return self.out_h * self.out_w * self.channels // self.simd

    def rtl(self, in_fmt: Fmt, prefix: str) -> LayerRTL:
        check_folding(self.name, self.channels, self.simd, "simd")
        if not in_fmt.lo <= self.value <= in_fmt.hi:
            raise UserError(f"layer {self.name}: pad value {self.value} does not fit the stream's "
                            f"{in_fmt.bits}-bit {'signed' if in_fmt.signed else 'unsigned'} elements "
                            f"[{in_fmt.lo}, {in_fmt.hi}]")
        params = {"IMG_H": self.img_h, "IMG_W": self.img_w, "CH": self.channels, "SIMD": self.simd,
                  "PAD_T": self.pad_top, "PAD_L": self.pad_left, "PAD_B": self.pad_bottom, "PAD_R": self.pad_right,
                  "BITS": in_fmt.bits, "VALUE": self.value}
        return LayerRTL("pqhw_pad", params, {}, in_fmt, self.simd, in_fmt, self.simd)

    @classmethod
    def features(cls, module: str, p: dict, family: str) -> tuple[dict, list[Memory], int]:
        width = p["SIMD"] * p["BITS"]
        oh, ow = p["PAD_T"] + p["IMG_H"] + p["PAD_B"], p["PAD_L"] + p["IMG_W"] + p["PAD_R"]
        counters = (oh + 1).bit_length() + (ow + 1).bit_length() + max(1, (p["CH"] // p["SIMD"] - 1).bit_length())
        f = {"blocks": 1, "stream_bits": 2 * width, "reg_bits": counters,
             "cmp_bits": (oh + 1).bit_length() + (ow + 1).bit_length()}
        return f, [Memory("output_fifo", width, 2, rom=False)], 0

    def summary(self, p: dict) -> str:
        return (f"layer {self.name}, {p['IMG_H']}x{p['IMG_W']}x{p['CH']} padded "
                f"[{p['PAD_T']}, {p['PAD_L']}, {p['PAD_B']}, {p['PAD_R']}], SIMD={p['SIMD']}")

    def report_row(self) -> dict:
        return {"mh": self.out_channels, "mw": self.in_channels, "simd": self.simd, "weight_dtype": None,
                "ifm": [self.img_h, self.img_w, self.channels], "ofm": [self.out_h, self.out_w, self.channels]}
