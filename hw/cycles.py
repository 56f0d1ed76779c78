"""The one cycle model of a streaming accelerator: cycles per frame of each layer and of the whole pipeline.

A layer's own cycles come from its kind (FINN's exp_cycles: (MH/PE)(MW/SIMD) x vectors for an MVAU,
channels/PE for element-wise kinds); the slowest layer sets the frame interval of the pipeline.
"""
from __future__ import annotations


def layer_cycles(layer) -> int:
    return layer.cycles()


def expected_cycles_per_frame(graph) -> int:
    """The slowest layer sets the frame interval of a streaming pipeline."""
    return max(layer_cycles(l) for l in graph.layers)
