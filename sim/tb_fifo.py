"""Testbench for pqhw_fifo and pqhw_dwc: elements must come out unchanged and in order, whatever the
beat sizes on either side."""
import cocotb
import numpy as np

from sim.axis import check_stream, load_config, to_beats


@cocotb.test()
async def stream_is_preserved(dut):
    cfg = load_config()
    x = np.asarray(cfg["x"], dtype=np.int64)
    await check_stream(dut, cfg, to_beats(x, cfg["in_n"], cfg["bits"]), to_beats(x, cfg["out_n"], cfg["bits"]))
