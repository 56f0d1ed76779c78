"""pqhw_swg (sliding-window generator) against the reference, and the reference against FINN's own python
execution of a ConvolutionInputGenerator node; the MVAU taking the window stream as num_vectors vectors.

Block runs use Icarus by default plus Verilator runs of the harder cases; the slow sweep runs every case on
both simulators.
"""
import numpy as np
import pytest

from hw.kinds.base import finn_attrs
from hw.kinds.swg import SWG, out_dim
from hw.layer_rtl import dtype_fmt
from sim import graphs
from sim.blocks import run_layer_block

# (ifm_h, ifm_w, channels, simd, k_h, k_w, stride_h, stride_w, dtype)
CASES = {
    "k3_simd_lt_ch": (5, 6, 4, 2, 3, 3, 1, 1, "INT3"),
    "k1": (3, 4, 3, 3, 1, 1, 1, 1, "UINT2"),
    "k_eq_h": (4, 5, 2, 1, 4, 3, 1, 2, "BINARY"),
    "stride2_trailing_row": (8, 8, 2, 2, 3, 3, 2, 2, "UINT4"),
    "one_row": (1, 8, 2, 1, 1, 3, 1, 2, "INT2"),
    "pool_like_k2_s2": (6, 4, 3, 3, 2, 2, 2, 2, "UINT3"),
    "stride_gt_k": (7, 7, 1, 1, 2, 2, 3, 3, "INT4"),
}


def _layer(case: str) -> SWG:
    h, w, c, simd, kh, kw, sh, sw, dt = CASES[case]
    return SWG(name=case, ifm_h=h, ifm_w=w, channels=c, simd=simd, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
               input_dtype=dt, output_dtype=dt)


def finn_swg(layer: SWG):
    """A one-node FINN graph holding the ConvolutionInputGenerator that `layer` stands for."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    ishape = (1, layer.ifm_h, layer.ifm_w, layer.channels)
    oshape = (1, layer.ofm_h, layer.ofm_w, layer.out_channels)
    node = helper.make_node(
        "ConvolutionInputGenerator", ["inp"], ["out"], domain="finn.custom_op.fpgadataflow",
        backend="fpgadataflow", name="ConvolutionInputGenerator_0", ConvKernelDim=[layer.k_h, layer.k_w],
        IFMChannels=layer.channels, IFMDim=[layer.ifm_h, layer.ifm_w], OFMDim=[layer.ofm_h, layer.ofm_w],
        SIMD=layer.simd, Stride=[layer.stride_h, layer.stride_w], Dilation=[1, 1],
        inputDataType=layer.input_dtype, outputDataType=layer.output_dtype, depthwise=layer.depthwise)
    graph = helper.make_graph([node], "swg", [helper.make_tensor_value_info("inp", TensorProto.FLOAT, ishape)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, oshape)])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_tensor_datatype("inp", DataType[layer.input_dtype])
    return model


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_equals_finn_execution(case):
    """FINN's python execution of the node (qonnx Im2Col) == the kind's reference, and from_finn reads the
    node back into the same layer."""
    from finn.core.onnx_exec import execute_onnx

    layer = _layer(case).model_copy(update={"name": "ConvolutionInputGenerator_0"})
    model = finn_swg(layer)
    node = model.graph.node[0]
    assert SWG.from_finn(model, node, finn_attrs(node), None) == layer
    x = graphs.random_inputs(np.random.default_rng(1), layer.input_dtype, 3, layer.ifm_h * layer.ifm_w * layer.channels)
    for row in x:
        img = row.reshape(1, layer.ifm_h, layer.ifm_w, layer.channels).astype(np.float32)
        finn = execute_onnx(model, {"inp": img})["out"]
        assert finn.shape == (1, layer.ofm_h, layer.ofm_w, layer.out_channels)
        assert np.array_equal(layer.reference(row[None]).ravel(), finn.ravel().astype(np.int64))


def test_window_order_is_kh_kw_channel():
    """One hand-made image: window (0, 1) of a 2x2 kernel is pixels (0,1), (0,2), (1,1), (1,2), channels inner."""
    layer = SWG(name="s", ifm_h=2, ifm_w=3, channels=2, k_h=2, k_w=2, input_dtype="UINT8", output_dtype="UINT8")
    img = np.arange(12).reshape(1, -1)  # pixel (r, c) channel ch = (r*3 + c)*2 + ch
    y = layer.reference(img).reshape(layer.ofm_h * layer.ofm_w, -1)
    assert y[1].tolist() == [2, 3, 4, 5, 8, 9, 10, 11]


def test_from_finn_refuses_dilation():
    from common.errors import UserError

    model = finn_swg(_layer("k1"))
    node = model.graph.node[0]
    attrs = {**finn_attrs(node), "Dilation": [2, 2]}
    with pytest.raises(UserError, match="dilation"):
        SWG.from_finn(model, node, attrs, None)


def test_fold_options_are_divisors_of_channels():
    layer = _layer("k3_simd_lt_ch")
    assert [o["simd"] for o in layer.fold_options()] == [1, 2, 4]
    with pytest.raises(Exception, match="does not divide"):
        layer.folded(simd=3)


def _run(layer, tmp_path, build_root, sim="icarus", n=4, seed=1):
    rng = np.random.default_rng(seed)
    x = graphs.random_inputs(rng, layer.input_dtype, n, layer.ifm_h * layer.ifm_w * layer.channels)
    res = run_layer_block(layer, x, sim, build_root, tmp_path, seed=seed)
    assert res["mismatches"] == 0 and res["frames"] == n
    return res


def _check_rate(layer, res):
    """Back to back without stalls, a frame takes the longer side (reading the image, writing the windows):
    the line buffer fills the next frame's first rows while the last windows go out (measured: at most 3
    cycles more, on a 4x5 image with a 4x3 window)."""
    assert layer.cycles() <= res["cycles_per_frame"] <= layer.cycles() + max(4, 0.05 * layer.cycles()), res


@pytest.mark.sim
@pytest.mark.parametrize("case", sorted(CASES))
def test_swg_block(case, tmp_path, build_root):
    layer = _layer(case)
    res = _run(layer, tmp_path, build_root)
    _check_rate(layer, res)


@pytest.mark.sim
@pytest.mark.parametrize("case", ["k3_simd_lt_ch", "stride2_trailing_row", "one_row"])
def test_swg_block_verilator(case, tmp_path, build_root):
    layer = _layer(case)
    _check_rate(layer, _run(layer, tmp_path, build_root, sim="verilator", n=6, seed=2))


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("simd_div", [1, 0])
def test_swg_sweep(case, simd_div, sim, tmp_path, build_root):
    layer = _layer(case)
    layer = layer.folded(simd=1 if simd_div else layer.channels)
    _check_rate(layer, _run(layer, tmp_path, build_root, sim=sim, n=8, seed=3))


@pytest.mark.sim
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_mvau_takes_windows_as_vectors(sim, tmp_path, build_root):
    """A convolution's MVAU: MW = k_h k_w C, one frame = oh * ow consecutive window vectors, weights reused."""
    swg = _layer("k3_simd_lt_ch")
    nv = swg.ofm_h * swg.ofm_w
    layer = graphs.mvau(np.random.default_rng(7), "conv", "int", 6, swg.out_channels, 3, 6, swg.input_dtype,
                        "INT2", nt=3, weight_memory="rom").model_copy(update={"num_vectors": nv})
    images = graphs.random_inputs(np.random.default_rng(8), swg.input_dtype, 3,
                                  swg.ifm_h * swg.ifm_w * swg.channels)
    windows = swg.reference(images)
    assert windows.shape == (3, nv * layer.mw)
    y = layer.reference(windows)
    per_vector = np.vstack([layer.model_copy(update={"num_vectors": 1}).reference(w.reshape(nv, -1)).ravel()
                            for w in windows])
    assert np.array_equal(y, per_vector)
    res = run_layer_block(layer, windows, sim, build_root, tmp_path, seed=4)
    assert res["mismatches"] == 0 and res["frames"] == 3
    assert res["cycles_per_frame"] == layer.cycles() == nv * (layer.mh // layer.pe) * (layer.mw // layer.simd)


def test_line_buffer_is_priced_as_memory():
    from hw.estimate import block_features

    small = _layer("k3_simd_lt_ch")
    big = SWG(name="b", ifm_h=32, ifm_w=32, channels=64, k_h=3, k_w=3, simd=1, input_dtype="UINT2",
              output_dtype="UINT2")
    for layer, brams in ((small, 0), (big, 2)):  # 6 rows x 32 x 64 x 2 bits: two DP16KD (8,192 x 2)
        rtl = layer.rtl(dtype_fmt(layer.input_dtype), "s")
        bf = block_features(rtl.module, rtl.params, "ecp5")
        buf = next(m for m in bf["memories"] if m["role"] == "line_buffer")
        assert buf["depth"] == layer.rows * layer.ifm_w * layer.channels // layer.simd
        assert bf["brams"] == brams
    assert out_dim(8, 3, 2) == 3


def synth_vs_estimate(layer, tmp_path) -> tuple[dict, dict]:
    """Yosys synth_ecp5 of the layer's block (bench.rtl_bench.synth_layer) and hw.estimate's numbers for it."""
    from bench.rtl_bench import synth_layer
    from hw.estimate import COEFFS, block_features, linear

    fmt = dtype_fmt(layer.input_dtype)
    measured = synth_layer(layer, fmt, "ecp5", tmp_path)
    rtl = layer.rtl(fmt, "blk")
    bf = block_features(rtl.module, rtl.params, "ecp5")
    est = {"luts": linear(COEFFS["ecp5"]["luts"], bf["features"]), "brams": bf["brams"]}
    return measured, est


@pytest.mark.bitstream
@pytest.mark.parametrize("shape,brams", [
    ((28, 28, 1, 1, 5, 8, "UINT8"), 1),     # LeNet-5 conv1: 10 rows x 28 x 8 bits, one DP16KD
    ((12, 12, 1, 1, 3, 8, "UINT8"), 0),     # 6 rows x 12 x 8 bits: distributed RAM
    ((30, 30, 64, 1, 3, 1, "BINARY"), 1),   # CNV conv2: 6 rows x 30 x 64 beats of 1 bit, one DP16KD
])
def test_ecp5_synthesis_places_the_line_buffer_as_estimated(shape, brams, tmp_path):
    """Measured (Yosys 0.70) with line buffers of 4 rows: LeNet conv1 391 LUTs, 101 FFs, 24 DPR16X4; CNV conv2 338
    LUTs, 119 FFs, 1 DP16KD; with 10 rows LeNet conv1 takes a DP16KD, as the estimate says."""
    h, w, c, simd, k, _, dt = shape
    layer = SWG(name="s", ifm_h=h, ifm_w=w, channels=c, simd=simd, k_h=k, k_w=k, input_dtype=dt, output_dtype=dt)
    measured, est = synth_vs_estimate(layer, tmp_path)
    assert measured["brams"] == est["brams"] == brams
    if brams == 0:  # the line buffer in distributed RAM (with one, small FIFOs may still take a few cells)
        assert measured["lutram_cells"] > 0
    assert 0.6 * est["luts"] <= measured["luts"] <= 1.6 * est["luts"], (measured, est)


def test_finn_lowered_padded_conv_is_pad_swg_mvau():
    """A padded 3x3 Conv through qonnx's LowerConvsToMatMul, FINN's InferConvInpGen and
    InferQuantizedMatrixVectorActivation: the HW nodes between the layout Transposes read through the registry
    as pad, swg and an MVAU with num_vectors = OH*OW, and their references chained equal the Conv itself."""
    from finn.core.onnx_exec import execute_onnx
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
        InferQuantizedMatrixVectorActivation)
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul
    from qonnx.util.basic import qonnx_make_model

    from hw import kinds

    c, h, w, m, k, s = 2, 6, 5, 4, 3, 2
    oh, ow = (h + 2 - k) // s + 1, (w + 2 - k) // s + 1
    conv = helper.make_node("Conv", ["inp", "W"], ["out"], kernel_shape=[k, k], pads=[1, 1, 1, 1], strides=[s, s],
                            group=1, dilations=[1, 1])
    graph = helper.make_graph([conv], "conv", [helper.make_tensor_value_info("inp", TensorProto.FLOAT, (1, c, h, w))],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, (1, m, oh, ow))])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("W", np.random.default_rng(5).integers(-2, 2, (m, c, k, k)).astype(np.float32))
    model.set_tensor_datatype("inp", DataType["UINT3"])
    model.set_tensor_datatype("W", DataType["INT2"])
    model = model.transform(InferShapes()).transform(InferDataTypes())
    hw_model = model.transform(LowerConvsToMatMul()).transform(InferConvInpGen())
    hw_model = hw_model.transform(InferQuantizedMatrixVectorActivation())
    ops = [n.op_type for n in hw_model.graph.node]
    assert ops == ["Transpose", "FMPadding", "ConvolutionInputGenerator", "MVAU", "Transpose"]
    layers, dtype = [], None
    for node in hw_model.graph.node[1:-1]:
        layer = kinds.for_finn_op(node.op_type).from_finn(hw_model, node, finn_attrs(node), dtype)
        dtype = layer.stream_dtype
        layers.append(layer)
    pad, swg, mvau = layers
    assert (pad.kind, swg.kind, mvau.kind) == ("pad", "swg", "mvau")
    assert (swg.stride_h, swg.out_channels, swg.out_vectors) == (s, mvau.mw, mvau.num_vectors)
    assert mvau.num_vectors == oh * ow and mvau.cycles() == oh * ow * m * k * k * c
    x = graphs.random_inputs(np.random.default_rng(6), "UINT3", 3, c * h * w)
    for row in x:
        nchw = row.reshape(1, c, h, w).astype(np.float32)
        y = nchw.transpose(0, 2, 3, 1).reshape(1, -1).astype(np.int64)
        for layer in layers:
            y = layer.reference(y)
        want = execute_onnx(model, {"inp": nchw})["out"].transpose(0, 2, 3, 1).ravel()
        assert np.array_equal(y.ravel(), want.astype(np.int64))
