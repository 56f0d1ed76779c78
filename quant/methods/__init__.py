"""Training methods from the papers, chosen by the config's `method:` section.

A method is a module with:
  Config                      pydantic model of its `method:` section (extra keys forbidden; `name` included)
  train(run_cfg, method_cfg, model, split, out_dir, resume, progress) -> dict
                              trains `model` in place through its named phases, resumable, and returns
                              metrics to merge into metrics.json
and optionally:
  build_model(run_cfg, method_cfg, image_shape, classes) -> nn.Module   (default: quant.layers.build_model)
  export_model(run_cfg, method_cfg, model) -> nn.Module                 what `pqhw export` exports (e.g. with
                              pruned channels removed); default: the model itself
  TAKES_SHIFT = True          its phases move training images by `training.shift` (default: refused)
Without a `method:` section, `pqhw train` runs plain quantization-aware training.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from common.errors import UserError

METHODS = {
    "ptq": "quant.methods.ptq",
    "djpq": "quant.methods.djpq",
    "admm": "quant.methods.admm",
    "alq": "quant.methods.alq",
}


def method_module(name: str) -> ModuleType:
    if name not in METHODS:
        raise UserError(f"method.name: {name!r} is not a known method; accepted: {', '.join(sorted(METHODS))}")
    try:
        return importlib.import_module(METHODS[name])
    except ModuleNotFoundError as err:
        if err.name == METHODS[name]:
            raise UserError(f"method.name: {name!r} is not available in this version of pqhw") from None
        raise


def method_config(section: dict):
    """(module, validated Config) for a config's `method:` mapping."""
    if not isinstance(section, dict) or "name" not in section:
        raise UserError("method: expected a mapping with a `name` key; accepted names: "
                        f"{', '.join(sorted(METHODS))}")
    module = method_module(section["name"])
    return module, module.Config.model_validate(section)
