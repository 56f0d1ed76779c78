"""pqhw_label_select: argmax, lowest index on ties, against the reference."""
import numpy as np
import pytest

from hw.kinds.label_select import LabelSelect
from sim.blocks import run_layer_block

pytestmark = pytest.mark.sim


def _layer(channels, pe, in_dt):
    return LabelSelect(name="ls", channels=channels, pe=pe, input_dtype=in_dt,
                       output_dtype="UINT%d" % max(1, (channels - 1).bit_length()))


@pytest.mark.parametrize("channels,pe,in_dt", [(10, 2, "INT4"), (7, 1, "UINT2"), (4, 4, "INT8"), (1, 1, "UINT3")])
def test_label_select(channels, pe, in_dt, tmp_path, build_root):
    rng = np.random.default_rng(channels)
    bits = int(in_dt.lstrip("UINT"))
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if in_dt.startswith("INT") else (0, (1 << bits) - 1)
    x = rng.integers(lo, hi + 1, (16, channels))
    x[0] = hi                       # all tied: index 0
    x[1] = lo
    x[2, -1] = hi                   # a tie between an earlier and the last element
    x[2, 0] = hi
    res = run_layer_block(_layer(channels, pe, in_dt), x, "icarus", build_root, tmp_path, seed=4)
    assert res["mismatches"] == 0 and res["frames"] == 16
    assert res["cycles_per_frame"] == channels // pe


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_label_select_sweep(sim, tmp_path, build_root):
    rng = np.random.default_rng(9)
    x = rng.integers(-4, 4, (40, 12))
    res = run_layer_block(_layer(12, 3, "INT3"), x, sim, build_root, tmp_path, seed=5)
    assert res["mismatches"] == 0 and res["cycles_per_frame"] == 4
