"""Whole trained digits accelerators in RTL simulation: the test split plus random vectors, random idle and
backpressure, 0 mismatches, and the measured frame interval within 5 % of the slowest layer's cycles."""
import json
import shutil

import pytest

from hw.compile import compile_model
from sim.verify import verify
from tests.conftest import FOUR_CONFIGS, build_run, read_json

pytestmark = [pytest.mark.sim, pytest.mark.xdist_group("digits_runs")]


def _check(hw, n_test):
    rec = verify(hw, vectors=20, sim="verilator", seed=1)
    assert rec["mismatches"] == 0, rec["first_mismatch"]
    assert rec["vectors"] == n_test + 20 and not rec["timed_out"]
    assert rec["expected_cycles_per_frame"] == read_json(hw / "compile.json")["expected_cycles_per_frame"]
    assert rec["cycles_per_frame"] <= 1.05 * rec["expected_cycles_per_frame"]
    return rec


@pytest.mark.parametrize("name", FOUR_CONFIGS)
def test_trained_accelerator_is_bit_exact(shared_dir, tmp_path, name):
    run = build_run(shared_dir, name)
    hw = tmp_path / "hw"
    shutil.copytree(run / "hw", hw)  # verify writes RTL and results into the directory it checks
    _check(hw, 450)


@pytest.mark.slow
@pytest.mark.parametrize("name", FOUR_CONFIGS)
@pytest.mark.parametrize("fold", ["folded", "unrolled"])
def test_trained_accelerator_at_extreme_foldings(shared_dir, tmp_path, name, fold):
    run = build_run(shared_dir, name)
    layers = read_json(run / "hw" / "compile.json")["layers"]
    spec = {l["name"]: ({"pe": 1, "simd": 1} if fold == "folded" else {"pe": l["mh"], "simd": l["mw"]})
            for l in layers if l["kind"] == "mvau"}
    (tmp_path / "fold.json").write_text(json.dumps(spec))
    compile_model(run / "model.qonnx.onnx", tmp_path / "hw", folding_file=tmp_path / "fold.json")
    rec = _check(tmp_path / "hw", 450)
    if fold == "folded":
        assert rec["expected_cycles_per_frame"] == max(l["mh"] * l["mw"] for l in layers if l["kind"] == "mvau")
