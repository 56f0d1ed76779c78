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

from common.qonnx_exec import classes_from_logits, execute, set_batch  # noqa: F401
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
    model = exportable(cfg, model).eval()
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
        ref = to_integers(brevitas_logits(model, split.x_test), scale, "Brevitas")
        got = to_integers(execute(mw, split.x_test), scale, "QONNX execution")
        mismatches = int((ref != got).any(axis=1).sum())
        if mismatches:
            first = int(np.nonzero((ref != got).any(axis=1))[0][0])
            raise RuntimeError(f"QONNX execution differs from Brevitas on {mismatches} of {len(ref)} test "
                               f"vectors; first: test vector {first}: {ref[first].tolist()} vs {got[first].tolist()}")
        shutil.move(str(staged), out)
    # hw reads the exported files only: the test split travels beside the model for compile's checks.
    save_test_split(run_dir / TEST_SPLIT, split.x_test, split.y_test)
    report = {"model": str(out), "vectors": len(ref), "mismatches": 0, "logit_scale": scale,
              "input_dtype": f"UINT{split.input_bits}"}
    if hasattr(model, "removed_channels"):  # dead channels the method removed before export
        report["removed_channels"] = list(model.removed_channels)
    write_json(run_dir / "export.json", report)
    return report
