"""Reads the weight tensors of a model a user points at: a torch state dict, a pqhw run, or a QONNX file.

A weight tensor is a floating-point tensor of rank >= 2 (biases, norms and scales are rank 1 and are left
out, as in the paper's model-zoo study). Every failure names the file and what is accepted.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from common.errors import UserError

ACCEPTED = ("a .pt/.pth file with a state dict or a dict holding 'state_dict', a run directory with model.pt, "
            "or a .onnx (QONNX) file")
WEIGHT_CONSUMERS = ("MatMul", "Gemm", "Conv", "ConvTranspose", "Quant", "BipolarQuant", "Trunc")


def load_weights(path: str | Path, unsafe_pickle: bool = False) -> dict[str, np.ndarray]:
    """Name -> float64 array for every weight tensor of the model at `path`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory; expected {ACCEPTED}")
    if path.is_dir():
        if not (path / "model.pt").is_file():
            raise UserError(f"{path}: directory has no model.pt; expected {ACCEPTED}")
        path = path / "model.pt"
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        weights = _torch_weights(path, unsafe_pickle)
    elif suffix == ".onnx":
        weights = _onnx_weights(path)
    else:
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'!r}; expected {ACCEPTED}")
    if not weights:
        raise UserError(f"{path}: holds no floating-point tensor of rank >= 2 (no weights to analyse)")
    for name, w in weights.items():
        if not np.all(np.isfinite(w)):
            raise UserError(f"{path}: weight tensor {name!r} contains NaN or Inf values")
    return weights


def _torch_weights(path: Path, unsafe_pickle: bool) -> dict[str, np.ndarray]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe_pickle)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            detail = str(err).split("Unsupported global:", 1)[1].strip().split()[0:2]
            raise UserError(f"{path}: holds Python objects that weights-only loading refuses "
                            f"({' '.join(detail)}); if you trust the file, pass --unsafe-pickle") from err
        raise UserError(f"{path}: not a readable torch checkpoint (corrupt or not made by torch.save); "
                        f"expected {ACCEPTED}") from err
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise UserError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err}); "
                        f"expected {ACCEPTED}") from err
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise UserError(f"{path}: holds a {type(obj).__name__}, not a state dict; expected {ACCEPTED}")
    return {str(k): v.detach().double().numpy() for k, v in obj.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dim() >= 2}


def _onnx_weights(path: Path) -> dict[str, np.ndarray]:
    """Initializers (or Constant outputs) feeding MatMul/Gemm/Conv or a QONNX Quant node.

    MatMul and Gemm (transB=0) keep weights as (in, out); they are transposed to torch's (out, in) so that
    per-layer analysis sees every model in one layout.
    """
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path), load_external_data=True)
    except Exception as err:
        raise UserError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err}); "
                        "external weight data must sit beside the model") from err
    tensors = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = node.attribute[0].t
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))
    weights = {}
    for node in model.graph.node:
        if node.op_type not in WEIGHT_CONSUMERS:
            continue
        for name in node.input:
            if name in tensors and name not in weights:
                arr = numpy_helper.to_array(tensors[name])
                if np.issubdtype(arr.dtype, np.floating) and arr.ndim >= 2:
                    transpose = _stored_in_by_out(node, name, consumers)
                    weights[name] = (arr.T if transpose else arr).astype(np.float64)
    return weights


def _stored_in_by_out(node, name: str, consumers: dict) -> bool:
    """True when the matrix multiplying this tensor stores it as (in, out), following Quant nodes."""
    if node.op_type in ("Quant", "BipolarQuant", "Trunc"):
        uses = consumers.get(node.output[0], [])
        return bool(uses) and _stored_in_by_out(uses[0][0], node.output[0], consumers)
    if node.op_type == "MatMul":
        return len(node.input) > 1 and node.input[1] == name
    if node.op_type == "Gemm" and len(node.input) > 1 and node.input[1] == name:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return trans_b == 0
    return False
