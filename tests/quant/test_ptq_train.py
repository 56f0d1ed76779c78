"""PTQ phases: the resetting step, the config, resumable phases, and a tiny run through export and compile."""
import copy
import json

import numpy as np
import pytest
import torch

from common.errors import UserError
from common import codebook
from quant.config import parse_config
from quant.data import load_dataset
from quant.build import make_model
from quant.methods.ptq import prune_and_reset

MLP = {
    "name": "tiny_ptq",
    "dataset": {"name": "digits", "input_bits": 4},
    "model": {"layers": [{"kind": "linear", "features": 32, "weight": "ternary", "act": "uint2"},
                         {"kind": "linear", "features": 10, "weight": "ternary"}]},
    "training": {"epochs": 2, "lr": 0.01, "batch_size": 64, "seed": 0},
    "method": {"name": "ptq", "sparsity": 0.7, "first_layer": "ternary", "act_levels": "lsq",
               "epochs": {"float": 2, "pretrain": 3, "prune": 2, "quantize": 3}},
}


def _cfg(**method):
    d = copy.deepcopy(MLP)
    d["method"].update(method)
    return parse_config(d)


def _model(cfg):
    torch.manual_seed(0)
    return make_model(cfg, (64,), 10)


@pytest.mark.parametrize("sparsity", [0.5, 0.7, 0.8])
def test_resetting_step_prunes_to_target_and_resets_kept_weights_to_their_sign(sparsity):
    cfg = _cfg(sparsity=sparsity)
    model = _model(cfg)
    before = [l.w.weight.detach().clone() for l in model.ptq_layers()]
    prune_and_reset(model, sparsity, reset=True)
    for w0, l in zip(before, model.ptq_layers()):
        w, mask = l.w.weight.detach(), l.w.mask
        assert int((mask == 0).sum()) == round(sparsity * w.numel())
        assert set(w.unique().tolist()) <= {-1.0, 0.0, 1.0}
        kept = mask > 0
        assert torch.equal(w[kept], torch.sign(w0[kept]))
        assert torch.all(w[~kept] == 0)
        assert w0[kept].abs().min() >= w0[~kept].abs().max()  # magnitude pruning keeps the largest


def test_without_reset_kept_weights_keep_their_values():
    cfg = _cfg(reset=False)
    model = _model(cfg)
    w0 = model.ptq_layers()[0].w.weight.detach().clone()
    prune_and_reset(model, 0.7, reset=False)
    l = model.ptq_layers()[0]
    kept = l.w.mask > 0
    assert torch.equal(l.w.weight.detach()[kept], w0[kept])
    assert int((l.w.weight == 0).sum()) == round(0.7 * w0.numel())


def test_model_mirrors_the_config_network_and_reports_weight_layers():
    model = _model(_cfg())
    assert [tuple(l.weight.shape) for l in model.quant_layers()] == [(32, 64), (10, 32)]
    kept = _model(parse_config({**copy.deepcopy(MLP), "model": {"layers": [
        {"kind": "linear", "features": 32, "weight": "int8", "act": "uint2"},
        {"kind": "linear", "features": 10, "weight": "ternary"}]},
        "method": {"name": "ptq", "first_layer": "config"}}))
    assert len(kept.ptq_layers()) == 1 and len(kept.quant_layers()) == 2


def test_config_mistakes_are_user_errors():
    with pytest.raises(UserError, match="method.*sparsity"):
        _cfg(sparsity=1.5)
    with pytest.raises(UserError, match="unknown key 'method.delta'"):
        _cfg(delta=0.1)
    bad = copy.deepcopy(MLP)
    bad["model"]["layers"][0]["weight"] = "int4"
    with pytest.raises(UserError, match=r"model.layers.0.weight: PTQ ternarises"):
        make_model(parse_config(bad), (64,), 10)
    bad = copy.deepcopy(MLP)
    bad["model"]["layers"][0]["act"] = "binary"
    with pytest.raises(UserError, match=r"model.layers.0.act: PTQ learns LSQ"):
        make_model(parse_config(bad), (64,), 10)


def test_phases_are_saved_and_skipped_on_resume(tmp_path):
    from quant.train import train_run

    cfg = _cfg()
    m1 = train_run(cfg, tmp_path, show_progress=False)
    assert sorted(p.name for p in (tmp_path / "phases").iterdir()) == ["float.pt", "pretrain.pt", "prune.pt",
                                                                      "quantize.pt"]
    assert m1["phases_resumed"] == []
    (tmp_path / "phases" / "quantize.pt").unlink()
    m2 = train_run(cfg, tmp_path, resume=True, show_progress=False)
    assert m2["phases_resumed"] == ["float", "pretrain", "prune"]
    assert m2["test_accuracy"] == m1["test_accuracy"]  # the rerun phase is deterministic
    assert m2["sparsity_per_layer"] == m1["sparsity_per_layer"]
    other = _cfg(sparsity=0.5)
    with pytest.raises(UserError, match="another config"):
        train_run(other, tmp_path, resume=True, show_progress=False)


def test_twn_variant_hits_the_sparsity_with_the_quantile_threshold(tmp_path):
    from quant.train import train_run

    m = train_run(_cfg(variant="twn", sparsity=0.6), tmp_path, show_progress=False)
    assert list(m["phase_epochs"]) == ["float", "pretrain", "quantize"] and m["phase_epochs"]["quantize"] == 5
    for s in m["sparsity_per_layer"]:
        assert s == pytest.approx(0.6, abs=0.01)


def test_tiny_run_trains_exports_and_compiles_exactly(tmp_path):
    from hw.compile import compile_model
    from quant.checkpoint import load_run
    from quant.export import brevitas_logits, classes_from_logits, export_run
    from quant.build import exportable
    from quant.methods.ptq_export import write_codebook
    from quant.train import train_run

    cfg = _cfg()
    metrics = train_run(cfg, tmp_path, show_progress=False)
    assert metrics["sparsity"] >= 0.7 and metrics["test_accuracy"] > 0.6
    model, cfg2, split = load_run(tmp_path)
    net = exportable(cfg2, model)
    same = classes_from_logits(brevitas_logits(model, split.x_test)) == \
        classes_from_logits(brevitas_logits(net, split.x_test))
    assert same.mean() >= 0.995  # batch-norm folding changes at most float rounding
    for layer in net.quant_layers():
        assert set(layer.quant_weight().int().unique().tolist()) <= {-1, 0, 1}
    report = export_run(tmp_path)
    assert report["mismatches"] == 0 and report["vectors"] == len(split.x_test)
    hw = compile_model(tmp_path / "model.qonnx.onnx", tmp_path / "hw")
    assert hw["reference_vs_finn_mismatches"] == 0
    assert [l["weight_dtype"] for l in hw["layers"] if l["kind"].startswith("mvau")] == ["INT2", "INT2"]
    cb = write_codebook(tmp_path)
    blob = (tmp_path / "model.codebook.bin").read_bytes()
    assert cb["bytes"] == len(blob) == 32 * 22 * 5 // 8 + -(-10 * 11 * 5 // 8)  # 440 + 69
    for entry, layer in zip(cb["layers"], net.quant_layers()):
        w = layer.quant_weight().int().numpy().reshape(entry["rows"], -1)
        got = codebook.decode_bytes(blob[entry["offset"]:entry["offset"] + entry["bytes"]], *w.shape)
        assert np.array_equal(got, w)
    assert json.loads((tmp_path / "model.codebook.json").read_text())["bytes_float32"] == 4 * (32 * 64 + 10 * 32)


CNN = {
    "name": "tiny_ptq_cnn",
    "dataset": {"name": "digits", "input_bits": 4},
    "model": {"layers": [{"kind": "conv", "channels": 4, "kernel": 3, "weight": "ternary", "act": "uint2"},
                         {"kind": "conv", "channels": 8, "kernel": 3, "weight": "ternary", "act": "uint2",
                          "pool": 2},
                         {"kind": "linear", "features": 10, "weight": "ternary"}]},
    "training": {"epochs": 2, "lr": 0.01, "batch_size": 64, "seed": 0},
    "method": {"name": "ptq", "sparsity": 0.5, "first_layer": "ternary", "act_levels": "lsq",
               "epochs": {"float": 1, "pretrain": 2, "prune": 1, "quantize": 2}},
}


def test_conv_layers_are_pruned_reset_and_exported_as_ternary_brevitas_convs():
    from quant.build import exportable
    from quant.methods.ptq import start_quantize

    cfg = parse_config(copy.deepcopy(CNN))
    split = load_dataset(cfg.dataset)
    model = make_model(cfg, split.image_shape, split.classes)
    assert [tuple(l.weight.shape) for l in model.quant_layers()] == [(4, 1, 3, 3), (8, 4, 3, 3), (10, 32)]
    prune_and_reset(model, 0.5, reset=True)
    start_quantize(model, split, cfg.method_parts()[1])
    net = exportable(cfg, model).eval()
    x = torch.as_tensor(split.x_test[:64], dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(net(x), model(x), rtol=1e-4, atol=1e-4)
    for layer, ptq in zip(net.quant_layers(), model.quant_layers()):
        assert torch.equal(layer.quant_weight().int().float(), ptq.w.codes())


@pytest.mark.slow
def test_conv_run_exports_exactly_with_a_codebook(tmp_path):
    from click.testing import CliRunner

    from quant.commands import export
    from quant.train import train_run

    train_run(parse_config(copy.deepcopy(CNN)), tmp_path, show_progress=False)
    result = CliRunner().invoke(export, [str(tmp_path), "--codebook"])
    assert result.exit_code == 0, result.output
    assert "QONNX == Brevitas on 450 test vectors" in result.output
    cb = json.loads((tmp_path / "model.codebook.json").read_text())
    assert [(l["rows"], l["mw"]) for l in cb["layers"]] == [(4, 9), (8, 36), (10, 32)]
    assert cb["bytes"] == -(-4 * 3 * 5 // 8) + 8 * 12 * 5 // 8 + -(-10 * 11 * 5 // 8) == 8 + 60 + 69
