"""The board registry: every board loads, constraint files pin exactly the ports the board top has."""
import re

import pytest
import yaml
from click.testing import CliRunner

from boards.cli import cli as boards_cli
from boards.registry import _load_file, all_boards, get_board
from hw.board_top import StreamShape, clks_per_bit, render_board_top
from common.errors import UserError

OPEN = ["ulx3s-85f", "icebreaker", "tangnano9k"]
VIVADO = ["pynq-z2", "zcu104", "kv260"]


def constraint_pins(board) -> dict[str, str]:
    """Port -> package pin, read from the board's .lpf/.pcf/.cst the way the placer reads it."""
    text = board.constraint_path.read_text()
    patterns = {
        "ecp5": r'^\s*LOCATE\s+COMP\s+"([^"]+)"\s+SITE\s+"([^"]+)"\s*;',
        "ice40": r"^\s*set_io\s+(?:-\S+\s+)*(\S+)\s+(\S+)",
        "gowin": r'^\s*IO_LOC\s+"([^"]+)"\s+(\S+?)\s*;',
    }
    return dict(re.findall(patterns[board.family], text, flags=re.M))


def board_top_ports() -> set[str]:
    shape = StreamShape(elem_bits=1, simd=8, frame_elems=64, out_bits=4, num_classes=10)
    text = render_board_top(shape, clks_per_bit=104, clock_mhz=12, baud=115200, title="t")
    header = text.split("module pqhw_board_top", 1)[1].split(");", 1)[0]
    return set(re.findall(r"(?:input|output)\s+wire\s+(\w+)", header))


def test_all_boards_load_with_their_families():
    boards = all_boards()
    assert set(OPEN + VIVADO) <= set(boards)
    assert {b: boards[b].toolchain for b in OPEN} == dict.fromkeys(OPEN, "open")
    assert {b: boards[b].toolchain for b in VIVADO} == dict.fromkeys(VIVADO, "vivado")
    assert boards["ulx3s-85f"].device == "LFE5U-85F-6BG381C" and boards["ulx3s-85f"].clock.mhz == 25
    assert boards["icebreaker"].device == "iCE40UP5K-SG48" and boards["icebreaker"].clock.mhz == 12
    assert boards["tangnano9k"].device == "GW1NR-LV9QN88PC6/I5" and boards["tangnano9k"].clock.mhz == 27
    assert boards["icebreaker"].resources.luts == 5280
    assert boards["ulx3s-85f"].resources.luts == 83640


@pytest.mark.parametrize("name", OPEN)
def test_constraints_pin_exactly_the_board_top_ports(name):
    board = get_board(name)
    pins = constraint_pins(board)
    assert set(pins) == board_top_ports() == {"clk", "uart_rx", "uart_tx"}
    assert pins["clk"] == board.clock.pin
    assert pins["uart_rx"] == board.uart.rx
    assert pins["uart_tx"] == board.uart.tx


def test_documented_pins():
    """Pins from the boards' published constraint files (ULX3S v20 lpf, icebreaker.pcf, Tang Nano 9K cst)."""
    expect = {"ulx3s-85f": ("G2", "M1", "L4"), "icebreaker": ("35", "6", "9"), "tangnano9k": ("52", "18", "17")}
    for name, (clk, rx, tx) in expect.items():
        b = get_board(name)
        assert (b.clock.pin, b.uart.rx, b.uart.tx) == (clk, rx, tx)


@pytest.mark.parametrize("name", OPEN)
def test_uart_divider_is_exact_enough(name):
    board = get_board(name)
    cycles = clks_per_bit(board.clock.mhz, board.uart.baud)
    actual_baud = board.clock.mhz * 1e6 / cycles
    assert abs(actual_baud - board.uart.baud) / board.uart.baud < 0.01


def test_impossible_baud_rate_is_refused():
    with pytest.raises(UserError, match="baud"):
        clks_per_bit(1.0, 921600)


def test_unknown_board_lists_known_ones():
    with pytest.raises(UserError) as err:
        get_board("de10-nano")
    msg = str(err.value)
    assert "de10-nano" in msg
    for name in OPEN + VIVADO:
        assert name in msg


def test_bad_board_file_names_the_field(tmp_path):
    data = get_board("icebreaker").model_dump()
    data["resources"]["luts"] = -5
    path = tmp_path / "icebreaker.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "icebreaker.pcf").write_text("")
    with pytest.raises(UserError, match=r"resources\.luts"):
        _load_file(path)


def test_open_board_without_constraints_is_rejected(tmp_path):
    data = get_board("tangnano9k").model_dump()
    data["constraints"] = None
    path = tmp_path / "tangnano9k.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="constraints"):
        _load_file(path)


def test_boards_command_prints_every_board():
    result = CliRunner().invoke(boards_cli, [])
    assert result.exit_code == 0, result.output
    for name in OPEN + VIVADO:
        assert name in result.output
    assert "83,640" in result.output and "5,280" in result.output
