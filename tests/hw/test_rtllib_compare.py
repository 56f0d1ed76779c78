"""The block-for-block comparison with finn-rtllib (bench/rtllib_compare.py) still has both sides to compare:
the slang front-end of the pinned Yosys reads FINN's blocks, the edits it needs still apply to the shipped
files, and a pqhw block and its FINN twin come out of synthesis with the same ports."""
from pathlib import Path

import pytest

from bench import rtllib_compare as rc

pytestmark = pytest.mark.bitstream


def test_every_slang_edit_still_matches_the_shipped_finn_rtllib():
    lib = rc.finn_rtllib()
    for rel, edits in rc.SLANG_PATCHES.items():
        text = (lib / rel).read_text()
        for old, _new, _why in edits:
            assert text.count(old) == 1, f"{rel}: the edited text is gone or repeated: {old!r}"


def test_slang_reads_finn_thresholding_only_with_its_edit(tmp_path: Path):
    """thresholding.sv elaborates with the edit, and the shipped file still fails with slang's error (when a
    toolchain update makes it pass, the edit can go)."""
    pair = rc.threshold_pair("thr", channels=8, pe=2, n=3)
    edited = rc.parse_only(pair.finn, tmp_path / "edited")
    assert edited["ok"], edited.get("error")
    assert edited["ports"]["s_axis_tdata"] == 2 * 8 and edited["ports"]["m_axis_tdata"] == 2 * 2
    shipped = rc.parse_only(pair.finn, tmp_path / "shipped", unpatched=True)
    assert not shipped["ok"] and "unsynthesizable feature" in shipped["error"]


@pytest.mark.parametrize("make", [
    lambda: rc.threshold_pair("thr", channels=16, pe=4, n=3),
    lambda: rc.dwc_pair("dwc", 2, 4, 8),
], ids=["threshold", "dwc"])
def test_pqhw_block_and_finn_twin_synthesise_with_the_same_ports(make, tmp_path: Path):
    pair = make()
    pq = rc.synthesise(pair.pqhw, tmp_path / "pqhw")
    fn = rc.synthesise(pair.finn, tmp_path / "finn")
    assert pq["ok"], pq.get("error")
    assert fn["ok"], fn.get("error")
    assert pq["ports"] == fn["ports"]
    assert set(pq["ports"]) == {"clk", "rst", "s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "m_axis_tdata",
                                "m_axis_tvalid", "m_axis_tready"}
    for side in (pq, fn):  # both kept real logic and registers (nothing optimised away for want of a driver)
        assert side["cells"].get("LUT4", 0) > 0 and side["cells"].get("TRELLIS_FF", 0) > 0
