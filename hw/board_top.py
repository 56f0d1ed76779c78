"""The UART board top around a generated accelerator: stream parameters from the graph, Verilog from Jinja2.

The accelerator (`pqhw_top`, written by hw/emit.py into DIR/rtl) streams one input beat of SIMD elements at a
time and answers one class index per image; the board top feeds it from a UART and sends the class back.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import jinja2

from boards.registry import Board
from common.errors import UserError
from hw.ir import Graph

RTL_DIR = Path(__file__).resolve().parent / "rtl"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
WRAPPER_RTL = ("uart_rx.sv", "uart_tx.sv", "uart_stream_bridge.sv")
BOARD_TOP = "pqhw_board_top"
HEADER = 0xA5  # first byte of every host-to-board frame
# Bit times without a byte after which the board drops an incomplete frame and listens for HEADER again
# (uart_stream_bridge.sv); 2048 bits are 18 ms at 115,200 baud, far above the gaps a host leaves in a frame.
FRAME_TIMEOUT_BITS = 2048


@dataclass(frozen=True)
class StreamShape:
    """What the bridge must know about the accelerator's ports."""

    elem_bits: int  # bits per input element
    simd: int  # input elements per beat
    frame_elems: int  # input elements per image
    out_bits: int  # bits of the class index on the output stream
    num_classes: int

    @property
    def in_width(self) -> int:
        return self.elem_bits * self.simd


def stream_shape(graph: Graph) -> StreamShape:
    """Input/output stream shape of the accelerator hw.emit builds for this graph (which must end in a top-1
    label select, so the board answers one class per image)."""
    from hw.emit import plan

    stages = plan(graph)
    first, last = stages[0], stages[-1]
    elem_bits = first.rtl.in_fmt.bits
    if elem_bits > 8:
        raise UserError(f"input datatype {graph.input_dtype}: the UART protocol carries one element per byte, "
                        f"so inputs must be 8 bits or narrower")
    classes = graph.layers[-1].channels
    if classes > 256 or last.out_bits > 8:
        raise UserError(f"layer {graph.layers[-1].name}: {classes} classes do not fit the one-byte answer "
                        f"(at most 256)")
    frame_elems = math.prod(graph.input_shape)
    if frame_elems % first.in_n:
        raise UserError(f"layer {graph.layers[0].name}: {frame_elems} input elements are not a multiple of its "
                        f"input parallelism {first.in_n}")
    return StreamShape(elem_bits=elem_bits, simd=first.in_n, frame_elems=frame_elems, out_bits=last.out_bits,
                       num_classes=classes)


# Clock cycles per UART bit the wrapper estimate assumes: the Tang Nano 9K's 27 MHz at 115,200 baud, the largest
# ratio of the open boards (the bit-time and quiet counters widen with it: one bit per doubling).
DEFAULT_CLKS_PER_BIT = 234


def _clog2(n: int) -> int:
    return (n - 1).bit_length()


def wrapper_cost(shape: StreamShape, base: dict, clks_per_bit: int = DEFAULT_CLKS_PER_BIT) -> dict:
    """Resources of the board top around the accelerator, counted from its structure (FFs) and fitted to synthesis
    (LUTs); `base` gives what the wrapper does not use (BRAMs, DSPs), its LUT and FF numbers are not used.

    FFs: power-on reset 5; uart_rx 28 + a bit-time counter; uart_tx 15 + the same counter; the bridge's state,
    pending count and drop flag 8, its element and lane counters, the quiet counter (TIMEOUT_BITS bit times) and
    the input beat register; 2 more for Yosys' one-hot state encodings. LUTs grow with the counters (increment
    and compare). Against Yosys (synth_ice40 / synth_ecp5 of the board top around a blackbox accelerator, six
    stream shapes from 4 to 784 beat bits, tests/hw/test_wrapper_cost.py): FFs within 3, LUTs within 19 %; the
    LUT count differs between families (iCE40 SB_LUT4 164-199, ECP5 LUT4 + 2 per CCU2C 229-272) and this sits
    between them. iCE40 logic cells holding only a flip-flop of the beat register are not in `luts`."""
    counter = _clog2(clks_per_bit + 1)
    quiet = _clog2(clks_per_bit * FRAME_TIMEOUT_BITS + 1)
    elems = _clog2(shape.frame_elems + 1)
    lane = _clog2(shape.simd) if shape.simd > 1 else 0
    ffs = 5 + (28 + counter) + (15 + counter) + (8 + elems + lane + quiet) + shape.in_width + 2
    luts = 62 + 3 * (elems + lane + quiet + 2 * counter)
    return {**base, "luts": luts, "ffs": ffs}


def clks_per_bit(clock_mhz: float, baud: int) -> int:
    """Clock cycles per UART bit; refuses rates whose rounding error would corrupt bytes (> 2 %)."""
    ratio = clock_mhz * 1e6 / baud
    cycles = round(ratio)
    if cycles < 4 or abs(cycles - ratio) / ratio > 0.02:
        raise UserError(f"{baud} baud cannot be made from a {clock_mhz:g} MHz clock (ratio {ratio:.2f}); "
                        f"choose a lower baud rate")
    return cycles


def render_board_top(shape: StreamShape, *, clks_per_bit: int, clock_mhz: float, baud: int, title: str,
                     accel_module: str = "pqhw_top", accel_params: dict | None = None, clk_port: str = "clk",
                     rst_port: str = "rst", rst_active_low: bool = False,
                     timeout_bits: int = FRAME_TIMEOUT_BITS) -> str:
    """Verilog of the board top; accel_params are parameter overrides for the accelerator instance."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    return env.get_template("board_top.sv.j2").render(
        module=BOARD_TOP, board_title=title, clock_mhz=f"{clock_mhz:g}", baud=baud, header=HEADER,
        clks_per_bit=clks_per_bit, timeout_bits=timeout_bits, accel_module=accel_module,
        accel_params=accel_params or {}, clk_port=clk_port, rst_port=rst_port,
        rst_active_low=rst_active_low, **{k: v for k, v in asdict(shape).items() if k != "num_classes"})


def accelerator_sources(hw_dir: Path) -> list[Path]:
    """The accelerator's Verilog in DIR/rtl, packages first (they must be read before their users)."""
    rtl = Path(hw_dir) / "rtl"
    files = sorted(p for p in rtl.glob("*.sv") if p.is_file()) + sorted(p for p in rtl.glob("*.v") if p.is_file())
    if not files:
        raise UserError(f"{rtl}: no Verilog found; run `pqhw verify {hw_dir}`, which writes the accelerator's RTL "
                        "there from graph.json and simulates it")
    # The wrapper's own files are added by board_sources; a copy of them in DIR/rtl is not read twice.
    files = [p for p in files if p.name not in WRAPPER_RTL and p.stem != BOARD_TOP]
    return sorted(files, key=lambda p: (not p.stem.endswith("_pkg"), p.name))


def memory_images(hw_dir: Path) -> list[Path]:
    """Memory init files the accelerator reads with $readmemh (weights and thresholds of folded layers)."""
    rtl = Path(hw_dir) / "rtl"
    return sorted(p for ext in ("*.memh", "*.mem", "*.hex") for p in rtl.glob(ext) if p.is_file())


def board_sources(hw_dir: Path, board: Board, work: Path, *, baud: int | None = None,
                  clks: int | None = None) -> tuple[list[Path], str, list[Path]]:
    """Render the board top for `board` into `work`; return the sources to synthesise, the top name and the
    memory images they read."""
    hw_dir = Path(hw_dir)
    graph = Graph.load(hw_dir / "graph.json")
    shape = stream_shape(graph)
    if board.uart is None:
        raise UserError(f"board {board.name} has no UART pins for the board top")
    baud = baud or board.uart.baud
    clks = clks or clks_per_bit(board.clock.mhz, baud)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    top_file = work / f"{BOARD_TOP}.sv"
    top_file.write_text(render_board_top(shape, clks_per_bit=clks, clock_mhz=board.clock.mhz, baud=baud,
                                         title=board.title))
    wrapper = [RTL_DIR / name for name in WRAPPER_RTL]
    return accelerator_sources(hw_dir) + wrapper + [top_file], BOARD_TOP, memory_images(hw_dir)
