"""Move the flip-flops behind ECP5 block RAM reads into the block RAM's own output register.

A DP16KD read without its output register has 5.6-5.8 ns clock-to-out on the -6 grade, which alone caps
a design near 150 MHz. The RTL already registers every table read in fabric (pqhw_mvau's read stage), so
the netlist has DP16KD -> TRELLIS_FF on every used output. This pass turns such a pair into one DP16KD
with REGMODE OUTREG: the output register samples on the same clock edge, enabled by OCE, so the cycle
behaviour is the one the RTL simulation checked. Stock Yosys never sets OUTREG, hence this pass.

It only rewrites a read port when every used data output feeds exactly one flip-flop and nothing else,
all of them on the port's clock edge, with one shared clock enable, no set/reset, power-up value 0, and
the port's own reset tied low; anything else is left as synthesised. Functions take and return the
Yosys JSON netlist as a dict, in the style of a netlist transformation: (netlist, number of ports moved).
"""
from __future__ import annotations

from collections import defaultdict

ZERO, ONE = "0", "1"


def _pins(cell: dict, prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count) if f"{prefix}{i}" in cell["connections"]]


def _read_ports(cell: dict) -> list[dict]:
    """Read side(s) of a DP16KD: which data pins, clock, clock enable, output enable and reset belong together."""
    # pseudo dual port: the 36-bit read is DOB (low half) and DOA (high half), all on port B
    if _int_param(cell["parameters"].get("DATA_WIDTH_A", 18)) == 36:
        return [{"data": _pins(cell, "DOB", 18) + _pins(cell, "DOA", 18), "clk": "CLKB", "clkmux": "CLKBMUX",
                 "oce": ["OCEB", "OCEA"], "rst": ["RSTA", "RSTB"], "regmode": ["REGMODE_A", "REGMODE_B"]}]
    return [{"data": _pins(cell, f"DO{p}", 18), "clk": f"CLK{p}", "clkmux": f"CLK{p}MUX",
             "oce": [f"OCE{p}"], "rst": [f"RST{p}"], "regmode": [f"REGMODE_{p}"]} for p in "AB"]


def _int_param(value) -> int:
    """Yosys JSON writes integer parameters as 32-character binary strings."""
    return int(value, 2) if isinstance(value, str) else int(value)


def _bit(cell: dict, pin: str):
    return cell["connections"][pin][0]


def absorb_output_registers(netlist: dict, top: str) -> tuple[dict, int]:
    """Absorb DP16KD -> TRELLIS_FF read registers into REGMODE OUTREG; returns (netlist, ports moved)."""
    module = netlist["modules"][top]
    cells = module["cells"]
    sinks: dict = defaultdict(list)
    for name, cell in cells.items():
        for pin, bits in cell["connections"].items():
            if cell["port_directions"].get(pin) == "input":
                for bit in bits:
                    sinks[bit].append((name, pin))

    moved = 0
    for ram in [cells[name] for name in sorted(cells) if cells[name]["type"] == "DP16KD"]:
        for port in _read_ports(ram):
            plan = _plan(ram, port, cells, sinks)
            if plan is None:
                continue
            ce, ffs = plan
            for pin, ff_name in ffs.items():
                ram["connections"][pin] = list(cells[ff_name]["connections"]["Q"])
                del cells[ff_name]
            for oce in port["oce"]:
                ram["connections"][oce] = [ce]
            for regmode in port["regmode"]:
                ram["parameters"][regmode] = "OUTREG"
            moved += 1
    return netlist, moved


def _plan(ram: dict, port: dict, cells: dict, sinks: dict):
    """(clock enable bit, {data pin: flip-flop}) when the port's registers can move into the RAM, else None."""
    if str(ram["parameters"].get(port["clkmux"], port["clk"])).strip() != port["clk"]:
        return None
    if any(_bit(ram, rst) != ZERO for rst in port["rst"] if rst in ram["connections"]):
        return None
    clk = _bit(ram, port["clk"])
    ffs, enables = {}, set()
    for pin in port["data"]:
        users = sinks.get(_bit(ram, pin), [])
        if not users:
            continue
        if len(users) != 1 or users[0][1] != "DI":
            return None
        ff = cells[users[0][0]]
        params = {key: str(value).strip() for key, value in ff["parameters"].items()}  # Yosys pads strings
        if ff["type"] != "TRELLIS_FF" or ff["connections"]["CLK"][0] != clk:
            return None
        if params.get("CLKMUX", "CLK") != "CLK" or params.get("REGSET", "RESET") != "RESET":
            return None
        if ff["connections"].get("LSR", [ZERO])[0] != ZERO and params.get("LSRMUX", "LSR") != "0":
            return None
        cemux = params.get("CEMUX", "CE")
        if cemux not in ("CE", "1"):
            return None
        enables.add(ONE if cemux == "1" else ff["connections"].get("CE", [ONE])[0])
        ffs[pin] = users[0][0]
    if not ffs or len(enables) != 1 or None in enables:
        return None
    return enables.pop(), ffs
