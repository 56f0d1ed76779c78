"""The synthesis-time model (hw/synth_time.py) and where a user sees it: `pqhw compile --board` says, before
any tool runs, that a folding will take long to synthesise, and compile.json records the estimate."""
import json
import math

import pytest

from hw import synth_time
from hw.estimate import estimate_graph
from sim import graphs

TFC = [784, 64, 64, 64, 10]


def test_power_law_fit_recovers_a_known_law():
    pts = [(luts, 12.5 * (luts / 1000) ** 1.4) for luts in (800, 2500, 9000, 31000)]
    a, b = synth_time.fit_power_law(pts)
    assert math.isclose(a, 12.5, rel_tol=1e-9) and math.isclose(b, 1.4, rel_tol=1e-9)


def test_fit_refuses_what_cannot_give_a_law():
    with pytest.raises(ValueError):
        synth_time.fit_power_law([(2000, 60.0)])
    with pytest.raises(ValueError):
        synth_time.fit_power_law([(2000, 60.0), (2000, 70.0)])


def test_larger_designs_take_longer_and_other_families_say_nothing():
    small, large = (synth_time.estimate_seconds(n, "ecp5") for n in (2000, 20000))
    assert 0 < small < large
    assert synth_time.estimate_seconds(2000, "ice40") is None
    assert synth_time.long_synthesis_warning("ice40", {"luts": 10 ** 6}) is None


def _total(folds, sizes=TFC):
    graph = graphs.mlp(0, "xnor", sizes, folds, "BINARY", "BINARY", "BINARY")
    return estimate_graph(graph, "ecp5", "ulx3s-85f")["total"]


def test_the_unrolled_tfc_warns_and_a_folded_one_does_not():
    """The fully unrolled TFC ran over 30 minutes in Yosys without a word (issue 15); a TFC folded to 256
    cycles a frame took under 4 minutes."""
    unrolled = _total([(64, 784), (64, 64), (64, 64), (10, 64)])
    line = synth_time.long_synthesis_warning("ecp5", unrolled)
    assert line is not None and f"{unrolled['luts']:,} estimated LUTs" in line and "folder folding" in line
    minutes = synth_time.estimate_seconds(unrolled["luts"], "ecp5") / 60
    assert f"about {minutes:.0f} minutes" in line and minutes >= synth_time.WARN_MINUTES
    assert synth_time.long_synthesis_warning("ecp5", _total([(4, 49), (4, 16), (4, 16), (1, 8)])) is None


def test_compile_for_a_board_says_it_before_anything_runs(cli, shared_dir, tmp_path, monkeypatch):
    from tests.conftest import build_run

    run = build_run(shared_dir, "digits_w1a1")
    names = [l["name"] for l in json.loads((run / "hw" / "graph.json").read_text())["layers"]
             if l["kind"] == "mvau"]
    fold = tmp_path / "fold.json"
    fold.write_text(json.dumps({n: {"pe": 2, "simd": 8} for n in names}))
    monkeypatch.setattr(synth_time, "WARN_MINUTES", 0.01)  # this small net, said as if it took long
    out = tmp_path / "hw"
    status, _stdout, stderr = cli("compile", run / "model.qonnx.onnx", "--out", out, "--board", "ulx3s-85f",
                                  "--folding", fold)
    assert status == 0, stderr
    report = json.loads((out / "compile.json").read_text())
    luts = json.loads((out / "estimate.json").read_text())["total"]["luts"]
    secs = synth_time.estimate_seconds(luts, "ecp5")
    assert report["synthesis_minutes_estimate"] == round(secs / 60, 1)
    warned = [ln for ln in stderr.splitlines() if ln.startswith("warning: synthesis")]
    assert warned == [report["synthesis_warning"]] and f"{luts:,} estimated LUTs" in warned[0]
