"""The layer-kind registry: every kind is complete, and a kind that leaves out part of the contract cannot be used."""
from __future__ import annotations

from typing import Literal

import pytest

from hw import kinds
from hw.kinds.base import LayerKind
from sim.runner import rtl_sources


def test_every_kind_names_its_ops_blocks_and_testbench():
    assert set(kinds.KINDS) >= {"mvau", "threshold", "label_select", "swg", "pool", "pad"}
    for name, k in kinds.KINDS.items():
        assert k.finn_ops and k.rtl_modules and k.testbench, name
        if not hasattr(k, "claims"):  # a claiming kind (alq) reads only the nodes it claims; tested with it
            assert kinds.for_finn_op(k.finn_ops[0]) is k
        for module in k.rtl_modules:
            assert kinds.for_module(module) is k
            assert all(p.is_file() for p in rtl_sources(module, *k.rtl_modules[module])), module


def test_a_kind_without_its_reference_cannot_be_built():
    class Half(LayerKind):  # not registered: the registry stays as it is
        kind: Literal["half"] = "half"

    with pytest.raises(TypeError, match="abstract"):
        Half(name="x")
