"""The `pqhw` command: parses arguments, calls library functions, prints. No logic of its own."""
from __future__ import annotations

import importlib
import sys

import click

from common.errors import UserError

# Subcommands live beside the code they drive: name -> "module" (its `cli`) or "module:attribute".
SUBCOMMANDS = {
    "train": "pqhw.train_cli:train",
    "export": "quant.commands:export",
    "compile": "hw.compile",
    "demo": "pqhw.demo",
    "analyze": "quant.analysis.cli",
    "boards": "boards.cli",
    "bitstream": "hw.bitstream",
    "finn-estimate": "hw.finn_build",
    "infer": "hw.driver",
    "verify": "sim.verify",
    "flow": "pqhw.flow",
    "sweep": "pqhw.sweep",
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when it is used, so `pqhw --help` stays fast."""

    def list_commands(self, ctx):
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx, name):
        if name not in SUBCOMMANDS:
            return None
        module, _, attr = SUBCOMMANDS[name].partition(":")
        return getattr(importlib.import_module(module), attr or "cli")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for user errors.")
@click.pass_context
def group(ctx, debug):
    """pqhw: pruned and quantized networks to verified FPGA accelerators."""
    ctx.obj = {"debug": debug}


def main(argv=None):
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)  # library chatter (brevitas, torch.onnx)
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        group.main(args=argv, prog_name="pqhw", standalone_mode=False)
    except UserError as err:
        if debug:
            raise
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:  # usage errors too: one line, like every other mistake
        if debug:
            raise
        ctx = getattr(err, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" (see `{ctx.command_path} --help`)" if isinstance(err, click.UsageError) and ctx else ""
        msg = " ".join(err.format_message().split())
        click.echo(f"error: {where}{msg}{hint}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except SystemExit:
        raise
    return 0


if __name__ == "__main__":
    main()
