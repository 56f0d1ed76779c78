"""The fixed 27-word codebook of ternary weights (PTQ section 4.5): three weights in one 5-bit code.

A row of ternary weights {-1, 0, +1} is zero-padded to a multiple of three and cut into groups of three
consecutive weights (w0, w1, w2). Each weight becomes a trit t = w mod 3 (0 -> 0, +1 -> 1, -1 -> 2) and the
group's code is t0 + 3*t1 + 9*t2, in 0..26. With this mapping three zeros give code 0, so padding and an
all-zero memory word both decode to zero weights. Codes 27..31 never occur and are rejected on decode.

The packed form concatenates the 5-bit codes of all rows, row after row, least significant bit first into
bytes (bit i of the stream is bit i % 8 of byte i // 8); the last byte is zero-filled. This module is plain
numpy so both the Python side and the RTL emitter use the same definition.
"""
from __future__ import annotations

import numpy as np

from common.errors import UserError

CODE_BITS = 5
GROUP = 3
CODES = 27

_TRIT = {0: 0, 1: 1, -1: 2}


def _trits_of(code: np.ndarray) -> np.ndarray:
    """[..., 3] trits of codes (0..26), least significant first."""
    return np.stack([code % 3, (code // 3) % 3, code // 9], axis=-1)


# weights of each of the 27 codes, the table the decoder in logic implements
TABLE = np.where(_trits_of(np.arange(CODES)) == 2, -1, _trits_of(np.arange(CODES))).astype(np.int8)


def groups_per_row(mw: int) -> int:
    return -(-int(mw) // GROUP)


def encode_rows(w) -> np.ndarray:
    """[rows, mw] ternary weights -> [rows, ceil(mw/3)] codes (uint8, 0..26); rows zero-padded at the end."""
    w = np.asarray(w)
    if w.ndim != 2:
        raise UserError(f"codebook: expected a 2-D weight matrix [rows, mw], got shape {tuple(w.shape)}")
    if w.size and not np.isin(w, (-1, 0, 1)).all():
        bad = w[~np.isin(w, (-1, 0, 1))].ravel()[0]
        raise UserError(f"codebook: weight value {bad} is not ternary; accepted values: -1, 0, 1")
    rows, mw = w.shape
    g = groups_per_row(mw)
    padded = np.zeros((rows, g * GROUP), dtype=np.int64)
    padded[:, :mw] = w
    trits = np.where(padded < 0, 2, padded).reshape(rows, g, GROUP)
    return (trits[..., 0] + 3 * trits[..., 1] + 9 * trits[..., 2]).astype(np.uint8)


def decode_rows(codes, mw: int) -> np.ndarray:
    """[rows, ceil(mw/3)] codes -> [rows, mw] ternary weights (int8); the padding is dropped."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise UserError(f"codebook: expected a 2-D code matrix [rows, groups], got shape {tuple(codes.shape)}")
    if codes.shape[1] != groups_per_row(mw):
        raise UserError(f"codebook: {codes.shape[1]} codes per row do not hold {mw} weights; "
                        f"expected {groups_per_row(mw)}")
    if codes.size and (codes.min() < 0 or codes.max() >= CODES):
        raise UserError(f"codebook: code {int(codes.max())} is outside 0..{CODES - 1}")
    w = TABLE[codes.astype(np.int64)].reshape(codes.shape[0], codes.shape[1] * GROUP)
    return w[:, :mw]


def packed_bits(rows: int, mw: int) -> int:
    """Bits of the packed codes of a [rows, mw] matrix (before rounding up to bytes)."""
    return int(rows) * groups_per_row(mw) * CODE_BITS


def pack_codes(codes) -> bytes:
    """Codes (any shape, row-major) -> bytes, 5 bits each, least significant bit first."""
    flat = np.asarray(codes, dtype=np.uint8).ravel()
    if flat.size and flat.max() >= CODES:
        raise UserError(f"codebook: code {int(flat.max())} is outside 0..{CODES - 1}")
    bits = ((flat[:, None] >> np.arange(CODE_BITS, dtype=np.uint8)) & 1).astype(np.uint8).ravel()
    return np.packbits(bits, bitorder="little").tobytes()


def unpack_codes(data: bytes, count: int) -> np.ndarray:
    """The first `count` 5-bit codes of a packed byte string."""
    need = -(-count * CODE_BITS // 8)
    if len(data) < need:
        raise UserError(f"codebook: {len(data)} bytes hold fewer than {count} codes (need {need} bytes)")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[:count * CODE_BITS]
    codes = (bits.reshape(count, CODE_BITS).astype(np.uint8) << np.arange(CODE_BITS, dtype=np.uint8)).sum(1)
    return codes.astype(np.uint8)


def encode_bytes(w) -> tuple[bytes, int]:
    """[rows, mw] ternary weights -> (packed bytes, number of meaningful bits)."""
    w = np.asarray(w)
    codes = encode_rows(w)
    return pack_codes(codes), packed_bits(*w.shape)


def decode_bytes(data: bytes, rows: int, mw: int) -> np.ndarray:
    """Inverse of encode_bytes for a [rows, mw] matrix."""
    codes = unpack_codes(data, rows * groups_per_row(mw)).reshape(rows, groups_per_row(mw))
    return decode_rows(codes, mw)
