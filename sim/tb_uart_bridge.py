"""cocotb testbench for the UART board top (pqhw_board_top): a host UART model sends framed images, a
monitor decodes the class bytes, and the scoreboard compares them in order with the numpy reference.

Config (tb_config.json, see sim/runner.py): clks_per_bit, header, frames (payload bytes per image, exactly as
the host sends them), expected (class per image), max_gap_bits (random idle time between host bytes),
noise (non-header bytes the host sends between frames, which the bridge must ignore).
"""
from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from sim.axis import load_config, write_result


class UartSource:
    """Host transmitter: 8N1, LSB first, each bit held for clks_per_bit clock cycles."""

    def __init__(self, line, clk, clks_per_bit: int):
        self.line, self.clk, self.clks = line, clk, clks_per_bit
        self.line.value = 1

    async def send(self, byte: int) -> None:
        for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
            self.line.value = bit
            await ClockCycles(self.clk, self.clks)

    async def idle(self, bits: int) -> None:
        self.line.value = 1
        if bits:
            await ClockCycles(self.clk, bits * self.clks)


class UartSink:
    """Host receiver: waits for a start bit, samples each bit in its middle, checks the stop bit."""

    def __init__(self, line, clk, clks_per_bit: int):
        self.line, self.clk, self.clks = line, clk, clks_per_bit
        self.received: list[int] = []
        self.cycles: list[int] = []
        self.errors: list[str] = []
        self.cycle = 0

    async def count_cycles(self) -> None:
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1

    async def run(self) -> None:
        while True:
            await FallingEdge(self.line)
            await ClockCycles(self.clk, self.clks // 2)
            if int(self.line.value) != 0:
                self.errors.append(f"glitch at cycle {self.cycle}: start bit not low in its middle")
                continue
            byte = 0
            for i in range(8):
                await ClockCycles(self.clk, self.clks)
                byte |= int(self.line.value) << i
            await ClockCycles(self.clk, self.clks)
            if int(self.line.value) != 1:
                self.errors.append(f"framing error at cycle {self.cycle}: stop bit low after byte {byte:#04x}")
            self.received.append(byte)
            self.cycles.append(self.cycle)


@cocotb.test()
async def frames_in_classes_out(dut):
    cfg = load_config()
    rng = random.Random(cfg.get("seed", 0))
    clks = cfg["clks_per_bit"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    source = UartSource(dut.uart_rx, dut.clk, clks)
    sink = UartSink(dut.uart_tx, dut.clk, clks)
    cocotb.start_soon(sink.count_cycles())
    cocotb.start_soon(sink.run())
    await ClockCycles(dut.clk, 20)  # power-on reset inside the board top

    sent_at = []
    for frame in cfg["frames"]:
        for _ in range(rng.randint(0, cfg.get("noise", 0))):
            await source.send(rng.choice([b for b in range(256) if b != cfg["header"]]))
        await source.send(cfg["header"])
        for byte in frame:
            await source.idle(rng.randint(0, cfg.get("max_gap_bits", 0)))
            await source.send(byte)
        sent_at.append(sink.cycle)

    # The last answer needs the accelerator's latency plus one byte time; allow generously for both.
    deadline = sink.cycle + 40 * clks + 20 * len(cfg["frames"][-1]) + 2000
    while len(sink.received) < len(cfg["expected"]) and sink.cycle < deadline:
        await ClockCycles(dut.clk, clks)
    await ClockCycles(dut.clk, 12 * clks)  # any surplus byte would have started by now

    expected = cfg["expected"]
    mismatches = [i for i, (got, want) in enumerate(zip(sink.received, expected)) if got != want]
    latency = [done - sent for done, sent in zip(sink.cycles, sent_at)]
    error = None
    if sink.errors:
        error = f"UART errors: {sink.errors[:5]}"
    elif len(sink.received) != len(expected):
        error = f"received {len(sink.received)} class bytes for {len(expected)} frames"
    elif mismatches:
        error = (f"frames {mismatches[:10]}: got {[sink.received[i] for i in mismatches[:10]]}, "
                 f"expected {[expected[i] for i in mismatches[:10]]}")
    write_result({"received": sink.received, "expected": expected, "mismatches": len(mismatches),
                  "uart_errors": sink.errors, "latency_cycles": latency, **({"error": error} if error else {})})
    assert error is None, error
