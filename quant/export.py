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

from common.errors import UserError
from common.qonnx_exec import classes_from_logits, execute, set_batch  # noqa: F401
from quant.checkpoint import load_run, write_json
from quant.integer_form import NotIntegerForm, integer_form


class ExportMismatch(UserError, RuntimeError):
    """The exported graph would not compute the trained network's integers (or they cannot be read back):
    `pqhw export` says so in one line and writes nothing."""


def logit_scale(model) -> float:
    """Scale of one integer step of the logits: last activation's scale times last weight scale."""
    s_act, s_w = classifier_scales(model)
    return s_act * s_w


def _grid(values, scale: float, floor: float, ulps: int):
    """values / scale, its nearest integers, and how far each may be from them after float32 rounding:
    `ulps` roundings of relative 2**-24, but never less than `floor` of a step."""
    q = np.asarray(values, dtype=np.float64) / scale
    return q, np.rint(q), np.maximum(floor, ulps * 2.0 ** -24 * np.abs(q))


def to_integers(logits: np.ndarray, scale: float, what: str) -> np.ndarray:
    """Integer logits from float32 ones: exact as long as float32 rounding (relative 2**-24 per operation,
    a few operations deep) stays well below half a step, which holds for accumulators below ~2**20."""
    q, r, allowed = _grid(logits, scale, 1e-2, 16)
    if q.size and (np.abs(q - r) > allowed).any():
        err = float(np.abs(q - r).max())
        raise ExportMismatch(f"{what}: outputs are not integer multiples of the logit scale (off by {err:.3g})")
    if q.size and allowed.max() >= 0.25:
        raise ExportMismatch(f"{what}: logits up to {np.abs(q).max():.3g} steps are too large to read back as "
                             "integers from float32")
    return r.astype(np.int64)


def on_grid(values, scale: float, what: str) -> np.ndarray:
    """The integers q of float32 values q * scale. Each is one rounding of q * scale, so q comes back exactly
    while |q| stays far below 2**22; anything further off is not on the grid, and said so."""
    q, r, allowed = _grid(values, scale, 1e-3, 4)
    if q.size and ((np.abs(q - r) > allowed).any() or allowed.max() >= 0.25):
        raise ExportMismatch(f"{what}: values are not integer multiples of the scale {scale:.6g} "
                             f"(off by {float(np.abs(q - r).max()):.3g})")
    return r.astype(np.int64)


def classifier_integers(x_in, weight_km, s_act: float, s_w: float, what: str) -> np.ndarray:
    """Integer logits as the classifier's integer input times its integer weights, summed in int64.

    Why not the float32 logits divided by the scale: a wide classifier (8-bit inputs and weights) sums
    products of non-power-of-two scales whose partial sums reach 2**22 steps, so float32 leaves its result
    a few hundredths of a step off the grid after cancellation, and nothing bounds that error below half a
    step. Its input and weights are each one rounding from the grid, so they read back exactly."""
    qa = on_grid(np.asarray(x_in).reshape(len(x_in), -1), s_act, f"{what}: the classifier's input")
    qw = on_grid(weight_km, s_w, f"{what}: the classifier's weights")
    return qa @ qw


def classifier_scales(model) -> tuple[float, float]:
    """The classifier's input (last activation) and weight scales; their product is logit_scale."""
    acts = [m for m in model.body if hasattr(m, "act_quant")]
    s_act = float(acts[-1].act_quant.scale().detach()) if acts else 1.0
    return s_act, float(model.quant_layers()[-1].quant_weight().scale.detach())


def brevitas_integer_logits(model, x: np.ndarray) -> np.ndarray:
    """Integer logits of a Brevitas network, exact (classifier_integers) from its classifier's input."""
    layer = model.quant_layers()[-1]
    if getattr(layer, "bias", None) is not None:
        raise ExportMismatch("Brevitas: the classifier has a bias; integer logits need a classifier without one")
    seen = {}
    hook = layer.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], y=out))
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.as_tensor(x, dtype=torch.float32))
    finally:
        hook.remove()
    if seen.get("y") is None or not torch.equal(getattr(seen["y"], "value", seen["y"]), out):
        raise ExportMismatch("Brevitas: the network's output is not its last weight layer's: its logits cannot be "
                             "read as integers")
    s_act, s_w = classifier_scales(model)
    x_in = getattr(seen["x"], "value", seen["x"]).numpy()
    w = layer.quant_weight().value.detach().numpy()
    return classifier_integers(x_in, w.reshape(w.shape[0], -1).T, s_act, s_w, "Brevitas")


def qonnx_integer_logits(model_wrapper, x: np.ndarray, s_act: float, s_w: float) -> np.ndarray:
    """Integer logits of a QONNX graph, exact (classifier_integers) from the inputs of the MatMul or Gemm
    (without bias, alpha 1) that produces the graph's output."""
    from onnx import helper

    from common.qonnx_exec import execute_context

    out = model_wrapper.graph.output[0].name
    node = model_wrapper.find_producer(out)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute} if node is not None else {}
    plain = node is not None and (node.op_type == "MatMul" or (
        node.op_type == "Gemm" and len(node.input) == 2 and attrs.get("alpha", 1.0) == 1.0))
    if not plain:
        raise ExportMismatch(f"QONNX execution: the graph's output {out} does not come from a MatMul or a Gemm "
                             f"without bias ({node.op_type if node is not None else 'an input'}); its logits "
                             "cannot be read as integers")
    ctx = execute_context(model_wrapper, x)
    a, b = ctx[node.input[0]], ctx[node.input[1]]
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    return classifier_integers(a, b, s_act, s_w, "QONNX execution")


def nearest_rounding_tie(model, x: np.ndarray) -> str:
    """Where a vector's activations come closest to a rounding boundary (k + 1/2 steps) before their
    quantizer, as a clause for the mismatch message: float32 sums in torch and in onnxruntime run in
    different orders, so an activation a few millionths of a step from a tie can round apart."""
    seen = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp, name=name: seen.append(
        (name, float(mod.act_quant.scale().detach()), getattr(inp[0], "value", inp[0]).detach().double())))
        for name, m in model.body.named_children() if hasattr(m, "act_quant")]
    try:
        with torch.no_grad():
            model(torch.as_tensor(x, dtype=torch.float32))
    finally:
        for h in hooks:
            h.remove()
    best = None
    for name, scale, pre in seen:
        z = (pre / scale).flatten()
        gap = ((z - torch.floor(z)) - 0.5).abs()
        j = int(gap.argmin())
        if best is None or float(gap[j]) < best[0]:
            best = (float(gap[j]), name, float(z[j]))
    if best is None:
        return ""
    return (f"; its activation nearest a rounding tie is layer {best[1]} at {best[2]:.6f} steps (float32 sums "
            "in torch and onnxruntime can round a near-tie apart when scales are not powers of two)")


def brevitas_logits(model, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).numpy()


TEST_SPLIT = "test_split.npz"


def save_test_split(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    from quant.checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, x_test=np.asarray(x, dtype=np.int64), y_test=np.asarray(y, dtype=np.int64))
    atomic_write_bytes(path, buf.getvalue())


def export_run(run_dir: Path) -> dict:
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    from brevitas.export import export_qonnx
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    run_dir = Path(run_dir)
    from quant.build import exportable

    model, cfg, split = load_run(run_dir)
    trained = exportable(cfg, model).eval()
    try:
        model, form = integer_form(trained), {"integer_form": True}
    except NotIntegerForm as why:  # exported as trained; its float32 sums may round a near-tie apart
        model, form = trained, {"integer_form": False, "integer_form_skipped": str(why)}
    out = run_dir / "model.qonnx.onnx"
    with tempfile.TemporaryDirectory(dir=run_dir) as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            export_qonnx(model, torch.zeros(1, split.features), export_path=str(raw))
        mw = cleanup_model(ModelWrapper(str(raw)))  # loads the external .data file beside it
        mw.set_tensor_datatype(mw.graph.input[0].name, DataType[f"UINT{split.input_bits}"])
        for key, value in getattr(model, "qonnx_metadata", {}).items():  # e.g. ALQ's binary bases
            mw.set_metadata_prop(key, value)
        staged = Path(tmp) / "model.onnx"
        mw.save(str(staged))
        mw = ModelWrapper(str(staged))
        scale = logit_scale(model)
        ref = brevitas_integer_logits(model, split.x_test)
        if model is not trained:  # equal in exact arithmetic; float32 may part them on a near-tie
            form["near_ties_parted"] = int((brevitas_integer_logits(trained, split.x_test) != ref).any(axis=1).sum())
        got = qonnx_integer_logits(mw, split.x_test, *classifier_scales(model))
        mismatches = int((ref != got).any(axis=1).sum())
        if mismatches:
            first = int(np.nonzero((ref != got).any(axis=1))[0][0])
            raise ExportMismatch(f"QONNX execution differs from Brevitas on {mismatches} of {len(ref)} test "
                               f"vectors; first: test vector {first}: {ref[first].tolist()} vs {got[first].tolist()}"
                               f"{nearest_rounding_tie(model, split.x_test[first:first + 1])}")
        shutil.move(str(staged), out)
    # hw reads the exported files only: the test split travels beside the model for compile's checks.
    save_test_split(run_dir / TEST_SPLIT, split.x_test, split.y_test)
    report = {"model": str(out), "vectors": len(ref), "mismatches": 0, "logit_scale": scale,
              "input_dtype": f"UINT{split.input_bits}",
              "test_accuracy": float((classes_from_logits(ref) == np.asarray(split.y_test)).mean()), **form}
    if hasattr(model, "removed_channels"):  # dead channels the method removed before export
        report["removed_channels"] = list(model.removed_channels)
    write_json(run_dir / "export.json", report)
    return report
