"""What BOPs buy on an FPGA (papers 001 and 000 in hardware): the DJPQ-restrict network (and, for the CNN, the
best all-ternary PTQ network) next to the same topology at fixed 8/8 and 4/4, each through the whole flow
(train, export, compile, verify, bitstream) on one board at one target rate. `run` is the digits MLP,
`run_cnn` the digits CNN (conv 3x3 x16 -> conv 3x3 x32, pool 2 -> linear 10)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"DJPQ-restrict": "digits_djpq", "fixed 8/8": "digits_w8a8", "fixed 4/4": "digits_w4a4"}
# PTQ: every layer ternary (STE-Reset, 70 % pruning) is the PTQ net with an MVAU for every layer; the
# ablation's first/last-float rows are more accurate but their float layers have no integer hardware
CNN_CONFIGS = {"DJPQ-restrict": "digits_djpq_cnn", "PTQ (STE-Reset, all ternary)": "digits_ptq_cnn",
               "fixed 8/8": "digits_cnn_w8a8", "fixed 4/4": "digits_cnn_w4a4"}
# LeNet-5 on mnist5k: the DJPQ-restrict net (8-bit activations in its FC layers: 255 thresholds a channel, searched
# by pqhw_mt_search) next to the same topology at fixed 4/4 and 8/8
LENET5_CONFIGS = {"DJPQ-restrict": "mnist5k_lenet5_djpq", "fixed 4/4": "mnist5k_lenet5_w4a4",
                  "fixed 8/8": "mnist5k_lenet5_w8a8"}

def _rows(configs: dict, work: Path, board: str, target_fps: float) -> list[dict]:
    import json

    from boards.registry import get_board
    from common.errors import UserError
    from pqhw.flow import build_steps, run_flow
    from quant.export import ExportMismatch

    clock = get_board(board).clock.mhz
    rows = []
    for label, name in configs.items():
        out = Path(work) / name
        try:
            run_flow(build_steps(ROOT / "configs" / f"{name}.yaml", out, board, target_fps, clock, 20, "verilator",
                                 0), out, echo=lambda s: None)
        except ExportMismatch as err:  # the export's exactness checks (QONNX == Brevitas, integers read
            # back): a net that fails them is recorded with the message, not built
            m = json.loads((out / "metrics.json").read_text())  # training finished before the export
            rows.append({"row": label, "config": name, "export_error": str(err), "test_accuracy": m["test_accuracy"],
                         **{k: m[k] for k in ("bops", "weight_bits_per_layer", "act_bits_per_layer",
                                              "kept_channels") if k in m}})
            continue
        except UserError as err:  # e.g. no folding that reaches the target fits the board
            rows.append({"row": label, "config": name, "does_not_fit": str(err)})
            continue
        m = json.loads((out / "metrics.json").read_text())
        c = json.loads((out / "hw" / "compile.json").read_text())
        v = json.loads((out / "hw" / "verify.json").read_text())
        b = json.loads((out / "hw" / "bitstream.json").read_text())
        rows.append({"row": label, "config": name, "test_accuracy": m["test_accuracy"], "bops": c["bops"],
                     "layer_bits": [(l.get("weight_bits"), l.get("act_bits")) for l in c["layers"] if "bops" in l],
                     "mismatches": v["mismatches"], "cycles_per_frame": v["cycles_per_frame"],
                     "expected_cycles_per_frame": c["expected_cycles_per_frame"], "luts": b["luts"],
                     "ffs": b["ffs"], "brams": b["brams"], "dsps": b["dsps"], "fmax_mhz": b["fmax_mhz"],
                     "fps_at_fmax": round(b["fmax_mhz"] * 1e6 / v["cycles_per_frame"], 1),
                     "fps_at_board_clock": round(clock * 1e6 / v["cycles_per_frame"], 1)})
    return rows


def run(work: Path, board: str = "ulx3s-85f", target_fps: float = 20000) -> dict:
    return {"board": board, "target_fps": target_fps, "rows": _rows(CONFIGS, work, board, target_fps)}


def run_cnn(work: Path, board: str = "ulx3s-85f", target_fps: float = 5000) -> dict:
    """`make bench ONLY=djpq_hw_cnn`: the digits CNN's DJPQ-restrict and PTQ nets next to fixed 8/8 and 4/4,
    all four at one target of 5,000 frames/s."""
    return {"board": board, "target_fps": target_fps, "rows": _rows(CNN_CONFIGS, work, board, target_fps)}


def run_lenet5(work: Path, board: str = "ulx3s-85f", target_fps: float = 1000) -> dict:
    """`make bench ONLY=djpq_hw_lenet5`: LeNet-5's DJPQ-restrict net next to fixed 4/4 and 8/8 on the ULX3S at
    1,000 frames/s (the first conv's window generator bounds LeNet-5 at 19,600 cycles a frame, 1,276 frames/s at
    the board's 25 MHz)."""
    return {"board": board, "target_fps": target_fps, "rows": _rows(LENET5_CONFIGS, work, board, target_fps)}
