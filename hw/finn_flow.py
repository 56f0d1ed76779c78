"""QONNX -> FINN HW graph as a named list of steps, each executed on sample vectors and compared with the
step before it; a step that changes the integer result raises, naming itself.

The order follows finn.builder.build_dataflow_steps (qonnx_to_finn, tidy_up, streamline, convert_to_hw).
Every step is compared on class indices. While the graph still computes float logits, equal integer logits
can come out a rounding step apart, so there the class is common.qonnx_exec.classes_from_logits (lowest index
among the logits equal to the maximum up to float noise); once the arg-max runs on integers, exact.
Convolutional models take four more (hw.finn_conv): lower_convs and data_layouts in the streamlining part,
convert_conv_to_hw after convert_to_hw, and leading_transpose (the stream is the NHWC image; hw_inputs
transposes the samples the same way). Models as FINN users export them need three more steps
(hw.finn_import): batch_shapes first (a Reshape that pins the export batch; the reference then runs one vector
at a time), leading_flatten after streamlining
(the flatten FINN leaves outside its dataflow partition), and a negative final scale taken into the last
MatMul before the arg-max. Each later graph is fed the samples as its input takes them (hw_inputs: the
flatten, and a BIPOLAR input that the xnor rewrite re-declares BINARY as (x + 1) / 2).
FINN_BUILD_DIR / FINN_SETTINGS are set per run inside the output directory, never at import.
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from common.errors import UserError
from hw.model_checks import check_model_file
from hw import kinds
from hw.finn_conv import (convert_conv_to_hw, data_layouts, has_conv, leading_transpose, lower_convs,
                          unsupported_conv_line)
from hw.finn_import import (MakeReshapeBatchAgnostic, NegativeScaleBeforeTopK, RemoveLeadingFlatten, check_hw_graph,
                            hw_inputs, known_unsupported, pins_batch)

SUPPORTED_INPUT_OPS = {"Quant", "BipolarQuant", "BinaryQuant", "Trunc", "MatMul", "Gemm", "Mul", "Add", "Sub",
                       "Div", "BatchNormalization", "Relu", "Reshape", "Flatten", "Identity", "MultiThreshold",
                       "Transpose", "Sign", "Clip", "Neg", "Squeeze", "Unsqueeze", "TopK", "ArgMax",
                       "Conv", "MaxPool", "Pad"}
SUPPORTED_HW_OPS = set(kinds.finn_ops())


@contextmanager
def finn_environment(build_dir: Path):
    """FINN reads FINN_BUILD_DIR / FINN_SETTINGS; point them into our output directory for this run only."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in ("FINN_BUILD_DIR", "FINN_SETTINGS")}
    os.environ["FINN_BUILD_DIR"] = str(build_dir)
    os.environ["FINN_SETTINGS"] = str(build_dir / "settings.yaml")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Step:
    name: str
    run: Callable


def _apply(model, *transforms):
    for t in transforms:
        model = model.transform(t)
    return model


def _qonnx_to_finn(model):
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
    from qonnx.util.cleanup import cleanup_model

    return cleanup_model(model).transform(ConvertQONNXtoFINN())


def _tidy_up(model):
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (GiveReadableTensorNames, GiveUniqueNodeNames,
                                              RemoveStaticGraphInputs)
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    return _apply(model, InferShapes(), FoldConstants(), GiveUniqueNodeNames(), GiveReadableTensorNames(),
                  InferDataTypes(), RemoveStaticGraphInputs())


def _insert_argmax(model):
    """After streamlining the logits are one scale times integers, so the arg-max can take the integers;
    a negative scale (e.g. a TensorNorm with a negative weight) first moves into the last MatMul."""
    import finn.transformation.streamline.absorb as absorb
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.insert_topk import InsertTopK

    if model.graph.node[-1].op_type not in ("TopK", "ArgMax"):
        model = model.transform(InsertTopK(k=1))
    # InferShapes: InsertTopK leaves the former output without a shape when no scalar Mul/Add was absorbed
    return _apply(model, NegativeScaleBeforeTopK(), absorb.AbsorbScalarMulAddIntoTopK(), InferShapes())


def _batch_shapes(model):
    return model.transform(MakeReshapeBatchAgnostic())


def _leading_flatten(model):
    return model.transform(RemoveLeadingFlatten())


def _streamline(model):
    import finn.transformation.streamline.absorb as absorb
    from finn.transformation.streamline import Streamline

    return _apply(model, absorb.AbsorbScalarBiasIntoMultiThreshold(), Streamline())


def _xnor_popcount(model):
    from finn.transformation.streamline import Streamline
    from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount

    return _apply(model, ConvertBipolarMatMulToXnorPopcount(), Streamline())


def _round_thresholds(model):
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
    from qonnx.transformation.infer_datatypes import InferDataTypes

    return _apply(model, RoundAndClipThresholds(), InferDataTypes())


def _convert_to_hw(model):
    from finn.transformation.fpgadataflow.convert_to_hw.binary_matrix_vector_activation import (
        InferBinaryMatrixVectorActivation)
    from finn.transformation.fpgadataflow.convert_to_hw.label_select import InferLabelSelectLayer
    from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
        InferQuantizedMatrixVectorActivation)
    from finn.transformation.fpgadataflow.convert_to_hw.thresholding import InferThresholdingLayer
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    return _apply(model, InferBinaryMatrixVectorActivation(), InferQuantizedMatrixVectorActivation(),
                  InferLabelSelectLayer(), InferThresholdingLayer(), GiveUniqueNodeNames(), InferShapes(),
                  InferDataTypes())


def _convert_conv_to_hw(model):
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    return _apply(convert_conv_to_hw(model), GiveUniqueNodeNames(), InferShapes(), InferDataTypes())


def _minimize_widths(model):
    from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
    from finn.transformation.fpgadataflow.minimize_weight_bit_width import MinimizeWeightBitWidth

    return _apply(model, MinimizeWeightBitWidth(), MinimizeAccumulatorWidth())


STEPS = [
    Step("batch_shapes", _batch_shapes),
    Step("qonnx_to_finn", _qonnx_to_finn),
    Step("tidy_up", _tidy_up),
    Step("streamline", _streamline),
    Step("lower_convs", lower_convs),
    Step("leading_flatten", _leading_flatten),
    Step("xnor_popcount", _xnor_popcount),
    Step("data_layouts", data_layouts),
    Step("insert_argmax", _insert_argmax),
    Step("round_thresholds", _round_thresholds),
    Step("convert_to_hw", _convert_to_hw),
    Step("convert_conv_to_hw", _convert_conv_to_hw),
    Step("leading_transpose", leading_transpose),
    Step("minimize_widths", _minimize_widths),
]


def execute_classes(model, x: np.ndarray, one_at_a_time: bool = False) -> np.ndarray:
    """Class indices (or, before the arg-max is inserted, the argmax of the outputs), one vector at a time
    once HW nodes are in the graph (FINN's python execution of those takes batch 1) or when asked (a graph
    whose constant shapes pin the export batch)."""
    from common.qonnx_exec import classes_from_logits, execute

    if has_conv(model) or any(n.op_type == "MaxPoolNHWC" for n in model.graph.node):
        out = np.concatenate([_execute_one(model, x[i:i + 1]).reshape(1, -1) for i in range(len(x))])
    elif one_at_a_time or any(n.domain.startswith("finn.custom_op.fpgadataflow") for n in model.graph.node):
        out = np.concatenate([execute(model, x[i:i + 1]).reshape(1, -1) for i in range(len(x))])
    else:
        out = execute(model, x).reshape(len(x), -1)
    if model.graph.node[-1].op_type in ("TopK", "LabelSelect", "ArgMax"):
        return out[:, :1].astype(np.int64)
    return classes_from_logits(out)[:, None]


def _execute_one(model, x: np.ndarray) -> np.ndarray:
    """One vector through a graph at its own batch of 1, shapes as they are (qonnx's shape inference of
    MaxPoolNHWC needs the shapes that common.qonnx_exec.set_batch clears)."""
    from qonnx.core.onnx_exec import execute_onnx

    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    return execute_onnx(model, {iname: np.asarray(x, dtype=np.float32)})[oname]


def check_supported(model, ops: set[str], stage: str) -> None:
    for node in model.graph.node:
        line = known_unsupported(node) or unsupported_conv_line(model, node)
        if line:
            raise UserError(line)
        if node.op_type not in ops:
            raise UserError(f"node {node.name or '(unnamed)'} ({node.op_type}) {stage}; supported: "
                            f"{', '.join(sorted(ops))}")


def load_model(path: Path):
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found")
    check_model_file(path)  # NaN/inf parameters are refused before FINN runs on them
    try:
        return ModelWrapper(str(path))
    except Exception as err:  # onnx raises DecodeError and friends
        raise UserError(f"{path}: not an ONNX model ({type(err).__name__})") from None


def run_flow(model, samples: np.ndarray, build_dir: Path, on_step=None):
    """Returns the FINN HW graph and a record {step: vectors compared} of the verified steps."""
    check_supported(model, SUPPORTED_INPUT_OPS, "is not supported by the pqhw front-end")
    source_dtype = model.get_tensor_datatype(model.graph.input[0].name).name
    record = {}
    with finn_environment(build_dir):
        ref = execute_classes(model, samples, one_at_a_time=pins_batch(model))
        for step in STEPS:
            model = step.run(model)
            got = execute_classes(model, hw_inputs(samples, source_dtype, model))
            bad = np.nonzero((got != ref).any(axis=1))[0]
            if len(bad):
                raise RuntimeError(f"FINN step {step.name!r} changed the result on {len(bad)} of {len(samples)} "
                                   f"sample vectors (first: vector {bad[0]}, {ref[bad[0]].tolist()} -> "
                                   f"{got[bad[0]].tolist()})")
            record[step.name] = int(len(samples))
            if on_step:
                on_step(step.name)
    check_hw_graph(model, SUPPORTED_HW_OPS)
    return model, record
