"""Small convolutional networks built here with Brevitas (random weights and batch-norm statistics), as FINN
users export them, through `pqhw compile` (the conv front-end steps) and, whole, through RTL simulation:
the classes equal the Brevitas forward, the stream is the NHWC image, and the accelerator is bit-exact with
random idle and backpressure at the cycles the model expects."""
import brevitas.nn as qnn
import numpy as np
import pytest
import torch
from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm
from torch import nn

from common.errors import UserError
from hw.compile import RANDOM_VECTORS_CONV, compile_model
from hw.finn_import import hw_inputs
from hw.ir import Graph
from tests.hw.test_finn_import import assert_exact, export, values


def randomise(model, seed: int):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, TensorNorm)):
            n = m.running_mean.numel()
            m.running_mean.data = torch.randn(n, generator=g)
            m.running_var.data = torch.rand(n, generator=g) * 2 + 0.5
            m.weight.data = torch.randn(n, generator=g)
            m.bias.data = torch.randn(n, generator=g)
        if isinstance(m, (qnn.QuantConv2d, qnn.QuantLinear)):
            nn.init.uniform_(m.weight.data, -1, 1, generator=g)
    return model


class CNN(nn.Module):
    """input quantizer, conv k x k (padding, stride) + batch norm + activation, max-pool, flatten, fc, TensorNorm."""

    def __init__(self, in_ch=1, size=8, ch=4, k=3, padding=0, stride=1, pool=2, w_bits=1, a_bits=1, classes=10,
                 in_max=15.0, seed=0):
        super().__init__()
        self.in_max = in_max
        self.inq = qnn.QuantIdentity(act_quant=CommonActQuant, bit_width=a_bits)
        self.conv = qnn.QuantConv2d(in_ch, ch, k, padding=padding, stride=stride, bias=False,
                                    weight_quant=CommonWeightQuant, weight_bit_width=w_bits)
        self.bn, self.act = nn.BatchNorm2d(ch), qnn.QuantIdentity(act_quant=CommonActQuant, bit_width=a_bits)
        self.pool = nn.MaxPool2d(pool) if pool else nn.Identity()
        o = (size + 2 * padding - k) // stride + 1
        o = o // pool if pool else o
        self.fc = qnn.QuantLinear(ch * o * o, classes, bias=False, weight_quant=CommonWeightQuant,
                                  weight_bit_width=w_bits)
        self.tn = TensorNorm()
        randomise(self, seed)

    def forward(self, x):
        x = self.inq(2.0 * x / self.in_max - 1.0)
        x = self.pool(self.act(self.bn(self.conv(x))))
        return self.tn(self.fc(x.view(x.shape[0], -1)))


def compiled(model, shape, tmp_path, **kw):
    path = export(model.eval(), (1, *shape), "UINT4", tmp_path / "model.onnx")
    report = compile_model(path, tmp_path / "hw", **kw)
    return Graph.load(tmp_path / "hw" / "graph.json"), report


def test_conv_front_end_streams_nhwc(tmp_path):
    """Two input channels: the stream is the NHWC image (the leading Transpose left out), and the integer
    graph of pad, swg, MVAU, swg, pool, MVAU equals the Brevitas forward on every vector."""
    model = CNN(in_ch=2, size=7, ch=3, padding=1, w_bits=2, a_bits=2, seed=3)
    graph, report = compiled(model, (2, 7, 7), tmp_path)
    assert graph.input_shape == [7, 7, 2] and report["model_input"]["shape"] == [2, 7, 7]
    for step in ("lower_convs", "convert_conv_to_hw", "leading_transpose"):
        assert report["flow_steps"][step] == RANDOM_VECTORS_CONV
    assert [l.kind for l in graph.layers] == ["threshold", "pad", "swg", "mvau", "swg", "pool", "mvau",
                                              "label_select"]
    swg, mvau = graph.layers[2], graph.layers[3]
    assert (swg.ifm_h, swg.ofm_h, swg.k_h, mvau.num_vectors, mvau.mw) == (9, 7, 3, 49, 18)
    fc = graph.layers[6]
    assert (fc.mw, fc.num_vectors) == (3 * 3 * 3, 1)  # the flatten is gone, its transpose in the weights
    x = values("UINT8", 300, (2, 7, 7), seed=4) % 16
    assert_exact(model, graph, x, hw_x=x.transpose(0, 2, 3, 1))
    with pytest.raises(AssertionError):  # the NCHW order is another network
        assert_exact(model, graph, x, hw_x=x)
    row = next(r for r in report["layers"] if r["kind"] == "swg")
    assert (row["ifm"], row["ofm"], row["window"]) == ([9, 9, 2], [7, 7, 18], [3, 3])


def test_hw_inputs_transposes_only_nhwc_graphs(tmp_path):
    model = CNN(in_ch=2, size=6, ch=2, pool=0, seed=5)
    _, _ = compiled(model, (2, 6, 6), tmp_path)
    from hw.finn_flow import load_model

    hw = load_model(tmp_path / "hw" / "finn_hw.onnx")
    x = values("UINT8", 3, (2, 6, 6)) % 16
    assert np.array_equal(hw_inputs(x, "UINT4", hw), x.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("layer,line", [
    (nn.Conv2d(2, 2, 3, groups=2, bias=False), r"\(Conv\): grouped/depthwise convolution \(group = 2\)"),
    (nn.AvgPool2d(2), r"\(AveragePool\): average pooling has no pqhw hardware \(max-pool has\); use MaxPool"),
    (nn.MaxPool2d(2, padding=1), r"\(MaxPool\): padded max-pool \(pads \[1, 1, 1, 1\]\)"),
])
def test_unsupported_conv_configurations_are_one_line(tmp_path, layer, line):
    model = nn.Sequential(qnn.QuantIdentity(act_quant=CommonActQuant, bit_width=2), layer, nn.Flatten(),
                          qnn.QuantLinear(18 if isinstance(layer, nn.AvgPool2d) else 32, 4,
                                          bias=False, weight_quant=CommonWeightQuant, weight_bit_width=2))
    path = export(model.eval(), (1, 2, 6, 6), "UINT4", tmp_path / "m.onnx")
    with pytest.raises(UserError, match=r"^node \S+ " + line) as err:
        compile_model(path, tmp_path / "hw")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "hw").exists()


@pytest.mark.sim
@pytest.mark.parametrize("bits,padding,stride", [(1, 0, 1), (2, 1, 2)])
def test_small_cnn_accelerator_is_bit_exact(tmp_path, bits, padding, stride):
    """conv 3x3 + pool + fc on 8x8 digits-sized input: 0 mismatches with random idle and backpressure, and the
    measured frame interval the expected one."""
    from sim.verify import verify

    model = CNN(size=8, ch=4, padding=padding, stride=stride, pool=2 if stride == 1 else 0, w_bits=bits,
                a_bits=bits, seed=bits)
    graph, report = compiled(model, (1, 8, 8), tmp_path)
    kinds = [l.kind for l in graph.layers]
    assert "swg" in kinds and ("pool" in kinds) == (stride == 1) and ("pad" in kinds) == bool(padding)
    x = values("UINT8", 200, (1, 8, 8), seed=7) % 16
    assert_exact(model, graph, x)
    rec = verify(tmp_path / "hw", vectors=30, sim="verilator", seed=2)
    assert rec["mismatches"] == 0, rec["first_mismatch"]
    assert rec["vectors"] == 30 and not rec["timed_out"]
    assert rec["expected_cycles_per_frame"] == report["expected_cycles_per_frame"]
    assert rec["cycles_per_frame"] == rec["expected_cycles_per_frame"]


@pytest.mark.sim
def test_a_window_generator_behind_a_slow_producer_keeps_its_own_rate(tmp_path):
    """The digits CNN's shape: conv 1 (1,728 cycles a frame, one 16-channel pixel every 48 cycles) feeds a
    window generator that takes 2,304 cycles, as long as the conv 2 MVAU behind it. At a frame boundary the
    generator needs the next frame's first three rows already in its line buffer: with room for only
    k_h + stride_h rows it waited for them, 2,470 cycles a frame measured instead of 2,304."""
    from hw.kinds.label_select import LabelSelect
    from hw.kinds.swg import SWG
    from sim import graphs
    from sim.verify import verify

    rng = np.random.default_rng(5)
    swg0 = SWG(name="swg0", ifm_h=8, ifm_w=8, channels=1, k_h=3, k_w=3, input_dtype="UINT2", output_dtype="UINT2")
    conv0 = graphs.mvau(rng, "conv0", "int", 16, 9, 1, 3, "UINT2", "INT2", nt=1).model_copy(
        update={"num_vectors": 36})
    swg1 = SWG(name="swg1", ifm_h=6, ifm_w=6, channels=16, k_h=3, k_w=3, input_dtype="BINARY",
               output_dtype="BINARY")
    conv1 = graphs.mvau(rng, "conv1", "xnor", 16, 144, 1, 16, "BINARY", "BINARY", nt=1).model_copy(
        update={"num_vectors": 16})
    fc = graphs.mvau(rng, "fc", "xnor", 10, 256, 1, 2, "BINARY", "BINARY", nt=0)
    ls = LabelSelect(name="ls", channels=10, input_dtype=fc.output_dtype, output_dtype="UINT4")
    g = Graph(input_dtype="UINT2", input_shape=[8, 8, 1], layers=[swg0, conv0, swg1, conv1, fc, ls])
    assert [l.cycles() for l in g.layers[1:4]] == [1728, 2304, 2304]
    g.save(tmp_path / "graph.json")
    rec = verify(tmp_path, vectors=12, sim="verilator", seed=1)
    assert rec["mismatches"] == 0 and not rec["timed_out"]
    assert rec["cycles_per_frame"] == rec["expected_cycles_per_frame"] == 2304


def _verify_within_5_percent(hw, vectors, n_test=0):
    from sim.verify import verify

    rec = verify(hw, vectors=vectors, sim="verilator", seed=3)
    assert rec["mismatches"] == 0, rec["first_mismatch"]
    assert rec["vectors"] == n_test + vectors and not rec["timed_out"]
    assert abs(rec["cycles_per_frame"] - rec["expected_cycles_per_frame"]) <= 0.05 * rec["expected_cycles_per_frame"]
    return rec


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("name", ["cnv_1w1a", "cnv_1w2a", "cnv_2w2a"])
def test_cnv_accelerator_is_bit_exact(tmp_path, name):
    """FINN's CNVs as its end-to-end tests export them (32x32x3 UINT8), folded for 1,000 frames/s at 100 MHz
    (100k cycles a frame) and simulated whole on a few vectors."""
    from bench.finn_zoo import export_net

    model = export_net(name, tmp_path / f"{name}.onnx")
    report = compile_model(model, tmp_path / "hw", target_fps=1000, clock_mhz=100)
    assert report["hw_input"]["shape"] == [32, 32, 3] and report["reference_vs_finn_mismatches"] == 0
    assert report["expected_cycles_per_frame"] <= 100_000
    _verify_within_5_percent(tmp_path / "hw", 3)


@pytest.mark.slow
@pytest.mark.sim
def test_lenet5_accelerator_is_bit_exact(shared_dir, tmp_path):
    """The LeNet-5 config (padded first conv) trained briefly on mnist5k: the test split and random vectors."""
    import shutil

    from tests.conftest import build_run

    run = build_run(shared_dir, "mnist5k_lenet5_w2a2", epochs=2)
    hw = tmp_path / "hw"
    shutil.copytree(run / "hw", hw)
    graph = Graph.load(hw / "graph.json")
    assert [l.kind for l in graph.layers][:3] == ["pad", "swg", "mvau"] and graph.input_shape == [28, 28, 1]
    _verify_within_5_percent(hw, 20, n_test=1000)
