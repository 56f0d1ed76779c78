"""Reading and writing run directories: model.pt, checkpoint.pt, metrics.json, written atomically."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from common.atomic import atomic_path, atomic_write_bytes, write_json  # noqa: F401
from common.errors import UserError


def atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; train first with `pqhw train CONFIG --out DIR`")
    try:
        # A checkpoint is data, never code: weights_only refuses every pickled object that is not a tensor or
        # a plain container (what pqhw itself writes), so a hostile file cannot run anything.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        what = str(err).split("Unsupported global:")[-1].split(".")[0].strip() if "Unsupported global" in str(err) \
            else "an object that is not plain data"
        raise UserError(f"{path}: refused, the file holds {what[:80]} (pqhw checkpoints hold tensors and plain "
                        "data only; a file that wants to run code on load is not loaded)") from None
    except Exception as err:  # torch raises many types for a damaged file
        raise UserError(f"{path}: corrupted or not a pqhw checkpoint ({type(err).__name__})") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "config" not in obj:
        raise UserError(f"{path}: not a pqhw checkpoint (expects keys state_dict and config)")
    return obj


def load_run(run_dir: Path):
    """The trained model of a run directory, in eval mode, with its config and split."""
    from quant.config import parse_config
    from quant.data import load_dataset
    from quant.build import make_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run directory not found")
    ckpt = load_torch(run_dir / "model.pt")
    cfg = parse_config(ckpt["config"], str(run_dir / "model.pt"))
    split = load_dataset(cfg.dataset)
    model = make_model(cfg, split.image_shape, split.classes)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise UserError(f"{run_dir / 'model.pt'}: weights do not match its config "
                        f"({str(err).splitlines()[0]})") from None
    for name, t in ckpt["state_dict"].items():
        if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all():
            raise UserError(f"{run_dir / 'model.pt'}: tensor {name} holds NaN or infinite values")
    model.eval()
    return model, cfg, split
