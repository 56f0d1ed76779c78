"""The one cycle model of a streaming accelerator: cycles per frame of each layer, and of the whole pipeline
(the slowest layer). hw.folding folds against it, hw.emit and hw.compile report it.

A layer takes `layer.cycles()` per frame (FINN's exp_cycles: (MH/PE)(MW/SIMD) x vectors for an MVAU,
channels/PE for element-wise kinds, the window walk for a sliding-window generator), reading its input at
`in_fold` elements a cycle. In the pipeline it takes no longer, because of how hw.emit builds the link in
front of it: a width converter from the producer's beats to the consumer's, then a FIFO of two input
vectors of the consumer's beats. So the consumer finds a whole beat of its own width waiting every cycle
whenever the producer is not the slower of the two, and an MVAU's first neuron fold (the only one that
reads its input) never waits for a narrower producer. Measured in simulation (pqhw verify) exactly: the
interval equals the slowest layer's own cycles, for MLPs with width converters on every link and for the
conv networks (digits CNN, LeNet-5, FINN's CNVs).

Until the converter moved in front of the FIFO, a narrow producer stretched an MVAU's first fold (the FIFO
handed over one producer beat a cycle) and a sliding-window generator's line-buffer refill at a frame
boundary: 784-element thresholding at PE 1 in front of a 64 x 784 MVAU at SIMD 28 measured 2,492 cycles
instead of 1,792, LeNet-5 5.9 % above its slowest layer.
"""
from __future__ import annotations


def layer_cycles(layer) -> int:
    """Cycles one frame takes in `layer`, alone or in the pipeline."""
    return layer.cycles()


def stage_cycles(graph) -> list[int]:
    """Each layer's cycles per frame in the pipeline."""
    return [layer_cycles(l) for l in graph.layers]


def expected_cycles_per_frame(graph) -> int:
    """The frame interval of the pipeline: its slowest layer."""
    return max(stage_cycles(graph))
