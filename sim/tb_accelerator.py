"""Testbench for a whole generated accelerator (pqhw_top): every vector through the RTL with random idle
and backpressure, classes recorded in order; then a pass with neither, timing the steady-state interval
between output frames and the latency of one frame through the empty pipeline. With per_layer, each
layer's output stream (l<i>_*) is monitored and compared with the reference's intermediate outputs.
The verdict (mismatches, first failing vector) is drawn by sim.verify from the recorded classes. The cycles
simulated and the wall time they took are reported next to them (bench/sim_speed.py compares them with the
harness, sim/harness.py).
"""
import logging
import time

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, SimTimeoutError
from cocotbext.axi import AxiStreamBus, AxiStreamMonitor

from hw.layer_rtl import Fmt, unpack
from sim.axis import StreamTB, load_config, steady_interval, to_beats, write_result


def _probes(dut, cfg):
    monitors = []
    for p in cfg["probes"]:
        mon = AxiStreamMonitor(AxiStreamBus.from_prefix(dut, p["prefix"]), dut.clk, dut.rst, byte_lanes=1)
        mon.log.setLevel(logging.WARNING)
        monitors.append(mon)
    return monitors


def _first_layer_mismatch(cfg, monitors, data, frames: int):
    """(layer index, vector index) of the earliest layer whose stream differs from the reference."""
    for i, (p, mon) in enumerate(zip(cfg["probes"], monitors)):
        fmt = Fmt(p["bits"], p["signed"])
        values = []
        while not mon.empty():
            beat = mon.recv_nowait()
            values.extend(unpack(int(beat.tdata[0]), p["n"], fmt))
        ref = data[f"layer{i}"][:frames].reshape(frames, -1)
        got = np.asarray(values[: ref.size], dtype=np.int64)
        if got.size < ref.size:
            got = np.concatenate([got, np.full(ref.size - got.size, np.iinfo(np.int64).min)])
        bad = np.nonzero((got.reshape(ref.shape) != ref).any(axis=1))[0]
        if bad.size:
            return {"layer": i, "vector": int(bad[0])}
    return None


@cocotb.test()
async def accelerator_classifies_like_reference(dut):
    cfg = load_config()
    data = np.load(cfg["data_file"])
    x = data["x"]
    tb = StreamTB(dut, seed=cfg["seed"], idle=cfg["idle"], backpressure=cfg["backpressure"])
    monitors = _probes(dut, cfg) if cfg["per_layer"] else []
    await tb.reset()
    frames = to_beats(x, cfg["in_n"], cfg["in_bits"])
    result = {"timeout": False}
    t0, c0, cycle0 = time.perf_counter(), time.process_time(), tb.cycle
    try:
        got, _ = await tb.run(frames, 1, cfg["timeout_cycles"])
    except SimTimeoutError:
        got = []
        while not tb.sink.empty():
            got.append(tb.sink.recv_nowait().tdata)
        result["timeout"] = True
    result["classes"] = [int(g[0]) for g in got]
    if monitors:
        result["first_layer_mismatch"] = _first_layer_mismatch(cfg, monitors, data, len(x))
    if not result["timeout"]:
        tb.set_pauses(0.0, 0.0)
        await ClockCycles(dut.clk, 4)
        rate = frames[: cfg["rate_frames"]]
        start = tb.cycle
        got2, ends = await tb.run(rate, 1, cfg["timeout_cycles"])
        result["rate_classes"] = [int(g[0]) for g in got2]
        result["cycles_per_frame"] = steady_interval(ends)
        result["latency_cycles"] = ends[0] - start
    result["sim_cycles"] = tb.cycle - cycle0
    result["run_seconds"] = time.perf_counter() - t0
    result["run_cpu_seconds"] = time.process_time() - c0
    write_result(result)
