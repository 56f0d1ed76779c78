"""`pqhw demo`: the main job with every default: `pqhw flow` on the embedded digits data for the iCEBreaker."""
from __future__ import annotations

from pathlib import Path

import click

from common.cli_types import OutDir

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "digits_w1a1.yaml"


@click.command("demo")
@click.option("--out", "out_dir", type=OutDir(), default=Path("runs/demo"), show_default=True)
@click.pass_context
def cli(ctx, out_dir):
    """Train, export, compile, verify, build a bitstream and write the report, all with defaults."""
    from pqhw.flow import DEFAULT_BOARD
    from pqhw.flow import cli as flow

    ctx.invoke(flow, config=DEFAULT_CONFIG, out_dir=out_dir, board=DEFAULT_BOARD)
