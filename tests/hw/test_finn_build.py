"""Vivado boards through FINN's builder: FINN's estimates of a compiled design carry our folding (no Vivado
needed), the folding config names every layer as FINN names it, and without Vivado `pqhw bitstream` stops with
one line naming what is missing, before writing anything."""
import hashlib
import json
from pathlib import Path

import brevitas.nn as qnn
import onnx
import pytest
import torch
from brevitas.quant import Int8WeightPerTensorFloat, Uint8ActPerTensorFloat
from onnx import helper
from torch import nn

from common.errors import UserError
from hw.finn_build import FOLDED_MODEL, folding_config, missing_xilinx_tools

VIVADO_BOARDS = ["pynq-z2", "zcu104", "kv260"]
# Folded on purpose: every layer with PE/SIMD other than 1, so FINN's defaults cannot pass for ours.
FOLDING = {"MVAU_0": {"pe": 4, "simd": 8}, "MVAU_1": {"pe": 2, "simd": 4}, "LabelSelect_0": {"pe": 2}}


@pytest.fixture(scope="module")
def hw_dir(tmp_path_factory) -> Path:
    """A 16-32-10 MLP (3-bit weights, 2-bit activations, UINT2 pixels) compiled by `pqhw compile`."""
    from brevitas.export import export_qonnx
    from qonnx.core.datatype import DataType

    from hw.compile import compile_model
    from hw.finn_flow import load_model

    torch.manual_seed(0)
    w3 = Int8WeightPerTensorFloat.let(bit_width=3)
    model = nn.Sequential(qnn.QuantLinear(16, 32, bias=False, weight_quant=w3), nn.BatchNorm1d(32),
                          qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat.let(bit_width=2)),
                          qnn.QuantLinear(32, 10, bias=False, weight_quant=w3))
    x = torch.randint(0, 4, (128, 16)).float()
    model.train()
    model(x)  # batch-norm statistics away from their initial values
    model.eval()
    base = tmp_path_factory.mktemp("finn_build")
    path = base / "mlp.onnx"
    export_qonnx(model, torch.zeros(1, 16), export_path=str(path))
    m = load_model(path)
    m.set_tensor_datatype(m.graph.input[0].name, DataType["UINT2"])
    m.save(str(path))
    fold = base / "fold.json"
    fold.write_text(json.dumps(FOLDING))
    compile_model(path, base / "hw", folding_file=fold)
    return base / "hw"


def _layers(hw_dir: Path) -> list[dict]:
    return json.loads((hw_dir / "compile.json").read_text())["layers"]


def test_finn_estimate_folds_every_layer_as_we_do(hw_dir, cli):
    code, out, err = cli("finn-estimate", hw_dir, "--board", "pynq-z2")
    assert code == 0, err
    result = json.loads((hw_dir / "pynq-z2" / "finn_estimate.json").read_text())
    layers = _layers(hw_dir)
    assert [l["name"] for l in layers] == list(FOLDING)  # the fixture's folding is what compile recorded
    # PE/SIMD as FINN set them, read back from the ONNX graph its builder folded and estimated.
    folded = onnx.load(str(hw_dir / "pynq-z2" / "finn_estimate" / FOLDED_MODEL))
    finn = {n.name: {a.name: helper.get_attribute_value(a) for a in n.attribute} for n in folded.graph.node}
    rows = {r["name"]: r for r in result["layers"]}
    for layer in layers:
        attrs = finn[rows[layer["name"]]["finn_node"]]
        assert attrs["PE"] == layer["pe"]
        if layer["kind"] == "mvau":
            assert attrs["SIMD"] == layer["simd"] and attrs["MH"] == layer["mh"] and attrs["MW"] == layer["mw"]
            assert rows[layer["name"]]["luts"] > 0
        # FINN's cycle count per layer is ours: (MH/PE)(MW/SIMD) for an MVAU
        assert rows[layer["name"]]["cycles"] == layer["expected_cycles"]
    mvaus = [n for n in folded.graph.node if n.op_type.startswith("MVAU")]
    assert len(mvaus) == sum(l["kind"] == "mvau" for l in layers) == 2
    assert result["total"]["luts"] == sum(r["luts"] for r in result["layers"]) > 0
    assert result["max_cycles"] == max(l["expected_cycles"] for l in layers)
    assert result["board"] == "pynq-z2" and result["device"] == "xc7z020clg400-1"
    assert "MVAU_0" in out and f"{result['total']['luts']:,}" in out  # the printed table


def test_folding_config_maps_every_layer(hw_dir):
    layers = _layers(hw_dir)
    for board in VIVADO_BOARDS:
        config = folding_config(hw_dir, board)
        assert len(config) == len(layers)
        assert sorted(config.values(), key=json.dumps) == sorted(
            ({"PE": l["pe"], "SIMD": l["simd"]} if l["kind"] == "mvau" else {"PE": l["pe"]} for l in layers),
            key=json.dumps)
        # the names FINN gives its specialised layers (MVAU_hls_0 / MVAU_rtl_0, ...), not ours
        assert all(name.split("_")[1] in ("hls", "rtl") for name in config), config


def test_folding_config_names_a_layer_finn_does_not_have(hw_dir, tmp_path):
    other = tmp_path / "hw"
    other.mkdir()
    (other / "finn_hw.onnx").write_bytes((hw_dir / "finn_hw.onnx").read_bytes())
    report = json.loads((hw_dir / "compile.json").read_text())
    report["layers"][1]["name"] = "MVAU_7"
    (other / "compile.json").write_text(json.dumps(report))
    with pytest.raises(UserError, match=r"only in compile.json: MVAU_7; only in finn_hw.onnx: MVAU_1"):
        folding_config(other, "pynq-z2")


@pytest.mark.parametrize("board", VIVADO_BOARDS)
def test_bitstream_without_vivado_names_the_tool_and_writes_nothing(board, hw_dir, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("XILINX_VIVADO", raising=False)
    monkeypatch.delenv("FINN_TOOL_DIR_OVERRIDE", raising=False)
    before = {p: p.stat().st_mtime_ns for p in hw_dir.rglob("*")}
    code, _, err = cli("bitstream", hw_dir, "--board", board)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in (board, "vivado and vitis_hls not found on PATH", "XILINX_VIVADO", "settings64.sh", "icebreaker"):
        assert needle in lines[0], (needle, lines[0])
    assert {p: p.stat().st_mtime_ns for p in hw_dir.rglob("*")} == before


@pytest.mark.vendor
def test_pynq_z2_bitstream_through_finn(hw_dir, cli):
    """Needs Vivado and Vitis HLS (settings64.sh sourced) and FINN's dependencies (`finn deps update`)."""
    if missing_xilinx_tools():
        pytest.skip(f"missing: {', '.join(missing_xilinx_tools())}")
    from hw.bitstream import SUMMARY_KEYS

    code, out, err = cli("bitstream", hw_dir, "--board", "pynq-z2")
    assert code == 0, err
    summary = json.loads((hw_dir / "bitstream.json").read_text())
    assert list(summary)[: len(SUMMARY_KEYS)] == list(SUMMARY_KEYS)
    bit = Path(summary["bitstream"])
    assert bit.is_file() and summary["sha256"] == hashlib.sha256(bit.read_bytes()).hexdigest()
    estimate = json.loads((hw_dir / "pynq-z2" / "finn_estimate.json").read_text())
    # the whole design (accelerator plus Zynq shell) takes more than FINN's estimate of the accelerator
    assert summary["luts"] > estimate["total"]["luts"] and summary["meets_timing"]
