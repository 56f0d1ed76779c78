"""The UART board top in RTL simulation: framed bytes in through a UART model, class bytes out, equal to
the numpy reference on every frame, with random gaps between host bytes and noise between frames."""
import numpy as np
import pytest

from hw.board_top import HEADER, RTL_DIR, WRAPPER_RTL, render_board_top, stream_shape
from hw.driver import encode_frame
from hw.ir import Graph, dtype_range
from hw.kinds.label_select import LabelSelect
from hw.layer_rtl import dtype_fmt
from hw.reference import run_graph
from sim.runner import run

CLKS_PER_BIT = 8  # a fast UART keeps the simulation short; the RTL is the same at 104..234 on boards


def label_select_graph(channels: int, pe: int, dtype: str) -> Graph:
    out = f"UINT{max(1, (channels - 1).bit_length())}"
    return Graph(input_dtype=dtype, input_shape=[channels],
                 layers=[LabelSelect(name="top1", channels=channels, pe=pe, input_dtype=dtype, output_dtype=out)])


def inputs_with_edge_cases(rng, n: int, channels: int, dtype: str) -> np.ndarray:
    lo, hi = dtype_range(dtype)
    x = rng.integers(lo, hi + 1, size=(n, channels))
    x[0] = lo  # all tied: index 0 wins
    x[1] = lo
    x[1, -1] = hi  # maximum in the last lane of the last beat
    x[2] = hi  # all tied at the top
    return x


def host_bytes(x: np.ndarray, elem_bits: int, rng) -> list[list[int]]:
    """Payload bytes as the host driver sends them, with random upper bits the bridge must ignore."""
    frames = []
    for vec in x:
        payload = list(encode_frame(vec, elem_bits)[1:])
        if elem_bits < 8:
            payload = [b | (int(rng.integers(0, 256)) & ~((1 << elem_bits) - 1) & 0xFF) for b in payload]
        frames.append(payload)
    return frames


def simulate(tmp_path, build_root, sim: str, graph: Graph, n: int, seed: int, corrupt: bool = False):
    rng = np.random.default_rng(seed)
    shape = stream_shape(graph)
    layer = graph.layers[0]
    rtl = layer.rtl(dtype_fmt(graph.input_dtype), "ls")
    top = tmp_path / "pqhw_board_top.sv"
    top.write_text(render_board_top(shape, clks_per_bit=CLKS_PER_BIT, clock_mhz=100, baud=12_500_000,
                                    title="simulation", accel_module=rtl.module, accel_params=rtl.params))
    x = inputs_with_edge_cases(rng, n, layer.channels, graph.input_dtype)
    expected = run_graph(graph, x)[:, 0]
    config = {"clks_per_bit": CLKS_PER_BIT, "header": HEADER, "frames": host_bytes(x, shape.elem_bits, rng),
              "expected": [int(c) ^ int(corrupt) for c in expected], "max_gap_bits": 3, "noise": 2, "seed": seed}
    sources = [RTL_DIR / f"{rtl.module}.sv"] + [RTL_DIR / f for f in WRAPPER_RTL] + [top]
    return run(sim, "pqhw_board_top", sources, {}, "tb_uart_bridge", build_root, tmp_path / "run", config,
               seed=seed), expected


@pytest.mark.sim
@pytest.mark.parametrize("channels,pe,dtype", [(10, 2, "INT4"), pytest.param(10, 5, "UINT8", marks=pytest.mark.slow),
                                                (4, 1, "INT2")])
def test_board_top_classifies_like_the_reference_verilator(tmp_path, build_root, channels, pe, dtype):
    result, expected = simulate(tmp_path, build_root, "verilator", label_select_graph(channels, pe, dtype),
                                n=24, seed=channels + pe)
    assert result["mismatches"] == 0 and result["received"] == [int(c) for c in expected]
    assert not result["uart_errors"]
    # The answer byte follows the last payload byte within about one byte time plus the accelerator latency.
    assert max(result["latency_cycles"]) < 12 * CLKS_PER_BIT + 40


@pytest.mark.sim
def test_board_top_classifies_like_the_reference_icarus(tmp_path, build_root):
    result, expected = simulate(tmp_path, build_root, "icarus", label_select_graph(10, 2, "INT4"), n=12, seed=7)
    assert result["mismatches"] == 0 and result["received"] == [int(c) for c in expected]


@pytest.mark.sim
def test_scoreboard_reports_a_wrong_class(tmp_path, build_root):
    with pytest.raises(AssertionError, match="frames"):
        simulate(tmp_path, build_root, "verilator", label_select_graph(10, 2, "INT4"), n=4, seed=3, corrupt=True)


def simulate_network(tmp_path, build_root, graph: Graph, n: int, seed: int):
    """The emitted accelerator for `graph` inside the board top, as `pqhw bitstream` builds it."""
    from boards.registry import get_board
    from hw.board_top import board_sources
    from hw.emit import emit

    rng = np.random.default_rng(seed)
    hw_dir = tmp_path / "hw"
    emit(graph, hw_dir)
    graph.save(hw_dir / "graph.json")
    sources, top, memories = board_sources(hw_dir, get_board("icebreaker"), tmp_path / "top", clks=CLKS_PER_BIT)
    shape = stream_shape(graph)
    lo, hi = dtype_range(graph.input_dtype)
    x = rng.integers(lo, hi + 1, size=(n, shape.frame_elems))
    expected = run_graph(graph, x)[:, 0]
    config = {"clks_per_bit": CLKS_PER_BIT, "header": HEADER, "frames": host_bytes(x, shape.elem_bits, rng),
              "expected": [int(c) for c in expected], "max_gap_bits": 2, "noise": 1, "seed": seed}
    result = run("verilator", top, sources, {}, "tb_uart_bridge", build_root, tmp_path / "run", config,
                 data_files={p.name: p.read_text() for p in memories}, seed=seed)
    return result, expected


@pytest.mark.sim
@pytest.mark.parametrize("weight_memory", ["const", pytest.param("rom", marks=pytest.mark.slow)])
def test_emitted_network_behind_the_uart_matches_the_reference(tmp_path, build_root, weight_memory):
    from sim.graphs import mlp

    graph = mlp(5, "xnor", [64, 32, 10], [(8, 16), (5, 8)], "BINARY", "BINARY", "BINARY",
                weight_memory=weight_memory)
    result, expected = simulate_network(tmp_path, build_root, graph, n=16, seed=5)
    assert result["mismatches"] == 0 and result["received"] == [int(c) for c in expected]
    assert len(set(result["received"])) > 1  # the classes actually vary across images
