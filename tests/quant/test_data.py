import gzip
import pickle
import struct

import numpy as np
import pytest

from common.errors import UserError
from quant.config import DatasetConfig
from quant.data import load_dataset


def test_digits_split_is_fixed_and_integer():
    a = load_dataset(DatasetConfig(name="digits", input_bits=4))
    b = load_dataset(DatasetConfig(name="digits", input_bits=4))
    assert a.x_train.shape == (1347, 64) and a.x_test.shape == (450, 64)
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_test, b.y_test)
    assert a.x_train.dtype == np.int64 and a.x_train.min() == 0 and a.x_train.max() == 15
    assert set(np.unique(a.y_test)) == set(range(10))


def _idx(path, arr, gz=False):
    header = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    x_tr, y_tr = rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 10, 20)
    x_te, y_te = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5)
    _idx(tmp_path / f"train-images-idx3-ubyte{sfx}", x_tr, gz)
    _idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", y_tr, gz)
    _idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", x_te, gz)
    _idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", y_te, gz)
    s = load_dataset(DatasetConfig(name="mnist", data_dir=tmp_path, input_bits=1))
    assert s.x_train.shape == (20, 784) and s.image_shape == (1, 28, 28)
    assert np.array_equal(s.x_test, (np.round(x_te.reshape(5, -1) / 255.0)).astype(int))
    assert np.array_equal(s.y_train, y_tr)


def test_mnist_corrupt_header(tmp_path):
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"not an idx file")
    with pytest.raises(UserError, match="not an IDX file"):
        load_dataset(DatasetConfig(name="mnist", data_dir=tmp_path))


def test_cifar10_batches(tmp_path):
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8), b"labels": list(rng.integers(0, 10, 4))}
        pickle.dump(d, open(tmp_path / name, "wb"))
    s = load_dataset(DatasetConfig(name="cifar10", data_dir=tmp_path, input_bits=8))
    assert s.x_train.shape == (20, 3072) and s.x_test.shape == (4, 3072) and s.image_shape == (3, 32, 32)
    assert s.x_train.max() <= 255


def test_missing_data_dir():
    with pytest.raises(UserError, match="dataset.data_dir"):
        load_dataset(DatasetConfig(name="mnist"))
