"""QONNX export of a trained run, and the proof that QONNX execution gives the same integers as Brevitas.

The exported graph takes the integer pixels, declared UINT<input_bits>, and is written as one
self-contained file (the exporter may put weights in an external .data file; we fold them back in).
"""
from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from quant.checkpoint import load_run, write_json


def logit_scale(model) -> float:
    """Scale of one integer step of the logits: last activation's scale times last weight scale."""
    acts = [m for m in model.body if hasattr(m, "act_quant")]
    s_act = float(acts[-1].act_quant.scale().detach()) if acts else 1.0
    s_w = float(model.quant_layers()[-1].quant_weight().scale.detach())
    return s_act * s_w


def to_integers(logits: np.ndarray, scale: float, what: str) -> np.ndarray:
    """Integer logits from float32 ones: exact as long as float32 rounding (relative 2**-24 per operation,
    a few operations deep) stays well below half a step, which holds for accumulators below ~2**20."""
    q = np.asarray(logits, dtype=np.float64) / scale
    r = np.round(q)
    allowed = np.maximum(1e-2, 16 * 2.0 ** -24 * np.abs(q))
    if q.size and (np.abs(q - r) > allowed).any():
        err = float(np.abs(q - r).max())
        raise RuntimeError(f"{what}: outputs are not integer multiples of the logit scale (off by {err:.3g})")
    if q.size and allowed.max() >= 0.25:
        raise RuntimeError(f"{what}: logits up to {np.abs(q).max():.3g} steps are too large to read back as "
                           "integers from float32")
    return r.astype(np.int64)


def classes_from_logits(logits: np.ndarray) -> np.ndarray:
    """Arg-max of logits that are integer multiples of one scale, computed in float: among the outputs equal
    to the maximum up to float rounding (far below one scale step), the lowest index, as the hardware's
    integer arg-max picks it."""
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1, keepdims=True)
    noise = 1e-5 * np.maximum(np.abs(z).max(axis=1, keepdims=True), 1e-30)
    return np.argmax(z >= top - noise, axis=1).astype(np.int64)


def brevitas_logits(model, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).numpy()


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
    from qonnx.core.onnx_exec import execute_onnx

    m = set_batch(model_wrapper, len(x))
    iname, oname = m.graph.input[0].name, m.graph.output[0].name
    return execute_onnx(m, {iname: np.asarray(x, dtype=np.float32)})[oname]


def export_run(run_dir: Path) -> dict:
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    from brevitas.export import export_qonnx
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    run_dir = Path(run_dir)
    from quant.methods import exportable

    model, cfg, split = load_run(run_dir)
    model = exportable(cfg, model).eval()
    out = run_dir / "model.qonnx.onnx"
    with tempfile.TemporaryDirectory(dir=run_dir) as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            export_qonnx(model, torch.zeros(1, split.features), export_path=str(raw))
        mw = cleanup_model(ModelWrapper(str(raw)))  # loads the external .data file beside it
        mw.set_tensor_datatype(mw.graph.input[0].name, DataType[f"UINT{split.input_bits}"])
        staged = Path(tmp) / "model.onnx"
        mw.save(str(staged))
        mw = ModelWrapper(str(staged))
        scale = logit_scale(model)
        ref = to_integers(brevitas_logits(model, split.x_test), scale, "Brevitas")
        got = to_integers(execute(mw, split.x_test), scale, "QONNX execution")
        mismatches = int((ref != got).any(axis=1).sum())
        if mismatches:
            first = int(np.nonzero((ref != got).any(axis=1))[0][0])
            raise RuntimeError(f"QONNX execution differs from Brevitas on {mismatches} of {len(ref)} test "
                               f"vectors; first: test vector {first}: {ref[first].tolist()} vs {got[first].tolist()}")
        shutil.move(str(staged), out)
    report = {"model": str(out), "vectors": len(ref), "mismatches": 0, "logit_scale": scale,
              "input_dtype": f"UINT{split.input_bits}"}
    write_json(run_dir / "export.json", report)
    return report
