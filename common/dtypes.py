"""QONNX integer datatypes by name: bits, sign and range of one stream element."""
from __future__ import annotations

from common.errors import UserError


def dtype_bits(name: str) -> int:
    """Bits of one element on a stream for a QONNX datatype name (BINARY, BIPOLAR, TERNARY, INTn, UINTn)."""
    if name in ("BINARY", "BIPOLAR"):
        return 1
    if name == "TERNARY":
        return 2
    for prefix in ("UINT", "INT"):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return int(name[len(prefix):])
    raise UserError(f"datatype {name!r} is not an integer stream type; accepted: BINARY, BIPOLAR, TERNARY, INTn, UINTn")


def dtype_signed(name: str) -> bool:
    dtype_bits(name)
    return name.startswith("INT") or name in ("BIPOLAR", "TERNARY")


def dtype_range(name: str) -> tuple[int, int]:
    """Smallest and largest integer a datatype holds (BIPOLAR as its {0,1} hardware code)."""
    bits = dtype_bits(name)
    if name in ("BINARY", "BIPOLAR"):
        return 0, 1
    if name == "TERNARY":
        return -1, 1
    if dtype_signed(name):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def smallest_dtype(lo: int, hi: int) -> str:
    """The narrowest INTn/UINTn holding [lo, hi]."""
    if lo >= 0:
        return f"UINT{max(1, int(hi).bit_length())}"
    bits = max(int(-lo - 1).bit_length(), int(hi).bit_length()) + 1
    return f"INT{bits}"
