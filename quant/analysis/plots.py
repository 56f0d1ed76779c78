"""PNG figures for the analysis commands (matplotlib, Agg backend, so no display is needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def distributions(rows: list[dict], path: Path) -> Path:
    """SNR against compression for each fixed distribution (Figure 1 right)."""
    names = [d for d in dict.fromkeys(r["dist"] for r in rows)]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        rs = sorted((r for r in rows if r["dist"] == name), key=lambda r: r["bits"])
        bits = [r["bits"] for r in rs]
        ax.plot(bits, [r["snr_quant_db"] for r in rs], "o-", label="quantization")
        ax.plot(bits, [r["snr_prune_db"] for r in rs], "s--", label="pruning (1 - b/16)")
        ax.set_title(f"{name} (kurtosis {rs[0]['kurtosis']:.2f})")
        ax.set_xlabel("bits  /  equal-size pruning")
        ax.set_xticks(bits, [f"{b}\n{r['prune_ratio']:.0%}" for b, r in zip(bits, rs)], fontsize=7)
        ax.set_ylabel("SNR [dB]")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def student_t(sweep: list[dict], path: Path) -> Path:
    """Truncated Student-t against kurtosis (Figure 2): pruning error, both SNRs, and their difference.

    The pruning error only depends on the mass near zero, so it stays almost flat as the tails grow; the
    pruning SNR still rises because the signal power grows with the tails.
    """
    bits = sorted({r["bits"] for r in sweep})
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for b in bits:
        rs = sorted((r for r in sweep if r["bits"] == b), key=lambda r: r["kurtosis"])
        k = [r["kurtosis"] for r in rs]
        axes[0].plot(k, [r["prune_mse"] for r in rs], label=f"{b} bit")
        axes[1].plot(k, [r["snr_prune_db"] for r in rs], label=f"{b} bit")
        axes[2].plot(k, [r["snr_quant_db"] for r in rs], label=f"{b} bit")
        axes[3].plot(k, [r["snr_quant_db"] - r["snr_prune_db"] for r in rs], label=f"{b} bit")
    titles = ("pruning error E[(W - T(W))^2]", "pruning SNR (dB)", "quantization SNR (dB)",
              "quantization - pruning (dB; below 0: pruning wins)")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_xlabel("kurtosis")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[3].axhline(0.0, color="k", lw=0.8)
    axes[3].legend(fontsize=7, ncol=2)
    return _save(fig, path)


def tensor_scatter(records: list[dict], path: Path) -> Path:
    """Pruning SNR against quantization SNR for every tensor and bit width (Figure 3 left)."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    bits = sorted({r["bits"] for rec in records for r in rec["snr"]})
    cmap = plt.get_cmap("viridis", len(bits))
    lo, hi = float("inf"), float("-inf")
    for i, b in enumerate(bits):
        pts = [(r["snr_quant_db"], r["snr_prune_db"]) for rec in records for r in rec["snr"] if r["bits"] == b]
        xs, ys = zip(*pts)
        ax.scatter(xs, ys, s=14, color=cmap(i), label=f"{b} bit")
        lo, hi = min(lo, *xs, *ys), max(hi, *xs, *ys)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("quantization SNR [dB]")
    ax.set_ylabel("pruning SNR [dB]")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def kurtosis_regions(records: list[dict], regions: list[dict], path: Path) -> Path:
    """Where pruning is preferred, by bit width and kurtosis (Figure 3 right); dots are the tensors."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for reg in regions:
        b = reg["bits"]
        for a, z in reg["prune_preferred_kurtosis"]:
            ax.fill_between([a, z], b - 0.4, b + 0.4, color="tab:orange", alpha=0.4, lw=0)
        for rec in records:
            row = next(r for r in rec["snr"] if r["bits"] == b)
            win = row["snr_prune_db"] > row["snr_quant_db"]
            ax.plot(rec["kurtosis"], b, "o" if win else "x", color="tab:red" if win else "tab:blue", ms=4)
    ax.set_xscale("log")
    ax.set_xlabel("sample kurtosis")
    ax.set_ylabel("bits (pruning ratio 1 - b/16)")
    ax.set_title("shaded / o: pruning better;  x: quantization better", fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def layer_ranges(layers: list[dict], path: Path) -> Path:
    """Per layer and bit width, the box spanned by both SNR ranges (Figure 4); off-diagonal boxes are sure."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    lo, hi = float("inf"), float("-inf")
    for li, layer in enumerate(layers):
        color = plt.get_cmap("tab10")(li % 10)
        for r in layer["bits"]:
            x0, x1 = r["snr_prune_heuristic_db"], r["snr_prune_best_db"]
            y0, y1 = r["snr_quant_heuristic_db"], r["snr_quant_best_db"]
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.2))
            ax.annotate(str(r["bits"]), (x1, y1), fontsize=6, color=color)
            lo, hi = min(lo, x0, y0), max(hi, x1, y1)
        ax.plot([], [], color=color, label=layer["name"])
    ax.plot([lo - 1, hi + 1], [lo - 1, hi + 1], "k--", lw=0.8)
    ax.set_xlim(lo - 1, hi + 1)
    ax.set_ylim(lo - 1, hi + 1)
    ax.set_xlabel("pruning output SNR [dB] (heuristic .. best)")
    ax.set_ylabel("quantization output SNR [dB] (heuristic .. best)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def finetune(rows: list[dict], path: Path) -> Path:
    """Accuracy after equal fine-tuning against bit width (Table 1 as a plot)."""
    rows = sorted(rows, key=lambda r: r["bits"])
    bits = [r["bits"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(bits, [100 * r["quant_accuracy"] for r in rows], "o-", label="quantized + fine-tuned")
    ax.plot(bits, [100 * r["prune_accuracy"] for r in rows], "s--", label="pruned + fine-tuned")
    ax.axhline(100 * rows[0]["baseline_accuracy"], color="k", lw=0.8, label="uncompressed")
    ax.set_xticks(bits, [f"{b}\n{r['prune_ratio']:.1%}" for b, r in zip(bits, rows)], fontsize=7)
    ax.set_xlabel("bits  /  equal-size pruning ratio")
    ax.set_ylabel("test accuracy [%]")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
