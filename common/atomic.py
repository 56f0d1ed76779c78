"""Atomic outputs: a reader (or the next step) sees a whole result or the previous one, never half of one.

Every command writes through these: files via a temporary file and os.replace, directories via a staging
directory beside the target that replaces it only when everything in it was written.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from common.errors import UserError


def staging_prefix(path: Path, kind: str = "tmp") -> str:
    """Name prefix of the staging file or directory beside `path`: `.NAME.tmp-PID-`; the process id lets the
    next run tell a staging area of a killed run (removed) from one still being written (left alone)."""
    return f".{Path(path).name}.{kind}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(path: str | Path) -> list[Path]:
    """Remove the staging files and directories (`.NAME.tmp-*`, `.NAME.old-*`) that a killed run left beside
    `path`; those of a process that is still running stay. Returns what was removed."""
    path = Path(path)
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        rest = None
        for kind in ("tmp", "old"):
            if entry.name.startswith(f".{path.name}.{kind}-"):
                rest = entry.name[len(f".{path.name}.{kind}-"):]
        if rest is None:
            continue
        pid = rest.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        if pid.isdigit() and int(pid) == os.getpid() and entry.name.startswith(f".{path.name}.tmp-"):
            continue  # this process is writing it (nested or concurrent use in one process)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextmanager
def atomic_path(path: str | Path):
    """Yields a temporary file name beside `path` for a writer that wants a file name (torch.save, np.savez);
    it replaces `path` when the block succeeds and is removed when it does not."""
    path = Path(path)
    clean_stale_staging(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=staging_prefix(path))
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


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


# Written into every directory atomic_dir publishes: a directory holding it was made by pqhw as a whole and may
# be replaced as a whole; any other non-empty directory holds someone's files and is never replaced.
OUTPUT_MARK = ".pqhw-output"
# The record each command writes at the top of its output directory, by which one written before OUTPUT_MARK
# existed is still known as pqhw's.
OUTPUT_RECORDS = ("graph.json", "provenance.json", "bitstream.json", "finn_estimate.json", "distributions.json",
                  "model.json", "layers.json", "finetune.json", "step.json")


def refuse_foreign_dir(out: Path) -> None:
    """An existing --out is replaced as a whole, so it must be empty or one that pqhw published."""
    if not out.is_dir() or any((out / name).is_file() for name in (OUTPUT_MARK, *OUTPUT_RECORDS)):
        return
    try:
        entries = sorted(p.name for p in out.iterdir())
    except OSError as err:
        raise UserError(f"--out {out}: cannot be read ({err.strerror})") from None
    if entries:
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise UserError(f"--out {out}: holds files pqhw did not write ({shown}), which this command would delete; "
                        "give a new or empty directory, or remove it first")


@contextmanager
def atomic_dir(out: str | Path, inputs=()):
    """Yields a staging directory beside `out`; on success it replaces `out`, on failure it is removed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory; give a directory path")
    refuse_inputs_inside(out, inputs)
    refuse_foreign_dir(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create its parent directory ({err.strerror})") from None
    try:
        clean_stale_staging(out)
        tmp = Path(tempfile.mkdtemp(prefix=staging_prefix(out), dir=out.parent))
    except OSError as err:
        raise UserError(f"--out {out}: cannot write in {out.parent} ({err.strerror})") from None
    tmp.chmod(0o755)  # mkdtemp's 0700 would stay on the published directory
    try:
        yield tmp
        (tmp / OUTPUT_MARK).write_text("written by pqhw as a whole; the next run may replace it as a whole\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.parent / f"{staging_prefix(out, 'old')}{tmp.name.rsplit('-', 1)[-1]}"
    if out.exists():
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_tree(root: str | Path) -> str:
    """One hash over a directory's files: their relative paths and contents, in sorted order."""
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def sha256_inputs(paths) -> dict[str, str | None]:
    """{path: sha256} of files (a directory hashes as a tree); a path that does not exist maps to None."""
    out = {}
    for p in paths:
        p = Path(p)
        out[str(p)] = sha256_tree(p) if p.is_dir() else sha256_file(p) if p.is_file() else None
    return out
