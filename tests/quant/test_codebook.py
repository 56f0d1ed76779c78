"""The 27-word ternary codebook: every code, padding, packing, and rejected input."""
import itertools

import numpy as np
import pytest

from common.errors import UserError
from common import codebook


def test_every_code_round_trips_and_codes_are_distinct():
    triples = np.array(list(itertools.product((-1, 0, 1), repeat=3)))  # all 27
    codes = codebook.encode_rows(triples)
    assert codes.shape == (27, 1)
    assert sorted(codes.ravel().tolist()) == list(range(27))
    assert np.array_equal(codebook.decode_rows(codes, 3), triples)
    for code in range(27):
        w = codebook.TABLE[code]
        assert codebook.encode_rows(w[None, :])[0, 0] == code


def test_code_mapping_is_the_documented_one():
    # trit t = w mod 3, code = t0 + 3 t1 + 9 t2
    assert codebook.encode_rows(np.array([[0, 0, 0]]))[0, 0] == 0
    assert codebook.encode_rows(np.array([[1, 0, 0]]))[0, 0] == 1
    assert codebook.encode_rows(np.array([[-1, 0, 0]]))[0, 0] == 2
    assert codebook.encode_rows(np.array([[0, 1, 0]]))[0, 0] == 3
    assert codebook.encode_rows(np.array([[0, 0, -1]]))[0, 0] == 18
    assert codebook.encode_rows(np.array([[-1, -1, -1]]))[0, 0] == 26


@pytest.mark.parametrize("mw", [1, 2, 3, 4, 5, 7, 64, 65])
def test_rows_not_divisible_by_three_are_zero_padded(mw):
    rng = np.random.default_rng(mw)
    w = rng.integers(-1, 2, size=(5, mw))
    codes = codebook.encode_rows(w)
    assert codes.shape == (5, -(-mw // 3))
    assert np.array_equal(codebook.decode_rows(codes, mw), w)
    padded = np.zeros((5, 3 * codes.shape[1]), dtype=np.int64)
    padded[:, :mw] = w
    assert np.array_equal(codebook.TABLE[codes].reshape(5, -1), padded)


def test_packed_bytes_round_trip_and_bit_count():
    rng = np.random.default_rng(1)
    w = rng.integers(-1, 2, size=(10, 64))
    data, bits = codebook.encode_bytes(w)
    assert bits == 10 * 22 * 5 == 1100
    assert len(data) == 138  # ceil(1100 / 8)
    assert np.array_equal(codebook.decode_bytes(data, 10, 64), w)


def test_packing_is_lsb_first():
    # code 26 = 0b11010 then code 1: stream bits 0-4 = 0,1,0,1,1 and bits 5-9 = 1,0,0,0,0
    data = codebook.pack_codes(np.array([26, 1], dtype=np.uint8))
    assert data == bytes([0b00111010, 0b00000000])
    assert codebook.unpack_codes(data, 2).tolist() == [26, 1]


def test_bad_inputs_raise_user_errors():
    with pytest.raises(UserError, match="not ternary"):
        codebook.encode_rows(np.array([[2, 0, 0]]))
    with pytest.raises(UserError, match="2-D"):
        codebook.encode_rows(np.array([1, 0, -1]))
    with pytest.raises(UserError, match="outside 0..26"):
        codebook.decode_rows(np.array([[27]]), 3)
    with pytest.raises(UserError, match="codes per row"):
        codebook.decode_rows(np.array([[1, 2]]), 3)
    with pytest.raises(UserError, match="fewer than"):
        codebook.unpack_codes(b"\x00", 2)
