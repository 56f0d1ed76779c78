"""`pqhw boards`: the supported boards and their resources, as a table."""
from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from boards.registry import all_boards


def boards_table() -> Table:
    table = Table(title="pqhw boards")
    for col, justify in (("name", "left"), ("device", "left"), ("toolchain", "left"), ("clock MHz", "right"),
                         ("LUTs", "right"), ("FFs", "right"), ("BRAM blocks", "right"), ("BRAM kbit", "right"),
                         ("DSPs", "right"), ("UART rx/tx", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    for b in all_boards().values():
        r = b.resources
        uart = f"{b.uart.rx}/{b.uart.tx}" if b.uart else "via PS"
        table.add_row(b.name, b.device, b.toolchain, f"{b.clock.mhz:g}", f"{r.luts:,}", f"{r.ffs:,}",
                      str(r.bram_blocks), f"{r.bram_bits // 1024:,}", str(r.dsps), uart)
    return table


@click.command("boards")
def cli():
    """List the supported boards, their devices and resources."""
    console = Console()
    if not console.is_terminal:  # piped output: do not squeeze the table into 80 columns
        console.width = 160
    console.print(boards_table())
