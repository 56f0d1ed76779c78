"""Result directories written atomically (temp dir, then rename) and JSON that every reader can parse."""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from hw.errors import UserError


@contextmanager
def atomic_dir(out: str | Path):
    """Yields a temp dir beside `out`; on success it replaces `out`, on failure it is removed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory; give a directory path")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create its parent directory ({err.strerror})") from err
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


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
