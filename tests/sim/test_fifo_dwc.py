"""pqhw_fifo and pqhw_dwc move elements unchanged and in order under idle and backpressure."""
import numpy as np
import pytest

from sim.blocks import run_stream_block

pytestmark = pytest.mark.sim


# 5 and 16: pointers count modulo a power of two; 40: they wrap at DEPTH (64 slots would need more RAM).
# pipe: read through the RAM's register and the head (the block-RAM form), forced by PIPE_MIN_BITS = 1;
# "block": BLOCK = 1, the form hw.emit gives link FIFOs of 512 bits or more (block RAM, read the same way).
@pytest.mark.parametrize("depth,bits,pipe", [(1, 1, False), (5, 12, False), (16, 2, False), (40, 3, False),
                                             (5, 12, True), (40, 3, True), (4, 3, "block"), (16, 5, "block")])
def test_fifo(depth, bits, pipe, tmp_path, build_root):
    x = np.random.default_rng(depth).integers(0, 1 << bits, (30, 2))
    params = {"WIDTH": bits, "DEPTH": depth, **({"BLOCK": 1} if pipe == "block" else {"PIPE_MIN_BITS": 1} if pipe
                                               else {})}
    res = run_stream_block("pqhw_fifo", params, x, bits, 1, 1, "icarus", build_root, tmp_path)
    assert res["mismatches"] == 0 and res["frames"] == 30
    assert res["cycles_per_frame"] == (2 if depth > 1 else 4)


@pytest.mark.parametrize("ew,in_n,out_n", [(2, 4, 6), (1, 8, 2), (3, 3, 12), (4, 2, 2), (1, 10, 5)])
def test_dwc(ew, in_n, out_n, tmp_path, build_root):
    frame = int(np.lcm(in_n, out_n))
    x = np.random.default_rng(in_n * out_n).integers(0, 1 << ew, (20, frame))
    res = run_stream_block("pqhw_dwc", {"EW": ew, "IN_N": in_n, "OUT_N": out_n}, x, ew, in_n, out_n, "icarus",
                           build_root, tmp_path)
    assert res["mismatches"] == 0 and res["frames"] == 20
    assert res["cycles_per_frame"] == frame // min(in_n, out_n)


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_dwc_sweep(sim, tmp_path, build_root):
    x = np.random.default_rng(1).integers(0, 32, (50, 15))
    res = run_stream_block("pqhw_dwc", {"EW": 5, "IN_N": 5, "OUT_N": 3}, x, 5, 5, 3, sim, build_root, tmp_path)
    assert res["mismatches"] == 0 and res["cycles_per_frame"] == 5
