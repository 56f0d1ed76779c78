"""Host side of the board's UART protocol, and `pqhw infer --port /dev/ttyUSBx IMAGES`.

Frame to the board: header byte 0xA5, then one byte per input element (the element's two's complement low
bits); answer: one byte, the class index. The serial port is opened with os/termios (raw 8N1, no flow
control), so no serial library is needed.

Every wait is bounded: the port is opened without waiting for a carrier, a frame the port does not take
within the timeout and an answer that does not come within the timeout (plus the frame's time on the line)
end the command with one line. The board drops a frame it did not receive whole (uart_stream_bridge.sv) and
listens again once the line has been quiet, so nothing needs to be sent to resynchronise it.
"""
from __future__ import annotations

import math
import os
import select
import termios
import time
import tty
from pathlib import Path

import click
import numpy as np

from hw.board_top import HEADER, stream_shape
from common.errors import UserError
from hw.ir import Graph, dtype_range


def encode_frame(values, elem_bits: int) -> bytes:
    """Header plus one byte per element: the element's low elem_bits bits (two's complement)."""
    mask = (1 << elem_bits) - 1
    return bytes([HEADER] + [int(v) & mask for v in np.asarray(values).ravel()])


def images_to_inputs(images: np.ndarray, graph: Graph) -> np.ndarray:
    """Integer input vectors [N, elements]: integer arrays as they are, floats through the graph's input
    scale (x_int = round(x / input_scale)); values outside the input datatype are an error, not clipped."""
    images = np.asarray(images)
    elems = math.prod(graph.input_shape)
    if images.size % elems or images.ndim < 1:
        raise UserError(f"images hold {images.size} values, not a whole number of {elems}-element inputs "
                        f"(input shape {graph.input_shape})")
    if images.size == 0:
        raise UserError(f"images hold no values; give at least one {elems}-element input "
                        f"(input shape {graph.input_shape})")
    x = images.reshape(-1, elems)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_):
        raise UserError(f"images are {x.dtype} values; expected integers (or floats in the model's input scale)")
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise UserError(f"images hold {int(np.count_nonzero(~np.isfinite(x)))} NaN or infinite values; "
                            "pixels must be finite numbers")
        x = np.round(x / graph.input_scale)
    x = x.astype(np.int64)
    lo, hi = dtype_range(graph.input_dtype)
    if graph.input_dtype == "BIPOLAR" and x.min() < 0:
        x = (x + 1) // 2  # {-1, +1} values to their {0, 1} hardware codes
    if x.min() < lo or x.max() > hi:
        raise UserError(f"image values span [{x.min()}, {x.max()}]; input datatype {graph.input_dtype} "
                        f"holds [{lo}, {hi}]")
    return x


def load_images(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (and labels when present) from .npy, or .npz with arrays `x` (and `y`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: images file not found")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise UserError(f"{path}: not a .npy/.npz array file ({err})") from None
    if isinstance(data, np.ndarray):
        return data, None
    if "x" not in data:
        raise UserError(f"{path}: .npz needs an array named 'x' (and optionally 'y'); found {list(data)}")
    return data["x"], (data["y"] if "y" in data else None)


class SerialPort:
    """A tty in raw 8N1 mode at a fixed baud rate, read with a timeout."""

    def __init__(self, port: str, baud: int = 115200):
        speed = getattr(termios, f"B{baud}", None)
        if speed is None:
            raise UserError(f"baud rate {baud} is not supported by this system's termios")
        self.port, self.baud = port, baud
        try:
            # O_NONBLOCK: a tty without carrier detect would otherwise block the open forever.
            self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as err:
            raise UserError(f"cannot open serial port {port}: {err.strerror}") from None
        try:
            tty.setraw(self.fd)
            attrs = termios.tcgetattr(self.fd)
            attrs[2] = (attrs[2] & ~(termios.PARENB | termios.CSTOPB | termios.CSIZE | termios.CRTSCTS)) \
                | termios.CS8 | termios.CLOCAL | termios.CREAD
            attrs[4] = attrs[5] = speed
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
            termios.tcflush(self.fd, termios.TCIOFLUSH)
        except termios.error as err:
            os.close(self.fd)
            raise UserError(f"{port} is not a serial port ({err})") from None

    def write(self, data: bytes, timeout: float) -> int:
        """Write as much of data as the port takes within timeout seconds; return the number of bytes taken."""
        view = memoryview(data)
        end = time.monotonic() + timeout
        try:
            while view:
                left = end - time.monotonic()
                if left <= 0 or not select.select([], [self.fd], [], left)[1]:
                    break
                try:
                    view = view[os.write(self.fd, view):]
                except BlockingIOError:
                    continue
        except OSError as err:
            raise UserError(f"serial port {self.port}: write failed ({err.strerror})") from None
        return len(data) - len(view)

    def read(self, n: int, timeout: float) -> bytes:
        out = b""
        end = time.monotonic() + timeout
        try:
            while len(out) < n:
                left = end - time.monotonic()
                if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                    break
                try:
                    out += os.read(self.fd, n - len(out))
                except BlockingIOError:
                    continue
        except OSError as err:
            raise UserError(f"serial port {self.port}: read failed ({err.strerror})") from None
        return out

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def line_seconds(n_bytes: int, baud: int) -> float:
    """Time n_bytes take on an 8N1 line (10 bits each)."""
    return n_bytes * 10 / baud


def classify(port, inputs: np.ndarray, elem_bits: int, timeout: float = 2.0, baud: int = 115200) -> list[int]:
    """Send each input vector as one frame and read its class byte back, one frame at a time.

    `port` has write(data, timeout) -> bytes taken and read(n, timeout) -> bytes (SerialPort). Each frame
    must be taken by the port, and its answer must arrive, within timeout seconds plus the frame's time on
    the line at `baud`; otherwise one UserError names the image and what did not happen."""
    classes = []
    for i, vec in enumerate(inputs):
        frame = encode_frame(vec, elem_bits)
        wait = timeout + line_seconds(len(frame) + 1, baud)
        sent = port.write(frame, wait)
        if sent < len(frame):
            raise UserError(f"image {i}: the serial port took {sent} of {len(frame)} bytes within {wait:.3g} s; "
                            f"check the port and the cable")
        answer = port.read(1, wait)
        if not answer:
            raise UserError(f"image {i}: no answer from the board within {wait:.3g} s; check the port, the baud "
                            f"rate and that the bitstream is loaded")
        classes.append(answer[0])
    return classes


def _check_timeout(ctx, param, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise click.BadParameter(f"{value} is not a positive number of seconds")
    return value


@click.command("infer")
@click.argument("images", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--port", required=True, help="Serial port of the board, e.g. /dev/ttyUSB1.")
@click.option("--hw", "hw_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Compiled accelerator directory (holds graph.json).")
@click.option("--baud", default=115200, show_default=True, type=click.IntRange(min=50),
              help="Baud rate of the board's UART (8N1).")
@click.option("--timeout", default=2.0, show_default=True, type=float, callback=_check_timeout,
              help="Seconds to wait for each answer, beyond the frame's own time on the line.")
def cli(images: Path, port: str, hw_dir: Path, baud: int, timeout: float):
    """Classify IMAGES (.npy, or .npz with x and y) on a board running a pqhw bitstream."""
    from hw.reference import run_graph

    graph = Graph.load(hw_dir / "graph.json")
    shape = stream_shape(graph)
    raw, labels = load_images(images)
    inputs = images_to_inputs(raw, graph)
    with SerialPort(port, baud) as ser:
        start = time.monotonic()
        classes = classify(ser, inputs, shape.elem_bits, timeout, baud)
        seconds = time.monotonic() - start
    reference = run_graph(graph, inputs)[:, 0]
    for c in classes:
        click.echo(c)
    differ = int((np.asarray(classes) != reference).sum())
    line = f"{len(classes)} images in {seconds:.2f} s; board vs reference model: {differ} differ"
    if labels is not None:
        acc = float((np.asarray(classes) == np.asarray(labels).ravel()[: len(classes)]).mean())
        line += f"; accuracy {acc:.4f}"
    click.echo(line, err=True)
    if differ:
        raise UserError(f"{differ} of {len(classes)} board answers differ from the reference model")
