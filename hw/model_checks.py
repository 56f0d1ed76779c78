"""Checks on a model file before third-party code runs on it.

FINN and qonnx assume finite parameters: a NaN in a batch-norm parameter of an imported model sends FINN's
threshold rounding into a loop that does not end. Every initializer (and every Constant node's value) is read
here first, and a non-finite one is refused with its name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.errors import UserError


def _tensors(model):
    """(name, onnx TensorProto) of every initializer and every Constant node's value, subgraphs too."""
    graphs = [model.graph]
    while graphs:
        g = graphs.pop()
        for init in g.initializer:
            yield init.name, init
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield f"{node.name or node.op_type} ({node.op_type}.{attr.name})", attr.t
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)


def non_finite_tensors(model) -> list[tuple[str, int, int]]:
    """(tensor name, non-finite values, values) of every floating-point tensor holding NaN or inf."""
    from onnx import numpy_helper

    bad = []
    for name, tensor in _tensors(model):
        try:
            arr = numpy_helper.to_array(tensor)
        except Exception:  # an unreadable tensor is the loader's to report
            continue
        if arr.dtype.kind in "fc":
            n = int(np.count_nonzero(~np.isfinite(arr)))
            if n:
                bad.append((name, n, int(arr.size)))
    return bad


def check_finite(model, source) -> None:
    """Refuse a model whose parameters are not all finite, naming the first such tensor."""
    bad = non_finite_tensors(model)
    if bad:
        name, n, size = bad[0]
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise UserError(f"{source}: initializer {name!r} holds {n} NaN or infinite values of {size}{more}; "
                        "a model's parameters must be finite numbers (re-export it from a healthy checkpoint)")


# Node domains qonnx and FINN resolve to their own ops. qonnx imports the Python module a node's domain names to find
# its op, so a model whose domain names any other module would run that module's code: such nodes are refused.
KNOWN_DOMAIN_PREFIXES = ("qonnx.custom_op.", "finn.custom_op.")
KNOWN_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "onnx.brevitas")


def check_domains(model, source) -> None:
    """Refuse a node whose domain is not ONNX's own, qonnx's or FINN's, naming the node and the domain."""
    for node in model.graph.node:
        if node.domain not in KNOWN_DOMAINS and not node.domain.startswith(KNOWN_DOMAIN_PREFIXES):
            raise UserError(f"{source}: node {node.name or '(unnamed)'} ({node.op_type}) has the domain "
                            f"{node.domain[:80]!r}; accepted: ONNX's own ops and those of qonnx "
                            "(qonnx.custom_op.*, onnx.brevitas) and FINN (finn.custom_op.*)")


def check_model_file(path) -> None:
    """check_finite on an ONNX file (with its external data), and a graph to check at all (an empty file is a
    valid, empty protobuf message). A file that does not parse is left to the caller's loader, which says so in
    its own words."""
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception:
        return
    if not model.graph.node or not model.graph.input or not model.graph.output:
        raise UserError(f"{path}: not an ONNX model (no graph nodes, inputs or outputs; an empty or truncated "
                        "file parses as an empty model)")
    check_domains(model, path)
    check_finite(model, path)
