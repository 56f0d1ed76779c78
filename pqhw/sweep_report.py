"""A sweep's results: one table (results.json, results.csv), its Pareto front, and report.html with the plot.

The Pareto front is over the sweep's objectives (each maximised or minimised) among the trials that finished:
a trial is on it when no other trial is at least as good in every objective and better in one.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from common.atomic import atomic_write_text, write_json

COLUMNS = ("accuracy", "float_accuracy", "luts", "ffs", "brams", "dsps", "fits", "cycles_per_frame", "fps",
           "clock_mhz", "bops", "weight_bits_total", "train_seconds", "measured_cycles_per_frame", "mismatches",
           "pnr_luts", "pnr_ffs", "pnr_brams", "fmax_mhz", "meets_timing")


def dominates(a: list[float], b: list[float]) -> bool:
    """a is at least as good as b everywhere and better somewhere (values already oriented: larger is better)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_front(rows: list[dict], objectives: dict[str, str]) -> set[str]:
    """Ids of the finished trials no other finished trial dominates."""
    pts = {}
    for r in rows:
        m = r.get("metrics")
        if not m or any(m.get(k) is None for k in objectives):
            continue
        pts[r["trial"]] = [m[k] if d == "max" else -m[k] for k, d in objectives.items()]
    return {t for t, p in pts.items() if not any(dominates(q, p) for u, q in pts.items() if u != t)}


def flat_row(row: dict, params: list[str]) -> dict:
    m = row.get("metrics") or {}
    out = {"trial": row["trial"], **{p: _cell(row["labels"].get(p)) for p in params}}
    out.update({k: _cell(m.get(k)) for k in COLUMNS})
    out.update(pareto=row.get("pareto", False), error=row.get("error", ""), failed_step=row.get("failed_step", ""))
    return out


def _cell(v):
    return json.dumps(v) if isinstance(v, (dict, list)) else "" if v is None else v


def write_table(out: Path, doc: dict) -> None:
    write_json(out / "results.json", doc)
    params = list(doc["params"])
    buf = io.StringIO()
    rows = [flat_row(r, params) for r in doc["trials"]]
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["trial", *params, *COLUMNS])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buf.getvalue())


LABELS = {"accuracy": "test accuracy (%)", "luts": "LUTs (estimate)", "fps": "frames/s", "bops": "BOPs",
          "ffs": "flip-flops (estimate)", "brams": "block RAMs (estimate)", "cycles_per_frame": "cycles/frame",
          "pnr_luts": "LUTs (placed)", "fmax_mhz": "Fmax (MHz)"}


def _value(metric: str, v: float) -> float:
    return 100 * v if metric == "accuracy" else v


def _panels(objectives: list[tuple[str, str]]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """(y, x) pairs: the first objective against each other one, and the second against the third."""
    if len(objectives) == 1:
        return [(objectives[0], ("cycles_per_frame", "min"))]
    pairs = [(objectives[0], o) for o in objectives[1:]]
    return pairs + ([(objectives[1], objectives[2])] if len(objectives) >= 3 else [])


def pareto_svg(doc: dict) -> str | None:
    """A panel per pair of objectives: every finished trial (coloured by the first parameter), the Pareto
    front of that pair as a line with its trials labelled, and the trials on the front of all objectives
    (the table's) ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in doc["trials"] if r.get("metrics")]
    if not done:
        return None
    panels = _panels(list(doc["objectives"].items()))
    first = doc["params"][0]
    groups = sorted({str(r["labels"].get(first)) for r in done})
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.8), squeeze=False)
    for ax, ((y_name, y_dir), (x_name, x_dir)) in zip(axes[0], panels):
        rows = [r for r in done if r["metrics"].get(x_name) is not None and r["metrics"].get(y_name) is not None]
        if not rows:
            continue
        front = pareto_front(rows, {y_name: y_dir, x_name: x_dir})
        xy = {r["trial"]: (r["metrics"][x_name], _value(y_name, r["metrics"][y_name])) for r in rows}
        for i, g in enumerate(groups):
            pts = [xy[r["trial"]] for r in rows if str(r["labels"].get(first)) == g]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=30, color=f"C{i % 10}", label=f"{first}={g}",
                       zorder=2)
        ringed = [xy[r["trial"]] for r in rows if r.get("pareto")]
        ax.scatter([p[0] for p in ringed], [p[1] for p in ringed], s=110, facecolors="none", edgecolors="k",
                   linewidths=1.0, label="Pareto front, all objectives", zorder=3)
        line = sorted((xy[r["trial"]], r["label"]) for r in rows if r["trial"] in front)
        ax.plot([p[0][0] for p in line], [p[0][1] for p in line], "-", color="C3", zorder=1,
                label=f"Pareto front, {y_name} vs {x_name}")
        for (x, y), label in line:
            ax.annotate(label, (x, y), fontsize=7, xytext=(4, -10), textcoords="offset points")
        for name, setter in ((x_name, ax.set_xscale), (y_name, ax.set_yscale)):
            vals = [r["metrics"][name] for r in rows]
            if name != "accuracy" and min(vals) > 0 and max(vals) > 20 * min(vals):
                setter("log")
        ax.set_xlabel(LABELS.get(x_name, x_name) + (" (higher is better)" if x_dir == "max" else ""))
        ax.set_ylabel(LABELS.get(y_name, y_name) + (" (lower is better)" if y_dir == "min" else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{doc['sweep']}: {len(done)} trials")
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ doc.sweep }}: sweep</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f0f0f0}
tr.pareto td{background:#fff3e0}td.l{text-align:left}</style></head><body>
<h1>{{ doc.sweep }}</h1>
<p>{{ doc.search }} over {{ doc.params | join(", ") }}; objectives:
{% for k, d in doc.objectives.items() %}{{ k }} ({{ d }}){{ ", " if not loop.last }}{% endfor %}.
{{ done }} of {{ doc.trials | length }} trials finished, {{ front }} on the Pareto front;
{{ doc.wall_seconds }} s wall time on {{ doc.ray.nodes }} Ray node(s) with {{ doc.ray.cpus }} CPUs.</p>
{% if svg %}<figure>{{ svg | safe }}</figure>{% endif %}
<table><tr><th>trial</th>{% for p in doc.params %}<th>{{ p }}</th>{% endfor %}
{% for c in cols %}<th>{{ c }}</th>{% endfor %}<th>note</th></tr>
{% for r in doc.trials %}<tr class="{{ 'pareto' if r.pareto }}"><td class="l">{{ r.trial }}</td>
{% for p in doc.params %}<td class="l">{{ r.labels[p] }}</td>{% endfor %}
{% for c in cols %}<td>{{ fmt(c, (r.metrics or {}).get(c)) }}</td>{% endfor %}
<td class="l">{{ r.error or ("Pareto" if r.pareto else "") }}</td></tr>
{% endfor %}</table>
<p>Table: results.json, results.csv. Steps: steps/NAME-KEY/ (shared between trials by content).</p>
</body></html>
"""


def _fmt(col: str, v) -> str:
    if v is None:
        return "-"
    if col in ("accuracy", "float_accuracy"):
        return f"{100 * v:.2f} %"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def write_report(out: Path, doc: dict) -> Path:
    from jinja2 import Environment

    svg = pareto_svg(doc)
    if svg is not None:
        atomic_write_text(out / "pareto.svg", svg)
    used = [c for c in COLUMNS if any((r.get("metrics") or {}).get(c) is not None for r in doc["trials"])]
    html = Environment(autoescape=True).from_string(TEMPLATE).render(
        doc=doc, svg=svg, cols=used, fmt=_fmt, done=sum(1 for r in doc["trials"] if r.get("metrics")),
        front=sum(1 for r in doc["trials"] if r.get("pareto")))
    atomic_write_text(out / "report.html", html)
    return out / "report.html"
