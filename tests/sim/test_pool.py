"""pqhw_pool (max over window streams) against the reference, and the reference against FINN: a one-node Pool
graph, and a max-pool taken through FINN's own InferPool + InferConvInpGen into swg + pool layers."""
import numpy as np
import pytest

from common.dtypes import dtype_range
from hw.kinds.base import finn_attrs
from hw.kinds.pool import Pool
from sim import graphs
from sim.blocks import run_layer_block

# (channels, pe, k_h, k_w, ofm_h, ofm_w, dtype)
CASES = {
    "k2_pe1": (4, 1, 2, 2, 2, 3, "UINT2"),
    "k2_pe_eq_ch": (3, 3, 2, 2, 3, 2, "INT4"),
    "k3_pe2_signed": (6, 2, 3, 3, 2, 2, "INT3"),
    "k1": (2, 1, 1, 1, 2, 2, "UINT3"),
    "binary_one_row": (5, 5, 1, 2, 1, 4, "BINARY"),
}


def _layer(case: str) -> Pool:
    c, pe, kh, kw, oh, ow, dt = CASES[case]
    return Pool(name=case, channels=c, pe=pe, k_h=kh, k_w=kw, ofm_h=oh, ofm_w=ow, input_dtype=dt, output_dtype=dt)


def _model(nodes, ishape, oshape, dtype):
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    graph = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("inp", TensorProto.FLOAT, ishape)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, oshape)])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_tensor_datatype("inp", DataType[dtype])
    return model


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_equals_finn_pool_node(case):
    from finn.core.onnx_exec import execute_onnx
    from onnx import helper

    layer = _layer(case).model_copy(update={"name": "Pool_0"})
    ishape = (1, layer.ofm_h, layer.ofm_w, layer.in_channels)
    node = helper.make_node(
        "Pool", ["inp"], ["out"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow", name="Pool_0",
        Channels=layer.channels, PE=layer.pe, KernelSize=[layer.k_h, layer.k_w], Function="MaxPool",
        OutImgDims=[layer.ofm_h, layer.ofm_w], InputDataType=layer.input_dtype, OutputDataType=layer.output_dtype)
    model = _model([node], ishape, (1, layer.ofm_h, layer.ofm_w, layer.channels), layer.input_dtype)
    assert Pool.from_finn(model, node, finn_attrs(node), None) == layer
    x = graphs.random_inputs(np.random.default_rng(2), layer.input_dtype, 3, int(np.prod(ishape)))
    for row in x:
        finn = execute_onnx(model, {"inp": row.reshape(ishape).astype(np.float32)})["out"]
        assert np.array_equal(layer.reference(row[None]).ravel(), finn.ravel().astype(np.int64))


@pytest.mark.parametrize("h,w,c,k,s,dt", [(6, 4, 3, 2, 2, "UINT3"), (7, 5, 2, 3, 2, "INT2"), (4, 4, 1, 4, 4, "UINT2")])
def test_finn_maxpool_lowering_is_swg_then_pool(h, w, c, k, s, dt):
    """MaxPoolNHWC -> InferPool -> InferConvInpGen gives ConvolutionInputGenerator (depthwise) + Pool; read
    through the registry they are a swg and a pool layer whose references chain to FINN's result, before and
    after the lowering."""
    from finn.core.onnx_exec import execute_onnx
    from finn.transformation.fpgadataflow.convert_to_hw.conv_inp_gen import InferConvInpGen
    from finn.transformation.fpgadataflow.convert_to_hw.pool import InferPool
    from onnx import helper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    from hw.from_finn import graph_from_finn
    from hw.reference import run_graph

    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    node = helper.make_node("MaxPoolNHWC", ["inp"], ["out"], domain="qonnx.custom_op.general",
                            kernel_shape=[k, k], strides=[s, s], pads=[0, 0, 0, 0])
    model = _model([node], (1, h, w, c), (1, oh, ow, c), dt).transform(InferShapes()).transform(InferDataTypes())
    lowered = model.transform(InferPool()).transform(InferConvInpGen())
    assert [n.op_type for n in lowered.graph.node] == ["ConvolutionInputGenerator", "Pool"]
    graph = graph_from_finn(lowered)
    swg, pool = graph.layers
    assert (swg.kind, swg.depthwise, swg.k_h, swg.stride_h, pool.kind, pool.kk) == ("swg", 1, k, s, "pool", k * k)
    assert swg.out_channels == pool.in_channels and swg.out_vectors == pool.num_vectors
    x = graphs.random_inputs(np.random.default_rng(3), dt, 3, h * w * c)
    ours = run_graph(graph, x)
    for row, y in zip(x, ours):
        img = row.reshape(1, h, w, c).astype(np.float32)
        for m in (model, lowered):
            assert np.array_equal(y, execute_onnx(m, {"inp": img})["out"].ravel().astype(np.int64))


def test_from_finn_refuses_average_pooling():
    from onnx import helper

    from common.errors import UserError

    node = helper.make_node("Pool", ["inp"], ["out"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
                            name="p", Channels=2, PE=1, KernelSize=[2, 2], Function="AccPool", OutImgDims=[1, 1],
                            InputDataType="UINT2", OutputDataType="UINT4")
    model = _model([node], (1, 1, 1, 8), (1, 1, 1, 2), "UINT2")
    with pytest.raises(UserError, match="MaxPool"):
        Pool.from_finn(model, node, finn_attrs(node), None)


def _inputs(layer, n, seed):
    rng = np.random.default_rng(seed)
    lo, hi = dtype_range(layer.input_dtype)
    x = graphs.random_inputs(rng, layer.input_dtype, n, layer.num_vectors * layer.in_channels)
    return np.vstack([x, np.full((1, x.shape[1]), lo), np.full((1, x.shape[1]), hi)])  # ties at both limits


def _run(layer, tmp_path, build_root, sim="icarus", n=6, seed=1):
    x = _inputs(layer, n, seed)
    res = run_layer_block(layer, x, sim, build_root, tmp_path, seed=seed)
    assert res["mismatches"] == 0 and res["frames"] == len(x)
    assert res["cycles_per_frame"] == layer.cycles(), res
    return res


@pytest.mark.sim
@pytest.mark.parametrize("case", sorted(CASES))
def test_pool_block(case, tmp_path, build_root):
    _run(_layer(case), tmp_path, build_root)


@pytest.mark.sim
@pytest.mark.parametrize("case", ["k3_pe2_signed", "k1"])
def test_pool_block_verilator(case, tmp_path, build_root):
    _run(_layer(case), tmp_path, build_root, sim="verilator", seed=2)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_pool_sweep(case, sim, tmp_path, build_root):
    _run(_layer(case), tmp_path, build_root, sim=sim, n=12, seed=5)


@pytest.mark.bitstream
def test_ecp5_synthesis_against_estimate(tmp_path):
    """Measured (Yosys 0.70, 64 channels of UINT2, PE 1): 123 LUTs, 58 FFs, running maximum in DPR16X4."""
    from bench.rtl_bench import synth_layer
    from hw.estimate import COEFFS, block_features, linear
    from hw.layer_rtl import dtype_fmt

    layer = Pool(name="p", channels=64, pe=1, k_h=2, k_w=2, ofm_h=14, ofm_w=14, input_dtype="UINT2",
                 output_dtype="UINT2")
    fmt = dtype_fmt(layer.input_dtype)
    measured = synth_layer(layer, fmt, "ecp5", tmp_path)
    rtl = layer.rtl(fmt, "blk")
    bf = block_features(rtl.module, rtl.params, "ecp5")
    est = linear(COEFFS["ecp5"]["luts"], bf["features"])
    assert measured["brams"] == bf["brams"] == 0 and measured["lutram_cells"] > 0
    assert 0.6 * est <= measured["luts"] <= 1.6 * est, (measured, est)
