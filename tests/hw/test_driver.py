"""Host driver: frames on a real tty (a pseudo-terminal standing in for the board's USB serial port), and a
board that never answers or a port that never takes the frame: one line, exit 2, within the timeout."""
import os
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from hw.board_top import HEADER
from hw.driver import SerialPort, classify, encode_frame, images_to_inputs
from hw.driver import cli as infer_cli
from common.errors import UserError
from hw.ir import Graph
from hw.kinds.mvau import MVAU
from hw.kinds.label_select import LabelSelect
from hw.reference import run_graph


def small_graph() -> Graph:
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2, size=(10, 16)).tolist()
    return Graph(input_dtype="BINARY", input_shape=[16], layers=[
        MVAU(name="fc", mode="xnor", mh=10, mw=16, simd=4, pe=2, input_dtype="BINARY", weight_dtype="BINARY",
             acc_dtype="UINT5", output_dtype="UINT5", weights=w),
        LabelSelect(name="top1", channels=10, input_dtype="UINT5", output_dtype="UINT4")])


def fake_board(fd: int, graph: Graph, frames: int, drop_answers: bool = False) -> threading.Thread:
    """Reads header + payload frames like the bridge and answers with the reference class."""
    elems = graph.input_shape[0]

    def serve():
        buf = b""
        for _ in range(frames):
            while len(buf) < elems + 1 or buf[0] != HEADER:
                buf = buf[1:] if buf and buf[0] != HEADER else buf + os.read(fd, 64)
            payload, buf = buf[1:elems + 1], buf[elems + 1:]
            x = np.frombuffer(payload, dtype=np.uint8).astype(np.int64) & 1
            if not drop_answers:
                os.write(fd, bytes([int(run_graph(graph, x[None])[0, 0])]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_encode_frame_is_header_then_twos_complement_bytes():
    assert encode_frame([-1, 0, 1, -8, 7], 4) == bytes([0xA5, 0x0F, 0x00, 0x01, 0x08, 0x07])
    assert encode_frame(np.array([[1, 0], [0, 1]]), 1) == bytes([0xA5, 1, 0, 0, 1])


def test_float_images_go_through_the_input_scale():
    g = Graph(input_dtype="UINT4", input_shape=[2, 2], input_scale=0.5,
              layers=[LabelSelect(name="t", channels=4, input_dtype="UINT4", output_dtype="UINT2")])
    assert images_to_inputs(np.array([[[0.0, 1.0], [2.5, 7.4]]]), g).tolist() == [[0, 2, 5, 15]]
    with pytest.raises(UserError, match=r"span \[0, 16\].*UINT4 holds \[0, 15\]"):
        images_to_inputs(np.array([[0.0, 1.0, 2.0, 8.0]]), g)
    with pytest.raises(UserError, match="whole number"):
        images_to_inputs(np.zeros(6), g)


def test_classify_over_a_tty_matches_the_reference():
    graph = small_graph()
    x = np.random.default_rng(1).integers(0, 2, size=(20, 16))
    master, slave = os.openpty()
    try:
        thread = fake_board(master, graph, len(x))
        with SerialPort(os.ttyname(slave), 115200) as port:
            classes = classify(port, x, elem_bits=1, timeout=5)
        thread.join(timeout=5)
    finally:
        os.close(master)
        os.close(slave)
    assert classes == run_graph(graph, x)[:, 0].tolist()


def test_silent_board_is_a_clear_error():
    graph = small_graph()
    master, slave = os.openpty()
    try:
        fake_board(master, graph, 1, drop_answers=True)
        with SerialPort(os.ttyname(slave)) as port, pytest.raises(UserError, match="image 0: no answer"):
            classify(port, np.zeros((1, 16), dtype=int), elem_bits=1, timeout=0.3)
    finally:
        os.close(master)
        os.close(slave)


def test_infer_command_reports_agreement(tmp_path):
    graph = small_graph()
    graph.save(tmp_path / "graph.json")
    x = np.random.default_rng(2).integers(0, 2, size=(8, 16))
    y = run_graph(graph, x)[:, 0]
    np.savez(tmp_path / "images.npz", x=x, y=y)
    master, slave = os.openpty()
    try:
        fake_board(master, graph, len(x))
        result = CliRunner().invoke(infer_cli, ["--port", os.ttyname(slave), "--hw", str(tmp_path),
                                          str(tmp_path / "images.npz")])
    finally:
        os.close(master)
        os.close(slave)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [int(v) for v in lines[:8]] == y.tolist()
    assert "0 differ" in lines[-1] and "accuracy 1.0000" in lines[-1]


def test_missing_port_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot open serial port /nonexistent/ttyUSB9"):
        SerialPort("/nonexistent/ttyUSB9")


class SilentPort:
    """A stub serial port: takes every byte, never answers (a board without a bitstream, or a wrong port)."""

    def __init__(self, takes: bool = True):
        self.takes, self.written, self.waited = takes, b"", 0.0

    def write(self, data: bytes, timeout: float) -> int:
        if not self.takes:
            time.sleep(timeout)
            return 0
        self.written += data
        return len(data)

    def read(self, n: int, timeout: float) -> bytes:
        self.waited += timeout
        time.sleep(timeout)
        return b""


def test_a_board_that_never_answers_times_out_after_the_first_frame():
    port = SilentPort()
    x = np.ones((3, 16), dtype=int)
    start = time.monotonic()
    with pytest.raises(UserError, match=r"^image 0: no answer from the board within 0\.25\d* s;"):
        classify(port, x, elem_bits=1, timeout=0.25, baud=115200)
    assert time.monotonic() - start < 1.0
    # One frame only, nothing sent after it: the board drops an incomplete frame by itself.
    assert port.written == encode_frame(x[0], 1)
    # The wait covers the frame's own time on the line: 17 bytes out and 1 back, 10 bits each.
    assert port.waited == pytest.approx(0.25 + 18 * 10 / 115200)


def test_a_port_that_takes_nothing_times_out():
    with pytest.raises(UserError, match=r"^image 0: the serial port took 0 of 17 bytes"):
        classify(SilentPort(takes=False), np.ones((1, 16), dtype=int), elem_bits=1, timeout=0.1)


def test_a_tty_nobody_reads_does_not_block_the_write():
    # A pseudo-terminal whose other end is never read fills up (about 18 KB on Linux): the write must give up.
    master, slave = os.openpty()
    try:
        with SerialPort(os.ttyname(slave)) as port:
            start = time.monotonic()
            with pytest.raises(UserError, match=r"image 0: the serial port took \d+ of 40001 bytes"):
                classify(port, np.zeros((1, 40000), dtype=int), elem_bits=1, timeout=0.3, baud=4_000_000)
            assert time.monotonic() - start < 2.0
    finally:
        os.close(master)
        os.close(slave)


def test_infer_against_a_silent_board_is_one_line_and_exit_2(tmp_path, cli):
    graph = small_graph()
    graph.save(tmp_path / "graph.json")
    np.save(tmp_path / "images.npy", np.zeros((4, 16), dtype=np.int64))
    master, slave = os.openpty()  # nobody answers on the other end; the frame fits the pty's buffer
    try:
        start = time.monotonic()
        code, out, err = cli("infer", "--port", os.ttyname(slave), "--hw", tmp_path, "--timeout", "0.3",
                             tmp_path / "images.npy")
        seconds = time.monotonic() - start
    finally:
        os.close(master)
        os.close(slave)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()] and "Traceback" not in err
    assert err.startswith("error: image 0: no answer from the board within 0.3")
    assert seconds < 3


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_infer_refuses_a_timeout_that_is_not_a_positive_number(tmp_path, cli, value):
    graph = small_graph()
    graph.save(tmp_path / "graph.json")
    np.save(tmp_path / "images.npy", np.zeros((1, 16), dtype=np.int64))
    code, out, err = cli("infer", "--port", "/nonexistent/ttyUSB9", "--hw", tmp_path, "--timeout", value,
                         tmp_path / "images.npy")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--timeout" in err
