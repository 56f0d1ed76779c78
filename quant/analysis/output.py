"""Result directories written atomically (temp dir, then rename) and JSON that every reader can parse."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from common.atomic import atomic_dir  # noqa: F401


def clean(obj):
    """numpy scalars to Python, non-finite floats to None (JSON has no inf; an exact fit has infinite SNR)."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    return obj


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(clean(obj), indent=1, allow_nan=False) + "\n")
    return path
