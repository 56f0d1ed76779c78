"""The network a run trains and the one it exports: the method's own when it has one, else the config's."""
from __future__ import annotations


def make_model(run_cfg, image_shape, classes):
    """The trainable network of a run: the method's own when it has one, else the config's plain network."""
    from quant.layers import build_model

    module, mcfg = run_cfg.method_parts()
    if module is not None and hasattr(module, "build_model"):
        return module.build_model(run_cfg, mcfg, image_shape, classes)
    return build_model(run_cfg.model, image_shape, classes)


def exportable(run_cfg, model):
    """The network that `pqhw export` writes: the method may transform it first (e.g. remove pruned channels)."""
    module, mcfg = run_cfg.method_parts()
    if module is not None and hasattr(module, "export_model"):
        return module.export_model(run_cfg, mcfg, model)
    return model
