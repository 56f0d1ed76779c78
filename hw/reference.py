"""The one numpy integer reference model of an hw.ir graph; every other representation must equal it."""
from __future__ import annotations

import numpy as np

from hw.ir import MVAU, Graph, LabelSelect, Threshold


def mvau_accumulate(x: np.ndarray, weights: np.ndarray, mode: str) -> np.ndarray:
    """Accumulators [N, MH] for inputs [N, MW]; xnor counts positions where weight code == input code."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(weights, dtype=np.int64)
    if mode == "xnor":
        return (x[:, None, :] == w[None, :, :]).sum(axis=-1, dtype=np.int64)
    return x @ w.T


def multithreshold(acc: np.ndarray, thresholds: np.ndarray, bias: int) -> np.ndarray:
    """FINN MultiThreshold: number of thresholds reached, plus bias; one threshold row or one per channel."""
    t = np.asarray(thresholds, dtype=np.int64)
    return (acc[:, :, None] >= t[None, :, :]).sum(axis=-1, dtype=np.int64) + bias


def label_select(x: np.ndarray, k: int = 1) -> np.ndarray:
    """Top-k indices, largest first, lowest index first among equals (ONNX TopK order)."""
    order = np.argsort(-np.asarray(x, dtype=np.int64), axis=-1, kind="stable")
    return order[:, :k]


def run_layer(layer, x: np.ndarray) -> np.ndarray:
    if isinstance(layer, MVAU):
        acc = mvau_accumulate(x, layer.weight_array(), layer.mode)
        t = layer.threshold_array()
        return acc if t is None else multithreshold(acc, t, layer.threshold_bias)
    if isinstance(layer, Threshold):
        return multithreshold(np.asarray(x, dtype=np.int64), layer.threshold_array(), layer.threshold_bias)
    if isinstance(layer, LabelSelect):
        return label_select(x, layer.k)
    raise TypeError(f"no reference for layer kind {layer.kind!r}")


def run_graph(graph: Graph, x: np.ndarray, keep_intermediates: bool = False):
    """Integer outputs for integer inputs [N, ...]; with keep_intermediates, every layer's output too."""
    cur = np.asarray(x, dtype=np.int64).reshape(len(x), -1)
    outs = []
    for layer in graph.layers:
        cur = run_layer(layer, cur)
        outs.append(cur)
    return (cur, outs) if keep_intermediates else cur
