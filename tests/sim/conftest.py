"""Shared simulation fixtures: one build cache for the whole session, shared by pytest-xdist workers."""
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def build_root(tmp_path_factory) -> Path:
    """Builds are keyed by simulator, sources and parameters, so sharing the directory is safe."""
    env = os.environ.get("PQHW_SIM_CACHE")
    root = Path(env) if env else tmp_path_factory.getbasetemp().parent / "pqhw-sim-builds"
    root.mkdir(parents=True, exist_ok=True)
    return root
