"""Atomic outputs: a reader (or the next step) sees a whole result or the previous one, never half of one.

Every command writes through these: files via a temporary file and os.replace, directories via a staging
directory beside the target that replaces it only when everything in it was written.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from common.errors import UserError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, obj, indent: int = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def refuse_inputs_inside(out: Path, inputs) -> None:
    """A command never writes over its own inputs: --out may not be, or hold, any of them."""
    out = Path(out).resolve()
    for p in inputs:
        p = Path(p).resolve()
        if p == out or out in p.parents:
            raise UserError(f"--out {out}: holds the input {p}, which this command would replace; "
                            "give an output directory that does not contain the inputs")


@contextmanager
def atomic_dir(out: str | Path, inputs=()):
    """Yields a staging directory beside `out`; on success it replaces `out`, on failure it is removed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory; give a directory path")
    refuse_inputs_inside(out, inputs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create its parent directory ({err.strerror})") from None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as err:
        raise UserError(f"--out {out}: cannot write in {out.parent} ({err.strerror})") from None
    tmp.chmod(0o755)  # mkdtemp's 0700 would stay on the published directory
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
