"""Fixtures shared by the hw tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def corrupt_layer1_weights(monkeypatch):
    """`pqhw verify` emits RTL whose layer-1 weight ROM has one word flipped: a wrong accelerator to catch."""
    from sim import verify as verify_mod

    real_emit = verify_mod.emit

    def corrupting_emit(graph, out_dir, **kw):
        design = real_emit(graph, out_dir, **kw)
        path = design.rtl_dir / "l1_w.memh"
        words = path.read_text().split()
        words[0] = format(int(words[0], 16) ^ 0xF, "0%dx" % len(words[0]))
        path.write_text("\n".join(words) + "\n")
        return design

    monkeypatch.setattr(verify_mod, "emit", corrupting_emit)
