"""PTQ on padded convolutions (LeNet-5) and the MACs / BOPs the PTQ ablation reports for a row."""
import pytest
import torch
import yaml

from bench.ptq_ablation import MODELS, _config, costs
from quant.build import make_model
from quant.config import parse_config
from quant.data import load_dataset


@pytest.mark.parametrize("first_layer", ["ternary", "float"])
def test_lenet5_ptq_keeps_the_first_convs_padding(first_layer):
    raw = yaml.safe_load(MODELS["lenet5"].read_text())
    raw["method"]["first_layer"] = first_layer
    cfg = parse_config(raw, "lenet5")
    split = load_dataset(cfg.dataset)
    model = make_model(cfg, split.image_shape, split.classes)
    first = model.quant_layers()[0]
    x = torch.as_tensor(split.x_train[:2], dtype=torch.float32).reshape(-1, *split.image_shape)
    assert first(x).shape[-2:] == (28, 28)  # 5x5 kernel over 28x28 padded by 2
    assert model(torch.as_tensor(split.x_train[:2], dtype=torch.float32)).shape == (2, 10)


def test_digits_cnn_costs_count_each_layers_positions_kernel_and_bits():
    cfg = parse_config(_config(MODELS["cnn"], 0, {}), "cnn")  # every layer ternary, uint2 (lsq) activations
    c = costs(cfg, {"sparsity_per_layer": [0.5, 0.5, 0.5]})
    macs = [16 * 6 * 6 * 9, 32 * 16 * 4 * 4 * 9, 32 * 2 * 2 * 10]  # conv 8x8 -> 6x6, conv -> 4x4, pool, fc
    in_bits = [4, 2, 2]  # UINT4 pixels, then uint2 activations
    assert c["macs"] == sum(macs)
    assert c["nonzero_macs"] == sum(macs) / 2
    assert c["bops"] == sum(m * 2 * b for m, b in zip(macs, in_bits))
    assert c["bop_compression"] == pytest.approx(sum(macs) * 32 * 32 / c["bops"], rel=1e-3)
    paper = parse_config(_config(MODELS["cnn"], 0, {"first_layer": "float", "act_levels": "eq26"}), "cnn")
    p = costs(paper, {"sparsity_per_layer": [0.5, 0.5]})  # first conv in float; eq. 26's uint2 is 1 bit
    assert p["bops"] == macs[0] * 32 * 4 + macs[1] * 2 * 1 + macs[2] * 2 * 1
    assert p["nonzero_macs"] == macs[0] + (macs[1] + macs[2]) / 2
