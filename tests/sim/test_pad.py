"""pqhw_pad (feature-map padding) against the reference, and the reference against FINN's python execution of
an FMPadding node, including the one InferConvInpGen puts in front of a padded convolution's window generator."""
import numpy as np
import pytest

from hw.kinds.base import finn_attrs
from hw.kinds.pad import Pad
from sim import graphs
from sim.blocks import run_layer_block

# (img_h, img_w, channels, simd, [top, left, bottom, right], dtype, value)
CASES = {
    "all_sides_simd_lt_ch": (4, 5, 4, 2, [1, 1, 1, 1], "UINT3", 0),
    "asymmetric_simd_eq_ch": (3, 3, 3, 3, [2, 0, 1, 3], "INT4", 0),
    "one_row": (1, 6, 2, 1, [0, 2, 0, 1], "BINARY", 0),
    "no_padding": (2, 3, 1, 1, [0, 0, 0, 0], "UINT2", 0),
    "constant_minus_one": (3, 2, 2, 1, [1, 2, 2, 1], "INT3", -1),
}


def _layer(case: str) -> Pad:
    h, w, c, simd, (t, left, b, r), dt, v = CASES[case]
    return Pad(name=case, img_h=h, img_w=w, channels=c, simd=simd, pad_top=t, pad_left=left, pad_bottom=b,
               pad_right=r, value=v, input_dtype=dt, output_dtype=dt)


def _model(nodes, ishape, oshape, dtype):
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    graph = helper.make_graph(nodes, "pad", [helper.make_tensor_value_info("inp", TensorProto.FLOAT, ishape)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, oshape)])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_tensor_datatype("inp", DataType[dtype])
    return model


@pytest.mark.parametrize("case", sorted(c for c in CASES if CASES[c][6] == 0))
def test_reference_equals_finn_fmpadding(case):
    from finn.core.onnx_exec import execute_onnx
    from onnx import helper

    layer = _layer(case).model_copy(update={"name": "FMPadding_0"})
    ishape = (1, layer.img_h, layer.img_w, layer.channels)
    node = helper.make_node(
        "FMPadding", ["inp"], ["out"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
        name="FMPadding_0", ImgDim=[layer.img_h, layer.img_w],
        Padding=[layer.pad_top, layer.pad_left, layer.pad_bottom, layer.pad_right], NumChannels=layer.channels,
        SIMD=layer.simd, inputDataType=layer.input_dtype)
    model = _model([node], ishape, (1, layer.out_h, layer.out_w, layer.channels), layer.input_dtype)
    assert Pad.from_finn(model, node, finn_attrs(node), None) == layer
    x = graphs.random_inputs(np.random.default_rng(2), layer.input_dtype, 3, int(np.prod(ishape)))
    for row in x:
        finn = execute_onnx(model, {"inp": row.reshape(ishape).astype(np.float32)})["out"]
        assert finn.shape == (1, layer.out_h, layer.out_w, layer.channels)
        assert np.array_equal(layer.reference(row[None]).ravel(), finn.ravel().astype(np.int64))


def test_padded_im2col_becomes_fmpadding_then_swg():
    """An Im2Col with pad_amount (as LowerConvsToMatMul writes for a padded Conv) -> InferConvInpGen ->
    FMPadding + ConvolutionInputGenerator; read through the registry, pad then swg equal FINN's result."""
    from finn.core.onnx_exec import execute_onnx
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from onnx import helper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    from hw.from_finn import graph_from_finn
    from hw.reference import run_graph

    h, w, c, k, pads = 5, 4, 2, 3, [1, 2, 1, 0]
    oh, ow = h + pads[0] + pads[2] - k + 1, w + pads[1] + pads[3] - k + 1
    node = helper.make_node("Im2Col", ["inp"], ["out"], domain="qonnx.custom_op.general", stride=[1, 1],
                            kernel_size=[k, k], pad_amount=pads, input_shape=f"(1,{h},{w},{c})")
    model = _model([node], (1, h, w, c), (1, oh, ow, k * k * c), "INT3")
    model = model.transform(InferShapes()).transform(InferDataTypes())
    lowered = model.transform(InferConvInpGen())
    assert [n.op_type for n in lowered.graph.node] == ["FMPadding", "ConvolutionInputGenerator"]
    graph = graph_from_finn(lowered)
    pad, swg = graph.layers
    assert (pad.kind, pad.pad_top, pad.pad_left, pad.pad_bottom, pad.pad_right) == ("pad", *pads)
    assert (swg.kind, swg.ifm_h, swg.ifm_w) == ("swg", pad.out_h, pad.out_w)
    x = graphs.random_inputs(np.random.default_rng(4), "INT3", 3, h * w * c)
    for row, y in zip(x, run_graph(graph, x)):
        img = row.reshape(1, h, w, c).astype(np.float32)
        for m in (model, lowered):
            assert np.array_equal(y, execute_onnx(m, {"inp": img})["out"].ravel().astype(np.int64))


def test_pad_value_must_fit_the_stream():
    from common.errors import UserError
    from hw.layer_rtl import Fmt

    layer = _layer("all_sides_simd_lt_ch").model_copy(update={"value": -1})
    with pytest.raises(UserError, match="pad value -1"):
        layer.rtl(Fmt(3, False), "p")


def _run(layer, tmp_path, build_root, sim="icarus", n=5, seed=1):
    x = graphs.random_inputs(np.random.default_rng(seed), layer.input_dtype, n, layer.num_vectors * layer.channels)
    res = run_layer_block(layer, x, sim, build_root, tmp_path, seed=seed)
    assert res["mismatches"] == 0 and res["frames"] == n
    assert res["cycles_per_frame"] == layer.cycles(), res
    return res


@pytest.mark.sim
@pytest.mark.parametrize("case", sorted(CASES))
def test_pad_block(case, tmp_path, build_root):
    _run(_layer(case), tmp_path, build_root)


@pytest.mark.sim
@pytest.mark.parametrize("case", ["all_sides_simd_lt_ch", "constant_minus_one"])
def test_pad_block_verilator(case, tmp_path, build_root):
    _run(_layer(case), tmp_path, build_root, sim="verilator", seed=2)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_pad_sweep(case, sim, tmp_path, build_root):
    _run(_layer(case), tmp_path, build_root, sim=sim, n=10, seed=5)


@pytest.mark.bitstream
def test_ecp5_synthesis_against_estimate(tmp_path):
    """Measured (Yosys 0.70, LeNet-5's 28x28 UINT8 input padded by 2): 87 LUTs, 45 FFs, no RAM."""
    from bench.rtl_bench import synth_layer
    from hw.estimate import COEFFS, block_features, linear
    from hw.layer_rtl import dtype_fmt

    layer = Pad(name="p", img_h=28, img_w=28, channels=1, pad_top=2, pad_left=2, pad_bottom=2, pad_right=2,
                input_dtype="UINT8", output_dtype="UINT8")
    fmt = dtype_fmt(layer.input_dtype)
    measured = synth_layer(layer, fmt, "ecp5", tmp_path)
    rtl = layer.rtl(fmt, "blk")
    bf = block_features(rtl.module, rtl.params, "ecp5")
    est = linear(COEFFS["ecp5"]["luts"], bf["features"])
    assert measured["brams"] == bf["brams"] == 0
    assert 0.6 * est <= measured["luts"] <= 1.6 * est, (measured, est)
