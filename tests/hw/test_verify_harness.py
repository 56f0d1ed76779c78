"""The in-simulator harness (sim/harness.py) can fail and measures what it claims: a swapped input vector is
caught at exactly its index, a wrong weight gives the same verdict as the per-cycle cocotb drivers, idle and
backpressure happen at the configured rates (and not at all when off), a run that cannot finish times out
with what it captured, and the measured frame interval matches the cycle model and the cocotb path."""
import numpy as np
import pytest

from hw.emit import emit
from hw.layer_rtl import Fmt, pack, unpack
from hw.reference import run_graph
from sim import graphs
from sim import harness as harness_mod
from sim import verify as verify_mod
from sim.harness import IN_FILE, hex_words, read_memh, run_harness, unpack_words
from sim.verify import verify

pytestmark = pytest.mark.sim


def _small():
    """Width converters on both links, ROM weights, 32 cycles a frame; (seed 5) more than one class comes out."""
    return graphs.mlp(5, "xnor", [32, 16, 12, 10], [(2, 8), (3, 4), (5, 4)], "BINARY", "BINARY", "BINARY",
                      weight_memory="rom")


def _dir(tmp_path, graph):
    graph.save(tmp_path / "graph.json")
    return tmp_path


@pytest.mark.parametrize("bits,signed,n", [(1, False, 49), (2, True, 3), (4, False, 16), (7, True, 11), (3, True, 30)])
def test_memh_words_round_trip_like_pack(bits, signed, n, tmp_path):
    """hex_words / unpack_words agree with hw.layer_rtl.pack / unpack, also past 64 bits a word."""
    fmt = Fmt(bits, signed)
    vals = np.random.default_rng(bits * n).integers(fmt.lo, fmt.hi + 1, (40, n))
    words = hex_words(vals, bits)
    assert [int(w, 16) for w in words] == [pack(list(v), bits) for v in vals]
    (tmp_path / "w.memh").write_text("// header\n@0\n" + "\n".join(words[:-1]) + "\nxx" + "\n")
    back = read_memh(tmp_path / "w.memh", len(words))
    assert back[-1] is None and back[:-1] == [int(w, 16) for w in words[:-1]]
    got = unpack_words(back, n, fmt)
    assert np.array_equal(got[:-1], vals[:-1]) and (got[-1] == np.iinfo(np.int64).min).all()
    assert [unpack(w, n, fmt) for w in back[:-1]] == vals[:-1].tolist()


class _Swapped(harness_mod.HarnessRun):
    """Writes vector SRC's beats in place of vector DST's into the stimulus file the harness reads."""
    SRC = DST = 0

    def __init__(self, design, x, *args, **kw):
        super().__init__(design, x, *args, **kw)
        path = self.run_dir / IN_FILE
        lines = path.read_text().split()
        per = len(lines) // len(x)
        lines[self.DST * per:(self.DST + 1) * per] = lines[self.SRC * per:(self.SRC + 1) * per]
        path.write_text("\n".join(lines) + "\n")


def test_swapped_vector_is_caught_at_its_index(tmp_path, monkeypatch):
    """A vector after the first 48 is fed the beats of one of the first 48 with another class: exactly one
    mismatch, named at that index, with the other vector's class as what the RTL returned; the rate pass
    (the first 48 vectors) is untouched."""
    g = _small()
    x, _ = verify_mod.load_vectors(_dir(tmp_path, g), g, 80, 11)
    classes = run_graph(g, x)[:, 0]
    dst, src = next((d, s) for d in range(60, 80) for s in range(48) if classes[s] != classes[d])
    _Swapped.SRC, _Swapped.DST = src, dst
    monkeypatch.setattr(verify_mod, "HarnessRun", _Swapped)
    rec = verify(tmp_path, vectors=80, sim="icarus", seed=11)
    assert rec["stimulus"] == "harness"
    assert rec["mismatches"] == 1
    fm = rec["first_mismatch"]
    assert fm["vector"] == dst and fm["expected"] == classes[dst] and fm["got"] == classes[src]
    assert fm["input"] == x[dst].tolist()


def test_wrong_weight_same_verdict_on_both_paths(tmp_path, corrupt_layer1_weights):
    """One weight word of layer 1 flipped after emission: the harness and the per-cycle cocotb drivers find the
    same number of mismatches (> 0), the same first failing vector with the same wrong class (which vectors fail
    depends on the data, not on the stalls), and both name layer mvau1 with --per-layer."""
    g = graphs.mlp(7, "xnor", [16, 8, 8, 4], [(2, 4), (2, 2), (2, 2)], "BINARY", "BINARY", "BINARY",
                   weight_memory="rom")
    out = _dir(tmp_path, g)
    recs = {s: verify(out, vectors=40, sim="icarus", seed=2, per_layer=True, stimulus=s) for s in ("harness", "cocotb")}
    h, c = recs["harness"], recs["cocotb"]
    assert h["mismatches"] > 0 and h["mismatches"] == c["mismatches"]
    fm = h["first_mismatch"]
    assert fm is not None and fm["got"] != fm["expected"]
    assert (fm["vector"], fm["got"]) == (c["first_mismatch"]["vector"], c["first_mismatch"]["got"])
    assert h["first_failing_layer"]["layer"] == c["first_failing_layer"]["layer"] == "mvau1"
    assert h["first_failing_layer"]["vector"] == c["first_failing_layer"]["vector"]


def _harness_run(tmp_path, g, x, sim="icarus", **kw):
    design = emit(g, tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    for name in design.memory_files:
        (run_dir / name).write_text((design.rtl_dir / name).read_text())
    args = {"seed": 5, "idle": 0.3, "backpressure": 0.3, "rate_frames": 48, "timeout_cycles": 100_000}
    args.update(kw)
    return run_harness(design, x, sim, tmp_path / "builds", run_dir, **args)


def test_idle_and_backpressure_at_their_rates_and_off_when_off(tmp_path):
    g = _small()
    x = graphs.random_inputs(np.random.default_rng(3), "BINARY", 150, 32)
    expected = run_graph(g, x)[:, 0].tolist()
    on = _harness_run(tmp_path, g, x, idle=0.3, backpressure=0.3)
    off = _harness_run(tmp_path, g, x, idle=0.0, backpressure=0.0)
    heavy = _harness_run(tmp_path, g, x, idle=0.7, backpressure=0.9, seed=6)
    for res in (on, off, heavy):
        assert res["classes"] == expected and res["rate_classes"] == expected[:48] and not res["timeout"]
    beats = len(x) * 4  # 32 inputs, 8 a beat
    assert on["idle_cycles"] > 0 and on["stall_cycles"] > 0
    assert abs(on["idle_cycles"] / (on["idle_cycles"] + beats) - 0.3) < 0.08
    assert abs(heavy["idle_cycles"] / (heavy["idle_cycles"] + beats) - 0.7) < 0.08
    assert off["idle_cycles"] == 0 and off["stall_cycles"] == 0
    # an output beat waits 1 / (1 - P) cycles on average under backpressure P: 0.9 stalls every frame
    assert heavy["stall_cycles"] > 3 * len(x)
    assert off["stress_cycles"] < on["stress_cycles"] < heavy["stress_cycles"]
    # the rate pass runs with neither, whatever the stress pass had
    assert on["cycles_per_frame"] == off["cycles_per_frame"] == heavy["cycles_per_frame"]


def test_timeout_returns_what_was_captured(tmp_path):
    g = _small()
    x = graphs.random_inputs(np.random.default_rng(4), "BINARY", 60, 32)
    res = _harness_run(tmp_path, g, x, timeout_cycles=400)
    assert res["timeout"] and "cycles_per_frame" not in res
    assert 0 < len(res["classes"]) < len(x)
    assert res["classes"] == run_graph(g, x)[: len(res["classes"]), 0].tolist()


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_frame_interval_matches_cycle_model_and_cocotb_path(sim, tmp_path):
    """Measured cycles per frame within 5 % of the cycle model; the per-cycle cocotb path measures the same
    interval on the same RTL and a latency within two cycles (they count from slightly different edges)."""
    g = graphs.mlp(3, "int", [16, 8, 10], [(2, 4), (5, 4)], "UINT4", "INT4", "INT4")
    new = verify(_dir(tmp_path, g), vectors=60, sim=sim, seed=5)
    old = verify(tmp_path, vectors=60, sim=sim, seed=5, stimulus="cocotb")
    assert new["mismatches"] == 0 and old["mismatches"] == 0
    exp = new["expected_cycles_per_frame"]
    assert abs(new["cycles_per_frame"] - exp) <= 0.05 * exp
    assert new["cycles_per_frame"] == old["cycles_per_frame"]
    assert abs(new["latency_cycles"] - old["latency_cycles"]) <= 2
    assert new["simulated_cycles"] > 60 * exp and new["idle_cycles"] > 0 and new["stall_cycles"] > 0
