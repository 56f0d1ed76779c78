"""Run one hand-written block on one hw.ir layer (or a plain stream) in simulation; used by the block tests.

The layer's RTL parameters come from its kind (hw/kinds), exactly as in a generated accelerator; the
testbench too (the kind's `testbench`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hw.emit import module_sources
from hw.layer_rtl import Fmt, dtype_fmt
from sim.runner import rtl_sources, run


def _timeout(frames: int, beats: int) -> int:
    # Twice over with pauses (each side idles ~30%): a generous bound that still catches a hang.
    return 200 + 10 * frames * beats


def run_layer_block(layer, x: np.ndarray, sim: str, build_root: Path, run_dir: Path, seed: int = 0,
                    in_fmt: Fmt | None = None) -> dict:
    """Simulate one layer's block on inputs x [N, in_channels]; returns the testbench result."""
    in_fmt = in_fmt or dtype_fmt(layer.input_dtype)
    rtl = layer.rtl(in_fmt, "blk")
    beats = max(rtl.params.get("MH", 1) // layer.pe * rtl.params.get("MW", 1) // rtl.in_n,
                layer.in_channels // rtl.in_n, layer.cycles())
    cfg = {"layer": layer.model_dump(), "x": np.asarray(x).tolist(), "in_bits": in_fmt.bits,
           "out_bits": rtl.out_fmt.bits, "seed": seed, "timeout_cycles": _timeout(len(x), beats)}
    return run(sim, rtl.module, rtl_sources(*module_sources(rtl.module)), rtl.params, layer.testbench,
               build_root, run_dir, cfg, rtl.files, seed)


def run_stream_block(module: str, params: dict, x: np.ndarray, bits: int, in_n: int, out_n: int, sim: str,
                     build_root: Path, run_dir: Path, seed: int = 0) -> dict:
    """Simulate a data-moving block (FIFO, width converter): output elements must equal input elements."""
    cfg = {"x": np.asarray(x).tolist(), "bits": bits, "in_n": in_n, "out_n": out_n, "seed": seed,
           "timeout_cycles": _timeout(len(x), x.shape[1])}
    return run(sim, module, rtl_sources(*module_sources(module)), params, "tb_fifo", build_root, run_dir, cfg, {}, seed)
