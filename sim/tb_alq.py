"""Testbench for pqhw_alq: random vectors through one ALQ layer, scoreboarded against hw.reference."""
import cocotb
import numpy as np

from sim.axis import check_stream, load_config, to_beats
from hw.kinds.alq import ALQ
from hw.reference import run_layer


@cocotb.test()
async def alq_matches_reference(dut):
    cfg = load_config()
    layer = ALQ.model_validate(cfg["layer"])
    x = np.asarray(cfg["x"], dtype=np.int64)
    y = run_layer(layer, x)
    await check_stream(dut, cfg, to_beats(x, layer.simd, cfg["in_bits"]), to_beats(y, layer.pe, cfg["out_bits"]))
