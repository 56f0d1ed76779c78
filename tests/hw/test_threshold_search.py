"""Thresholds by binary search (hw/threshold_search, pqhw_mt_search): the stage tables find FINN's count, the
MVAU takes the search for many thresholds a row and refuses unsorted ones, and the estimate sees its memories."""
import numpy as np
import pytest

from common.errors import UserError
from hw.estimate import block_features
from hw.kinds.mvau import MVAU
from hw.kinds.threshold import multithreshold
from hw.layer_rtl import Fmt
from hw.threshold_search import stage_tables, stages


def _search(tables, a: np.ndarray, lane_rows: np.ndarray, lanes: int) -> np.ndarray:
    """The count pqhw_mt_search computes, stage by stage, from the tables alone (a[k] against row lane_rows[k])."""
    s = len(tables)
    out = []
    for v, r in zip(a, lane_rows):
        table_of, fold = (0, 0) if len(tables[0]) == 1 else (r % lanes, r // lanes)
        m = 0
        for j in range(s):
            m = 2 * m + int(v >= tables[j][table_of][fold * (1 << j) + m])
        out.append(m)
    return np.asarray(out)


@pytest.mark.parametrize("nt,rows,lanes", [(255, 12, 4), (100, 6, 3), (255, 1, 4), (15, 8, 8), (1, 2, 1)])
def test_stage_tables_give_the_multithreshold_count(nt, rows, lanes):
    rng = np.random.default_rng(nt + rows)
    lo, hi, th_bits = -300, 400, 11
    t = np.sort(rng.integers(lo, hi + 2, (rows, nt)), axis=1)
    t[:, :3] = np.minimum(t[:, :3], lo)  # thresholds everything reaches, and equal neighbours
    tables = stage_tables(t, lanes, th_bits)
    assert len(tables) == stages(nt) and all(len(x[0]) == (1 << j) * len(t) // len(x) for j, x in enumerate(tables))
    a = np.concatenate([np.arange(lo - 2, hi + 2), t.ravel(), t.ravel() - 1])
    r = rng.integers(0, rows, a.size)
    expect = np.asarray([multithreshold(np.array([[v]]), t[[k]], 0)[0, 0] for v, k in zip(a, r)])
    assert np.array_equal(_search(tables, a, r, lanes), expect)
    assert expect.max() <= nt


def _layer(nt: int, sort: bool = True, pe: int = 4) -> MVAU:
    rng = np.random.default_rng(nt)
    w = rng.integers(-8, 8, (24, 32))
    t = rng.integers(-600, 600, (24, nt))
    t = np.sort(t, axis=1) if sort else t
    return MVAU(name="fc1", mode="int", mh=24, mw=32, pe=pe, simd=8, input_dtype="UINT4", weight_dtype="INT4",
                acc_dtype="INT14", output_dtype="UINT8" if nt > 15 else "UINT4", weights=w.tolist(),
                thresholds=t.tolist(), weight_memory="rom")


def test_many_thresholds_are_searched_and_few_compared_at_once():
    rtl = _layer(255).rtl(Fmt(4, False), "fc1")
    s = stages(255)
    assert rtl.params["TH_SEARCH"] == 1 and "T_FILE" in rtl.params
    assert sorted(rtl.files) == sorted(["fc1_w.memh"] + [f"fc1_t_s{j}_l{lane:03d}.memh" for j in range(s)
                                                         for lane in range(4)])
    deepest = rtl.files[f"fc1_t_s{s - 1}_l003.memh"].split()
    assert len(deepest) == (24 // 4) * (1 << (s - 1)) and len(deepest[0]) == -(-rtl.params["TH_BITS"] // 4)
    few = MVAU(**{**_layer(255).model_dump(), "thresholds": np.sort(np.asarray(_layer(255).thresholds)[:, :3],
                                                                  axis=1).tolist(), "output_dtype": "UINT2"})
    assert "TH_SEARCH" not in few.rtl(Fmt(4, False), "fc1").params


def test_unsorted_rows_of_a_searched_table_are_refused():
    with pytest.raises(UserError, match="layer fc1: threshold row .* is not sorted"):
        _layer(255, sort=False).rtl(Fmt(4, False), "fc1")
    assert "TH_SEARCH" not in _layer(3, sort=False).rtl(Fmt(4, False), "fc1").params  # pqhw_mt adds unsorted rows


@pytest.mark.parametrize("pe", [1, 4, 24])
def test_the_search_takes_fewer_block_rams_than_wide_words(pe):
    """255 thresholds of 24 channels: by width they cost a block RAM per 36 bits of a PE x 255 x TH_BITS word;
    the stage tables cost their bits."""
    p = _layer(255, pe=pe).rtl(Fmt(4, False), "fc1").params
    wide = {k: v for k, v in p.items() if k not in ("TH_SEARCH", "TH_WREG")}
    searched, compared = block_features("pqhw_mvau", p, "ecp5"), block_features("pqhw_mvau", wide, "ecp5")
    assert searched["brams"] < compared["brams"]
    assert searched["features"]["cmp_bits"] * 255 == compared["features"]["cmp_bits"] * stages(255)
    widths = {m["width"] for m in searched["memories"] if m["role"].startswith("thresholds")}
    assert widths == {p["TH_BITS"]}


def test_standalone_threshold_unit_searches_many_and_refuses_unsorted():
    from sim import graphs

    layer = graphs.threshold(np.random.default_rng(2), "t", 32, 4, "UINT8", 255)
    p = layer.rtl(Fmt(8, False), "t").params
    assert p["TH_SEARCH"] == 1 and p["TH_SORTED"] == 1
    f = block_features("pqhw_threshold", p, "ecp5")
    assert f["features"]["cmp_bits"] == 4 * stages(255) * p["TH_BITS"]
    rows = np.asarray(layer.thresholds)
    rows[5, 10] = rows[5, 11] + 1  # threshold 11 below threshold 10
    with pytest.raises(UserError, match="layer t: threshold row 5 is not sorted"):
        layer.model_copy(update={"thresholds": rows.tolist()}).rtl(Fmt(8, False), "t")
