"""Board descriptions as data: one YAML file per board beside this module, validated on load.

Adding a board means adding a YAML file (and its constraint file for the open toolchain); no code changes.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.errors import UserError

BOARD_DIR = Path(__file__).resolve().parent

# Which synthesis script, place-and-route program and packer each open family uses.
OPEN_FAMILIES = {
    "ecp5": {"synth": "synth_ecp5", "pnr": "nextpnr-ecp5", "pack": "ecppack", "ext": "bit", "constraints": ".lpf"},
    "ice40": {"synth": "synth_ice40", "pnr": "nextpnr-ice40", "pack": "icepack", "ext": "bin", "constraints": ".pcf"},
    "gowin": {"synth": "synth_gowin", "pnr": "nextpnr-himbaechel-gowin", "pack": "gowin_pack", "ext": "fs",
              "constraints": ".cst"},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Clock(_Strict):
    pin: str | None = None  # None: the clock comes from a processing system, not a package pin
    mhz: float = Field(gt=0)


class Uart(_Strict):
    rx: str  # package pin the FPGA receives on
    tx: str  # package pin the FPGA transmits on
    baud: int = 115200


class Resources(_Strict):
    luts: int = Field(gt=0)
    ffs: int = Field(gt=0)
    bram_blocks: int = Field(ge=0)
    bram_bits: int = Field(ge=0)
    dsps: int = Field(ge=0)
    large_ram_bits: int = 0  # SPRAM (iCE40UP) or UltraRAM (UltraScale+)

    def limits(self, bram_bits: bool = False) -> dict[str, int]:
        """The board's budget under the names the resource estimate uses (luts, ffs, brams, dsps)."""
        out = {"luts": self.luts, "ffs": self.ffs, "brams": self.bram_blocks, "dsps": self.dsps}
        return {**out, "bram_bits": self.bram_bits} if bram_bits else out


class Board(_Strict):
    name: str
    title: str
    vendor: Literal["lattice", "gowin", "xilinx"]
    family: Literal["ecp5", "ice40", "gowin", "zynq7", "zynqmp"]
    device: str
    package: str
    speed_grade: str
    toolchain: Literal["open", "vivado"]
    clock: Clock
    uart: Uart | None = None
    resources: Resources
    constraints: str | None = None  # file name beside the YAML
    pnr_args: list[str] = []  # device selection arguments for nextpnr
    pack_device: str | None = None  # device name for packers that need one (gowin_pack)
    finn_board: str | None = None  # FINN's board name for Vivado builds

    @model_validator(mode="after")
    def _check(self):
        if self.toolchain == "open":
            if self.family not in OPEN_FAMILIES:
                raise ValueError(f"family {self.family!r} has no open toolchain; "
                                 f"open families: {sorted(OPEN_FAMILIES)}")
            missing = [f for f in ("constraints", "uart") if getattr(self, f) is None]
            missing += [] if self.pnr_args else ["pnr_args"]
            if self.clock.pin is None:
                missing.append("clock.pin")
            if missing:
                raise ValueError(f"open-toolchain boards need {', '.join(missing)}")
            if self.family == "gowin" and self.pack_device is None:
                raise ValueError("gowin boards need pack_device (the device name gowin_pack takes, e.g. GW1N-9C)")
            want = OPEN_FAMILIES[self.family]["constraints"]
            if not self.constraints.endswith(want):
                raise ValueError(f"constraints for {self.family} must be a {want} file, got {self.constraints!r}")
        elif self.finn_board is None:
            raise ValueError("vivado boards need finn_board (FINN's name for the board)")
        return self

    @property
    def constraint_path(self) -> Path | None:
        return None if self.constraints is None else BOARD_DIR / self.constraints

    @property
    def flow(self) -> dict:
        """The open-toolchain programs for this board's family."""
        return OPEN_FAMILIES[self.family]


def _load_file(path: Path) -> Board:
    try:
        board = Board.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({err})") from None
    except ValidationError as err:
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'board'}: {e['msg']}" for e in err.errors())
        raise UserError(f"{path}: not a valid board description ({where})") from None
    if board.name != path.stem:
        raise UserError(f"{path}: board name {board.name!r} must match the file name {path.stem!r}")
    if board.constraint_path is not None and not board.constraint_path.is_file():
        raise UserError(f"{path}: constraint file {board.constraints} not found beside it")
    return board


@lru_cache(maxsize=1)
def all_boards() -> dict[str, Board]:
    """Every board shipped with pqhw, by name, open-toolchain boards first."""
    boards = [_load_file(p) for p in sorted(BOARD_DIR.glob("*.yaml"))]
    boards.sort(key=lambda b: (b.toolchain != "open", b.name))
    return {b.name: b for b in boards}


def get_board(name: str) -> Board:
    """The board called `name`; a user error listing the known boards otherwise."""
    boards = all_boards()
    if name not in boards:
        raise UserError(f"unknown board {name!r}; known boards: {', '.join(boards)}")
    return boards[name]
