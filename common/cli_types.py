"""click parameter types for the values every command takes: finite positive numbers (clocks, frequencies,
frame rates), counts, and output directories that can be written. click's own FloatRange lets "nan" and "inf"
through (every comparison with NaN is false), and an --out that is a file or sits in a directory nobody can
write fails only after minutes of work; these refuse both at the command line, in one line."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import click


class FiniteFloat(click.ParamType):
    """A finite float in (min, max]; `min_open=False` makes min itself allowed."""

    name = "number"

    def __init__(self, min: float | None = 0.0, max: float | None = None, min_open: bool = True):
        self.min, self.max, self.min_open = min, max, min_open

    def convert(self, value, param, ctx):
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a number", param, ctx)
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        low = self.min is not None and (v <= self.min if self.min_open else v < self.min)
        high = self.max is not None and v > self.max
        if low or high:
            lo = "" if self.min is None else f"{'>' if self.min_open else '>='} {self.min:g}"
            hi = "" if self.max is None else f"<= {self.max:g}"
            self.fail(f"{value!r}: accepted a number {' and '.join(x for x in (lo, hi) if x)}", param, ctx)
        return v


POSITIVE_FLOAT = FiniteFloat(0.0)
MHZ = FiniteFloat(0.0, 2000.0)  # clocks and timing targets: above 0, at most 2 GHz
COUNT = click.IntRange(min=0)  # vectors, samples: 0 or more
POSITIVE_INT = click.IntRange(min=1)  # epochs, threads: 1 or more
SEED = click.IntRange(min=0, max=2**32 - 1)


def writable_dir(path: Path) -> str | None:
    """Why `path` cannot be an output directory (None when it can): it is a file, or the nearest existing
    directory above it cannot be written or has a file where a directory is needed."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return "exists and is not a directory"
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{probe} is a file, not a directory"
    target = path if path.exists() else probe
    if not os.access(target, os.W_OK | os.X_OK):
        return f"{target} is not writable"
    try:  # root passes os.access everywhere; a read-only or virtual file system still refuses a directory
        os.rmdir(tempfile.mkdtemp(prefix=".pqhw-probe-", dir=target))
    except OSError as err:
        return f"{target} is not writable ({err.strerror})"
    return None


class OutDir(click.Path):
    """An output directory: may not exist yet; may not be a file or sit where nothing can be written."""

    def __init__(self):
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value, param, ctx):
        path = super().convert(value, param, ctx)
        why = writable_dir(Path(path))
        if why:
            self.fail(f"{path}: {why}; give a directory that can be written", param, ctx)
        return path
