"""`pqhw demo` (what `make demo` runs): the main job on the embedded digits data, end to end."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import click

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "digits_w1a1.yaml"


@click.command("demo")
@click.option("--config", type=click.Path(path_type=Path), default=DEFAULT_CONFIG, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True)
@click.option("--target-fps", type=float, default=100000, show_default=True)
@click.option("--clock-mhz", type=float, default=100.0, show_default=True)
def cli(config, out_dir, target_fps, clock_mhz):
    """Train, export and compile the default config, then print a summary."""
    from rich.console import Console

    from hw.compile import compile_model
    from quant.config import load_config
    from quant.export import export_run
    from quant.train import train_run

    console = Console()
    cfg = load_config(config)
    m = train_run(cfg, out_dir)
    console.print(f"[bold]train[/]   {cfg.name}: {100 * m['test_accuracy']:.2f} % test accuracy "
                  f"(float {100 * m.get('float_accuracy', float('nan')):.2f} %), {m['train_seconds']:.1f} s")
    with console.status("export"), contextlib.redirect_stdout(io.StringIO()):
        e = export_run(out_dir)
    console.print(f"[bold]export[/]  {e['model']}: QONNX == Brevitas on {e['vectors']} test vectors")
    with console.status("compile"):
        c = compile_model(Path(e["model"]), out_dir / "hw", target_fps, clock_mhz)
    console.print(f"[bold]compile[/] {out_dir / 'hw'}: {len(c['layers'])} layers, reference == FINN on "
                  f"{c['reference_vs_finn_vectors']} vectors, {c['expected_cycles_per_frame']} cycles/frame = "
                  f"{c['expected_fps']:.0f} frames/s at {clock_mhz:.0f} MHz")
