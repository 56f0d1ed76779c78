"""Where an MVAU's tables live: a large threshold table goes to a ROM file, not into one parameter literal
(Verilator stops at literals over 65,536 bits: LeNet-5's 8-bit fc layer had a 77,520-bit one)."""
import re

import numpy as np
import pytest

from hw.emit import plan, render_top
from hw.ir import Graph
from hw.kinds.label_select import LabelSelect
from hw.kinds.mvau import MVAU


def _graph(out_dtype: str, levels: int) -> Graph:
    rng = np.random.default_rng(1)
    w = rng.integers(-4, 4, (20, 24))
    t = np.sort(rng.integers(-288, 216, (20, levels)), axis=1)
    return Graph(input_dtype="UINT2", input_shape=[24], layers=[
        MVAU(name="fc", mode="int", mh=20, mw=24, pe=2, simd=4, input_dtype="UINT2", weight_dtype="INT3",
             acc_dtype="INT10", output_dtype=out_dtype, weights=w.tolist(), thresholds=t.tolist()),
        LabelSelect(name="ls", channels=20, input_dtype=out_dtype, output_dtype="UINT5")])


def _widest_literal(text: str) -> int:
    return max((int(n) for n in re.findall(r"\b(\d+)'h", text)), default=0)


@pytest.mark.parametrize("how", ["auto", "parallel"])
def test_large_threshold_table_goes_to_a_rom_file(how):
    """All thresholds of a row in one word (parallel) or the binary search's stage tables (auto: 255 a row)."""
    g = _graph("UINT8", 255)
    g = g.model_copy(update={"layers": [g.layers[0].model_copy(update={"threshold_search": how}), g.layers[1]]})
    st = plan(g)[0]
    assert st.rtl.params["MEM_STYLE"] == 1
    assert "T_FILE" in st.rtl.params and "T_INIT" not in st.rtl.params
    t_files = [n for n in st.rtl.files if n.startswith(st.rtl.params["T_FILE"])]
    assert len(t_files) == (1 if how == "parallel" else 8 * 2)  # 8 stages x PE 2 lanes
    assert _widest_literal(render_top(g, plan(g))) <= 65536


def test_small_tables_stay_constants():
    st = plan(_graph("UINT2", 3))[0]
    assert st.rtl.params["MEM_STYLE"] == 0 and "T_INIT" in st.rtl.params
