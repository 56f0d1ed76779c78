"""The run report (report.md and report.html with PNG plots) from the JSON records every step writes.

Only numbers that a step measured or computed appear; a step that did not run shows as "-".
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def _plots(run_dir: Path, metrics: dict, compile_: dict, bitstream: dict | None) -> list[dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    fig, ax = plt.subplots(figsize=(4, 3))
    labels, values = ["quantized"], [100 * metrics["test_accuracy"]]
    if metrics.get("float_accuracy") is not None:
        labels.insert(0, "float")
        values.insert(0, 100 * metrics["float_accuracy"])
    ax.bar(labels, values, color=["#888", "#2a6"][-len(values):])
    ax.set_ylim(min(values) - 5, 100)
    ax.set_ylabel("test accuracy (%)")
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom")
    fig.tight_layout()
    fig.savefig(run_dir / "accuracy.png", dpi=120)
    plt.close(fig)
    plots.append({"file": "accuracy.png", "title": "float vs quantized accuracy"})

    layers = compile_["layers"]
    fig, ax = plt.subplots(figsize=(6, 3))
    names = [l["name"] for l in layers]
    ax.bar(names, [l["finn_est_luts"] or 0 for l in layers], label="estimated LUTs (FINN)")
    ax2 = ax.twinx()
    ax2.plot(names, [l["expected_cycles"] for l in layers], "o-", color="#c33", label="cycles per frame")
    ax.set_ylabel("LUTs")
    ax2.set_ylabel("cycles per frame")
    title = "resources and cycles per layer"
    if bitstream:
        title += f" (whole design: {bitstream['luts']} LUTs on {bitstream['board']})"
    ax.set_title(title, fontsize=9)
    fig.legend(loc="upper left", bbox_to_anchor=(0.12, 0.88), fontsize=7)
    fig.tight_layout()
    fig.savefig(run_dir / "layers.png", dpi=120)
    plt.close(fig)
    plots.append({"file": "layers.png", "title": "resources and cycles per layer"})
    return plots


def uart_frames_per_second(board_name: str | None, frame_elems: int) -> dict | None:
    """Frames/s the board top's UART carries at the board clock: a frame is the header byte and one byte per
    input element in, one class byte back, 10 bits a byte (start, 8 data, stop), sent and answered in turn; the
    baud rate is what the clock divider makes of the board's nominal rate."""
    from boards.registry import get_board
    from hw.board_top import clks_per_bit

    if not board_name:
        return None
    board = get_board(board_name)
    if board.uart is None:
        return None
    baud = board.clock.mhz * 1e6 / clks_per_bit(board.clock.mhz, board.uart.baud)
    frame_bytes = 1 + frame_elems + 1
    return {"fps": baud / (10 * frame_bytes), "baud": baud, "nominal_baud": board.uart.baud,
            "clock_mhz": board.clock.mhz, "frame_bytes": frame_bytes, "board": board.name}


def write_report(run_dir: Path, hw_dir: Path | None = None) -> Path:
    """Writes run_dir/report.md and report.html; returns the HTML path."""
    import markdown_it

    run_dir = Path(run_dir)
    hw_dir = Path(hw_dir) if hw_dir else run_dir / "hw"
    metrics = _read(run_dir / "metrics.json")
    export = _read(run_dir / "export.json")
    compile_ = _read(hw_dir / "compile.json")
    verify = _read(hw_dir / "verify.json")
    bitstream = _read(hw_dir / "bitstream.json")
    cycles = (verify or {}).get("cycles_per_frame") or compile_["expected_cycles_per_frame"]
    fps = bitstream["fmax_mhz"] * 1e6 / cycles if bitstream and bitstream.get("fmax_mhz") else None
    latency_us = (verify["latency_cycles"] / bitstream["fmax_mhz"]
                  if bitstream and verify and verify.get("latency_cycles") and bitstream.get("fmax_mhz") else None)
    summary = (f"{metrics['name']}: {_pct(metrics['test_accuracy'])} test accuracy, "
               f"{compile_['expected_cycles_per_frame']} cycles per frame")
    if fps:
        summary += f", {fps:,.0f} frames/s at Fmax {bitstream['fmax_mhz']:.1f} MHz on {bitstream['board']}"
    frame_elems = math.prod((compile_.get("hw_input") or {}).get("shape") or [0]) or None
    uart = uart_frames_per_second((bitstream or {}).get("board") or compile_.get("board"), frame_elems or 0) \
        if frame_elems else None
    plots = _plots(run_dir, metrics, compile_, bitstream)
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=False)
    md = env.get_template("report.md.j2").render(
        name=metrics["name"], summary=summary, metrics=_Obj(metrics), export=_Obj(export), compile=_Obj(compile_),
        verify=_Obj(verify) if verify else None, bitstream=_Obj(bitstream) if bitstream else None, fps=fps,
        latency_us=latency_us, uart=uart, plots=plots, pct=_pct, fmt=_fmt)
    (run_dir / "report.md").write_text(md)
    body = markdown_it.MarkdownIt("commonmark").enable("table").render(md)
    html = ("<!doctype html><meta charset=utf-8><title>pqhw report</title><style>body{font-family:sans-serif;"
            "max-width:60em;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            f"padding:2px 8px;text-align:right}}</style>\n{body}")
    (run_dir / "report.html").write_text(html)
    return run_dir / "report.html"


class _Obj(dict):
    """Dict with attribute access for templates; missing keys read as None."""

    def __getattr__(self, key):
        v = self.get(key)
        if isinstance(v, list):
            return [_Obj(x) if isinstance(x, dict) else x for x in v]
        return _Obj(v) if isinstance(v, dict) else v
