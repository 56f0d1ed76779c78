"""Faults and stale results: nothing half-written is trusted, nothing stale is built on.

Fast cases check the records themselves (hashes in verify.json, rtl/ and flow.json; staging areas of killed
runs); the `slow` ones kill real commands with SIGKILL and run them again."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.atomic import atomic_dir, atomic_write_text, sha256_file, sha256_tree
from common.errors import UserError
from tests.conftest import CONFIGS, ROOT


def _label_select_dir(tmp_path: Path) -> Path:
    from hw.ir import Graph
    from hw.kinds.label_select import LabelSelect

    graph = Graph(input_dtype="INT4", input_shape=[10],
                  layers=[LabelSelect(name="top1", channels=10, pe=2, input_dtype="INT4", output_dtype="UINT4")])
    hw_dir = tmp_path / "hw"
    hw_dir.mkdir(parents=True)
    graph.save(hw_dir / "graph.json")
    return hw_dir


def _fake_simulation(monkeypatch, fail: bool = False):
    """The simulator replaced by the reference's own answer (or a failure), to test what verify records."""
    import sim.verify as sv
    from hw.reference import run_graph

    def simulate(design, sim, x, inter, seed, per_layer, build_root, run_dir):
        if fail:
            raise UserError("simulator build failed")
        graph = sv.Graph.load(design.rtl_dir.parent / "graph.json")
        classes = run_graph(graph, x)[:, 0].tolist()
        return {"classes": classes, "timeout": False, "cycles_per_frame": 5, "latency_cycles": 9}, 0.0

    monkeypatch.setattr(sv, "_simulate_harness", simulate)
    monkeypatch.setattr(sv, "check_simulator", lambda sim: None)


def test_verify_records_the_graph_and_rtl_it_checked(tmp_path, monkeypatch):
    from hw.bitstream import verified_rtl
    from sim.verify import verify

    hw_dir = _label_select_dir(tmp_path)
    _fake_simulation(monkeypatch)
    rec = verify(hw_dir, vectors=4)
    on_disk = json.loads((hw_dir / "verify.json").read_text())
    assert on_disk["graph_sha256"] == sha256_file(hw_dir / "graph.json") == rec["graph_sha256"]
    assert on_disk["rtl_sha256"] == sha256_tree(hw_dir / "rtl")
    assert json.loads((hw_dir / "rtl" / "provenance.json").read_text())["graph_sha256"] == rec["graph_sha256"]
    assert verified_rtl(hw_dir)["graph_sha256"] == sha256_file(hw_dir / "graph.json")


def test_failed_verify_leaves_no_passing_record(tmp_path, monkeypatch):
    from sim.verify import verify

    hw_dir = _label_select_dir(tmp_path)
    _fake_simulation(monkeypatch)
    verify(hw_dir, vectors=4)
    assert json.loads((hw_dir / "verify.json").read_text())["mismatches"] == 0
    _fake_simulation(monkeypatch, fail=True)
    with pytest.raises(UserError, match="simulator build failed"):
        verify(hw_dir, vectors=4)
    assert not (hw_dir / "verify.json").exists()


@pytest.mark.parametrize("change", ["graph", "rtl", "mismatch", "removed"])
def test_bitstream_refuses_rtl_not_verified_from_the_current_graph(tmp_path, monkeypatch, change):
    from hw.bitstream import bitstream_for
    from sim.verify import verify

    hw_dir = _label_select_dir(tmp_path)
    _fake_simulation(monkeypatch)
    verify(hw_dir, vectors=4)
    if change == "graph":
        g = json.loads((hw_dir / "graph.json").read_text())
        g["layers"][0]["name"] = "renamed"
        (hw_dir / "graph.json").write_text(json.dumps(g))
    elif change == "rtl":
        top = hw_dir / "rtl" / "pqhw_top.sv"
        top.write_text(top.read_text() + "\n// edited\n")
    elif change == "mismatch":
        rec = json.loads((hw_dir / "verify.json").read_text())
        rec["mismatches"] = 3
        (hw_dir / "verify.json").write_text(json.dumps(rec))
    else:
        (hw_dir / "verify.json").unlink()
    with pytest.raises(UserError) as exc:
        bitstream_for(hw_dir, "icebreaker")
    assert f"run `pqhw verify {hw_dir}`" in str(exc.value)
    assert not (hw_dir / "icebreaker").exists() and not (hw_dir / "bitstream.json").exists()


def test_an_output_directory_is_replaced_only_when_pqhw_wrote_it(tmp_path):
    out = tmp_path / "out"
    for text in ("1", "2"):  # published by pqhw: the next run replaces it
        with atomic_dir(out) as staging:
            (staging / "a").write_text(text)
    assert (out / "a").read_text() == "2"
    legacy = tmp_path / "legacy"  # an output of a pqhw from before the mark, known by its record
    legacy.mkdir()
    (legacy / "graph.json").write_text("{}")
    with atomic_dir(legacy) as staging:
        (staging / "graph.json").write_text("[]")
    assert (legacy / "graph.json").read_text() == "[]"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    with pytest.raises(UserError, match=r"holds files pqhw did not write \(thesis.txt\)"):
        with atomic_dir(mine) as staging:
            (staging / "a").write_text("1")
    assert [p.name for p in mine.iterdir()] == ["thesis.txt"] and not _staging(tmp_path)


def _steps(tmp_path, calls):
    from pqhw.flow import Step

    src, mid, out = tmp_path / "src.txt", tmp_path / "mid.txt", tmp_path / "out.txt"

    def make(name, i, o):
        def run():
            calls.append(name)
            o.write_text(i.read_text().upper())
            return "done"
        return Step(name, lambda: [i], lambda: [o], {"opt": 1}, run)

    return src, mid, out, [make("a", src, mid), make("b", mid, out)]


def test_flow_skips_by_content_not_by_file_time(tmp_path):
    from pqhw.flow import run_flow

    calls: list[str] = []
    src, mid, out, steps = _steps(tmp_path, calls)
    src.write_text("x")
    run_flow(steps, tmp_path, echo=lambda m: None)
    assert calls == ["a", "b"]
    future = time.time() + 3600
    os.utime(src, (future, future))  # newer, same content: nothing to redo
    run_flow(steps, tmp_path, echo=lambda m: None)
    assert calls == ["a", "b"]
    st = src.stat()
    src.write_text("y")  # other content, old file time: redone
    os.utime(src, (st.st_atime, st.st_mtime - 7200))
    run_flow(steps, tmp_path, echo=lambda m: None)
    assert calls == ["a", "b", "a", "b"] and out.read_text() == "Y"
    out.write_text("tampered")  # an output changed by hand is made again
    run_flow(steps, tmp_path, echo=lambda m: None)
    assert calls[-1] == "b" and len(calls) == 5 and out.read_text() == "Y"


def test_flow_record_names_hashes(tmp_path):
    from pqhw.flow import run_flow

    src, mid, out, steps = _steps(tmp_path, [])
    src.write_text("x")
    run_flow(steps, tmp_path, echo=lambda m: None)
    rec = json.loads((tmp_path / "flow.json").read_text())
    assert rec["a"]["inputs"] == {str(src): sha256_file(src)}
    assert rec["b"]["outputs"] == {str(out): sha256_file(out)}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staging_of_a_killed_run_is_removed_by_the_next(tmp_path):
    out = tmp_path / "hw"
    dead = tmp_path / f".hw.tmp-{_dead_pid()}-abc123"
    dead.mkdir()
    (dead / "graph.json").write_text("{half")
    old_style = tmp_path / ".hw.tmp-k3j4h5"
    old_style.mkdir()
    live = tmp_path / f".hw.tmp-{os.getppid()}-def456"  # a process that is still running
    live.mkdir()
    other = tmp_path / f".hwx.tmp-{_dead_pid()}-zzz"  # beside another output: not ours to clean
    other.mkdir()
    with atomic_dir(out) as staging:
        (staging / "a").write_text("1")
    assert not dead.exists() and not old_style.exists()
    assert live.is_dir() and other.is_dir() and (out / "a").read_text() == "1"


def test_staging_file_of_a_killed_write_is_removed_by_the_next(tmp_path):
    target = tmp_path / "verify.json"
    stale = tmp_path / f".verify.json.tmp-{_dead_pid()}-q1w2"
    stale.write_text("{")
    atomic_write_text(target, "{}")
    assert not stale.exists() and target.read_text() == "{}"


# --- kill -9 during verify, fast: the simulator is replaced by the reference (or a hang) in a child process ------

_HANGING_VERIFY = """
import sys, time
from pathlib import Path
import hw.emit as he
import sim.verify as sv

hw_dir, where, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])


def hang(*args, **kwargs):
    marker.write_text("killed here")
    time.sleep(600)


if where == "emit":
    he.render_top = hang  # emit writes the blocks into its staging directory, then renders the top
else:
    sv._simulate_harness = hang
sv.check_simulator = lambda sim: None
sv.verify(hw_dir, vectors=4)
"""

# What the same inputs must give again (the rest of verify.json is timing).
SAME_RESULT = ("vectors", "test_vectors", "random_vectors", "mismatches", "first_mismatch", "timed_out",
               "cycles_per_frame", "expected_cycles_per_frame", "latency_cycles", "graph_sha256", "rtl_sha256")


@pytest.mark.parametrize("where", ["emit", "simulate"])
def test_kill_during_verify_leaves_no_passing_record_and_the_rerun_agrees(tmp_path, monkeypatch, where):
    from hw.bitstream import verified_rtl
    from sim.verify import verify

    hw_dir = _label_select_dir(tmp_path)
    _fake_simulation(monkeypatch)
    first = verify(hw_dir, vectors=4)  # a passing record, which the killed run must not leave standing
    rtl_before = sha256_tree(hw_dir / "rtl")
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", _HANGING_VERIFY, hw_dir, where, marker], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _kill_when(proc, marker.exists, timeout=120)
    assert not (hw_dir / "verify.json").exists()
    with pytest.raises(UserError, match="no verify.json"):
        verified_rtl(hw_dir)
    if where == "emit":  # the half-written RTL stays in its staging directory; rtl/ is still the whole old one
        assert [p.name.split("-")[0] for p in _staging(tmp_path)] == [".rtl.tmp"]
        assert sha256_tree(hw_dir / "rtl") == rtl_before
    again = verify(hw_dir, vectors=4)
    assert {k: again[k] for k in SAME_RESULT} == {k: first[k] for k in SAME_RESULT}
    assert verified_rtl(hw_dir)["rtl_sha256"] == rtl_before and not _staging(tmp_path)


# --- kill -9 and run again -------------------------------------------------------------------------------------

def _pqhw(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "pqhw.cli", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _kill_when(proc, ready, timeout=600):
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"finished before it could be killed: {proc.stderr.read().decode()[-500:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("never reached the point to kill at")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _staging(dirpath: Path) -> list[Path]:
    return [p for p in dirpath.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]


@pytest.mark.slow
def test_kill_during_train_then_resume_equals_an_uninterrupted_run(tmp_path):
    import torch

    cfg = tmp_path / "c.yaml"
    text = (CONFIGS / "digits_w1a1.yaml").read_text().replace("epochs: 40", "epochs: 8")
    cfg.write_text(text.replace("float_baseline: true", "float_baseline: false"))
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert subprocess.run([sys.executable, "-m", "pqhw.cli", "train", cfg, "--out", whole], cwd=ROOT,
                          capture_output=True).returncode == 0

    def after_epoch_3():
        ck = cut / "checkpoint.pt"
        if not ck.is_file():
            return False
        try:
            return torch.load(ck, weights_only=True)["train_state"]["epoch"] >= 3
        except Exception:
            return False

    _kill_when(_pqhw("train", cfg, "--out", cut), after_epoch_3)
    assert not (cut / "model.pt").exists()
    done = subprocess.run([sys.executable, "-m", "pqhw.cli", "train", cfg, "--out", cut, "--resume"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a = torch.load(whole / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(cut / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (whole, cut))
    assert ma["test_accuracy"] == mb["test_accuracy"]
    assert not _staging(cut)


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    from quant.config import load_config
    from quant.export import export_run
    from quant.train import train_run

    run = tmp_path_factory.mktemp("faults") / "run"
    cfg = load_config(CONFIGS / "digits_w1a1.yaml")
    cfg.training.epochs, cfg.training.float_baseline = 1, False
    train_run(cfg, run, show_progress=False)
    export_run(run)
    return run


@pytest.mark.slow
def test_kill_during_compile_leaves_nothing_trusted(exported_run, tmp_path):
    out = tmp_path / "hw"
    proc = _pqhw("compile", exported_run / "model.qonnx.onnx", "--out", out, "--target-fps", "100000")
    _kill_when(proc, lambda: bool(_staging(tmp_path)) and any(p.is_dir() for p in _staging(tmp_path)))
    assert not out.exists()  # the half-made result stays in the staging directory, never at --out
    assert _staging(tmp_path)
    done = subprocess.run([sys.executable, "-m", "pqhw.cli", "compile", exported_run / "model.qonnx.onnx",
                           "--out", out, "--target-fps", "100000"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (out / "graph.json").is_file() and not _staging(tmp_path)


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.bitstream
def test_kill_during_bitstream_leaves_nothing_trusted(exported_run, tmp_path):
    hw = tmp_path / "hw"
    assert subprocess.run([sys.executable, "-m", "pqhw.cli", "compile", exported_run / "model.qonnx.onnx",
                           "--out", hw, "--target-fps", "100000"], cwd=ROOT, capture_output=True).returncode == 0
    assert subprocess.run([sys.executable, "-m", "pqhw.cli", "verify", hw, "--vectors", "5"], cwd=ROOT,
                          capture_output=True).returncode == 0
    proc = _pqhw("bitstream", hw, "--board", "icebreaker", start_new_session=True)

    def in_place_and_route():
        return any((p / "netlist.json").is_file() for p in _staging(hw))

    _kill_when(proc, in_place_and_route)
    try:  # yosys / nextpnr run as children: a killed machine stops them too
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    assert not (hw / "icebreaker").exists() and not (hw / "bitstream.json").exists()
    assert _staging(hw)
    done = subprocess.run([sys.executable, "-m", "pqhw.cli", "bitstream", hw, "--board", "icebreaker"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (hw / "icebreaker" / "pqhw_board_top.bin").is_file() and not _staging(hw)


@pytest.fixture(scope="module")
def compiled_hw(exported_run):
    from hw.compile import compile_model

    hw = exported_run.parent / "hw"
    if not (hw / "graph.json").is_file():
        compile_model(exported_run / "model.qonnx.onnx", hw, target_fps=100000, clock_mhz=100)
    return hw


def _fresh_copy(hw: Path, dest: Path) -> Path:
    """What `pqhw compile` wrote, without anything a verify left (rtl/, builds, verify.json)."""
    dest.mkdir()
    for name in ("graph.json", "compile.json", "test_vectors.npz"):
        (dest / name).write_bytes((hw / name).read_bytes())
    return dest


def _verify_cli(hw: Path, vectors: int):
    return subprocess.run([sys.executable, "-m", "pqhw.cli", "verify", hw, "--vectors", str(vectors)], cwd=ROOT,
                          capture_output=True, text=True)


def _kill_group(proc, ready, timeout=600):
    """kill -9 of the command and of everything it started (Verilator, make, the compiler, the simulation)."""
    _kill_when(proc, ready, timeout)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.slow
@pytest.mark.sim
def test_kill_during_verify_build_and_simulation_then_rerun(compiled_hw, tmp_path):
    """Killed while Verilator's C++ compiles, then while the simulation runs: no verify.json is left that says the
    RTL passed, and the next `pqhw verify` gives the record of an uninterrupted run."""
    vectors = 3000  # a simulation that lasts long enough to be killed in
    whole = _fresh_copy(compiled_hw, tmp_path / "whole")
    done = _verify_cli(whole, vectors)
    assert done.returncode == 0, done.stderr
    expected = json.loads((whole / "verify.json").read_text())
    assert expected["mismatches"] == 0

    hw = _fresh_copy(compiled_hw, tmp_path / "cut")

    def compiling():
        return any(p.suffix == ".o" for p in (hw / "sim_build").rglob("*")) if (hw / "sim_build").is_dir() else False

    _kill_group(_pqhw("verify", hw, "--vectors", vectors, start_new_session=True), compiling)
    assert not (hw / "verify.json").exists()
    assert not any((p / ".built").exists() for p in (hw / "sim_build").iterdir() if p.is_dir())
    done = _verify_cli(hw, vectors)
    assert done.returncode == 0, done.stderr
    again = json.loads((hw / "verify.json").read_text())
    assert {k: again[k] for k in SAME_RESULT} == {k: expected[k] for k in SAME_RESULT}

    config = hw / "sim_run" / "verilator" / "tb_config.json"
    started = config.stat().st_mtime

    def simulating():
        return config.stat().st_mtime > started and not (hw / "verify.json").exists()

    _kill_group(_pqhw("verify", hw, "--vectors", vectors, start_new_session=True), simulating)
    assert not (hw / "verify.json").exists()
    done = _verify_cli(hw, vectors)
    assert done.returncode == 0, done.stderr
    again = json.loads((hw / "verify.json").read_text())
    assert {k: again[k] for k in SAME_RESULT} == {k: expected[k] for k in SAME_RESULT}
    assert not _staging(hw)


def test_a_model_naming_a_python_module_as_its_domain_runs_nothing(tmp_path, monkeypatch):
    """qonnx imports the module a node's domain names: a model shipped with such a module must not run it."""
    import onnx

    from hw.finn_flow import load_model

    monkeypatch.syspath_prepend(str(tmp_path))  # as the current directory is with `python -m pqhw.cli`
    (tmp_path / "pqhw_probe_mod.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write('code ran')\n")
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    node = onnx.helper.make_node("Probe", ["x"], ["y"], domain="pqhw_probe_mod", name="probe")
    model = onnx.helper.make_model(onnx.helper.make_graph([node], "g", [x], [y]))
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(UserError, match=r"node probe \(Probe\) has the domain 'pqhw_probe_mod'"):
        load_model(tmp_path / "m.onnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    assert not (tmp_path / "ran").exists()
    with pytest.raises(Exception):  # what the check stands in front of: qonnx imports the module
        ModelWrapper(str(tmp_path / "m.onnx")).transform(InferShapes())
    assert (tmp_path / "ran").exists()
