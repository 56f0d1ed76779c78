"""Reads FINN's HW graph into the typed integer graph of hw.ir: each node by the layer kind that claims its op."""
from __future__ import annotations

from common.errors import UserError
from hw import kinds
from hw.ir import Graph
from hw.kinds.base import finn_attrs


def graph_from_finn(model) -> Graph:
    layers = []
    prev_dtype = None
    for node in model.graph.node:
        kind = kinds.for_finn_op(node.op_type, model, node)
        if kind is None:
            raise UserError(f"node {node.name} ({node.op_type}) has no pqhw hardware; supported: "
                            f"{', '.join(kinds.finn_ops())}")
        layer = kind.from_finn(model, node, finn_attrs(node), prev_dtype)
        prev_dtype = layer.stream_dtype
        layers.append(layer)
    iname = model.graph.input[0].name
    shape = [int(d) for d in model.get_tensor_shape(iname)[1:]]
    return Graph(input_dtype=model.get_tensor_datatype(iname).name, input_shape=shape, layers=layers)
