"""Testbench for pqhw_threshold: a standalone MultiThreshold layer against hw.reference."""
import cocotb
import numpy as np

from sim.axis import check_stream, load_config, to_beats
from hw.kinds.threshold import Threshold
from hw.reference import run_layer


@cocotb.test()
async def threshold_matches_reference(dut):
    cfg = load_config()
    layer = Threshold.model_validate(cfg["layer"])
    x = np.asarray(cfg["x"], dtype=np.int64)
    y = run_layer(layer, x)
    await check_stream(dut, cfg, to_beats(x, layer.pe, cfg["in_bits"]), to_beats(y, layer.pe, cfg["out_bits"]))
