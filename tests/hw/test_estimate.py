import itertools
import json

import numpy as np
import pytest

from boards.registry import Resources, get_board
from common.errors import UserError
from hw.estimate import FAMILIES, bram_blocks, estimate_graph, estimate_total, family_of, place_memory
from hw.resources import Memory
from hw.folding import (HEADROOM, divisors, expected_cycles_per_frame, fold_for_board, fold_for_cycles,
                        layer_options, reachable_cycles)
from hw.ir import Graph
from hw.kinds.mvau import MVAU
from hw.kinds.label_select import LabelSelect


def _graph(mh=16, mw=16, mode="int"):
    rng = np.random.default_rng(0)
    if mode == "xnor":
        w1, w2 = rng.integers(0, 2, (mh, mw)), rng.integers(0, 2, (4, mh))
        dt, wdt, acc = "BINARY", "BINARY", f"UINT{mw.bit_length()}"
    else:
        w1, w2 = rng.integers(-4, 4, (mh, mw)), rng.integers(-4, 4, (4, mh))
        dt, wdt, acc = "UINT2", "INT3", "INT10"
    t1 = np.sort(rng.integers(-20 if mode != "xnor" else 0, 20 if mode != "xnor" else mw, (mh, 3)), axis=1)
    return Graph(input_dtype=dt, input_shape=[mw], layers=[
        MVAU(name="a", mode=mode, mh=mh, mw=mw, input_dtype=dt, weight_dtype=wdt, acc_dtype=acc,
             output_dtype="UINT2", weights=w1.tolist(), thresholds=t1.tolist()),
        MVAU(name="b", mode="int", mh=4, mw=mh, input_dtype="UINT2", weight_dtype="INT3", acc_dtype="INT10",
             output_dtype="INT10", weights=w2.tolist()),
        LabelSelect(name="ls", channels=4, input_dtype="INT10", output_dtype="UINT2")])


def _board(luts, ffs=100000, brams=100, dsps=0, name="icebreaker"):
    """A real board description with made-up resources."""
    res = Resources(luts=luts, ffs=ffs, bram_blocks=brams, bram_bits=brams * 4096, dsps=dsps)
    return get_board(name).model_copy(update={"resources": res})


def _pressure_ok(total, res):
    lim = {"luts": res.luts, "ffs": res.ffs, "brams": res.bram_blocks, "dsps": res.dsps}
    return all(total[k] * (1 + HEADROOM) <= v for k, v in lim.items())


def test_estimate_document_sums_layers_and_wrapper(tmp_path):
    g = fold_for_cycles(_graph(), 16)
    for fam in FAMILIES:
        doc = estimate_graph(g, fam)
        assert doc["family"] == fam and set(doc["layers"]) == {"a", "b", "ls"}
        for key in ("luts", "ffs", "brams", "dsps", "bram_bits"):
            layers = sum(l[key] for l in doc["layers"].values())
            assert doc["total"][key] == doc["accelerator"][key] + doc["wrapper"].get(key, 0)
            assert abs(doc["accelerator"][key] - layers) <= 1 + max(0, doc["accelerator"][key] - layers)
        assert doc["total"]["luts"] > doc["wrapper"]["luts"] > 0
    doc = estimate_graph(g, "ecp5", "icebreaker")
    assert doc["family"] == "ice40" and doc["board"] == "icebreaker"


def test_more_parallel_layers_cost_more_luts():
    g = _graph(32, 32)
    for fam in FAMILIES:
        luts = [estimate_total(fold_for_cycles(g, c), fam)["luts"] for c in (1024, 64, 8, 1)]
        assert luts == sorted(luts) and luts[-1] > 2 * luts[0], (fam, luts)


def test_rom_weights_become_block_ram_of_the_family():
    assert bram_blocks("ecp5", 2, 4096) == 1 and bram_blocks("ice40", 2, 4096) == 2
    assert bram_blocks("ice40", 16, 256) == 1 and bram_blocks("ice40", 17, 256) == 2
    assert bram_blocks("gowin", 36, 1024) == 2
    assert place_memory("ecp5", Memory("w", 2, 4096, rom=True)) == {"brams": 1, "bram_bits": 8192}
    assert "brams" not in place_memory("ecp5", Memory("w", 2, 16, rom=True))
    assert place_memory("ecp5", Memory("fifo", 8, 16, rom=False)) == {"lutram": 2}
    assert place_memory("ice40", Memory("fifo", 8, 8, rom=False)) == {"ff_ram_bits": 64, "ff_ram_words": 8}
    assert place_memory("ice40", Memory("fifo", 1, 128, rom=False))["brams"] == 1
    g = _graph(64, 64)  # 64 x 64 x 3-bit weights folded: a ROM
    doc = estimate_graph(fold_for_cycles(g, 4096), "ice40")
    assert doc["layers"]["a"]["brams"] >= 3 and doc["layers"]["a"]["bram_bits"] >= 64 * 64 * 3


def test_unknown_or_vendor_family_is_refused():
    with pytest.raises(UserError, match="open families ecp5, ice40, gowin"):
        family_of("pynq-z2")
    with pytest.raises(UserError, match="unknown board 'nope'"):
        family_of("nope")
    assert family_of("ulx3s-85f") == "ecp5" and family_of("tangnano9k") == "gowin"


def _brute_force_best(graph, family, res):
    """Fewest cycles per frame over every folding of every layer whose estimate fits."""
    per_layer = [layer_options(l, 10 ** 9) for l in graph.layers]
    best = None
    for combo in itertools.product(*per_layer):
        g = graph.model_copy(deep=True)
        for layer, opt in zip(g.layers, combo):
            for k, v in opt.items():
                setattr(layer, k, v)
        cycles = expected_cycles_per_frame(g)
        if best is not None and cycles >= best:
            continue
        if _pressure_ok(estimate_total(g, family), res):
            best = cycles
    return best


@pytest.mark.parametrize("share", [0.05, 0.4, 0.9])
def test_board_folding_is_the_fastest_that_fits(share):
    g = _graph(8, 8)
    lo = estimate_total(fold_for_cycles(g, 10 ** 9), "ice40")["luts"]
    hi = estimate_total(fold_for_cycles(g, 1), "ice40")["luts"]
    board = _board(int((1 + HEADROOM) * (lo + share * (hi - lo))))
    best = _brute_force_best(g, "ice40", board.resources)
    assert best is not None
    chosen = fold_for_board(g, board, 12.0)
    assert expected_cycles_per_frame(chosen) == best
    assert _pressure_ok(estimate_total(chosen, "ice40"), board.resources)
    if share < 0.9:
        assert best > 1  # the budget really constrains the folding


def test_board_with_target_fps_takes_the_cheapest_that_reaches_it():
    g = _graph(16, 16)
    board = _board(100000)
    chosen = fold_for_board(g, board, 10.0, target_fps=10e6 / 64)
    assert expected_cycles_per_frame(chosen) <= 64
    assert [(l.pe, getattr(l, "simd", None)) for l in chosen.layers] == \
           [(l.pe, getattr(l, "simd", None)) for l in fold_for_cycles(g, 64).layers]


def test_design_too_big_for_the_board_says_needed_vs_available():
    g = _graph(16, 16)
    lo = estimate_total(fold_for_cycles(g, 10 ** 9), "ice40")["luts"]
    small = lo // 2
    with pytest.raises(UserError, match=rf"no folding of this network fits board icebreaker .*needs luts [\d,]+ of "
                                        rf"[\d,]+ usable \({small:,} on the board\)"):
        fold_for_board(g, _board(small), 12.0)
    with pytest.raises(UserError, match=r"no folding reaching 1e\+06 fps fits board icebreaker .*luts"):
        fold_for_board(g, _board(int(lo * 1.5)), 12.0, target_fps=1e6)


def test_reachable_cycles_start_at_the_fully_unrolled_interval():
    g = _graph(16, 16)
    cyc = reachable_cycles(g)
    assert cyc == sorted(cyc) and cyc[0] == 1 and cyc[-1] == 16 * 16
    assert all(o["pe"] in divisors(16) for o in layer_options(g.layers[0], 4))


def test_compile_writes_the_estimate_that_bitstream_reads(tmp_path):
    from hw.bitstream import load_estimate
    from hw.compile import _write_estimate, compile_report

    g = fold_for_cycles(_graph(), 16)
    report = compile_report(g, 100.0, {}, {})
    said = _write_estimate(g, "ulx3s-85f", tmp_path, report)
    doc = json.loads((tmp_path / "estimate.json").read_text())
    assert doc["family"] == "ecp5" and doc["board"] == "ulx3s-85f" and said["estimate_total"] == doc["total"]
    assert load_estimate(tmp_path) == doc["accelerator"]  # check_fit adds the wrapper itself
    assert all("est_luts" in row for row in report["layers"])


def test_weight_memory_codebook_marks_ternary_layers():
    from hw.compile import set_weight_memory

    g = _graph(8, 8)
    g.layers[0].mode, g.layers[0].weight_dtype = "ternary", "INT2"
    g.layers[0].weights = np.clip(np.asarray(g.layers[0].weights), -1, 1).tolist()
    out = set_weight_memory(g, "codebook")
    assert [getattr(l, "weight_memory", None) for l in out.layers] == ["codebook", "auto", None]
    assert set_weight_memory(g, "plain").layers[0].weight_memory == "auto"
    assert estimate_graph(out, "ecp5")["layers"]["a"]["weight_memory"] == "codebook"
    with pytest.raises(UserError, match="no ternary MVAU"):
        set_weight_memory(_graph(8, 8), "codebook")
    with pytest.raises(UserError, match="accepted plain, codebook"):
        set_weight_memory(g, "zip")


@pytest.mark.slow
@pytest.mark.bitstream
@pytest.mark.parametrize("board", ["ulx3s-85f", "icebreaker"])
def test_estimate_within_25_percent_of_place_and_route(shared_dir, board):
    """The calibration target on a real digits run: estimated LUTs against nextpnr's count."""
    from bench.estimate_calibration import fold_variant, place_and_route
    from tests.conftest import build_run

    run = build_run(shared_dir, "digits_w1a1")
    hw_dir = fold_variant(run / "hw", None, run / "hw")
    actual = place_and_route(hw_dir, board)
    assert "error" not in actual, actual.get("error")
    est = estimate_graph(Graph.load(hw_dir / "graph.json"), get_board(board).family)["total"]
    assert abs(est["luts"] - actual["luts"]) <= 0.25 * actual["luts"], (est, actual)
    assert est["brams"] <= actual["brams"] + 2 and actual["brams"] <= est["brams"] + 2


@pytest.mark.bitstream
def test_unrolled_xnor_layer_estimate_follows_synthesis(tmp_path):
    """A fully unrolled xnor layer (pqhw_xnor_unrolled): the estimate of the block is within 15 % of what
    Yosys builds on iCE40, and below what the generic folded model would say."""
    from bench.rtl_bench import synth_layer
    from hw.estimate import COEFFS, block_features, linear
    from hw.layer_rtl import Fmt, layer_rtl
    from sim import graphs

    layer = graphs.mvau(np.random.default_rng(3), "unrolled", "xnor", 16, 32, 16, 32, nt=1, weight_memory="const")
    rtl = layer_rtl(layer, Fmt(1, False), "l0")
    assert rtl.module == "pqhw_xnor_unrolled"
    est = linear(COEFFS["ice40"]["luts"], block_features(rtl.module, rtl.params, "ice40")["features"])
    actual = synth_layer(layer, Fmt(1, False), "ice40", tmp_path)["luts"]
    assert abs(est - actual) <= 0.15 * actual, (est, actual)
    generic = block_features("pqhw_mvau", {**rtl.params, "MODE": 0, "PE": 16, "SIMD": 32, "IN_BITS": 1,
                                           "W_BITS": 1, "MEM_STYLE": 0}, "ice40")["features"]
    assert linear(COEFFS["ice40"]["luts"], generic) > est


def test_unrolled_xnor_partials_are_shared_between_equal_weight_patterns():
    """Neurons with the same weights share every partial: the estimate grows with distinct patterns only."""
    from hw.kinds.mvau import xnor_unrolled_features

    def params(rows):
        bits = sum(int(b) << (n * 16 + s) for n, row in enumerate(rows) for s, b in enumerate(row))
        return {"MW": 16, "MH": len(rows), "NT": 0, "OUT_BITS": 5, "W_INIT": f"{16 * len(rows)}'h{bits:x}"}

    same = xnor_unrolled_features(params([[1, 0] * 8] * 8))[0]["unrolled_bits"]
    two = xnor_unrolled_features(params([[1, 0] * 8] * 4 + [[0, 1] * 8] * 4))[0]["unrolled_bits"]
    tree = 8 * (2 * 4 + 1 * 5)  # per neuron: two 4-bit sums of two partials, one 5-bit sum of those
    assert same == 3 * 4 + tree and two == 3 * 8 + tree


def test_a_default_target_that_does_not_fit_gives_way_to_the_fastest_that_fits():
    """`pqhw flow` without --target-fps: its default frame rate, or the fastest folding the board holds."""
    g = _graph(16, 16)
    lo = estimate_total(fold_for_cycles(g, 10 ** 9), "ice40")["luts"]
    board = _board(int(lo * 1.5))
    fastest = fold_for_board(g, board, 12.0)
    got = fold_for_board(g, board, 12.0, target_fps=1e6, target_required=False)
    assert expected_cycles_per_frame(got) == expected_cycles_per_frame(fastest) > 12  # 1e6 fps: 12 cycles
    # a default the board can hold is still the cheapest folding reaching it
    easy = fold_for_board(g, board, 12.0, target_fps=12e6 / 256, target_required=False)
    assert _folds_of(easy) == _folds_of(fold_for_board(g, board, 12.0, target_fps=12e6 / 256))


def _folds_of(g):
    return [(l.pe, getattr(l, "simd", None)) for l in g.layers]
