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


# Line faults (uart_stream_bridge.sv, "Recovery"): each case is a host script of steps; a step sends bytes
# (some with a low stop bit, optionally raw bit levels after them), leaves the line idle for wait_bits and
# names the class bytes it must be answered with. The script passes only if the board answers exactly the
# good frames, in order, with their reference classes, and nothing arrives for a broken frame.
TIMEOUT_BITS = 40  # quiet bit times that end an incomplete frame; short, so the simulation stays short
QUIET = TIMEOUT_BITS + 20  # what a host waits after a frame that got no answer


def fault_cases(x: np.ndarray, classes: list[int], elem_bits: int) -> dict[str, list[dict]]:
    """Host scripts, one per fault; frames[i] is the header and payload of image i, classes[i] its answer."""
    frames = [list(encode_frame(v, elem_bits)) for v in x]

    def good(i, wait=QUIET, name="good"):
        return {"name": name, "bytes": frames[i], "wait_bits": wait, "expect": [classes[i]]}

    def broken(byte_list, name, **kw):
        return {"name": name, "bytes": byte_list, "wait_bits": QUIET, "expect": [], **kw}

    looks_like_header = [HEADER, frames[1][1], HEADER] + frames[1][3:]  # elements 0 and 2 are 5: byte 0xA5
    return {
        "short_frame": [good(0), broken(frames[1][:6], "header and 5 of 10 elements"), good(2)],
        "header_only": [good(0), broken([HEADER], "header, nothing after it"), good(3)],
        "cut_off_mid_byte": [good(0), broken(frames[1][:5] + [], "cut in a byte", tail=[0, 1, 0, 1]), good(4)],
        "line_held_low": [good(0), broken(frames[1][:4], "line low for 30 bits", tail=[0] * 30), good(5)],
        "bad_stop_in_payload": [good(0), broken(frames[1], "bad stop bit on element 3", bad_stop=[4]), good(6)],
        "bad_stop_on_last_byte": [good(0), broken(frames[1], "bad stop bit on the last element", bad_stop=[10]),
                                  good(7)],
        "bad_stop_on_header": [good(0), broken(looks_like_header, "bad stop bit on the header, 0xA5 in the payload",
                                               bad_stop=[0]), good(8)],
        # A frame sent right after a fault, before the line was quiet, is discarded too; the next one is not.
        "frame_too_soon_after_fault": [good(0), {**broken(frames[1], "bad stop bit", bad_stop=[2]), "wait_bits": 0},
                                       broken(frames[2], "good frame with no quiet before it"), good(9)],
        # Full duplex: each frame starts while the previous answer is on the line; noise bytes during an answer.
        "bytes_during_reply": [good(0, wait=0), good(1, wait=0), good(2, wait=0),
                               {"name": "noise during the answer", "bytes": [0x00, 0x13, 0xFF], "expect": []},
                               good(3, wait=0), good(4)],
    }


def fault_graph() -> Graph:
    return label_select_graph(10, 2, "INT4")


def fault_inputs(n: int = 10) -> np.ndarray:
    x = np.random.default_rng(11).integers(-8, 8, size=(n, 10))
    x[1, 0] = x[1, 2] = 5  # frame 1 as bytes: 0xA5, e1, 0x05, ... ; with its header lost, e0 | 0xA0 reads 0xA5
    return x


def run_script(tmp_path, build_root, sim: str, graph: Graph, steps: list[dict]) -> dict:
    shape = stream_shape(graph)
    layer = graph.layers[0]
    rtl = layer.rtl(dtype_fmt(graph.input_dtype), "ls")
    top = tmp_path / "pqhw_board_top.sv"
    top.write_text(render_board_top(shape, clks_per_bit=CLKS_PER_BIT, clock_mhz=100, baud=12_500_000,
                                    title="simulation", accel_module=rtl.module, accel_params=rtl.params,
                                    timeout_bits=TIMEOUT_BITS))
    sources = [RTL_DIR / f"{rtl.module}.sv"] + [RTL_DIR / f for f in WRAPPER_RTL] + [top]
    config = {"clks_per_bit": CLKS_PER_BIT, "header": HEADER, "steps": steps}
    return run(sim, "pqhw_board_top", sources, {}, "tb_uart_bridge", build_root, tmp_path / "run", config)


def fault_script(case: str) -> tuple[list[dict], list[int]]:
    graph = fault_graph()
    x = fault_inputs()
    classes = [int(c) for c in run_graph(graph, x)[:, 0]]
    steps = fault_cases(x, classes, stream_shape(graph).elem_bits)[case]
    return steps, [c for s in steps for c in s["expect"]]


FAULTS = list(fault_cases(fault_inputs(), list(range(10)), 4))


@pytest.mark.sim
@pytest.mark.parametrize("case", FAULTS)
def test_bridge_recovers_from_line_faults_verilator(tmp_path, build_root, case):
    steps, expected = fault_script(case)
    result = run_script(tmp_path, build_root, "verilator", fault_graph(), steps)
    assert result["received"] == expected and not result["uart_errors"]


@pytest.mark.sim
def test_bridge_recovers_from_line_faults_icarus(tmp_path, build_root):
    steps, expected = [], []
    for case in ("short_frame", "cut_off_mid_byte", "bad_stop_on_header", "frame_too_soon_after_fault",
                 "bytes_during_reply"):
        s, e = fault_script(case)
        steps += s
        expected += e
    result = run_script(tmp_path, build_root, "icarus", fault_graph(), steps)
    assert result["received"] == expected


@pytest.mark.sim
def test_script_reports_an_answer_to_a_broken_frame(tmp_path, build_root):
    # The same short frame, but the script claims it is answered: the run must fail on the count.
    steps, _ = fault_script("short_frame")
    steps[1] = {**steps[1], "expect": [steps[2]["expect"][0]]}
    with pytest.raises(AssertionError, match="step 1"):
        run_script(tmp_path, build_root, "verilator", fault_graph(), steps)


@pytest.mark.sim
def test_overrun_behind_a_slow_accelerator_drops_that_frame_only(tmp_path, build_root):
    # 128 neurons x 16 inputs, one multiply per cycle: 2048 cycles per image, while the UART delivers a frame
    # in 17 byte times (1360 cycles). Frames sent back to back outrun it: the receiver overruns, that frame
    # and the bytes until the line is quiet are dropped, and the frames before and after are answered.
    from hw.board_top import accelerator_sources
    from hw.emit import emit
    from sim.graphs import mlp

    graph = mlp(5, "xnor", [16, 128, 10], [(1, 1), (1, 1)], "BINARY", "BINARY", "BINARY")
    hw_dir = tmp_path / "hw"
    emit(graph, hw_dir)
    top = tmp_path / "pqhw_board_top.sv"
    top.write_text(render_board_top(stream_shape(graph), clks_per_bit=CLKS_PER_BIT, clock_mhz=100,
                                    baud=12_500_000, title="simulation", timeout_bits=TIMEOUT_BITS))
    x = np.random.default_rng(5).integers(0, 2, size=(5, 16))
    classes = [int(c) for c in run_graph(graph, x)[:, 0]]
    assert len(set(classes[:2])) == 2 and len(set(classes[3:])) == 2  # a shifted answer would show
    frames = [list(encode_frame(v, 1)) for v in x]
    # The accelerator holds one image at a time: the second frame arrives while the first is computed, the
    # bridge's beat register fills, and the receiver overruns.
    steps = [{"name": "first", "bytes": frames[0], "expect": [classes[0]]},
             {"name": "second, overruns", "bytes": frames[1], "expect": []},
             {"name": "third, no quiet before it", "bytes": frames[2], "wait_bits": 1500, "expect": []},
             {"name": "after the quiet", "bytes": frames[3], "wait_bits": 600, "expect": [classes[3]]},
             {"name": "and the next", "bytes": frames[4], "wait_bits": 600, "expect": [classes[4]]}]
    sources = accelerator_sources(hw_dir) + [RTL_DIR / f for f in WRAPPER_RTL] + [top]
    config = {"clks_per_bit": CLKS_PER_BIT, "header": HEADER, "steps": steps}
    memories = {p.name: p.read_text() for p in (hw_dir / "rtl").glob("*.mem*")}
    result = run("verilator", "pqhw_board_top", sources, {}, "tb_uart_bridge", build_root, tmp_path / "run", config,
                 data_files=memories)
    assert result["received"] == [classes[0], classes[3], classes[4]]
