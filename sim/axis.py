"""Stream testbench plumbing shared by every block: clock and reset, an AXI4-Stream source with random
idle cycles, a sink with random backpressure, a monitor that timestamps each output beat, and an in-order
scoreboard. Beats are plain integers (cocotbext-axi with byte_lanes=1: one list item per beat), so any
tdata width works, including 1 bit.
"""
from __future__ import annotations

import json
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

CLOCK_NS = 10


def load_config() -> dict:
    with open(os.environ["PQHW_TB_CONFIG"]) as fh:
        return json.load(fh)


def write_result(result: dict) -> None:
    path = os.path.join(os.path.dirname(os.environ["PQHW_TB_CONFIG"]), "tb_result.json")
    with open(path, "w") as fh:
        json.dump(result, fh)


def _pauses(rng: random.Random, prob: float):
    while True:
        yield rng.random() < prob


class StreamTB:
    """Drives s_axis, collects m_axis; `idle` and `backpressure` are per-cycle pause probabilities."""

    def __init__(self, dut, seed: int = 0, idle: float = 0.3, backpressure: float = 0.3):
        self.dut = dut
        self.rng = random.Random(seed)
        for name in ("cocotb.dut.s_axis", "cocotb.dut.m_axis", "cocotb.s_axis", "cocotb.m_axis"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst, byte_lanes=1)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst, byte_lanes=1)
        self.source.log.setLevel(logging.WARNING)
        self.sink.log.setLevel(logging.WARNING)
        self.set_pauses(idle, backpressure)
        self.cycle = 0
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
        cocotb.start_soon(self._count())

    def set_pauses(self, idle: float, backpressure: float) -> None:
        self.source.set_pause_generator(_pauses(self.rng, idle) if idle > 0 else None)
        self.sink.set_pause_generator(_pauses(self.rng, backpressure) if backpressure > 0 else None)
        # Removing a generator leaves its last value in place: clear it explicitly.
        if idle <= 0:
            self.source.pause = False
        if backpressure <= 0:
            self.sink.pause = False

    async def _count(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    async def reset(self) -> None:
        self.dut.rst.value = 1
        self.dut.s_axis_tvalid.value = 0
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    async def run(self, in_beats: list[list[int]], out_beats_per_frame: int, timeout_cycles: int):
        """Send frames of input beats; return (output beats per frame, the cycle each output frame ended)."""
        for beats in in_beats:
            await self.source.send(AxiStreamFrame(tdata=list(beats)))
        frames, ends = [], []
        total = len(in_beats)

        async def collect():
            for _ in range(total):
                beats = []
                for _ in range(out_beats_per_frame):
                    frame = await self.sink.recv()
                    beats.extend(int(v) for v in frame.tdata)
                frames.append(beats)
                ends.append(self.cycle)

        await with_timeout(collect(), timeout_cycles * CLOCK_NS, "ns")
        return frames, ends


def scoreboard(got: list[list[int]], expected: list[list[int]]) -> dict:
    """In-order comparison; returns counts and the first mismatching frame (index, expected, got)."""
    mismatches = [i for i, (g, e) in enumerate(zip(got, expected)) if list(g) != list(e)]
    mismatches += list(range(len(got), len(expected)))
    first = None
    if mismatches:
        i = mismatches[0]
        first = {"frame": i, "expected": list(expected[i]), "got": list(got[i]) if i < len(got) else None}
    return {"frames": len(expected), "mismatches": len(mismatches), "first_mismatch": first}


def steady_interval(ends: list[int]) -> float:
    """Cycles between output frames over the second half of a run (after the pipeline has filled)."""
    if len(ends) < 4:
        return float(ends[-1] - ends[0]) / max(1, len(ends) - 1)
    half = len(ends) // 2
    return (ends[-1] - ends[half]) / (len(ends) - 1 - half)


def to_beats(rows, per_beat: int, bits: int) -> list[list[int]]:
    """Each row of elements as a list of packed beats of per_beat elements."""
    from hw.layer_rtl import pack

    out = []
    for row in rows:
        row = list(row)
        out.append([pack(row[i:i + per_beat], bits) for i in range(0, len(row), per_beat)])
    return out


async def check_stream(dut, cfg: dict, in_frames: list[list[int]], exp_frames: list[list[int]]) -> dict:
    """Exactness pass with random idle and backpressure, then a rate pass with neither; writes the result.

    cfg: seed, idle, backpressure, timeout_cycles. Frames are lists of packed beats.
    """
    tb = StreamTB(dut, seed=cfg.get("seed", 0), idle=cfg.get("idle", 0.3), backpressure=cfg.get("backpressure", 0.3))
    await tb.reset()
    per_frame = len(exp_frames[0])
    got, _ = await tb.run(in_frames, per_frame, cfg["timeout_cycles"])
    score = scoreboard(got, exp_frames)
    tb.set_pauses(0.0, 0.0)
    await ClockCycles(dut.clk, 2)
    got2, ends = await tb.run(in_frames, per_frame, cfg["timeout_cycles"])
    score2 = scoreboard(got2, exp_frames)
    result = {"frames": score["frames"], "mismatches": score["mismatches"] + score2["mismatches"],
              "first_mismatch": score["first_mismatch"] or score2["first_mismatch"],
              "cycles_per_frame": steady_interval(ends)}
    write_result(result)
    assert result["mismatches"] == 0, f"first mismatch: {result['first_mismatch']}"
    return result
