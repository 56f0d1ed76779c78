"""`threshold`: a standalone MultiThreshold on a vector of `channels` elements, PE elements per beat.

y = #{i : x >= T[c, i]} + threshold_bias, with one threshold row shared by all channels or one per channel;
a frame is num_vectors such vectors (the pixels of an NHWC feature map), the channel index wrapping per vector.
Block: pqhw_threshold (hw/rtl), testbench sim/tb_threshold.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

from common.errors import UserError
from hw.kinds.base import LayerKind, finn_ints, register
from hw.layer_rtl import STYLE_CONST, LayerRTL, activation_params, check_folding, const_literal, memh
from hw.resources import Memory
from hw.threshold_search import check_sorted, latency, search_features, search_params, use_search


def multithreshold(acc: np.ndarray, thresholds: np.ndarray, bias: int) -> np.ndarray:
    """FINN MultiThreshold: number of thresholds reached, plus bias; one threshold row or one per channel."""
    t = np.asarray(thresholds, dtype=np.int64)
    return (np.asarray(acc, dtype=np.int64)[:, :, None] >= t[None, :, :]).sum(axis=-1, dtype=np.int64) + bias


@register
class Threshold(LayerKind):
    kind: Literal["threshold"] = "threshold"
    channels: int
    num_vectors: int = 1
    input_dtype: str
    output_dtype: str
    thresholds: list[list[int]]
    threshold_bias: int = 0
    # "auto" searches many thresholds a row (hw/threshold_search.use_search), "search" / "parallel" force a way
    threshold_search: Literal["auto", "search", "parallel"] = "auto"

    finn_ops: ClassVar[tuple[str, ...]] = ("Thresholding",)
    rtl_modules: ClassVar[dict[str, list[str]]] = {
        "pqhw_threshold": ["pqhw_mem", "pqhw_mt", "pqhw_mt_search", "pqhw_credit_fifo", "pqhw_fifo"]}
    testbench: ClassVar[str] = "tb_threshold"

    @classmethod
    def from_finn(cls, model, node, attrs: dict, prev_dtype: str | None) -> "Threshold":
        t = finn_ints(model.get_initializer(node.input[1]), f"{node.name} thresholds")
        return cls(name=node.name, channels=int(attrs["NumChannels"]), pe=int(attrs["PE"]),
                   num_vectors=int(np.prod(attrs.get("numInputVectors", [1]))),
                   input_dtype=attrs["inputDataType"], output_dtype=attrs["outputDataType"],
                   thresholds=t.tolist(), threshold_bias=int(attrs.get("ActVal", 0)))

    def threshold_array(self) -> np.ndarray:
        return np.asarray(self.thresholds, dtype=np.int64)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return multithreshold(x, self.threshold_array(), self.threshold_bias)

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.channels

    def cycles(self) -> int:
        return self.channels // self.pe * self.num_vectors

    def rtl(self, in_fmt, prefix: str, style: int = STYLE_CONST) -> LayerRTL:
        check_folding(self.name, self.channels, self.pe, "pe")
        t = self.threshold_array()
        if t.ndim != 2 or t.shape[0] not in (1, self.channels):
            raise UserError(f"layer {self.name}: thresholds are {t.shape}, expected (1 or {self.channels}, T)")
        act, words, width, out = activation_params(self.name, t, self.threshold_bias, self.output_dtype,
                                                   in_fmt.lo, in_fmt.hi, self.pe, in_fmt)
        params = {"CH": self.channels, "PE": self.pe, "IN_BITS": in_fmt.bits, "IN_SIGNED": int(in_fmt.signed),
                  "MEM_STYLE": style, **act}
        files = {}
        if use_search(t, len(words) * width, self.threshold_search):
            check_sorted(self.name, t)
            params["TH_SORTED"] = 1
            sp, files = search_params(np.clip(t, in_fmt.lo, in_fmt.hi + 1), self.pe, act["TH_BITS"], style, prefix)
            params.update(sp)
        elif style == STYLE_CONST:
            params["T_INIT"] = const_literal(words, width)
        else:
            files[f"{prefix}_t.memh"] = memh(words, width)
            params["T_FILE"] = f"{prefix}_t.memh"
        return LayerRTL("pqhw_threshold", params, files, in_fmt, self.pe, out, self.pe)

    @classmethod
    def features(cls, module: str, p: dict, family: str) -> tuple[dict, list[Memory], int]:
        pe, ch, nt, tb = p["PE"], p["CH"], p["NT"], p["TH_BITS"]
        nf = ch // pe
        tw = (1 if p.get("TH_SHARED", 0) else pe) * nt * tb
        f = {"blocks": 1, "cmp_bits": pe * nt * tb, "stream_bits": pe * (p["IN_BITS"] + p["OUT_BITS"]),
             "reg_bits": pe * p["IN_BITS"] + tw}
        mems = [Memory("output_fifo", pe * p["OUT_BITS"], p.get("OUT_DEPTH", 4), rom=False)]
        depth = 1 if p.get("TH_SHARED", 0) else nf
        if p.get("TH_SEARCH", 0):  # the search's stage tables (hw/threshold_search) in place of the wide words
            sf, smems = search_features(p, pe, nf, p["IN_BITS"])
            f["reg_bits"] = pe * p["IN_BITS"] + sf.pop("reg_bits")
            f["cmp_bits"] = sf.pop("cmp_bits")
            f.update(sf)
            out = Memory("output_fifo", pe * p["OUT_BITS"], p.get("OUT_DEPTH", 4) + latency(nt, p.get("TH_WREG", 0)),
                         rom=False)
            return f, [out] + smems, 0
        if p.get("MEM_STYLE", 0) == 1:
            mems.append(Memory("thresholds", tw, depth, rom=True))
        elif depth > 1:
            f["const_bits"] = tw * depth
        return f, mems, 0

