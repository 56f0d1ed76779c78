"""Graph clean-up for models as FINN users export them, as qonnx transformations (apply(model) -> (model,
changed)) that hw.finn_flow runs as named, verified steps.

- MakeReshapeBatchAgnostic: `x.view(x.shape[0], -1)` exports as a Reshape with the constant shape [1, -1]
  (the export batch); it becomes [-1, 784], so the graph runs on any batch.
- RemoveLeadingFlatten: FINN leaves a Reshape/Flatten in front of the first HW layer outside its dataflow
  partition. pqhw streams a frame as its elements in C order, and a C-order flatten to [N, K] keeps that
  order, so the hardware's input stream is the same with or without it: the node goes, its output becomes
  the graph input (same datatype), and the sample vectors are reshaped the same way (hw_inputs).
- NegativeScaleBeforeTopK: a scalar affine a*y + b after the last MatMul (TensorNorm, or a plain scale) with
  a < 0 reverses the order of the classes, which FINN's AbsorbScalarMulAddIntoTopK cannot take; when
  streamlining could not move the sign into the weights (their datatype does not hold -W), the MatMul is
  negated with wider weights, so the affine is |a|*y' + b and the arg-max absorbs it.
- hw_inputs: the sample vectors of the model as given, in the encoding of a later graph (the flatten above;
  a BIPOLAR graph input that the xnor rewrite turned into BINARY takes (x + 1) / 2).

unsupported_line: one line for a node pqhw cannot build: which node, why, what the user can do.
"""
from __future__ import annotations

import numpy as np

from common.errors import UserError


def _first_consumer_of_input(model):
    consumers = model.find_consumers(model.graph.input[0].name) or []
    return consumers[0] if len(consumers) == 1 else None


class MakeReshapeBatchAgnostic:
    """Reshape nodes whose constant shape pins the batch (first entry equal to the input's batch, as the
    export traced it) get -1 there and the traced sizes elsewhere: [1, -1] on [1, 1, 28, 28] -> [-1, 784]."""

    def apply(self, model):
        from qonnx.transformation.infer_shapes import InferShapes

        model = model.transform(InferShapes())
        changed = False
        for node in model.graph.node:
            if node.op_type != "Reshape":
                continue
            shape = model.get_initializer(node.input[1])
            in_shape = model.get_tensor_shape(node.input[0])
            out_shape = model.get_tensor_shape(node.output[0])
            if shape is None or in_shape is None or out_shape is None or len(shape) == 0:
                continue
            shape = [int(s) for s in shape]
            if shape[0] == -1 or shape[0] != in_shape[0] or out_shape[0] != in_shape[0]:
                continue  # already batch-agnostic, or it folds the batch into other axes: left alone
            new = np.array([-1] + [int(d) for d in out_shape[1:]], dtype=np.int64)
            if 0 in shape[1:] or -1 in new[1:]:
                continue
            model.set_initializer(node.input[1], new)
            changed = True
        return model, changed


def pins_batch(model) -> bool:
    """True if some Reshape fixes the batch, i.e. the graph runs only at its export batch."""
    return MakeReshapeBatchAgnostic().apply(_copy(model))[1]


def _copy(model):
    return type(model)(model.model.__deepcopy__())


FLATTEN_OPS = ("Reshape", "Flatten")


def leading_flatten(model):
    """The Reshape/Flatten that takes the graph input and flattens it to [N, K] in C order, or None."""
    node = _first_consumer_of_input(model)
    if node is None or node.op_type not in FLATTEN_OPS or node.input[0] != model.graph.input[0].name:
        return None
    in_shape = model.get_tensor_shape(node.input[0])
    out_shape = model.get_tensor_shape(node.output[0])
    if in_shape is None or out_shape is None or len(out_shape) != 2 or out_shape[0] != in_shape[0]:
        return None
    if int(np.prod(in_shape[1:])) != int(out_shape[1]):
        return None
    if node.op_type == "Flatten":
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if axis != 1:
            return None
    return node


class RemoveLeadingFlatten:
    """Drops a leading C-order flatten [N, ...] -> [N, K]; the graph input becomes [N, K], same datatype."""

    def apply(self, model):
        from onnx import helper

        node = leading_flatten(model)
        if node is None:
            return model, False
        graph = model.graph
        old = graph.input[0]
        dt = model.get_tensor_datatype(old.name)
        out_shape = model.get_tensor_shape(node.output[0])
        new_in = helper.make_tensor_value_info(node.output[0], old.type.tensor_type.elem_type, out_shape)
        graph.node.remove(node)
        for i, vi in enumerate(graph.value_info):
            if vi.name == node.output[0]:
                del graph.value_info[i]
                break
        graph.input.remove(old)
        graph.input.insert(0, new_in)
        model.set_tensor_datatype(new_in.name, dt)
        for init in node.input[1:]:
            if init and not model.find_consumers(init):
                model.del_initializer(init)
        return model, True


_SCALAR_AFFINE = ("Mul", "Add")


def _scalar_param(model, node):
    a = model.get_initializer(node.input[1])
    return None if a is None or a.size != 1 else float(a.reshape(-1)[0])


def _affine_chain(model, topk):
    """[(node, constant)] of scalar Mul/Add nodes from the last MatMul to the TopK, and that MatMul."""
    chain = []
    node = model.find_producer(topk.input[0])
    while node is not None and node.op_type in _SCALAR_AFFINE:
        c = _scalar_param(model, node)
        if c is None or len(model.find_consumers(node.output[0]) or []) != 1:
            return None, None
        chain.append((node, c))
        node = model.find_producer(node.input[0])
    if node is None or node.op_type != "MatMul":
        return None, None
    if len(model.find_consumers(node.output[0]) or []) != 1:
        return None, None
    return chain[::-1], node


class NegativeScaleBeforeTopK:
    """MatMul -> scalar Mul/Add chain with a negative overall scale -> TopK. Streamlining already moves a sign
    into weights whose datatype holds -W (bipolar, narrow-range integers); this takes the rest (e.g. INT3
    weights with -4): W -> -W, the weights' datatype widened to hold it, and the chain follows the negated
    value (see _follow_negated_output), so every value after its first Mul, the logits included, is what it
    was, and the chain's overall scale is positive for AbsorbScalarMulAddIntoTopK."""

    def apply(self, model):
        from qonnx.transformation.infer_datatypes import InferDataTypes
        from qonnx.transformation.infer_shapes import InferShapes

        changed = False
        for topk in [n for n in model.graph.node if n.op_type == "TopK"]:
            chain, mm = _affine_chain(model, topk)
            if mm is None or mm.op_type != "MatMul" or np.prod([c for n, c in chain if n.op_type == "Mul"]) >= 0:
                continue
            w = model.get_initializer(mm.input[1])
            if w is None or not model.get_tensor_datatype(mm.input[1]).is_integer():
                continue  # float weights: nothing to negate exactly
            model.set_initializer(mm.input[1], -w)
            if model.get_tensor_datatype(mm.input[1]).name != "BIPOLAR":
                model.set_tensor_datatype(mm.input[1], _smallest_int(float(np.min(-w)), float(np.max(-w))))
            self._follow_negated_output(model, chain)
            changed = True
        if changed:
            model = model.transform(InferShapes()).transform(InferDataTypes())
        return model, changed

    @staticmethod
    def _follow_negated_output(model, chain):
        """The chain now sees -y: Adds up to the first Mul negate their constant (they carry -value), the
        first Mul negates its constant (from there on every value is the original one)."""
        for n, _ in chain:
            model.set_initializer(n.input[1], np.asarray(-model.get_initializer(n.input[1])))
            if n.op_type == "Mul":
                return


def _smallest_int(lo: float, hi: float):
    from qonnx.core.datatype import DataType

    for bits in range(2, 33):
        dt = DataType[f"INT{bits}"]
        if dt.min() <= lo and hi <= dt.max():
            return dt
    return DataType["FLOAT32"]


def hw_inputs(samples: np.ndarray, source_dtype: str, model) -> np.ndarray:
    """Sample vectors given to the original model (datatype source_dtype), as `model`'s graph input takes
    them: NCHW images as NHWC once the leading Transpose is gone (hw.finn_conv), reshaped in C order to its input
    shape (the removed leading flatten), and BIPOLAR {-1, +1} as
    BINARY (x + 1) / 2 once the xnor rewrite re-declared the input."""
    from hw.finn_conv import to_model_layout

    iname = model.graph.input[0].name
    x = to_model_layout(np.asarray(samples), model)
    if source_dtype == "BIPOLAR" and model.get_tensor_datatype(iname).name == "BINARY":
        x = (x + 1) // 2
    shape = model.get_tensor_shape(iname)
    return x.reshape(len(x), *[int(d) for d in shape[1:]])


# Why pqhw stops at a node, and what the user can do; one entry per op_type seen in users' models.
_UNSUPPORTED = {
    "ConvTranspose": ("transposed convolutions have no pqhw hardware", "use Conv (stride >= 1, padding)"),
    "AveragePool": ("average pooling has no pqhw hardware (max-pool has)", "use MaxPool"),
    "GlobalAveragePool": ("global average pooling has no pqhw hardware (max-pool has)",
                          "use MaxPool and a flatten in front of the fully connected layers"),
    "Concat": ("pqhw builds single-path networks only", "export a network without branches"),
}


def known_unsupported(node) -> str | None:
    """The one line for an op pqhw knows it cannot build yet (e.g. Conv), else None."""
    if node.op_type not in _UNSUPPORTED:
        return None
    why, todo = _UNSUPPORTED[node.op_type]
    return f"node {node.name or '(unnamed)'} ({node.op_type}): {why}; {todo}"


def unsupported_line(model, node, stage: str) -> str:
    """One line: the node, why pqhw cannot build it, what to do."""
    name = f"node {node.name or '(unnamed)'} ({node.op_type})"
    if known_unsupported(node):
        return known_unsupported(node)
    if node.op_type in FLATTEN_OPS:
        return (f"{name} {stage}: pqhw takes a reshape only as the first node, flattening the input to "
                "[batch, features] in C order; export the model with the flatten in front of the first layer")
    if node.op_type in _SCALAR_AFFINE or node.op_type == "Div":
        p = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
        what = "a per-channel" if p is not None and p.size > 1 else "an"
        return (f"{name} {stage}: {what} affine that streamlining could not move into a threshold or into the "
                "final arg-max (e.g. a per-channel scale after the last layer); end the model with a scalar "
                "affine (TensorNorm) or none, and keep scales in front of quantized activations")
    if node.op_type == "MultiThreshold":
        return (f"{name} {stage}: a threshold whose input is not an integer stream (float scales left in "
                "front of it); quantize the layer before it")
    return f"{name} {stage}: pqhw has no hardware for it"


def check_hw_graph(model, hw_ops: set[str]) -> None:
    for node in model.graph.node:
        if node.op_type not in hw_ops:
            raise UserError(unsupported_line(model, node, "was left after conversion to HW layers"))
