"""Datasets as integer pixel arrays: the embedded sklearn digits, or MNIST / CIFAR-10 from local files.

Pixels are quantized here to UINT<input_bits> integers, because the accelerator's input stream carries
exactly those integers; the model sees the same integers (as floats) during training.
"""
from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass
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


def quantize_pixels(x: np.ndarray, full_scale: float, bits: int) -> np.ndarray:
    levels = (1 << bits) - 1
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * levels / full_scale), 0, levels).astype(np.int64)


def _split(x, y, test_fraction, seed):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path}: not an IDX file of unsigned bytes (MNIST format)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path}: IDX header says {dims} but holds {data.size} bytes")
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
        x = _read_idx(_find(data_dir, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"]))
        y = _read_idx(_find(data_dir, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"]))
        parts[split] = (x.reshape(len(x), -1), y.astype(np.int64))
    return parts, (1, 28, 28)


def load_cifar10(data_dir: Path):
    def batch(path):
        if not path.is_file():
            raise UserError(f"{path}: CIFAR-10 batch not found (expects data_batch_1..5 and test_batch)")
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        return np.asarray(d[b"data"], dtype=np.uint8), np.asarray(d[b"labels"], dtype=np.int64)

    train = [batch(data_dir / f"data_batch_{i}") for i in range(1, 6)]
    test = batch(data_dir / "test_batch")
    x_train = np.concatenate([b[0] for b in train])
    y_train = np.concatenate([b[1] for b in train])
    return {"train": (x_train, y_train), "test": test}, (3, 32, 32)


def load_dataset(cfg) -> Split:
    """cfg: quant.config.DatasetConfig."""
    bits = cfg.input_bits
    if cfg.name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = quantize_pixels(d.data, 16.0, bits)
        x_tr, x_te, y_tr, y_te = _split(x, d.target.astype(np.int64), cfg.test_fraction, cfg.split_seed)
        return Split(x_tr, y_tr, x_te, y_te, bits, (1, 8, 8), 10)
    if cfg.data_dir is None:
        raise UserError(f"dataset.data_dir: dataset {cfg.name!r} loads from local files; set data_dir")
    data_dir = Path(cfg.data_dir)
    if not data_dir.is_dir():
        raise UserError(f"dataset.data_dir: {data_dir} is not a directory")
    parts, shape = load_mnist(data_dir) if cfg.name == "mnist" else load_cifar10(data_dir)
    (x_tr, y_tr), (x_te, y_te) = parts["train"], parts["test"]
    return Split(quantize_pixels(x_tr, 255.0, bits), y_tr, quantize_pixels(x_te, 255.0, bits), y_te,
                 bits, shape, 10)
