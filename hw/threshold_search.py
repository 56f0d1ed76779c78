"""Thresholds by pipelined binary search (hw/rtl/pqhw_mt_search.sv): when a layer uses it, its stage tables, its
latency and what the estimate prices.

Why: pqhw_mt compares all NT thresholds of a row in one cycle, so the row is one memory word of NT x TH_BITS
bits; an 8-bit activation's 255 thresholds make words thousands of bits wide, and block RAMs are then spent by
width (the DJPQ LeNet-5 needed 263 of the ULX3S's 208). The search reads one threshold per lane and stage a
cycle, from S = clog2(NT + 1) small tables that together hold each threshold once.

Stage j holds, per row, the 2^j thresholds T[m * 2^(S-j) + 2^(S-1-j) - 1] (m = 0 .. 2^j - 1) of the row padded
to 2^S - 1 with the largest TH_BITS value, which no input reaches. Tables are one per lane (each lane reads its
own address), word r * 2^j + m holding row nf * PE + lane of neuron fold r; shared thresholds have one table a
stage, which every lane reads through its own port (the RTL instantiates a copy per lane).
"""
from __future__ import annotations

import math

import numpy as np

from common.errors import UserError
from hw.layer_rtl import STYLE_CONST, const_literal, memh
from hw.resources import Memory

# Fewest thresholds a row for which the search replaces the all-at-once comparison, and the fewest table bits:
# below either, pqhw_mt's comparators are few or its table is logic anyway (see README, Thresholds).
SEARCH_MIN_NT = 15
SEARCH_MIN_TABLE_BITS = 4096


def stages(nt: int) -> int:
    """Stages of the search: bits of a count of 0..nt."""
    return max(1, int(nt).bit_length())


def is_sorted(t: np.ndarray) -> bool:
    return bool(np.all(np.diff(np.asarray(t), axis=1) >= 0))


def check_sorted(name: str, t: np.ndarray) -> None:
    """The search finds counts of non-decreasing rows only; FINN writes them so, a hand-made graph may not."""
    t = np.asarray(t)
    bad = np.flatnonzero(np.any(np.diff(t, axis=1) < 0, axis=1))
    if bad.size:
        r = int(bad[0])
        i = int(np.flatnonzero(np.diff(t[r]) < 0)[0])
        raise UserError(f"layer {name}: threshold row {r} is not sorted (threshold {i + 1} = {t[r, i + 1]} < "
                        f"threshold {i} = {t[r, i]}); the binary search takes non-decreasing rows, as FINN writes "
                        "them (sort each row; a count of reached thresholds does not depend on their order)")


def use_search(t: np.ndarray | None, rows_bits: int, how: str = "auto") -> bool:
    """Whether a threshold table of `rows_bits` bits (all rows) is searched ("auto": many thresholds a row and a
    table that would otherwise be wide memory words; "search", "parallel": as asked). Searched rows must be
    sorted (check_sorted)."""
    if t is None or how == "parallel":
        return False
    return how == "search" or (t.shape[1] >= SEARCH_MIN_NT and rows_bits > SEARCH_MIN_TABLE_BITS)


def stage_tables(t: np.ndarray, pe: int, th_bits: int) -> list[list[list[int]]]:
    """[stage j][lane table l][word r * 2^j + m] of clipped thresholds `t` (rows, NT) for PE lanes; one table a
    stage when t has one (shared) row."""
    t = np.asarray(t, dtype=np.int64)
    s = stages(t.shape[1])
    pad = (1 << (th_bits - 1)) - 1  # the largest threshold: reached by no input (TH_BITS exceeds its range)
    full = np.full((t.shape[0], (1 << s) - 1), pad, dtype=np.int64)
    full[:, : t.shape[1]] = t
    lanes = 1 if t.shape[0] == 1 else pe
    folds = t.shape[0] // lanes
    out = []
    for j in range(s):
        idx = (np.arange(1 << j) << (s - j)) + (1 << (s - 1 - j)) - 1
        out.append([full[np.arange(folds) * lanes + lane][:, idx].ravel().tolist() for lane in range(lanes)])
    return out


def wreg_stages(tables: list[list[list[int]]], th_bits: int, style: int) -> int:
    """Stages whose word is registered before the comparison: every stage of ROM tables. Yosys puts small ROMs
    in block RAM too (the digits w4a4 MLP's 4-word stage tables: a DP16KD read, 5.6 ns, then the comparator
    into the next stage's address was its critical path, 85.3 MHz), so a ROM stage's word always comes from a
    register, which the RAM's own output register can be (hw/ecp5_outreg.py)."""
    return 0 if style == STYLE_CONST else len(tables)


def search_params(t: np.ndarray, pe: int, th_bits: int, style: int, prefix: str) -> tuple[dict, dict[str, str]]:
    """pqhw_mvau / pqhw_threshold parameters of the search (TH_SEARCH, TH_WREG, T_INIT or T_FILE) and its files."""
    tables = stage_tables(t, pe, th_bits)
    params = {"TH_SEARCH": 1, "TH_WREG": wreg_stages(tables, th_bits, style)}
    if style == STYLE_CONST:
        words = [w for stage in tables for lane in stage for w in lane]
        return {**params, "T_INIT": const_literal([w & ((1 << th_bits) - 1) for w in words], th_bits)}, {}
    files = {f"{prefix}_t_s{j}_l{lane:03d}.memh": memh([w & ((1 << th_bits) - 1) for w in words], th_bits)
             for j, stage in enumerate(tables) for lane, words in enumerate(stage)}
    return {**params, "T_FILE": f"{prefix}_t"}, files


def latency(nt: int, wreg: int) -> int:
    """Cycles from a value to its count (pqhw_mt_search: a cycle a stage, two for registered words, the output)."""
    return stages(nt) + wreg + 1


def search_features(p: dict, lanes: int, rows: int, in_bits: int) -> tuple[dict, list[Memory]]:
    """What hw.estimate prices of the search: S comparators per lane; the stage tables (ROMs, or constant tables
    read through multiplexers); flip-flops for the value, the decided bits and the row beside each stage, the
    table word registers and the output."""
    nt, tb, rom = p["NT"], p["TH_BITS"], p.get("MEM_STYLE", 0) == 1
    s, wreg = stages(nt), p.get("TH_WREG", 0)
    depth_rows = 1 if p.get("TH_SHARED", 0) else rows
    f = {"cmp_bits": lanes * s * tb, "const_bits": 0}
    mems = []
    for j in range(s):  # every lane has its own table of a stage (shared thresholds: a copy a read port)
        depth = depth_rows << j
        for _ in range(lanes):
            if rom:
                mems.append(Memory(f"thresholds_s{j}", tb, depth, rom=True))
            elif depth > 1:
                f["const_bits"] += tb * depth
    row_bits = max(1, math.ceil(math.log2(max(rows, 2))))
    cycles = s + wreg
    f["reg_bits"] = (cycles * (lanes * (in_bits + s) + row_bits) + lanes * tb * (s + wreg)
                     + lanes * p["OUT_BITS"])
    if not f["const_bits"]:
        del f["const_bits"]
    return f, mems
