"""QONNX/FINN graphs executed by their own per-node numpy execution (no torch), on a batch of any size."""
from __future__ import annotations

import numpy as np


def classes_from_logits(logits: np.ndarray) -> np.ndarray:
    """Arg-max of logits that are integer multiples of one scale, computed in float: among the outputs equal
    to the maximum up to float rounding (far below one scale step), the lowest index, as the hardware's
    integer arg-max picks it."""
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1, keepdims=True)
    noise = 1e-5 * np.maximum(np.abs(z).max(axis=1, keepdims=True), 1e-30)
    return np.argmax(z >= top - noise, axis=1).astype(np.int64)


def set_batch(model_wrapper, batch: int):
    """A copy of a one-input graph with the batch dimension of its input and output set to `batch`."""
    from qonnx.transformation.infer_shapes import InferShapes

    m = model_wrapper.transform(InferShapes())
    m = type(model_wrapper)(m.model.__deepcopy__())
    del m.graph.value_info[:]
    for vi in list(m.graph.input) + list(m.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_value = batch
    return m.transform(InferShapes())


def execute(model_wrapper, x: np.ndarray) -> np.ndarray:
    """Runs a QONNX/FINN graph on a batch with the graph's own per-node execution."""
    return execute_context(model_wrapper, x)[model_wrapper.graph.output[0].name]


def execute_context(model_wrapper, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of a QONNX/FINN graph run on a batch (inputs, initializers, intermediates, outputs)."""
    from qonnx.core.onnx_exec import execute_onnx

    m = set_batch(model_wrapper, len(x))
    return execute_onnx(m, {m.graph.input[0].name: np.asarray(x, dtype=np.float32)}, return_full_exec_context=True)
