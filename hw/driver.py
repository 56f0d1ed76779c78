"""Host side of the board's UART protocol, and `pqhw infer --port /dev/ttyUSBx IMAGES`.

Frame to the board: header byte 0xA5, then one byte per input element (the element's two's complement low
bits); answer: one byte, the class index. The serial port is opened with os/termios (raw 8N1, no flow
control), so no serial library is needed.
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
    x = images.reshape(-1, elems)
    if np.issubdtype(x.dtype, np.floating):
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
        try:
            self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
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

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def read(self, n: int, timeout: float) -> bytes:
        out = b""
        end = time.monotonic() + timeout
        while len(out) < n:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                break
            out += os.read(self.fd, n - len(out))
        return out

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def classify(port: SerialPort, inputs: np.ndarray, elem_bits: int, timeout: float = 2.0) -> list[int]:
    """Send each input vector as one frame and read its class byte back, one frame at a time."""
    classes = []
    for i, vec in enumerate(inputs):
        port.write(encode_frame(vec, elem_bits))
        answer = port.read(1, timeout)
        if not answer:
            # A frame lost on the line leaves the board mid-frame: zero bytes complete it, the surplus is ignored.
            port.write(bytes(len(vec)))
            port.read(1, timeout)
            raise UserError(f"image {i}: no answer from the board within {timeout:g} s; check the port, the baud "
                            f"rate and that the bitstream is loaded")
        classes.append(answer[0])
    return classes


@click.command("infer")
@click.argument("images", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--port", required=True, help="Serial port of the board, e.g. /dev/ttyUSB1.")
@click.option("--hw", "hw_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Compiled accelerator directory (holds graph.json).")
@click.option("--baud", default=115200, show_default=True)
@click.option("--timeout", default=2.0, show_default=True, help="Seconds to wait for each answer.")
def cli(images: Path, port: str, hw_dir: Path, baud: int, timeout: float):
    """Classify IMAGES (.npy, or .npz with x and y) on a board running a pqhw bitstream."""
    from hw.reference import run_graph

    graph = Graph.load(hw_dir / "graph.json")
    shape = stream_shape(graph)
    raw, labels = load_images(images)
    inputs = images_to_inputs(raw, graph)
    with SerialPort(port, baud) as ser:
        start = time.monotonic()
        classes = classify(ser, inputs, shape.elem_bits, timeout)
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
