"""Board-targeted training: the differentiable estimate is hw.estimate's at integer widths (and the
estimate `pqhw compile --board` makes of the exported network), its gradient lowers bit widths, a tiny
`pqhw train --fit-board` run ends inside the board, and bad options are one line with exit status 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.test_cli import _one_line_error

BOARD, FPS = "icebreaker", 100000  # 120 cycles/frame at 12 MHz: the tiny net at 4 bits does not fit, at 2 it does
TINY = {"name": "tiny_fit", "dataset": {"name": "digits", "input_bits": 4},
        "model": {"layers": [{"kind": "linear", "features": 32, "weight": "int8", "act": "uint8"},
                             {"kind": "linear", "features": 10, "weight": "int8"}]},
        "training": {"epochs": 2, "batch_size": 64, "seed": 0},
        "method": {"name": "djpq", "variant": "djpq", "restrict": "pow2", "pretrain_epochs": 2, "anneal_epochs": 1,
                   "lr_quant": 0.1, "init_weight_bits": 4, "init_act_bits": 4}}


def write_config(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def usable(board: str) -> dict:
    """What the board may hold with hw.folding's 15 % headroom, from the board's own limits."""
    from boards.registry import get_board

    return {k: int(v / 1.15) for k, v in get_board(board).resources.limits().items()}


@pytest.fixture(scope="module")
def calibrated_net():
    """The tiny DJPQ network quantized at its initial 4/4 bits (calibrated, untrained)."""
    from quant.build import make_model
    from quant.config import parse_config
    from quant.data import load_dataset
    from quant.methods.djpq import calibrate, configure

    cfg = parse_config(TINY)
    split = load_dataset(cfg.dataset)
    torch.manual_seed(0)
    net = make_model(cfg, split.image_shape, split.classes)
    _, m = cfg.method_parts()
    configure(net, "djpq")
    calibrate(net, torch.as_tensor(split.x_train, dtype=torch.float32), m)
    net.eval()
    return net


def hw_estimate(net, board=BOARD, fps=FPS) -> dict:
    """hw.estimate of the network's integer form at the folding `pqhw compile --target-fps` picks."""
    from hw.estimate import estimate_total
    from hw.folding import fold_for_cycles
    from pqhw.board_cost import BoardCost, layer_graph

    c = BoardCost(board, fps)
    total = estimate_total(fold_for_cycles(layer_graph(c.specs(net), net.input_bits), c.budget), c.family)
    return {k: total[k] for k in ("luts", "ffs", "brams", "dsps")}


@pytest.mark.parametrize("w_bits", [(4, 4), (2, 4), (2, 2), (8, 2)])
def test_value_is_hw_estimate_at_integer_widths(calibrated_net, w_bits):
    from pqhw.board_cost import BoardCost

    net = calibrated_net
    for q, b in zip(net.weight_quantizers(), w_bits):
        q.fixed_bits = b
    try:
        cost = BoardCost(BOARD, FPS)
        res = cost.resources(net)
        assert {k: float(v.detach()) for k, v in res.items()} == {k: float(v) for k, v in hw_estimate(net).items()}
        # the next steps, nothing changed: the value stays hw.estimate's (the slopes only carry the gradient)
        again = cost.resources(net)
        assert float(again["luts"].detach()) == float(res["luts"].detach())
    finally:
        for q in net.weight_quantizers():
            q.fixed_bits = None


def test_gradient_lowers_bits_and_estimate(calibrated_net):
    """d LUTs / d step < 0 for every quantizer (a larger step is fewer bits), and one step down the gradient
    on the cost alone gives fewer bits and fewer estimated LUTs."""
    import copy

    from pqhw.board_cost import BoardCost

    net = copy.deepcopy(calibrated_net)
    before = hw_estimate(net)["luts"]
    bits_before = [q.hw_bits() for q in net.weight_quantizers() + net.act_quantizers()]
    cost = BoardCost(BOARD, FPS)
    luts = cost.resources(net)["luts"]
    quantizers = net.weight_quantizers() + net.act_quantizers()
    grads = torch.autograd.grad(luts, [q.d for q in quantizers])
    assert all(float(g) <= 0 for g in grads) and any(float(g) < 0 for g in grads), grads
    with torch.no_grad():  # d grows ~16x: eq. 3/4 fall by ~4 bits where the gradient pushes
        for q, g in zip(quantizers, grads):
            if float(g) < 0:
                q.d.mul_(16.0)
    bits_after = [q.hw_bits() for q in quantizers]
    assert all(a <= b for a, b in zip(bits_after, bits_before)) and bits_after != bits_before
    assert hw_estimate(net)["luts"] < before


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    from pqhw.cli import main

    tmp = tmp_path_factory.mktemp("fit")
    out = tmp / "run"
    try:
        main(["train", str(write_config(tmp / "tiny.yaml", TINY)), "--out", str(out), "--fit-board", BOARD,
              "--target-fps", str(FPS)])
    except SystemExit as exc:
        assert not exc.code
    return out


def test_untrained_net_does_not_fit(calibrated_net):
    """The precondition of the training test: at its initial widths the tiny net is too big for the board."""
    assert hw_estimate(calibrated_net)["luts"] > usable(BOARD)["luts"]


def test_fit_board_training_fits(fit_run):
    m = json.loads((fit_run / "metrics.json").read_text())
    est = m["resource_cost"]["estimate"]
    limit = usable(BOARD)
    assert all(est[k] <= limit[k] for k in limit), (est, limit)
    assert m["test_accuracy"] > 0.5  # a classifier still, not a network pruned to nothing
    assert "bops_soft" in m["phases"]["djpq"]


def test_estimate_equals_compile_estimate(fit_run):
    """The trained network's estimate is the one `pqhw compile --board --target-fps` makes of its export
    through FINN's front-end: integer for integer (20 s: export and FINN's front-end on a 64-32-10 MLP)."""
    from hw.compile import compile_model
    from quant.export import export_run

    export_run(fit_run)
    compile_model(fit_run / "model.qonnx.onnx", fit_run / "hw", FPS, None, board=BOARD)
    total = json.loads((fit_run / "hw" / "estimate.json").read_text())["total"]
    m = json.loads((fit_run / "metrics.json").read_text())
    assert {k: total[k] for k in ("luts", "ffs", "brams", "dsps")} == m["resource_cost"]["estimate"]


@pytest.mark.parametrize("args,needles", [
    (["--fit-board", BOARD], ["--fit-board and --target-fps go together"]),
    (["--target-fps", "1000"], ["--fit-board and --target-fps go together"]),
    (["--fit-board", "nosuchboard", "--target-fps", "1000"], ["nosuchboard"]),
    (["--fit-board", "pynq-z2", "--target-fps", "1000"], ["open families"]),
    (["--fit-board", BOARD, "--target-fps", "0"], ["--target-fps"]),
    (["--fit-board", BOARD, "--target-fps", "1e9"], ["less than 1 cycle per frame"]),
])
def test_bad_options(cli, tmp_path, args, needles):
    config = write_config(tmp_path / "tiny.yaml", TINY)
    code, _, err = cli("train", config, "--out", tmp_path / "out", *args)
    _one_line_error(code, err, *needles)
    assert not (tmp_path / "out").exists()


def test_fit_board_needs_djpq_bit_widths(cli, tmp_path):
    plain = {k: v for k, v in TINY.items() if k != "method"}
    plain["model"] = {"layers": [{"kind": "linear", "features": 10, "weight": "int2"}]}
    code, _, err = cli("train", write_config(tmp_path / "plain.yaml", plain), "--out", tmp_path / "out",
                       "--fit-board", BOARD, "--target-fps", "1000")
    _one_line_error(code, err, "--fit-board trains DJPQ", "method none")
    fixed = {**TINY, "method": {**TINY["method"], "variant": "fixed", "fixed_bits": [4, 4]}}
    code, _, err = cli("train", write_config(tmp_path / "fixed.yaml", fixed), "--out", tmp_path / "out",
                       "--fit-board", BOARD, "--target-fps", "1000")
    _one_line_error(code, err, "variant fixed")
