"""The report states what the board delivers through its UART next to the accelerator's own frames/s."""
import json

import pytest

from hw.report import uart_frames_per_second, write_report


@pytest.mark.parametrize("board, mhz", [("icebreaker", 12), ("ulx3s-85f", 25), ("tangnano9k", 27)])
def test_uart_rate_at_the_board_clock(board, mhz):
    divider = round(mhz * 1e6 / 115200)  # the board top's clocks per bit
    got = uart_frames_per_second(board, 64)
    assert got["baud"] == pytest.approx(mhz * 1e6 / divider)
    # header + 64 pixel bytes in, 1 class byte back, 10 bits each
    assert got["fps"] == pytest.approx(mhz * 1e6 / divider / (10 * 66))


def test_boards_without_a_uart_have_no_uart_rate():
    assert uart_frames_per_second("pynq-z2", 64) is None and uart_frames_per_second(None, 64) is None


def test_report_has_the_uart_row(tmp_path):
    run, hw = tmp_path, tmp_path / "hw"
    hw.mkdir()
    (run / "metrics.json").write_text(json.dumps({"name": "n", "test_accuracy": 0.9, "weight_bits_total": 10,
                                                  "compression_vs_float32": 32}))
    (run / "export.json").write_text(json.dumps({"vectors": 5}))
    layer = {"name": "MVAU_0", "kind": "mvau", "mh": 10, "mw": 784, "pe": 1, "simd": 1, "weight_dtype": "BINARY",
             "input_dtype": "UINT1", "output_dtype": "UINT4", "expected_cycles": 700, "finn_exp_cycles": 700,
             "finn_est_luts": 100}
    (hw / "compile.json").write_text(json.dumps({
        "expected_cycles_per_frame": 700, "layers": [layer], "reference_vs_finn_vectors": 5, "board": None,
        "hw_input": {"dtype": "UINT1", "shape": [784]}}))
    (hw / "bitstream.json").write_text(json.dumps({
        "board": "ulx3s-85f", "device": "x", "luts": 1, "ffs": 1, "brams": 0, "dsps": 0, "fmax_mhz": 70.0,
        "target_mhz": 25, "meets_timing": True, "seconds": 1, "sha256": "0" * 64}))
    write_report(run, hw)
    md = (run / "report.md").read_text()
    row = next(line for line in md.splitlines() if "through the board's UART" in line)
    uart_fps = 25e6 / round(25e6 / 115200) / (10 * (1 + 784 + 1))
    assert f"{uart_fps:.3g}" in row and "786 bytes" in row
    assert f"the board delivers {uart_fps:.3g}" in row  # far below 70 MHz / 700 cycles = 100,000 frames/s
