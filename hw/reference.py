"""The one numpy integer reference model of an hw.ir graph; every other representation must equal it.

Each layer kind holds its own arithmetic (hw/kinds); this runs them in stream order.
"""
from __future__ import annotations

import numpy as np

from hw.ir import Graph


def run_layer(layer, x: np.ndarray) -> np.ndarray:
    return layer.reference(np.asarray(x, dtype=np.int64))


def run_graph(graph: Graph, x: np.ndarray, keep_intermediates: bool = False):
    """Integer outputs for integer inputs [N, ...]; with keep_intermediates, every layer's output too."""
    cur = np.asarray(x, dtype=np.int64).reshape(len(x), -1)
    outs = []
    for layer in graph.layers:
        cur = run_layer(layer, cur)
        outs.append(cur)
    return (cur, outs) if keep_intermediates else cur
