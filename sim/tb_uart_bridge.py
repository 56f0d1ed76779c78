"""cocotb testbench for the UART board top (pqhw_board_top): a host UART model sends framed images, a
monitor decodes the class bytes, and the scoreboard compares them in order with the numpy reference.

Config (tb_config.json, see sim/runner.py): clks_per_bit, header, frames (payload bytes per image, exactly as
the host sends them), expected (class per image), max_gap_bits (random idle time between host bytes),
noise (non-header bytes the host sends between frames, which the bridge must ignore).

With `steps` in the config the host follows a script of line faults instead (see host_script): each step sends
bytes (some with a low stop bit), optionally raw bit levels after them (a byte cut off mid-way, a line held
low), then leaves the line idle for wait_bits; `expect` lists the class bytes that step must be answered
with ([] for a broken frame). The received bytes must equal all expects in order, and after each step with
a wait of at least 12 bit times exactly the expected number of answers must have arrived, so a reply to a
broken frame is caught even when its class happens to equal the next one.
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

    async def send(self, byte: int, stop: int = 1) -> None:
        await self.bits([0] + [(byte >> i) & 1 for i in range(8)] + [stop])

    async def bits(self, levels) -> None:
        for bit in levels:
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


async def start(dut, clks: int) -> tuple[UartSource, UartSink]:
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    source = UartSource(dut.uart_rx, dut.clk, clks)
    sink = UartSink(dut.uart_tx, dut.clk, clks)
    cocotb.start_soon(sink.count_cycles())
    cocotb.start_soon(sink.run())
    await ClockCycles(dut.clk, 20)  # power-on reset inside the board top
    return source, sink


async def host_script(dut, cfg: dict) -> None:
    clks = cfg["clks_per_bit"]
    source, sink = await start(dut, clks)
    counts, errors = [], []
    want = 0
    for i, step in enumerate(cfg["steps"]):
        bad_stop = set(step.get("bad_stop", []))
        for k, byte in enumerate(step.get("bytes", [])):
            await source.send(byte, stop=0 if k in bad_stop else 1)
        await source.bits(step.get("tail", []))
        await source.idle(step.get("wait_bits", 0))
        want += len(step["expect"])
        counts.append(len(sink.received))
        if step.get("wait_bits", 0) >= 12 and counts[-1] != want:
            errors.append(f"step {i} ({step.get('name', '')}): {counts[-1]} answers so far, expected {want}")
    await ClockCycles(dut.clk, 20 * clks)  # a late surplus byte would have been received by now
    expected = [c for step in cfg["steps"] for c in step["expect"]]
    if sink.errors:
        errors.append(f"UART errors: {sink.errors[:5]}")
    if sink.received != expected:
        errors.append(f"received {sink.received}, expected {expected}")
    error = "; ".join(errors) or None
    write_result({"received": sink.received, "expected": expected, "counts": counts, "uart_errors": sink.errors,
                  **({"error": error} if error else {})})
    assert error is None, error


@cocotb.test()
async def frames_in_classes_out(dut):
    cfg = load_config()
    if "steps" in cfg:
        await host_script(dut, cfg)
        return
    rng = random.Random(cfg.get("seed", 0))
    clks = cfg["clks_per_bit"]
    source, sink = await start(dut, clks)

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
