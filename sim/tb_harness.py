"""cocotb side of the whole-accelerator harness (sim/hdl/pqhw_harness.sv.j2, sim/harness.py): writes the
configuration registers, raises `run` and waits, without touching a clock edge, until the harness has
written its result files (or the cycle budget is spent: then it asks the harness to write what it has).
It reports the harness's counters; sim.harness reads the files and sim.verify draws the verdict.
"""
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import First, RisingEdge, Timer

from sim.axis import load_config, write_result


@cocotb.test()
async def harness_runs_all_vectors(dut):
    cfg = load_config()
    period = cfg["clock_ns"]
    if not cfg["self_clock"]:
        cocotb.start_soon(Clock(dut.clk, period, unit="ns").start())
    await Timer(period, "ns")  # past the harness's initial values
    for name in ("seed", "idle", "stall", "stress_beats", "stress_frames", "rate_beats", "rate_frames"):
        getattr(dut, f"cfg_{name}").value = cfg[name]
    await Timer(period, "ns")
    t0, c0 = time.perf_counter(), time.process_time()
    dut.run.value = 1
    await First(RisingEdge(dut.dumped), Timer(cfg["timeout_cycles"] * period, "ns"))
    timeout = not int(dut.dumped.value)
    if timeout:
        dut.dump_req.value = 1
        await RisingEdge(dut.dumped)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    result = {name: int(getattr(dut, name).value) for name in
              ("cycle", "idle_cycles", "stall_cycles", "stress_end", "rate_start", "out_count", "in_count")}
    result["probe_counts"] = [int(getattr(dut, f"{p}_count").value) for p in cfg["probes"]]
    result["timeout"] = timeout
    result["run_seconds"] = seconds
    result["run_cpu_seconds"] = cpu
    write_result(result)
