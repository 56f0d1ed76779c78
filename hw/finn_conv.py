"""The convolutional part of the front-end, as finn.builder.build_dataflow_steps does it for CNV: qonnx
transformations and step functions that hw.finn_flow runs as named, verified steps.

- lower_convs (after streamlining, only if the graph has a Conv): qonnx's LowerConvsToMatMul turns each
  Conv into Transpose (NCHW -> NHWC), Im2Col, MatMul, Transpose back; MakeMaxPoolNHWC,
  AbsorbTransposeIntoMultiThreshold and AbsorbConsecutiveTransposes then move the layout changes out of the
  way, so that between the first Transpose and the flatten in front of the fully connected part everything
  runs on NHWC tensors.
- data_layouts: InferDataLayouts and RemoveUnusedTensors after the xnor rewrite (as step_streamline ends).
- convert_conv_to_hw (in convert_to_hw, after the MVAUs and thresholds): AbsorbConsecutiveTransposes (the
  pair InferThresholdingLayer leaves around an NCHW input threshold, and the conv's own Transpose),
  InferFMPadding, InferPool, InferConvInpGen, RemoveCNVtoFCFlatten (absorbs the NHWC -> NCHW Transpose and
  the flatten in front of the first fully connected layer into its weight matrix), in step_convert_to_hw's
  order.
- leading_transpose (after convert_conv_to_hw): FINN leaves the NCHW -> NHWC Transpose of the graph input
  outside its dataflow partition (and a model taking flat pixels has a Reshape [N, C*H*W] -> [N, C, H, W] in
  front of it). pqhw streams a frame as its pixels in NHWC order, so the node goes, its
  output becomes the graph input (same datatype), and the model records `pqhw_input_layout = NHWC` so that
  hw_inputs transposes the sample vectors the same way.

unsupported_conv_line: the one line for a Conv, MaxPool or pooling node the layer kinds cannot take.
"""
from __future__ import annotations

import numpy as np

LAYOUT_KEY = "pqhw_input_layout"


def has_conv(model) -> bool:
    return any(n.op_type in ("Conv", "Im2Col", "ConvolutionInputGenerator") for n in model.graph.node)


def lower_convs(model):
    import finn.transformation.streamline.absorb as absorb
    from finn.transformation.streamline.reorder import MakeMaxPoolNHWC
    from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

    if not any(n.op_type == "Conv" for n in model.graph.node):
        return model
    for t in (LowerConvsToMatMul(), MakeMaxPoolNHWC(), absorb.AbsorbTransposeIntoMultiThreshold(),
              MakeMaxPoolNHWC(), absorb.AbsorbConsecutiveTransposes()):
        model = model.transform(t)
    return model


def data_layouts(model):
    from qonnx.transformation.general import RemoveUnusedTensors
    from qonnx.transformation.infer_data_layouts import InferDataLayouts

    return model.transform(InferDataLayouts()).transform(RemoveUnusedTensors())


def input_layout(model) -> str:
    return model.get_metadata_prop(LAYOUT_KEY) or "NCHW"


class RemoveLeadingTranspose:
    """Drops a Transpose with perm [0, 2, 3, 1] that takes the graph input (or a flat-to-image Reshape of it);
    the graph input becomes its NHWC output (same datatype) and the model records the layout."""

    def apply(self, model):
        from onnx import helper

        iname = model.graph.input[0].name
        removed = []
        node = self._only_consumer(model, iname)
        if node is not None and node.op_type == "Reshape" and self._flat_to_image(model, node):
            removed.append(node)
            node = self._only_consumer(model, node.output[0])
        if node is None or node.op_type != "Transpose":
            return model, False
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        if perm != [0, 2, 3, 1]:
            return model, False
        removed.append(node)
        graph = model.graph
        old = graph.input[0]
        dt = model.get_tensor_datatype(iname)
        shape = model.get_tensor_shape(node.output[0])
        new_in = helper.make_tensor_value_info(node.output[0], old.type.tensor_type.elem_type, shape)
        for n in removed:
            graph.node.remove(n)
        for i, vi in enumerate(graph.value_info):
            if vi.name == node.output[0]:
                del graph.value_info[i]
                break
        for n in removed:
            for init in n.input[1:]:
                if init and not model.find_consumers(init):
                    model.del_initializer(init)
        graph.input.remove(old)
        graph.input.insert(0, new_in)
        model.set_tensor_datatype(new_in.name, dt)
        model.set_metadata_prop(LAYOUT_KEY, "NHWC")
        return model, True


    @staticmethod
    def _only_consumer(model, tensor):
        consumers = model.find_consumers(tensor) or []
        return consumers[0] if len(consumers) == 1 else None

    @staticmethod
    def _flat_to_image(model, node) -> bool:
        """A Reshape [N, C*H*W] -> [N, C, H, W] (a model that takes flat pixels and views them as an image)."""
        a, b = model.get_tensor_shape(node.input[0]), model.get_tensor_shape(node.output[0])
        return (a is not None and b is not None and len(a) == 2 and len(b) == 4 and a[0] == b[0]
                and int(a[1]) == int(np.prod(b[1:])))


def leading_transpose(model):
    return model.transform(RemoveLeadingTranspose())


def convert_conv_to_hw(model):
    import finn.transformation.streamline.absorb as absorb
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from finn.transformation.fpgadataflow.convert_to_hw.fm_padding import InferFMPadding
    from finn.transformation.fpgadataflow.convert_to_hw.pool import InferPool
    from finn.transformation.move_reshape import RemoveCNVtoFCFlatten

    for t in (absorb.AbsorbConsecutiveTransposes(), InferFMPadding(), InferPool(), InferConvInpGen(),
              RemoveCNVtoFCFlatten()):
        model = model.transform(t)
    return model


def to_model_layout(x: np.ndarray, model) -> np.ndarray:
    """Samples as the model took them (images [N, C, H, W], or their C-order flattening [N, C*H*W]) as a
    graph whose input is NHWC takes them: [N, H, W, C] (unchanged for other graphs)."""
    if input_layout(model) != "NHWC":
        return x
    _, h, w, c = [int(d) for d in model.get_tensor_shape(model.graph.input[0].name)]
    return x.reshape(len(x), c, h, w).transpose(0, 2, 3, 1)


def _ints(node, name, default=None):
    return next((list(a.ints) for a in node.attribute if a.name == name), default)


def unsupported_conv_line(model, node) -> str | None:
    """One line for a Conv / pooling node with a configuration the pqhw layer kinds do not take, else None."""
    name = f"node {node.name or '(unnamed)'} ({node.op_type})"
    if node.op_type == "Conv":
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        dil = _ints(node, "dilations", [1, 1])
        shape = model.get_tensor_shape(node.input[0])
        if shape is not None and len(shape) != 4:
            return f"{name}: {len(shape) - 2}-d convolution; pqhw builds 2-d convolutions (NCHW input) only"
        if group != 1:
            return f"{name}: grouped/depthwise convolution (group = {group}) has no pqhw hardware; accepted group 1"
        if any(d != 1 for d in dil):
            return f"{name}: dilation {dil} has no pqhw hardware; accepted [1, 1]"
    if node.op_type == "MaxPool":
        pads = _ints(node, "pads", [0, 0, 0, 0])
        if any(pads):
            return f"{name}: padded max-pool (pads {pads}) has no pqhw hardware; accepted pads 0"
        if next((a.i for a in node.attribute if a.name == "ceil_mode"), 0):
            return f"{name}: max-pool with ceil_mode has no pqhw hardware; accepted ceil_mode 0"
    return None
