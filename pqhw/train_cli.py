"""`pqhw train`: quant's train command plus board-targeted training (--fit-board BOARD --target-fps F).

Why here and not in quant.commands: the board's cost is hw.estimate's (pqhw.board_cost), which quant may
not import; this command puts it into DJPQ's loss through quant.methods.djpq.resource_cost.
"""
from __future__ import annotations

import click

from common.cli_types import POSITIVE_FLOAT
from common.errors import UserError
from quant.commands import train as quant_train

FIT_METHODS = ("djpq",)
FIT_VARIANTS = ("dq", "vib_dq", "djpq")  # the variants that learn bit widths


def board_cost_for(config, board: str, target_fps: float, clock_mhz: float | None = None):
    """The BoardCost of CONFIG's DJPQ network on BOARD at F frames/s; UserError for configs it cannot train."""
    from pqhw.board_cost import BoardCost
    from quant.config import load_config

    cfg = load_config(config)
    method, m = cfg.method_parts()
    name = getattr(m, "name", None)
    if name not in FIT_METHODS or m.variant not in FIT_VARIANTS:
        what = f"method {name} variant {m.variant}" if name in FIT_METHODS else f"method {name or 'none'}"
        raise UserError(f"{config}: --fit-board trains DJPQ's learned bit widths; {what} has none "
                        f"(accepted: method.name djpq with variant {', '.join(FIT_VARIANTS)})")
    return BoardCost(board, target_fps, clock_mhz, restrict=m.restrict)


def _run(config, out_dir, resume, epochs, threads, fit_board, target_fps):
    from quant.methods.djpq import resource_cost

    if (fit_board is None) != (target_fps is None):
        raise UserError("--fit-board and --target-fps go together: the board's resources at that frame rate "
                        "are the training target")
    if fit_board is None:
        return quant_train.callback(config, out_dir, resume, epochs, threads)
    cost = board_cost_for(config, fit_board, target_fps)
    with resource_cost(cost):
        quant_train.callback(config, out_dir, resume, epochs, threads)
    r = cost.report_cache
    click.echo(f"{r['board']} at {r['target_fps']:g} fps ({r['cycles_per_frame_budget']} cycles/frame): estimated "
               + ", ".join(f"{k} {r['estimate'][k]:,} of {r['usable'][k]:,} usable" for k in r["usable"])
               + ("" if r["fits"] else " -- does NOT fit"))


train = click.Command(
    "train", callback=_run, help=quant_train.help, params=[
        *quant_train.params,
        click.Option(["--fit-board"], default=None, metavar="BOARD",
                     help="Train DJPQ's bit widths and channels to fit BOARD (`pqhw boards`) at --target-fps: "
                          "hw.estimate's resource estimate in the loss in place of BOPs."),
        click.Option(["--target-fps"], type=POSITIVE_FLOAT, default=None,
                     help="Frames per second the board-targeted network must reach (with --fit-board)."),
    ])
