"""The vocabulary of the resource estimate that layer kinds describe their blocks in (hw.estimate prices it)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Memory:
    """One memory of a block: what it holds, its shape, and whether it is a ROM or a written buffer."""
    role: str
    width: int
    depth: int
    rom: bool
    block: bool = False   # placed in block RAM whatever its size (a link FIFO with pqhw_fifo BLOCK)


def literal_int(value) -> int:
    """A parameter as hw.layer_rtl writes it: an int or a sized SystemVerilog literal such as 64'h1f."""
    if isinstance(value, int):
        return value
    size, _, digits = str(value).partition("'")
    base = {"h": 16, "d": 10, "b": 2, "o": 8}[digits[0].lower()]
    return int(digits[1:].replace("_", ""), base)
