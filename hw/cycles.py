"""The one cycle model of a streaming accelerator: cycles per frame of each layer in the pipeline, and of the
whole pipeline (the slowest layer). hw.folding folds against it, hw.emit and hw.compile report it.

A layer alone takes `layer.cycles()` per frame (FINN's exp_cycles: (MH/PE)(MW/SIMD) x vectors for an MVAU,
channels/PE for element-wise kinds), reading its input at `in_fold` elements a cycle. In the pipeline it can
take longer, because of the link in front of it (hw.emit: the producer's FIFO, `out_fold` elements a beat,
then a width converter where the two folds differ):

- The FIFO hands over one producer beat a cycle, so the link carries at most r = the producer's `out_fold`
  elements a cycle. A layer that reads continuously (thresholds, label select, an MVAU with one neuron
  fold) then needs ceil(N / r) cycles for its N input elements; that is the producer's beats per frame,
  never more than the producer's own cycles, so it never sets the interval alone.
- An MVAU takes its input vector only during its first neuron fold, SIMD elements a cycle for SF = MW/SIMD
  cycles, and replays it from its input buffer for the other folds: it reads in a burst, then idles for
  I = cycles - SF. When r < SIMD, the burst is as slow as the link: the width converter (pqhw_dwc) holds at
  most C = 2 (r + SIMD) elements, filled while the MVAU replays; if r I >= C it is full and the producer
  blocked when the burst begins, and the rest, N - C elements, comes at r a cycle, after RESTART cycles
  to get the stopped producer side flowing again. The first fold then takes ceil((N - C) / r) + RESTART
  cycles instead of SF. Measured in simulation (pqhw verify) exactly, e.g. 784-element thresholding at PE 1
  in front of a 64 x 784 MVAU at PE 1, SIMD 28: 1764 + 726 + 2 = 2,492 cycles, not 1,792.

So a layer's cycles in the pipeline (per input vector; times the vectors) are

    max(cycles, ceil(N / r), I + ceil((N - C) / r) + RESTART)      if r < in_fold and (for the last term) r I >= C
    cycles                                                           otherwise, and for the first layer

and the frame interval is the largest over the layers. The first layer's input is the accelerator's input
stream, one beat of in_fold elements a cycle at most, so it never waits for it.
"""
from __future__ import annotations

import math

# Cycles from a blocked producer side of the link (FIFO head, registered converter fill level) to the first
# element that reaches the consumer again, when a burst drains a full width converter.
RESTART = 2


def converter_capacity(in_n: int, out_n: int) -> int:
    """Elements a width converter from in_n to out_n elements a beat holds (pqhw_dwc's CAP)."""
    return 2 * (in_n + out_n)


def pipeline_cycles(own: int, vectors: int, elements: int, in_fold: int, producer_fold: int | None) -> int:
    """Cycles per frame of a layer that alone takes `own` cycles for `vectors` input vectors of `elements`
    elements read `in_fold` a cycle, fed by a link of `producer_fold` elements a beat (None: the accelerator's
    input)."""
    r = producer_fold
    if r is None or r >= in_fold:
        return own
    per_vector = own // vectors
    beats = math.ceil(elements / r)
    idle = per_vector - math.ceil(elements / in_fold)
    cap = converter_capacity(r, in_fold)
    burst = idle + math.ceil((elements - cap) / r) + RESTART if r * idle >= cap else 0
    return vectors * max(per_vector, beats, burst)


def layer_cycles(layer, producer=None) -> int:
    """Cycles one frame takes in `layer` in the pipeline, fed by `producer` (None: the accelerator input)."""
    return pipeline_cycles(layer.cycles(), getattr(layer, "num_vectors", 1), layer.in_channels, layer.in_fold,
                           None if producer is None else producer.out_fold)


def stage_cycles(graph) -> list[int]:
    """Each layer's cycles per frame in the pipeline."""
    layers = graph.layers
    return [layer_cycles(l, layers[i - 1] if i else None) for i, l in enumerate(layers)]


def expected_cycles_per_frame(graph) -> int:
    """The frame interval of the pipeline: its slowest layer, stalls on the links included."""
    return max(stage_cycles(graph))
