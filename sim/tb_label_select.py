"""Testbench for pqhw_label_select: argmax with lowest-index ties against hw.reference."""
import cocotb
import numpy as np

from sim.axis import check_stream, load_config, to_beats
from hw.kinds.label_select import LabelSelect
from hw.reference import run_layer


@cocotb.test()
async def label_select_matches_reference(dut):
    cfg = load_config()
    layer = LabelSelect.model_validate(cfg["layer"])
    x = np.asarray(cfg["x"], dtype=np.int64)
    y = run_layer(layer, x)
    await check_stream(dut, cfg, to_beats(x, layer.pe, cfg["in_bits"]), to_beats(y, 1, cfg["out_bits"]))
