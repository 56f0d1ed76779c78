"""Block RAM output registers on ECP5: which read registers move into the DP16KD and which stay in fabric."""
import copy
import json

import pytest

from hw.bitstream import build_bitstream
from hw.board_top import RTL_DIR
from hw.ecp5_outreg import absorb_output_registers

CLK, CE, Q0 = 2, 3, 100


def _ff(di, q, clk=CLK, ce="1", lsr="0", **params):
    base = {"CEMUX": "1 " if ce == "1" else "CE", "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR",
            "REGSET": "RESET"}
    return {"type": "TRELLIS_FF", "parameters": {**base, **params},
            "port_directions": {"CLK": "input", "CE": "input", "LSR": "input", "DI": "input", "Q": "output"},
            "connections": {"CLK": [clk], "CE": [ce], "LSR": [lsr], "DI": [di], "Q": [q]}}


def _netlist(width=4, pdp=False):
    """One DP16KD read on port A (or 36 bits pseudo dual port) with a flip-flop on every used output."""
    ram = {"type": "DP16KD",
           "parameters": {"DATA_WIDTH_A": format(36 if pdp else width, "032b"), "REGMODE_A": "NOREG",
                          "REGMODE_B": "NOREG", "CLKAMUX": "CLKA", "CLKBMUX": "CLKB"},
           "port_directions": {}, "connections": {}}
    read = "B" if pdp else "A"
    for pin, bit in {f"CLK{read}": CLK, "CLKA" if pdp else "CLKB": "0", "CEA": 5, "CEB": 6, "OCEA": "1",
                     "OCEB": "1", "RSTA": "0", "RSTB": "0"}.items():
        ram["connections"][pin] = [bit]
        ram["port_directions"][pin] = "input"
    cells = {"ram": ram}
    pins = [f"DOB{i}" for i in range(18)] + [f"DOA{i}" for i in range(18)] if pdp else \
        [f"DOA{i}" for i in range(width)]
    for i, pin in enumerate(pins):
        ram["connections"][pin] = [10 + i]
        ram["port_directions"][pin] = "output"
        cells[f"ff{i}"] = _ff(10 + i, Q0 + i)
    return {"modules": {"top": {"cells": cells}}}


def test_read_registers_move_into_the_ram():
    design, moved = absorb_output_registers(_netlist(), "top")
    cells = design["modules"]["top"]["cells"]
    assert moved == 1 and list(cells) == ["ram"]
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_A"] == "OUTREG" and ram["parameters"]["REGMODE_B"] == "NOREG"
    assert [ram["connections"][f"DOA{i}"] for i in range(4)] == [[Q0 + i] for i in range(4)]  # the FFs' nets
    assert ram["connections"]["OCEA"] == ["1"]


def test_pseudo_dual_port_read_sets_both_halves():
    design, moved = absorb_output_registers(_netlist(pdp=True), "top")
    ram = design["modules"]["top"]["cells"]["ram"]
    assert moved == 1 and len(design["modules"]["top"]["cells"]) == 1
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["DOB0"] == [Q0] and ram["connections"]["DOA17"] == [Q0 + 35]


def test_shared_clock_enable_becomes_the_output_enable():
    netlist = _netlist()
    for i in range(4):
        netlist["modules"]["top"]["cells"][f"ff{i}"] = _ff(10 + i, Q0 + i, ce=CE)
    design, moved = absorb_output_registers(netlist, "top")
    assert moved == 1 and design["modules"]["top"]["cells"]["ram"]["connections"]["OCEA"] == [CE]


@pytest.mark.parametrize("change", ["reset", "other_clock", "mixed_enables", "second_user", "inverted_clock",
                                    "set_on_power_up", "ram_reset"])
def test_registers_that_are_not_a_plain_read_register_stay(change):
    netlist = _netlist()
    cells = netlist["modules"]["top"]["cells"]
    if change == "reset":
        cells["ff1"] = _ff(11, Q0 + 1, lsr=7)
    elif change == "other_clock":
        cells["ff2"] = _ff(12, Q0 + 2, clk=9)
    elif change == "mixed_enables":
        cells["ff3"] = _ff(13, Q0 + 3, ce=CE)
    elif change == "second_user":
        cells["lut"] = {"type": "LUT4", "parameters": {}, "port_directions": {"A": "input", "Z": "output"},
                        "connections": {"A": [10], "Z": [50]}}
    elif change == "inverted_clock":
        cells["ff0"] = _ff(10, Q0, CLKMUX="INV")
    elif change == "set_on_power_up":
        cells["ff0"] = _ff(10, Q0, REGSET="SET")
    else:
        cells["ram"]["connections"]["RSTA"] = [8]
    before = copy.deepcopy(netlist)
    design, moved = absorb_output_registers(netlist, "top")
    assert moved == 0 and design == before


ROM_TOP = """`default_nettype none
module rom_top (input wire clk, input wire uart_rx, output logic uart_tx);
    logic [9:0] addr = '0;
    logic [3:0] word, word_r;
    always_ff @(posedge clk) addr <= addr + {9'd0, uart_rx};
    pqhw_mem #(.WIDTH(4), .DEPTH(1024), .STYLE(1), .INIT_FILE("rom.memh")) u_rom (
        .clk(clk), .en(1'b1), .addr(addr), .rdata(word));
    always_ff @(posedge clk) begin
        word_r <= word;          // the fabric read register that becomes the RAM's output register
        uart_tx <= ^word_r;
    end
endmodule
"""


@pytest.mark.bitstream
def test_ecp5_build_uses_the_ram_output_register(tmp_path):
    (tmp_path / "rom_top.sv").write_text(ROM_TOP)
    (tmp_path / "rom.memh").write_text("".join(f"{(i * 7) % 16:x}\n" for i in range(1024)))
    summary = build_bitstream([RTL_DIR / "pqhw_mem.sv", tmp_path / "rom_top.sv"], "rom_top", "ulx3s-85f",
                              tmp_path / "out", data_files=[tmp_path / "rom.memh"])
    assert summary["brams"] == 1 and summary["bram_output_registers"] == 1
    cells = json.loads((tmp_path / "out" / "netlist.json").read_text())["modules"]["rom_top"]["cells"]
    rams = [c for c in cells.values() if c["type"] == "DP16KD"]
    assert [r["parameters"]["REGMODE_A"] for r in rams] == ["OUTREG"]
    # addr (10) + uart_tx (1) stay in fabric; word_r (4) is gone into the RAM
    assert sum(c["type"] == "TRELLIS_FF" for c in cells.values()) == 11
