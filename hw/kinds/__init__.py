"""The layer-kind registry: every module of this package defines one kind (see hw.kinds.base).

Adding a kind is one module here (its class, registered with @register), its RTL under hw/rtl and its
testbench under sim; emitter, reference, estimator, folding, report and testbenches find it through the
functions below and never name a kind.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Union

from pydantic import Field

from hw.kinds.base import KINDS, LayerKind, register  # noqa: F401

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")


def layer_union():
    """The pydantic type of one graph layer: any registered kind, told apart by its `kind` field."""
    kinds = tuple(KINDS.values())
    return Annotated[Union[kinds], Field(discriminator="kind")] if len(kinds) > 1 else kinds[0]


def for_finn_op(op_type: str, model=None, node=None) -> type[LayerKind] | None:
    """The kind that reads a FINN op; a kind with a `claims(model, node)` classmethod (e.g. alq, which reads
    some MVAUs) is asked first and takes only the nodes it claims."""
    cands = sorted((k for k in KINDS.values() if op_type in k.finn_ops), key=lambda k: not hasattr(k, "claims"))
    return next((k for k in cands if not hasattr(k, "claims") or (node is not None and k.claims(model, node))),
                None)


def finn_ops() -> list[str]:
    return sorted({op for k in KINDS.values() for op in k.finn_ops})


def for_module(module: str) -> type[LayerKind]:
    """The kind whose RTL block `module` is."""
    for k in KINDS.values():
        if module in k.rtl_modules:
            return k
    raise KeyError(f"no layer kind builds RTL module {module!r}")


def rtl_depends() -> dict[str, list[str]]:
    """Every layer block's module and the hand-written modules it instantiates."""
    return {m: deps for k in KINDS.values() for m, deps in k.rtl_modules.items()}
