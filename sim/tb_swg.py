"""Testbench for pqhw_swg (sliding-window generator): random frames through one layer, against hw.reference."""
import cocotb
import numpy as np

from sim.axis import check_stream, load_config, to_beats
from hw.kinds.swg import SWG
from hw.reference import run_layer


@cocotb.test()
async def swg_matches_reference(dut):
    cfg = load_config()
    layer = SWG.model_validate(cfg["layer"])
    x = np.asarray(cfg["x"], dtype=np.int64)
    y = run_layer(layer, x)
    await check_stream(dut, cfg, to_beats(x, layer.simd, cfg["in_bits"]), to_beats(y, layer.simd, cfg["out_bits"]))
