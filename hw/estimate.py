"""LUT/FF/BRAM/DSP estimates per layer and per design for the open FPGA families (ecp5, ice40, gowin).

Why: `pqhw compile --board` must pick a folding that fits before minutes of place and route are spent,
and `pqhw bitstream` refuses designs that cannot fit. The estimate reads the design exactly as hw.emit
plans it (block parameters, weight storage, FIFO depths, width converters), so it follows the emitter.

Model. Every block is reduced to a few structural features (its kind's `features`, hw/kinds): datapath
lanes weighted by their arithmetic, accumulator and comparator bits, bits of constant tables read through multiplexers,
flip-flops the RTL declares, and its memories. Memories are placed per family (`place_memory`): block RAM
(blocks counted from the family's RAM geometry), distributed RAM or flip-flops. LUTs and FFs are then a
linear function of the features with coefficients per family (COEFFS), fitted by least squares against
place and route of emitted designs; bench/estimate_calibration.py measures the error and refits them.
"""
from __future__ import annotations

import math

from common.errors import UserError
from hw import kinds
from hw.ir import Graph
from hw.resources import Memory

FAMILIES = ("ecp5", "ice40", "gowin")
RESOURCES = ("luts", "ffs", "brams", "dsps", "bram_bits")

# Block RAM geometry: bits per block and the (depth, width) shapes one block can take.
BRAM_SHAPES = {
    "ecp5": [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)],   # DP16KD
    "ice40": [(2048, 2), (1024, 4), (512, 8), (256, 16)],                            # SB_RAM40_4K
    "gowin": [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)],  # BSRAM
}
BRAM_BITS = {"ecp5": 18432, "ice40": 4096, "gowin": 18432}
# Distributed RAM cell (depth, width), where the family has one (ECP5 DPR16X4, Gowin RAM16SDP4).
LUTRAM_CELL = {"ecp5": (16, 4), "gowin": (16, 4), "ice40": None}
# A ROM (weights/thresholds with MEM_STYLE rom) of at least this many bits goes to block RAM; smaller ones
# become logic like constant tables.
ROM_BRAM_MIN_BITS = 4096
# iCE40 only: a ROM whose block count exceeds this multiple of its bits' worth of blocks (wide and shallow,
# e.g. a threshold table) is built from logic instead, as Yosys does.
ROM_BRAM_MAX_WASTE = {"ice40": 2.0}
# A stream buffer (FIFO, input replay buffer) of at least this depth and this many bits goes to block RAM;
# smaller ones go to distributed RAM, or to flip-flops where the family has none (iCE40).
RAM_BRAM_MIN_DEPTH = {"ecp5": 257, "gowin": 257, "ice40": 16}
RAM_BRAM_MIN_BITS = {"ecp5": 4096, "gowin": 4096, "ice40": 128}
# ECP5 instead: Yosys (memory_libmap) takes block RAM once the distributed version, in DPR16X4 cells plus a
# quarter per bit of the read multiplexer over them, costs more than this per block it would use. Measured on
# pqhw_fifo from 2 to 256 bits wide and 16 to 1,000 deep (14 shapes, every one on the side the rule says):
# 4 x 320 and 12 x 112 stay distributed (39), 4 x 336 (41), 8 x 176 (42) and 2 x 480 (44.5) take a DP16KD;
# the depth-and-bits rule put 2 x 640 to 2 x 840 line buffers and FIFOs in LUTs (LeNet-5: 13 BRAMs estimated,
# 19 placed).
ECP5_LUTRAM_PER_BRAM = 40


def _ecp5_ram_in_bram(width: int, depth: int) -> bool:
    cells = math.ceil(depth / 16) * math.ceil(width / 4)
    mux = width * (math.ceil(depth / 16) - 1) / 4
    return cells + mux > ECP5_LUTRAM_PER_BRAM * bram_blocks("ecp5", width, depth)

FEATURES = ("one", "blocks", "links", "lanes", "acc_bits", "cmp_bits", "const_bits", "lutram", "ff_ram_bits",
            "stream_bits", "reg_bits", "unrolled_bits", "ff_ram_words")

# Coefficients per family and resource over FEATURES; FITTED says against which designs. LUTs: one
# non-negative scale for the datapath features and one for the overhead features per family, FFs:
# non-negative least squares (bench/estimate_calibration.fit).
COEFFS = {
    "ecp5": {"luts": {"blocks": 65.52, "links": 32.76, "lanes": 1.788, "acc_bits": 2.384, "cmp_bits": 1.193,
                     "const_bits": 0.1192, "lutram": 4.914, "ff_ram_bits": 1.995, "stream_bits": 1.638,
                     "unrolled_bits": 1.091},
             "ffs": {"blocks": 0, "links": 23.06, "ff_ram_bits": 0, "reg_bits": 1.853, "unrolled_bits": 0.984}},
    "ice40": {"luts": {"blocks": 23.68, "links": 11.84, "lanes": 0.9173, "acc_bits": 1.223, "cmp_bits": 0.6114,
                     "const_bits": 0.0917, "ff_ram_bits": 0.8875, "ff_ram_words": 1.83, "stream_bits": 0.5918,
                     "reg_bits": 0.1776, "unrolled_bits": 0.791},
              "ffs": {"blocks": 79.59, "links": 0, "ff_ram_bits": 0.3034, "reg_bits": 1.601,
                     "unrolled_bits": 0.972}},
    "gowin": {"luts": {"blocks": 78.44, "links": 39.21, "lanes": 2.345, "acc_bits": 3.126, "cmp_bits": 1.564,
                     "const_bits": 0.1563, "lutram": 1.962, "ff_ram_bits": 2.721, "stream_bits": 1.962,
                     "unrolled_bits": 1.033},
              "ffs": {"blocks": 0, "links": 55.15, "ff_ram_bits": 0, "reg_bits": 1.722, "unrolled_bits": 1.03}},
}
# iCE40 logic cells pair a LUT with a flip-flop, and nextpnr's count (what a board holds) is LUT4s plus the
# flip-flops that found no LUT to share a cell with: 0.61-0.74 cells per flip-flop over ten digits designs.
# The LUT coefficients above count LUT4s; the estimate adds this many cells per estimated flip-flop.
CELLS_PER_FF = {"ice40": 0.66}

FITTED = {"date": "2026-11-25", "method": "grouped non-negative scales (bench/estimate_calibration.fit); "
                                    "iCE40 LUT4s plus CELLS_PER_FF; pqhw_xnor_unrolled from Yosys synthesis",
          "designs": "digits_w1a1, digits_tern_a2, digits_w2a2, digits_w4a4 at the compile default folding and at "
                     "1000 and 512 cycles/frame on ulx3s-85f (ecp5), icebreaker (ice40), tangnano9k (gowin), and "
                     "at 64 cycles/frame on ulx3s-85f and icebreaker: 44 place-and-route runs, 38 that fit",
          "max_abs_lut_error_pct": {"ecp5": 21.9, "ice40": 20.5, "gowin": 16.7}}


def family_of(board_or_family: str) -> str:
    """A family name, or the family of a known board; UserError for families without an estimate."""
    if board_or_family in FAMILIES:
        return board_or_family
    from boards.registry import OPEN_FAMILIES, all_boards, get_board

    families = {b.family for b in all_boards().values()} | set(OPEN_FAMILIES)
    where = f"family {board_or_family}"
    if board_or_family not in families:
        board = get_board(board_or_family)
        if board.family in FAMILIES:
            return board.family
        where = f"board {board.name} ({board.family}, {board.device})"
    raise UserError(f"{where}: resource estimates cover the open families {', '.join(FAMILIES)} only; "
                    f"choose a board of those (`pqhw boards`)")


def bram_blocks(family: str, width: int, depth: int) -> int:
    """Fewest blocks of the family's RAM holding depth x width, over the block's aspect ratios."""
    best = None
    for d, w in BRAM_SHAPES[family]:
        n = math.ceil(depth / d) * math.ceil(width / w)
        best = n if best is None else min(best, n)
    return best


def place_memory(family: str, mem: Memory) -> dict:
    """Where synthesis puts a memory: {"brams", "bram_bits"} or {"lutram"} cells or flip-flops ({"ff_ram_bits",
    "ff_ram_words"}: a memory in flip-flops costs a read multiplexer per bit and a write decoder per word)."""
    bits = mem.width * mem.depth
    if mem.block:
        return {"brams": bram_blocks(family, mem.width, mem.depth), "bram_bits": bits}
    if mem.rom:
        blocks = bram_blocks(family, mem.width, mem.depth)
        waste = ROM_BRAM_MAX_WASTE.get(family)
        if bits >= ROM_BRAM_MIN_BITS and (waste is None or blocks <= waste * math.ceil(bits / BRAM_BITS[family])):
            return {"brams": blocks, "bram_bits": bits}
        return {"const_bits": bits}
    if (_ecp5_ram_in_bram(mem.width, mem.depth) if family == "ecp5"
            else mem.depth >= RAM_BRAM_MIN_DEPTH[family] and bits >= RAM_BRAM_MIN_BITS[family]):
        return {"brams": bram_blocks(family, mem.width, mem.depth), "bram_bits": bits}
    cell = LUTRAM_CELL[family]
    if cell is None:
        return {"ff_ram_bits": bits, "ff_ram_words": mem.depth}
    return {"lutram": math.ceil(mem.depth / cell[0]) * math.ceil(mem.width / cell[1])}


def _link(stage, nxt) -> tuple[dict, list[Memory]]:
    """The width converter (where the folds differ) and the FIFO of the consumer's beats from one block to the
    next, as hw.emit wires them."""
    f = {"links": 1, "stream_bits": stage.fifo_width}
    mems = ([Memory("link_fifo", stage.fifo_width, stage.fifo_depth, rom=False, block=stage.fifo_block)]
            if stage.fifo_depth else [])
    if stage.dwc:
        cap = 2 * (stage.out_n + nxt.in_n)
        f["links"] += 1
        f["stream_bits"] += cap * stage.out_bits
        f["reg_bits"] = cap * stage.out_bits
    return f, mems


def _add(into: dict, more: dict) -> dict:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v
    return into


def layer_features(graph: Graph, family: str) -> dict[str, dict]:
    """Per layer: {"features": {...}, "brams", "bram_bits", "dsps", "memories"} from hw.emit's plan."""
    from hw.emit import plan

    family = family_of(family)
    stages = plan(graph.model_copy(update={"layers": [l.as_estimated() for l in graph.layers]}))
    out = {}
    for i, st in enumerate(stages):
        link = _link(st, stages[i + 1]) if i + 1 < len(stages) else None
        out[st.layer_name] = block_features(st.module, st.rtl.params, family, link)
    return out


def block_features(module: str, p: dict, family: str, link: tuple[dict, list[Memory]] | None = None) -> dict:
    """One RTL block (and the link after it): {"features", "brams", "bram_bits", "dsps", "memories"}, its
    memories placed for the family (memories in logic become features)."""
    f, mems, dsps = kinds.for_module(module).features(module, p, family)
    mems = list(mems)
    if link is not None:
        _add(f, link[0])
        mems += link[1]
    placed = {"brams": 0, "bram_bits": 0}
    for m in mems:
        _add(placed, place_memory(family, m))
    for key in ("const_bits", "lutram", "ff_ram_bits", "ff_ram_words"):
        if key in placed:
            f[key] = f.get(key, 0) + placed.pop(key)
    return {"features": f, "brams": placed["brams"], "bram_bits": placed["bram_bits"], "dsps": dsps,
            "memories": [vars(m) for m in mems]}


def linear(coeffs: dict, features: dict) -> float:
    return sum(coeffs.get(k, 0.0) * v for k, v in features.items())


def estimate_graph(graph: Graph, family: str, board: str | None = None) -> dict:
    """The estimate.json document: per-layer and total resources, the board wrapper included in the total."""
    from hw.bitstream import WRAPPER_COST
    from hw.board_top import stream_shape, wrapper_cost

    family = family_of(board or family)
    c = COEFFS[family]
    layers = {}
    by_name = {l.name: l for l in graph.layers}
    total = {k: 0.0 for k in RESOURCES}
    for name, lf in layer_features(graph, family).items():
        f = lf["features"]
        ffs = linear(c["ffs"], f)
        row = {"luts": round(linear(c["luts"], f) + CELLS_PER_FF.get(family, 0.0) * ffs), "ffs": round(ffs),
               "brams": lf["brams"],
               "dsps": lf["dsps"], "bram_bits": lf["bram_bits"]}
        row.update(by_name[name].estimate_notes())
        layers[name] = {**row, "features": {k: round(v, 2) for k, v in f.items()}}
        _add(total, {k: row[k] for k in RESOURCES})
    top = {"luts": c["luts"].get("one", 0.0), "ffs": c["ffs"].get("one", 0.0)}
    wrapper = wrapper_cost(stream_shape(graph), WRAPPER_COST)
    accel = {k: round(v + top.get(k, 0.0)) for k, v in total.items()}
    total = {k: accel[k] + wrapper.get(k, 0) for k in RESOURCES}
    doc = {"family": family, "layers": layers, "accelerator": accel, "wrapper": wrapper, "total": total,
           "coefficients_fitted": FITTED}
    if board:
        doc = {"family": family, "board": board, **{k: v for k, v in doc.items() if k != "family"}}
    return doc


def estimate_total(graph: Graph, family: str) -> dict:
    return estimate_graph(graph, family)["total"]


def over_budget(total: dict, resources, headroom: float) -> list[tuple[str, int, int]]:
    """Resources the total exceeds after keeping `headroom` (a fraction) of the board free: (key, need, limit)."""
    limits = resources.limits(bram_bits=True)
    over = []
    for key, limit in limits.items():
        need = int(total.get(key, 0))
        usable = int(limit / (1 + headroom))
        if need > usable:
            over.append((key, need, usable))
    return over
