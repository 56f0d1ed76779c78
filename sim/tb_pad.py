"""Testbench for pqhw_pad (padding): random frames through one layer, scoreboarded against hw.reference."""
import cocotb
import numpy as np

from sim.axis import check_stream, load_config, to_beats
from hw.kinds.pad import Pad
from hw.reference import run_layer


@cocotb.test()
async def pad_matches_reference(dut):
    cfg = load_config()
    layer = Pad.model_validate(cfg["layer"])
    x = np.asarray(cfg["x"], dtype=np.int64)
    y = run_layer(layer, x)
    await check_stream(dut, cfg, to_beats(x, layer.simd, cfg["in_bits"]), to_beats(y, layer.simd, cfg["out_bits"]))
