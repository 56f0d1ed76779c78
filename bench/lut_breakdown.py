"""Where an ECP5 design's LUTs go: nextpnr's TRELLIS_COMB count split by top-level instance.

nextpnr-ecp5 reports TRELLIS_COMB = LUT4s + 2 a CCU2C (two carry LUTs) + 6 a TRELLIS_DPR16X4 (four RAM LUTs and
the write-port slice) + 4 a carry chain (its entry and exit cells) + 2 (the design's constants): exact to the
LUT on the lut_efficiency designs (TFC_2W2A 2,520, SFC_1W1A 3,689, LFC_1W1A 18,531). Applied to the flattened
Yosys netlist (netlist.json, as bench.rtllib_compare.measure writes it), with each cell counted in the instance
its hierarchical name starts with, it says which block holds the LUTs and whether as logic, carry chains or
distributed RAM. The critical path comes from nextpnr's report.json beside it.

    python -m bench.lut_breakdown runs/bench/lut_efficiency/tfc_2w2a/ooc [...]
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

COMB_PER = {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 6}
CHAIN_COMB = 4
DESIGN_COMB = 2


def breakdown(netlist: dict, top: str = "pqhw_top") -> dict[str, collections.Counter]:
    """Per top-level instance: comb (nextpnr's TRELLIS_COMB share), lut4, carry (LUTs), chains, dpr, ff, bram."""
    cells = netlist["modules"][top]["cells"]
    couts = {b for c in cells.values() if c["type"] == "CCU2C" for b in c["connections"]["COUT"]}
    per: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, cell in cells.items():
        kind = cell["type"]
        inst = name.split(".")[0] if "." in name and not name.startswith("$") else "(top)"
        k = per[inst]
        k["comb"] += COMB_PER.get(kind, 0)
        if kind == "LUT4":
            k["lut4"] += 1
        elif kind == "CCU2C":
            k["carry"] += 2
            if not set(cell["connections"]["CIN"]) & couts:
                k["chains"] += 1
                k["comb"] += CHAIN_COMB
        elif kind == "TRELLIS_DPR16X4":
            k["dpr"] += 1
        elif kind == "TRELLIS_FF":
            k["ff"] += 1
        elif kind == "DP16KD":
            k["bram"] += 1
    return per


def critical_path(report: dict) -> list[str]:
    """nextpnr's critical path as 'delay type cell.port' lines."""
    out = []
    for cp in report.get("critical_paths", [])[:1]:
        for step in cp["path"]:
            to = step["to"]
            out.append(f"{step['delay']:5.2f} {step['type']:8s} {to['cell']}.{to['port']}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", type=Path, help="directories holding netlist.json (and report.json)")
    ap.add_argument("--top", default="pqhw_top")
    args = ap.parse_args(argv)
    for d in args.dirs:
        per = breakdown(json.loads((d / "netlist.json").read_text()), args.top)
        total = sum(v["comb"] for v in per.values()) + DESIGN_COMB
        placed = ""
        if (d / "report.json").is_file():
            report = json.loads((d / "report.json").read_text())
            placed = f", nextpnr {report['utilization']['TRELLIS_COMB']['used']}"
        print(f"{d}: {total} LUTs counted{placed}")
        for inst, v in sorted(per.items(), key=lambda kv: -kv[1]["comb"]):
            print(f"  {inst:30s} {v['comb']:6d} LUTs: {v['lut4']:5d} logic, {v['carry']:5d} carry in {v['chains']:4d} "
                  f"chains, {v['dpr']:4d} DPR16X4; {v['ff']:6d} FFs, {v['bram']:3d} DP16KD")
        if (d / "report.json").is_file():
            print("  critical path:")
            for line in critical_path(report):
                print("    " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
