"""Reads FINN's HW graph (MVAU, Thresholding, LabelSelect nodes) into the typed integer graph of hw.ir."""
from __future__ import annotations

import numpy as np

from common.errors import UserError
from hw.ir import MVAU, Graph, LabelSelect, Threshold, dtype_bits, dtype_range, smallest_dtype


def _attrs(node) -> dict:
    from qonnx.custom_op.registry import getCustomOp

    inst = getCustomOp(node)
    names = [a.name for a in node.attribute]
    return {n: inst.get_nodeattr(n) for n in names}


def _ints(arr: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
        raise UserError(f"{what}: values are not integers; the graph is not fully streamlined")
    return a.astype(np.int64)


def _acc_range(mode: str, w: np.ndarray, in_dtype: str) -> tuple[int, int]:
    """Exact accumulator range over every input the datatype allows (per row, then the widest row)."""
    if mode == "xnor":
        return 0, int(w.shape[1])
    lo_x, hi_x = dtype_range(in_dtype)
    lo = np.minimum(w * lo_x, w * hi_x).sum(axis=1)
    hi = np.maximum(w * lo_x, w * hi_x).sum(axis=1)
    return int(lo.min()), int(hi.max())


MAX_BITS = 8  # the RTL's MVAU modes: binary, ternary, and integers of 2..8 bits


def _mvau(model, node, a: dict) -> MVAU:
    w_dt = a["weightDataType"]
    in_dt = a["inputDataType"]
    for what, dt in (("weights", w_dt), ("inputs", in_dt)):
        if dtype_bits(dt) > MAX_BITS:
            raise UserError(f"node {node.name} (MVAU): {what} are {dt}; the hardware takes binary, ternary and "
                            f"integers of 2..{MAX_BITS} bits (quantize this layer to at most {MAX_BITS} bits)")
    # FINN stores the weight matrix as [MW, MH] (the MatMul parameter); the graph uses rows = outputs.
    w = _ints(model.get_initializer(node.input[1]), f"{node.name} weights").T
    if a.get("binaryXnorMode", 0):
        mode = "xnor"
        w_dt = "BINARY"
    elif np.isin(w, (-1, 0, 1)).all():
        mode, w_dt = "ternary", "INT2"
    else:
        mode = "int"
    lo, hi = _acc_range(mode, w, in_dt)
    acc_dt = smallest_dtype(lo, hi)
    thresholds, bias, out_dt = None, 0, acc_dt
    if not a.get("noActivation", 0):
        t = _ints(model.get_initializer(node.input[2]), f"{node.name} thresholds")
        thresholds = np.clip(t, lo, hi + 1).tolist()  # beyond the accumulator's reach they never change y
        bias = int(a.get("ActVal", 0))
        out_dt = a["outputDataType"]
        if out_dt == "BIPOLAR":
            raise UserError(f"node {node.name} (MVAU): BIPOLAR outputs are not supported; accepted: "
                            "BINARY, INTn, UINTn")
    return MVAU(name=node.name, mode=mode, mh=int(a["MH"]), mw=int(a["MW"]), pe=int(a["PE"]),
                simd=int(a["SIMD"]), input_dtype=in_dt, weight_dtype=w_dt, acc_dtype=acc_dt,
                output_dtype=out_dt, weights=w.tolist(), thresholds=thresholds, threshold_bias=bias)


def graph_from_finn(model) -> Graph:
    layers = []
    prev_dtype = None
    for node in model.graph.node:
        a = _attrs(node)
        if node.op_type == "MVAU":
            layer = _mvau(model, node, a)
        elif node.op_type == "Thresholding":
            t = _ints(model.get_initializer(node.input[1]), f"{node.name} thresholds")
            layer = Threshold(name=node.name, channels=int(a["NumChannels"]), pe=int(a["PE"]),
                              input_dtype=a["inputDataType"], output_dtype=a["outputDataType"],
                              thresholds=t.tolist(), threshold_bias=int(a.get("ActVal", 0)))
        elif node.op_type == "LabelSelect":
            in_dt = prev_dtype or a["inputDataType"]
            k = int(a["K"])
            layer = LabelSelect(name=node.name, channels=int(a["Labels"]), k=k, input_dtype=in_dt,
                                output_dtype=smallest_dtype(0, int(a["Labels"]) - 1))
        else:
            raise UserError(f"node {node.name} ({node.op_type}) has no pqhw hardware; supported: MVAU, "
                            "Thresholding, LabelSelect")
        prev_dtype = layer.acc_dtype if isinstance(layer, MVAU) and layer.thresholds is None else layer.output_dtype
        layers.append(layer)
    iname = model.graph.input[0].name
    shape = [int(d) for d in model.get_tensor_shape(iname)[1:]]
    return Graph(input_dtype=model.get_tensor_datatype(iname).name, input_shape=shape, layers=layers)
