"""`pqhw analyze`: pruning vs quantization (Kuzmin et al.). Parses, calls quant.analysis.reports, prints."""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from common.errors import UserError
from quant.analysis import output, plots, reports
from quant.analysis.grids import BITS, DEFAULT_GRID, check_bits, check_grid

out_console = Console()
err_console = Console(stderr=True)
MAX_TABLE_ROWS = 40
GRID_HELP = "integer grid: 'full' = 2^b codes (-2^(b-1)..2^(b-1)-1, default), 'symmetric' = 2^b-1 codes"


def parse_bits(text: str) -> list[int]:
    """'2-8', '4' or '2,4,8' -> sorted bit widths, each in 2..8."""
    try:
        if "-" in text:
            a, b = (int(t) for t in text.split("-", 1))
            bits = list(range(a, b + 1))
        else:
            bits = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--bits {text!r}: not understood; accepted: a range '2-8', one width '4', "
                        "or a list '2,4,8'") from None
    if not bits:
        raise UserError(f"--bits {text!r}: empty; accepted: widths from 2 to 8")
    for b in bits:
        check_bits(b)
    return sorted(set(bits))


def _positive(name: str, value, minimum=1):
    if value < minimum:
        raise UserError(f"{name} {value}: must be at least {minimum}")
    return value


@contextmanager
def _progress(label: str):
    """Yields progress(total) -> advance(); a rich bar on stderr while long work runs."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as prog:
        def start(total: int):
            task = prog.add_task(label, total=total)
            return lambda: prog.advance(task)
        yield start


def _fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


@click.group(name="analyze")
def cli():
    """Pruning vs quantization at equal size: SNR, kurtosis, per-layer bounds, fine-tuning."""


@cli.command()
@click.option("--out", required=True, help="Directory for distributions.json and the plots.")
@click.option("--grid", default=DEFAULT_GRID, show_default=True, help=GRID_HELP)
@click.option("--nu", default=2.0, show_default=True, help="Degrees of freedom of the truncated Student-t.")
@click.option("--points", default=12, show_default=True, help="Truncation ranges in the Student-t sweep.")
@click.option("--samples", default=0, show_default=True, help="Also estimate every SNR from N samples.")
def distributions(out, grid, nu, points, samples):
    """Analytic SNR of b-bit quantization vs pruning to 1 - b/16 for fixed distributions (bits 2..8)."""
    check_grid(grid)
    _positive("--points", points, 2)
    _positive("--samples", samples, 0)
    if not nu > 0:
        raise UserError(f"--nu {nu}: must be positive")
    with _progress("distributions") as progress:
        advance = progress(len(BITS) * (4 + points))
        report = reports.distributions(grid, nu, points, BITS, samples, advance)
    with output.atomic_dir(out) as tmp:
        output.write_json(tmp / "distributions.json", report)
        plots.distributions(report["rows"], tmp / "snr_vs_bits.png")
        plots.student_t(report["student_t_sweep"], tmp / "student_t_vs_kurtosis.png")
    names = list(dict.fromkeys(r["dist"] for r in report["rows"]))
    table = Table(title=f"SNR (dB) quantization / pruning, {grid} grid")
    table.add_column("bits", justify="right")
    table.add_column("pruned", justify="right")
    for name in names:
        kurt = next(r["kurtosis"] for r in report["rows"] if r["dist"] == name)
        table.add_column(f"{name}\nkurt {kurt:.2f}", justify="right")
    for b in BITS:
        rs = [next(r for r in report["rows"] if r["dist"] == name and r["bits"] == b) for name in names]
        table.add_row(str(b), f"{rs[0]['prune_ratio']:.1%}",
                      *[f"{_fmt(r['snr_quant_db'], 1)} / {_fmt(r['snr_prune_db'], 1)}" for r in rs])
    h = report["normal_headline"]
    out_console.print(f"normal: INT4 {_fmt(h['snr_quant_int4_db']['full'])} dB (full grid), "
                      f"{_fmt(h['snr_quant_int4_db']['symmetric'])} dB (symmetric grid) vs 75% pruning "
                      f"{_fmt(h['snr_prune_75_db'])} dB; paper: 19.1 vs 5.6")
    cross = ", ".join(f"{c['bits']}b: {_fmt(c['prune_wins_above_kurtosis'], 1)}" for c in report["student_t_crossover"])
    out_console.print(f"Student-t (nu={nu}) kurtosis above which pruning wins: {cross}")
    out_console.print(f"wrote {Path(out) / 'distributions.json'} and plots")


@cli.command()
@click.argument("source")
@click.option("--out", required=True, help="Directory for model.json and the plots.")
@click.option("--grid", default=DEFAULT_GRID, show_default=True, help=GRID_HELP)
@click.option("--bits", "bits_text", default="2-8", show_default=True, help="Bit widths: '2-8', '4' or '2,4,8'.")
@click.option("--unsafe-pickle", is_flag=True, help="Allow full unpickling of a trusted .pt file.")
def model(source, out, grid, bits_text, unsafe_pickle):
    """Per-tensor SNR and kurtosis of every weight of a .pt/.pth, a run directory or a QONNX .onnx."""
    check_grid(grid)
    bits = parse_bits(bits_text)
    with _progress("tensors") as progress:
        report = reports.model(source, grid, bits, unsafe_pickle, progress)
    with output.atomic_dir(out) as tmp:
        output.write_json(tmp / "model.json", report)
        plots.tensor_scatter(report["tensors"], tmp / "prune_vs_quant_snr.png")
        plots.kurtosis_regions(report["tensors"], report["regions"], tmp / "kurtosis_regions.png")
    mid = 4 if 4 in bits else bits[len(bits) // 2]
    table = Table(title=f"{source}: {len(report['tensors'])} weight tensors, {grid} grid")
    for col in ("tensor", "shape", "kurtosis", f"{mid}b q / p (dB)", "pruning wins at"):
        table.add_column(col, justify="right")
    for rec in report["tensors"][:MAX_TABLE_ROWS]:
        row = next(r for r in rec["snr"] if r["bits"] == mid)
        wins = [str(r["bits"]) for r in rec["snr"] if r["snr_prune_db"] > r["snr_quant_db"]]
        table.add_row(rec["name"], "x".join(map(str, rec["shape"])), _fmt(rec["kurtosis"]),
                      f"{_fmt(row['snr_quant_db'], 1)} / {_fmt(row['snr_prune_db'], 1)}",
                      (",".join(wins) + " bit") if wins else "never")
    out_console.print(table)
    if len(report["tensors"]) > MAX_TABLE_ROWS:
        out_console.print(f"... {len(report['tensors']) - MAX_TABLE_ROWS} more tensors in model.json")
    for reg in report["regions"]:
        spans = "; ".join(f"{a:.2f}..{b:.2f}" for a, b in reg["prune_preferred_kurtosis"]) or "none"
        out_console.print(f"{reg['bits']} bit: pruning wins on {reg['tensors_prune_wins']} of "
                          f"{reg['tensors_prune_wins'] + reg['tensors_quant_wins']} tensors; "
                          f"preferred kurtosis: {spans}")
    out_console.print(f"wrote {Path(out) / 'model.json'} and plots")


@cli.command()
@click.argument("source")
@click.option("--out", required=True, help="Directory for layers.json and the plot.")
@click.option("--inputs", default=None, help=".npz with one array of layer inputs per weight tensor name.")
@click.option("--grid", default=DEFAULT_GRID, show_default=True, help=GRID_HELP)
@click.option("--bits", "bits_text", default="2-8", show_default=True, help="Bit widths: '2-8', '4' or '2,4,8'.")
@click.option("--rows", default=4, show_default=True, help="Output rows analysed per layer (0 = all).")
@click.option("--chunk", default=8, show_default=True, help="Inputs per sub-problem, as in the paper.")
@click.option("--exact-max", default=8, show_default=True, help="Largest sub-problem solved exactly by MIP.")
@click.option("--time-limit", default=5.0, show_default=True, help="Seconds per MIP sub-problem.")
@click.option("--samples", default=1024, show_default=True, help="Input rows used per layer.")
@click.option("--epochs", default=30, show_default=True, help="Training epochs of the built-in digits MLP.")
@click.option("--unsafe-pickle", is_flag=True, help="Allow full unpickling of a trusted .pt file.")
def layers(source, out, inputs, grid, bits_text, rows, chunk, exact_max, time_limit, samples, epochs,
           unsafe_pickle):
    """Per-layer output-SNR ranges (heuristic .. optimum or bound); SOURCE is 'digits' or a model + --inputs."""
    check_grid(grid)
    bits = parse_bits(bits_text)
    for name, value, minimum in (("--rows", rows, 0), ("--chunk", chunk, 1), ("--exact-max", exact_max, 0),
                                 ("--samples", samples, 1), ("--epochs", epochs, 1)):
        _positive(name, value, minimum)
    if not time_limit > 0:
        raise UserError(f"--time-limit {time_limit}: must be positive")
    weights, xs, about = reports.layer_workload(source, inputs, samples, epochs, unsafe_pickle)
    with _progress("layers x bits") as progress:
        result = reports.layers(weights, xs, grid, bits, rows or None, chunk, exact_max, time_limit, progress)
    report = {"source": about, "grid": grid, "bits": bits, "rows_per_layer": rows, "chunk": chunk,
              "exact_max": exact_max, "layers": result}
    with output.atomic_dir(out) as tmp:
        output.write_json(tmp / "layers.json", report)
        plots.layer_ranges(result, tmp / "layer_ranges.png")
    table = Table(title="output SNR (dB): heuristic .. best (exact or bound)")
    for col in ("layer", "bits", "quantization", "pruning", "exact q/p", "ranking"):
        table.add_column(col, justify="right")
    for layer in result:
        for r in layer["bits"]:
            table.add_row(layer["name"], str(r["bits"]),
                          f"{_fmt(r['snr_quant_heuristic_db'], 1)} .. {_fmt(r['snr_quant_best_db'], 1)}",
                          f"{_fmt(r['snr_prune_heuristic_db'], 1)} .. {_fmt(r['snr_prune_best_db'], 1)}",
                          f"{r['quant_chunks_exact']}/{r['prune_chunks_exact']} of {r['chunks']}", r["winner"])
    out_console.print(table)
    out_console.print(f"wrote {Path(out) / 'layers.json'} and plot")


@cli.command()
@click.argument("config")
@click.option("--out", required=True, help="Directory for finetune.json and the plot.")
@click.option("--bits", "bits_text", default="2-8", show_default=True, help="Bit widths: '2-8', '4' or '2,4,8'.")
@click.option("--epochs", default=10, show_default=True, help="Fine-tuning epochs, equal for both methods.")
@click.option("--pretrain-epochs", default=30, show_default=True, help="Training epochs of the start model.")
@click.option("--lr", default=1e-3, show_default=True, help="Fine-tuning learning rate (Adam).")
@click.option("--grid", default=DEFAULT_GRID, show_default=True, help=GRID_HELP)
def finetune(config, out, bits_text, epochs, pretrain_epochs, lr, grid):
    """Prune to 1 - b/16 vs quantize to b bits, fine-tune both equally, compare accuracy; CONFIG 'digits'."""
    check_grid(grid)
    bits = parse_bits(bits_text)
    _positive("--epochs", epochs, 0)
    _positive("--pretrain-epochs", pretrain_epochs, 1)
    if not lr > 0:
        raise UserError(f"--lr {lr}: must be positive")
    with _progress("bit widths") as progress:
        if config == "digits":
            report = reports.finetune_digits(bits, epochs, pretrain_epochs, grid, lr, progress)
        else:
            report = _finetune_config(config, bits, epochs, lr, grid, progress)
    with output.atomic_dir(out) as tmp:
        output.write_json(tmp / "finetune.json", report)
        plots.finetune(report["rows"], tmp / "accuracy_vs_bits.png")
    table = Table(title=f"{report['config']}: test accuracy (%) after {epochs} fine-tuning epochs "
                        f"(uncompressed {100 * report['rows'][0]['baseline_accuracy']:.1f})")
    for col in ("bits", "pruning ratio", "quantized", "pruned", "quant zeros"):
        table.add_column(col, justify="right")
    for r in report["rows"]:
        table.add_row(str(r["bits"]), f"{r['prune_ratio']:.1%}", f"{100 * r['quant_accuracy']:.1f}",
                      f"{100 * r['prune_accuracy']:.1f}", f"{r['quant_stats']['sparsity']:.0%}")
    out_console.print(table)
    out_console.print(f"wrote {Path(out) / 'finetune.json'} and plot")


def _finetune_config(config, bits, epochs, lr, grid, progress) -> dict:
    """A training config: needs quant.train to provide load_for_analysis(config) -> (model, train, test)."""
    if not Path(config).is_file():
        raise UserError(f"finetune {config}: no such config file; accepted: 'digits' or a training config file")
    try:
        train_mod = importlib.import_module("quant.train")
    except ImportError:
        raise UserError(f"finetune {config}: training configs need the training module quant.train, which is "
                        "not available here; use CONFIG 'digits' for the built-in workload") from None
    loader = getattr(train_mod, "load_for_analysis", None)
    if loader is None:
        raise UserError(f"finetune {config}: quant.train has no load_for_analysis(config) returning "
                        "(model, train_loader, test_loader); use CONFIG 'digits' for the built-in workload")
    from quant.analysis import finetune as ft

    net, train_dl, test_dl = loader(config)
    rows = ft.compare_all(net, train_dl, test_dl, bits, epochs, lr, grid, progress(len(bits)))
    return {"config": str(config), "epochs": epochs, "lr": lr, "grid": grid, "rows": rows}

