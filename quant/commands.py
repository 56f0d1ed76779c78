"""`pqhw train` and `pqhw export`: thin click wrappers around quant.train and quant.export."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import click

from common.cli_types import POSITIVE_INT, OutDir


@click.command("train")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=OutDir(), required=True, help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue from DIR/checkpoint.pt after an interruption.")
@click.option("--epochs", type=POSITIVE_INT, default=None,
              help="Override training.epochs (plain training and the float baseline; a method's phases keep "
                   "their own epochs).")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Override training.threads (torch CPU threads; default 1).")
def train(config, out_dir, resume, epochs, threads):
    """Quantization-aware training of CONFIG; writes DIR/model.pt and DIR/metrics.json."""
    from quant.config import load_config
    from quant.train import train_run

    cfg = load_config(config)
    if epochs is not None:
        cfg.training.epochs = epochs
    if threads is not None:
        cfg.training.threads = threads
    m = train_run(cfg, out_dir, resume=resume)
    line = f"{cfg.name}: test accuracy {100 * m['test_accuracy']:.2f} %"
    if "float_accuracy" in m:
        line += f" (float {100 * m['float_accuracy']:.2f} %)"
    click.echo(f"{line}, {m['weight_bits_total']} weight bits ({m['compression_vs_float32']}x vs float32), "
               f"{m['train_seconds']:.1f} s -> {out_dir}/model.pt")


@click.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--codebook", is_flag=True,
              help="Also write DIR/model.codebook.bin: ternary weights as 5-bit codes, 3 weights each.")
def export(run_dir, codebook):
    """QONNX export of a trained run, checked integer-exact against Brevitas on the test split."""
    from quant.export import export_run

    with contextlib.redirect_stdout(io.StringIO()):  # the ONNX exporter narrates every pass
        r = export_run(run_dir)
    click.echo(f"{r['model']}: QONNX == Brevitas on {r['vectors']} test vectors (integer logits), "
               f"input {r['input_dtype']}")
    if codebook:
        from quant.methods.ptq_export import write_codebook

        c = write_codebook(run_dir)
        click.echo(f"{c['file']}: {c['weights']} ternary weights in {c['bytes']} bytes ({c['bits']} bits; "
                   f"2-bit {c['bytes_2bit']} B, float32 {c['bytes_float32']} B, {c['ratio_vs_float32']}x)")
