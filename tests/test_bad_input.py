"""Bad input to every command: exit status 2, exactly one line on stderr (`error: ...`), no traceback, and the
directory the command was pointed at is left exactly as it was: no file changed, none left behind.

One tiny run (trained one epoch, exported, compiled, its RTL emitted and recorded as verified) is built once per
session; every case works on its own copy of it. `CASES` lists (command, case id, arguments, setup); {run},
{hw} and {tmp} in the arguments are the copied run directory, its hw/ directory and the case's directory."""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from filelock import FileLock


TINY = {"name": "tiny_bad_input", "dataset": {"name": "digits", "input_bits": 2},
        "model": {"layers": [{"kind": "linear", "features": 16, "weight": "binary", "act": "binary"},
                             {"kind": "linear", "features": 10, "weight": "binary"}]},
        "training": {"epochs": 1, "batch_size": 128}}


@pytest.fixture(scope="session")
def tiny_run(shared_dir) -> Path:
    """Trained, exported, compiled; rtl/ emitted from graph.json and a passing verify.json naming its hashes."""
    from common.atomic import sha256_file, sha256_tree
    from hw.compile import compile_model
    from hw.emit import emit
    from hw.ir import Graph
    from quant.config import parse_config
    from quant.export import export_run
    from quant.train import train_run

    run = shared_dir / "bad_input_run"
    with FileLock(str(shared_dir / "bad_input_run.lock")):
        if not (run / "hw" / "verify.json").is_file():
            shutil.rmtree(run, ignore_errors=True)
            run.mkdir(parents=True)
            (run / "tiny.yaml").write_text(yaml.safe_dump(TINY))
            train_run(parse_config(TINY), run, show_progress=False)
            export_run(run)
            hw = run / "hw"
            compile_model(run / "model.qonnx.onnx", hw, target_fps=100000, clock_mhz=100)
            emit(Graph.load(hw / "graph.json"), hw, provenance={"graph_sha256": sha256_file(hw / "graph.json")})
            (hw / "verify.json").write_text(json.dumps({
                "mismatches": 0, "timed_out": False, "graph_sha256": sha256_file(hw / "graph.json"),
                "rtl_sha256": sha256_tree(hw / "rtl")}))
    return run


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root with its content hash (directories and symlinks by kind)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "link:" + str(p.readlink())
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# --- setups: each gets the case directory and the copied run, changes files before the command runs --------

def write(rel: str, data):
    def setup(tmp: Path, run: Path):
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return setup


def config_with(**changes):
    """A copy of the tiny config at {tmp}/c.yaml with keys changed (a dotted path -> value; None deletes)."""
    def setup(tmp: Path, run: Path):
        cfg = json.loads(json.dumps(TINY))
        for dotted, value in changes.items():
            node = cfg
            *path, last = dotted.split(".")
            for key in path:
                node = node[int(key)] if isinstance(node, list) else node[key]
            node[int(last) if isinstance(node, list) else last] = value
        (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
    return setup


class Hostile:
    """Unpickling this would create a file; torch.load(weights_only=True) must refuse it instead."""

    def __reduce__(self):
        return (Path.touch, (Path("/tmp/pqhw-bad-input-pwned"),))


def checkpoint(kind: str):
    def setup(tmp: Path, run: Path):
        import torch

        path = run / "model.pt"
        ckpt = torch.load(path, weights_only=True)
        if kind == "hostile":
            ckpt["extra"] = Hostile()
        elif kind == "not_a_dict":
            ckpt = [torch.zeros(3)]
        elif kind == "missing_tensor":
            ckpt["state_dict"].pop(next(iter(ckpt["state_dict"])))
        elif kind == "inf":
            t = next(v for v in ckpt["state_dict"].values() if v.is_floating_point() and v.numel() > 1)
            t.view(-1)[0] = float("inf")
        elif kind == "bad_config":
            ckpt["config"]["training"]["sead"] = 1
        with open(path, "wb") as fh:
            if kind == "hostile":
                pickle.dump(ckpt, fh)  # a plain pickle, as a downloaded file might be
            else:
                torch.save(ckpt, fh)
    return setup


def cifar(kind: str):
    """{tmp}/cifar with six CIFAR-10 python batches (4 images each), one of them damaged, and {tmp}/c.yaml, the
    tiny config reading them."""
    def setup(tmp: Path, run: Path):
        d = tmp / "cifar"
        d.mkdir()
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}
            raw = pickle.dumps(batch, protocol=2)
            if name == "data_batch_3" and kind == "hostile":
                raw = pickle.dumps({**batch, b"extra": Hostile()}, protocol=2)
            elif name == "data_batch_3" and kind == "wrong_shape":
                raw = pickle.dumps({**batch, b"data": np.zeros((4, 32, 32, 3), np.uint8)}, protocol=2)
            elif name == "test_batch" and kind == "truncated":
                raw = raw[: len(raw) // 2]
            (d / name).write_bytes(raw)
        cfg = {**json.loads(json.dumps(TINY)), "dataset": {"name": "cifar10", "input_bits": 2, "data_dir": str(d)}}
        (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
    return setup


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 8, arr.ndim]) + b"".join(n.to_bytes(4, "big") for n in arr.shape) + arr.tobytes()


def mnist(kind: str):
    """{tmp}/mnist with the four MNIST IDX files (4 training and 2 test images), one damaged, and {tmp}/c.yaml."""
    def setup(tmp: Path, run: Path):
        import gzip

        d = tmp / "mnist"
        d.mkdir()
        files = {"train-images-idx3-ubyte": _idx(np.zeros((4, 28, 28), np.uint8)),
                 "train-labels-idx1-ubyte": _idx(np.arange(4, dtype=np.uint8)),
                 "t10k-images-idx3-ubyte": _idx(np.zeros((2, 28, 28), np.uint8)),
                 "t10k-labels-idx1-ubyte": _idx(np.arange(2, dtype=np.uint8))}
        if kind == "header_cut":
            files["train-images-idx3-ubyte"] = bytes([0, 0, 8, 3, 0, 0])
        elif kind == "labels_mismatch":
            files["t10k-labels-idx1-ubyte"] = _idx(np.arange(3, dtype=np.uint8))
        elif kind == "images_wrong_shape":
            files["train-images-idx3-ubyte"] = _idx(np.zeros((4, 32, 32), np.uint8))
        for name, raw in files.items():
            if kind == "gz_garbage" and name.startswith("t10k-images"):
                (d / (name + ".gz")).write_bytes(gzip.compress(raw)[:30])  # a download cut short
            else:
                (d / name).write_bytes(raw)
        cfg = {**json.loads(json.dumps(TINY)), "dataset": {"name": "mnist", "input_bits": 1, "data_dir": str(d)}}
        (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
    return setup


def onnx_non_finite(tmp: Path, run: Path):
    import onnx
    from onnx import numpy_helper

    path = run / "model.qonnx.onnx"
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype.kind == "f" and arr.size > 1:
            arr = arr.copy()
            arr.flat[0] = np.nan
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
            break
    onnx.save(model, str(path))


def onnx_foreign_domain(tmp: Path, run: Path):
    """A node whose domain names a Python module, which qonnx would import to find the op."""
    import onnx

    path = run / "model.qonnx.onnx"
    model = onnx.load(str(path))
    next(n for n in model.graph.node if n.domain).domain = "pqhw_bad_input_probe"
    onnx.save(model, str(path))


def edit_json(rel: str, fn):
    def setup(tmp: Path, run: Path):
        path = run / rel
        data = json.loads(path.read_text())
        fn(data)
        path.write_text(json.dumps(data))
    return setup


def rename_first_layer(g):
    g["layers"][0]["name"] = g["layers"][0]["name"] + "_x"


def append(rel: str, text: str):
    def setup(tmp: Path, run: Path):
        p = run / rel
        p.write_text(p.read_text() + text)
    return setup


def remove(rel: str):
    def setup(tmp: Path, run: Path):
        p = run / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return setup


def both(*setups):
    def setup(tmp: Path, run: Path):
        for s in setups:
            s(tmp, run)
    return setup


CFG = "{run}/tiny.yaml"
OUT = "{tmp}/out"
NOPE = "{tmp}/nope"
FILE = "{run}/metrics.json"  # an existing file where a directory is wanted
UNDER_FILE = "{run}/metrics.json/sub"
NOT_WRITABLE = "/sys/pqhw-bad-input"
MODEL = "{run}/model.qonnx.onnx"

CASES = [
    # train
    ("train", "config_missing", ["train", "{tmp}/none.yaml", "--out", OUT], None),
    ("train", "config_is_directory", ["train", "{tmp}", "--out", OUT], None),
    ("train", "config_empty", ["train", "{tmp}/c.yaml", "--out", OUT], write("c.yaml", "")),
    ("train", "config_not_utf8", ["train", "{tmp}/c.yaml", "--out", OUT], write("c.yaml", b"name: \xff\xfe\x00x\n")),
    ("train", "config_binary", ["train", "{tmp}/c.yaml", "--out", OUT], write("c.yaml", bytes(range(256)))),
    ("train", "config_a_list", ["train", "{tmp}/c.yaml", "--out", OUT], write("c.yaml", "- 1\n- 2\n")),
    ("train", "config_bad_yaml", ["train", "{tmp}/c.yaml", "--out", OUT], write("c.yaml", "model: [\n")),
    ("train", "config_unknown_key", ["train", "{tmp}/c.yaml", "--out", OUT], config_with(**{"training.sead": 1})),
    ("train", "config_negative_lr", ["train", "{tmp}/c.yaml", "--out", OUT], config_with(**{"training.lr": -1})),
    ("train", "config_epochs_float", ["train", "{tmp}/c.yaml", "--out", OUT],
     config_with(**{"training.epochs": 1.5})),
    ("train", "config_features_bool", ["train", "{tmp}/c.yaml", "--out", OUT],
     config_with(**{"model.layers.0.features": True})),
    ("train", "config_epochs_bool", ["train", "{tmp}/c.yaml", "--out", OUT],
     config_with(**{"training.epochs": True})),
    ("train", "config_bad_weight", ["train", "{tmp}/c.yaml", "--out", OUT],
     config_with(**{"model.layers.0.weight": "int99"})),
    ("train", "epochs_negative", ["train", CFG, "--out", OUT, "--epochs", "-1"], None),
    ("train", "epochs_zero", ["train", CFG, "--out", OUT, "--epochs", "0"], None),
    ("train", "epochs_text", ["train", CFG, "--out", OUT, "--epochs", "many"], None),
    ("train", "threads_zero", ["train", CFG, "--out", OUT, "--threads", "0"], None),
    ("train", "out_is_file", ["train", CFG, "--out", FILE], None),
    ("train", "out_under_file", ["train", CFG, "--out", UNDER_FILE], None),
    ("train", "out_not_writable", ["train", CFG, "--out", NOT_WRITABLE], None),
    ("train", "missing_out", ["train", CFG], None),
    ("train", "resume_other_config", ["train", "{tmp}/c.yaml", "--out", "{run}", "--resume"],
     config_with(**{"training.lr": 0.5})),
    ("train", "cifar_hostile_pickle", ["train", "{tmp}/c.yaml", "--out", OUT], cifar("hostile")),
    ("train", "cifar_truncated_batch", ["train", "{tmp}/c.yaml", "--out", OUT], cifar("truncated")),
    ("train", "cifar_wrong_shape", ["train", "{tmp}/c.yaml", "--out", OUT], cifar("wrong_shape")),
    ("train", "mnist_gz_cut_short", ["train", "{tmp}/c.yaml", "--out", OUT], mnist("gz_garbage")),
    ("train", "mnist_header_cut", ["train", "{tmp}/c.yaml", "--out", OUT], mnist("header_cut")),
    ("train", "mnist_labels_mismatch", ["train", "{tmp}/c.yaml", "--out", OUT], mnist("labels_mismatch")),
    ("train", "mnist_images_wrong_shape", ["train", "{tmp}/c.yaml", "--out", OUT], mnist("images_wrong_shape")),
    ("train", "resume_damaged_checkpoint", ["train", CFG, "--out", "{run}", "--resume"],
     write("run/checkpoint.pt", b"PK\x03\x04garbage")),
    # export
    ("export", "run_missing", ["export", NOPE], None),
    ("export", "run_is_file", ["export", FILE], None),
    ("export", "no_model", ["export", "{tmp}/empty"], write("empty/.keep", "")),
    ("export", "model_garbage", ["export", "{run}"], write("run/model.pt", b"\x00garbage" * 10)),
    ("export", "model_empty", ["export", "{run}"], write("run/model.pt", b"")),
    ("export", "model_hostile_pickle", ["export", "{run}"], checkpoint("hostile")),
    ("export", "model_not_a_dict", ["export", "{run}"], checkpoint("not_a_dict")),
    ("export", "model_missing_tensor", ["export", "{run}"], checkpoint("missing_tensor")),
    ("export", "model_inf_weight", ["export", "{run}"], checkpoint("inf")),
    ("export", "model_bad_config", ["export", "{run}"], checkpoint("bad_config")),
    # compile
    ("compile", "model_missing", ["compile", "{tmp}/none.onnx", "--out", OUT], None),
    ("compile", "model_garbage", ["compile", "{tmp}/m.onnx", "--out", OUT],
     write("m.onnx", b"\x08\x01garbage\xff" * 9)),
    ("compile", "model_empty", ["compile", "{tmp}/m.onnx", "--out", OUT], write("m.onnx", b"")),
    ("compile", "model_is_directory", ["compile", "{run}", "--out", OUT], None),
    ("compile", "model_nan_initializer", ["compile", MODEL, "--out", OUT], onnx_non_finite),
    ("compile", "model_foreign_domain", ["compile", MODEL, "--out", OUT], onnx_foreign_domain),
    ("compile", "out_holds_inputs", ["compile", MODEL, "--out", "{run}"], None),
    ("compile", "out_holds_other_files", ["compile", MODEL, "--out", "{tmp}/mine"], write("mine/thesis.txt", "x")),
    ("compile", "out_is_file", ["compile", MODEL, "--out", FILE], None),
    ("compile", "out_not_writable", ["compile", MODEL, "--out", NOT_WRITABLE], None),
    ("compile", "fps_nan", ["compile", MODEL, "--out", OUT, "--target-fps", "nan"], None),
    ("compile", "fps_negative", ["compile", MODEL, "--out", OUT, "--target-fps", "-5"], None),
    ("compile", "fps_zero", ["compile", MODEL, "--out", OUT, "--target-fps", "0"], None),
    ("compile", "clock_inf", ["compile", MODEL, "--out", OUT, "--clock-mhz", "inf"], None),
    ("compile", "clock_zero", ["compile", MODEL, "--out", OUT, "--clock-mhz", "0"], None),
    ("compile", "folding_missing", ["compile", MODEL, "--out", OUT, "--folding", "{tmp}/f.json"], None),
    ("compile", "folding_directory", ["compile", MODEL, "--out", OUT, "--folding", "{tmp}"], None),
    ("compile", "weight_memory_bogus", ["compile", MODEL, "--out", OUT, "--weight-memory", "zip"], None),
    ("compile", "board_unknown", ["compile", MODEL, "--out", OUT, "--board", "nosuchboard"], None),
    # verify
    ("verify", "dir_missing", ["verify", NOPE], None),
    ("verify", "vectors_beyond_memory", ["verify", "{hw}", "--vectors", "1000000000"], None),
    ("verify", "dir_is_file", ["verify", FILE], None),
    ("verify", "vectors_negative", ["verify", "{hw}", "--vectors", "-1"], None),
    ("verify", "vectors_text", ["verify", "{hw}", "--vectors", "ten"], None),
    ("verify", "sim_bogus", ["verify", "{hw}", "--sim", "modelsim"], None),
    ("verify", "seed_negative", ["verify", "{hw}", "--seed", "-1"], None),
    ("verify", "stimulus_bogus", ["verify", "{hw}", "--stimulus", "magic"], None),
    ("verify", "graph_garbage", ["verify", "{hw}"], write("run/hw/graph.json", "{not json")),
    ("verify", "graph_empty", ["verify", "{hw}"], write("run/hw/graph.json", "")),
    ("verify", "graph_wrong_shape", ["verify", "{hw}"], write("run/hw/graph.json", '{"layers": 3}')),
    ("verify", "test_vectors_garbage", ["verify", "{hw}"], write("run/hw/test_vectors.npz", b"PK\x03\x04junk")),
    ("verify", "path_with_space", ["verify", "{tmp}/my run/hw"],
     lambda tmp, run: shutil.copytree(run, tmp / "my run")),
    # bitstream
    ("bitstream", "dir_missing", ["bitstream", NOPE, "--board", "icebreaker"], None),
    ("bitstream", "dir_is_file", ["bitstream", FILE, "--board", "icebreaker"], None),
    ("bitstream", "board_unknown", ["bitstream", "{hw}", "--board", "nosuchboard"], None),
    ("bitstream", "board_missing", ["bitstream", "{hw}"], None),
    ("bitstream", "seed_negative", ["bitstream", "{hw}", "--board", "icebreaker", "--seed", "-1"], None),
    ("bitstream", "freq_nan", ["bitstream", "{hw}", "--board", "icebreaker", "--freq", "nan"], None),
    ("bitstream", "freq_zero", ["bitstream", "{hw}", "--board", "icebreaker", "--freq", "0"], None),
    ("bitstream", "not_verified", ["bitstream", "{hw}", "--board", "icebreaker"], remove("hw/verify.json")),
    ("bitstream", "graph_changed", ["bitstream", "{hw}", "--board", "icebreaker"],
     edit_json("hw/graph.json", rename_first_layer)),
    ("bitstream", "rtl_changed", ["bitstream", "{hw}", "--board", "icebreaker"],
     append("hw/rtl/pqhw_top.sv", "\n// edited after verify\n")),
    ("bitstream", "rtl_missing", ["bitstream", "{hw}", "--board", "icebreaker"], remove("hw/rtl")),
    ("bitstream", "verify_mismatches", ["bitstream", "{hw}", "--board", "icebreaker"],
     edit_json("hw/verify.json", lambda v: v.update(mismatches=2))),
    ("bitstream", "verify_garbage", ["bitstream", "{hw}", "--board", "icebreaker"],
     write("run/hw/verify.json", b"\xff\xfe{")),
    ("bitstream", "vivado_board_without_vivado", ["bitstream", "{hw}", "--board", "pynq-z2"], None),
    # flow
    ("flow", "config_missing", ["flow", "{tmp}/none.yaml", "--out", OUT], None),
    ("flow", "config_unknown_key", ["flow", "{tmp}/c.yaml", "--out", OUT], config_with(**{"model.lay": 1})),
    ("flow", "out_is_file", ["flow", CFG, "--out", FILE], None),
    ("flow", "out_not_writable", ["flow", CFG, "--out", NOT_WRITABLE], None),
    ("flow", "board_unknown", ["flow", CFG, "--out", OUT, "--board", "nosuchboard"], None),
    ("flow", "board_vivado", ["flow", CFG, "--out", OUT, "--board", "pynq-z2"], None),
    ("flow", "fps_nan", ["flow", CFG, "--out", OUT, "--target-fps", "nan"], None),
    ("flow", "clock_negative", ["flow", CFG, "--out", OUT, "--clock-mhz", "-1"], None),
    ("flow", "vectors_negative", ["flow", CFG, "--out", OUT, "--vectors", "-3"], None),
    ("flow", "sim_bogus", ["flow", CFG, "--out", OUT, "--sim", "xsim"], None),
    # the training step itself refuses the data: no --out (and no flow.json) left behind
    ("flow", "dataset_damaged", ["flow", "{tmp}/c.yaml", "--out", OUT], mnist("header_cut")),
    # sweep
    ("sweep", "file_missing", ["sweep", "{tmp}/none.yaml", "--out", OUT], None),
    ("sweep", "file_bad_yaml", ["sweep", "{tmp}/s.yaml", "--out", OUT], write("s.yaml", "name: [\n")),
    ("sweep", "search_unknown", ["sweep", "{tmp}/s.yaml", "--out", OUT],
     write("s.yaml", "name: s\nbase: c.yaml\nsearch: magic\nparams: {e: {path: training.epochs, values: [1]}}\n")),
    ("sweep", "params_empty", ["sweep", "{tmp}/s.yaml", "--out", OUT],
     write("s.yaml", "name: s\nbase: c.yaml\nsearch: grid\nparams: {}\n")),
    ("sweep", "base_missing", ["sweep", "{tmp}/s.yaml", "--out", OUT],
     write("s.yaml", "name: s\nbase: nope.yaml\nsearch: grid\nparams: {e: {path: training.epochs, values: [1]}}\n")),
    ("sweep", "parallel_zero", ["sweep", str(Path(__file__).parent.parent / "configs" / "sweep_digits.yaml"),
                                "--out", OUT, "--parallel", "0"], None),
    ("sweep", "out_is_file", ["sweep", str(Path(__file__).parent.parent / "configs" / "sweep_digits.yaml"),
                              "--out", FILE], None),
    # boards
    ("boards", "extra_argument", ["boards", "ulx3s"], None),
    ("boards", "unknown_option", ["boards", "--all"], None),
    # infer
    ("infer", "images_missing", ["infer", "{tmp}/none.npy", "--port", "/dev/null", "--hw", "{hw}"], None),
    ("infer", "images_garbage", ["infer", "{tmp}/x.npy", "--port", "/dev/null", "--hw", "{hw}"],
     write("x.npy", b"\x93NUMPY garbage")),
    ("infer", "images_wrong_size", ["infer", "{tmp}/x.npy", "--port", "/dev/null", "--hw", "{hw}"],
     lambda tmp, run: np.save(tmp / "x.npy", np.zeros((2, 5), np.int64))),
    ("infer", "images_empty", ["infer", "{tmp}/x.npy", "--port", "/dev/null", "--hw", "{hw}"],
     lambda tmp, run: np.save(tmp / "x.npy", np.zeros((0, 64), np.int64))),
    ("infer", "hw_missing", ["infer", "{tmp}/x.npy", "--port", "/dev/null", "--hw", NOPE],
     lambda tmp, run: np.save(tmp / "x.npy", np.zeros((2, 64), np.int64))),
    ("infer", "port_missing", ["infer", "{tmp}/x.npy", "--port", "{tmp}/ttyNONE", "--hw", "{hw}"],
     lambda tmp, run: np.save(tmp / "x.npy", np.zeros((2, 64), np.int64))),
    ("infer", "baud_zero", ["infer", "{tmp}/x.npy", "--port", "/dev/null", "--hw", "{hw}", "--baud", "0"],
     lambda tmp, run: np.save(tmp / "x.npy", np.zeros((2, 64), np.int64))),
    ("infer", "timeout_nan", ["infer", "{tmp}/x.npy", "--port", "/dev/null", "--hw", "{hw}", "--timeout", "nan"],
     lambda tmp, run: np.save(tmp / "x.npy", np.zeros((2, 64), np.int64))),
    # finn-estimate
    ("finn-estimate", "dir_missing", ["finn-estimate", NOPE, "--board", "pynq-z2"], None),
    ("finn-estimate", "open_board", ["finn-estimate", "{hw}", "--board", "icebreaker"], None),
    ("finn-estimate", "board_unknown", ["finn-estimate", "{hw}", "--board", "nosuchboard"], None),
    ("finn-estimate", "freq_negative", ["finn-estimate", "{hw}", "--board", "pynq-z2", "--freq", "-100"], None),
    # analyze
    ("analyze", "unknown_subcommand", ["analyze", "everything"], None),
    ("analyze", "distributions_out_is_file", ["analyze", "distributions", "--out", FILE], None),
    ("analyze", "distributions_points", ["analyze", "distributions", "--out", OUT, "--points", "-1"], None),
    ("analyze", "distributions_out_holds_other_files", ["analyze", "distributions", "--out", "{tmp}/mine"],
     write("mine/notes.txt", "x")),
    ("analyze", "model_missing", ["analyze", "model", "{tmp}/none.pt", "--out", OUT], None),
    ("analyze", "model_garbage", ["analyze", "model", "{tmp}/m.pt", "--out", OUT], write("m.pt", b"garbage")),
    # demo
    ("demo", "out_is_file", ["demo", "--out", FILE], None),
    ("demo", "unknown_option", ["demo", "--fast"], None),
]


def test_the_suite_covers_every_command():
    from pqhw.cli import SUBCOMMANDS

    per = Counter(c[0] for c in CASES)
    assert set(per) == set(SUBCOMMANDS) and len(CASES) >= 60
    assert len({(c[0], c[1]) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("command, case, args, setup", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_input(command, case, args, setup, tiny_run, tmp_path, cli, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    if setup is not None:
        setup(tmp_path, run)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    Path("/tmp/pqhw-bad-input-pwned").unlink(missing_ok=True)
    argv = [a.format(run=run, hw=run / "hw", tmp=tmp_path) for a in args]
    code, out, err = cli(*argv)
    lines = err.strip().splitlines()
    assert code == 2, (code, out[-500:], err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "Traceback" not in err + out
    assert snapshot(tmp_path) == before
    assert not Path("/tmp/pqhw-bad-input-pwned").exists()
