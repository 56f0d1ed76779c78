"""Write the stitched accelerator for one integer graph: DIR/rtl/pqhw_top.sv (Jinja2), copies of the
hand-written blocks it instantiates, and the weight/threshold memory files ($readmemh, relative names, so
simulators and synthesis read them from the rtl directory or their working directory).

Stream links. Layer i's output goes through a FIFO and, where its PE differs from the next layer's input
fold (SIMD), a width converter. FIFO depth = 2 x the producer's output beats per frame (minimum 2): an
MVAU takes its input vector only during its first neuron fold and replays it from its input buffer for
the other folds, so the link must hold a whole frame while the consumer is busy replaying the previous
one, plus the frame being produced. With that, the slowest layer (which sets the frame interval) is never
blocked by its consumer and never starved by its producer in steady state; faster layers simply wait. Each
MVAU and threshold unit also has an 8-beat output FIFO inside, filled by credit, so the MVAU datapath never
stalls mid-row; the measured interval is checked against (MH/PE)(MW/SIMD) in tests/hw.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from common.atomic import atomic_dir
from common.errors import UserError
from hw.ir import MVAU, Graph, LabelSelect
from hw.layer_rtl import LayerRTL, dtype_fmt, layer_rtl, sv_param

RTL_DIR = Path(__file__).resolve().parent / "rtl"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TOP = "pqhw_top"
# The hand-written modules each block instantiates (hw/rtl/<name>.sv); one table for the emitter, the block
# testbenches and the synthesis benchmarks.
DEPENDS = {
    "pqhw_mvau": ["pqhw_mem", "pqhw_mt", "pqhw_credit_fifo", "pqhw_fifo"],
    "pqhw_xnor_unrolled": ["pqhw_mt", "pqhw_credit_fifo", "pqhw_fifo"],
    "pqhw_threshold": ["pqhw_mem", "pqhw_mt", "pqhw_credit_fifo", "pqhw_fifo"],
    "pqhw_label_select": [],
    "pqhw_fifo": [],
    "pqhw_dwc": [],
}


def module_sources(module: str) -> list[str]:
    """A block and the modules it instantiates, block first."""
    return [module] + DEPENDS[module]


@dataclass
class Stage:
    """One layer in the top: its block plus the link to the next layer."""
    name: str
    layer_name: str
    rtl: LayerRTL
    fifo_depth: int = 0
    dwc: bool = False

    @property
    def module(self) -> str:
        return self.rtl.module

    @property
    def params(self) -> dict:
        return {k: sv_param(v) for k, v in self.rtl.params.items()}

    @property
    def in_n(self) -> int:
        return self.rtl.in_n

    @property
    def out_n(self) -> int:
        return self.rtl.out_n

    @property
    def out_bits(self) -> int:
        return self.rtl.out_fmt.bits

    @property
    def in_width(self) -> int:
        return self.rtl.in_n * self.rtl.in_fmt.bits

    @property
    def out_width(self) -> int:
        return self.rtl.out_n * self.rtl.out_fmt.bits

    @property
    def summary(self) -> str:
        p = self.rtl.params
        if self.module == "pqhw_mvau":
            style = "const" if p["MEM_STYLE"] == 0 else "codebook rom" if p.get("W_CODEBOOK") else "rom"
            return f"layer {self.layer_name}, {p['MH']}x{p['MW']}, PE={p['PE']} SIMD={p['SIMD']}, weights {style}"
        if self.module == "pqhw_xnor_unrolled":
            return f"layer {self.layer_name}, {p['MH']}x{p['MW']}, PE={p['MH']} SIMD={p['MW']}, weights const"
        return f"layer {self.layer_name}, PE={p['PE']}"


@dataclass
class Design:
    """What the emitter wrote and what a testbench needs to drive it."""
    rtl_dir: Path
    sources: list[Path]
    stages: list[Stage]
    in_n: int
    in_bits: int
    out_bits: int
    expected_cycles_per_frame: int
    memory_files: list[str] = field(default_factory=list)


def expected_cycles(graph: Graph) -> int:
    """FINN's exp_cycles of the slowest MVAU: (MH/PE)(MW/SIMD) x vectors."""
    mvaus = [l for l in graph.layers if isinstance(l, MVAU)]
    if not mvaus:
        return max(l.in_channels // l.in_fold for l in graph.layers)
    return max((l.mh // l.pe) * (l.mw // l.simd) * l.num_vectors for l in mvaus)


def plan(graph: Graph) -> list[Stage]:
    """Map every layer onto its block, following the actual element format of each stream."""
    if not graph.layers:
        raise UserError("graph has no layers")
    last = graph.layers[-1]
    if not isinstance(last, LabelSelect):
        raise UserError(f"layer {last.name}: the accelerator's output is a class index, so the graph must end "
                        f"in a label_select (got {last.kind})")
    fmt = dtype_fmt(graph.input_dtype)
    stages = []
    for i, layer in enumerate(graph.layers):
        if isinstance(layer, LabelSelect) and i != len(graph.layers) - 1:
            raise UserError(f"layer {layer.name}: label_select must be the last layer")
        rtl = layer_rtl(layer, fmt, f"l{i}")
        if i and layer.in_channels != graph.layers[i - 1].out_channels:
            raise UserError(f"layer {layer.name}: takes {layer.in_channels} elements but layer "
                            f"{graph.layers[i - 1].name} produces {graph.layers[i - 1].out_channels}")
        stages.append(Stage(name=f"l{i}_{_ident(layer.name)}", layer_name=layer.name, rtl=rtl))
        fmt = rtl.out_fmt
    for prod, cons, layer in zip(stages[:-1], stages[1:], graph.layers[:-1]):
        beats_per_frame = layer.out_channels // prod.out_n
        prod.fifo_depth = max(2, 2 * beats_per_frame)
        prod.dwc = prod.out_n != cons.in_n
    return stages


def _ident(name: str) -> str:
    s = "".join(c if c.isalnum() else "_" for c in name)
    return s[:40] or "layer"


def render_top(graph: Graph, stages: list[Stage]) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    first = stages[0]
    return env.get_template("pqhw_top.sv.j2").render(
        layers=graph.layers, stages=stages, in_n=first.in_n, in_bits=first.rtl.in_fmt.bits,
        in_width=first.in_width, out_bits=stages[-1].out_bits)


def _modules(stages: list[Stage]) -> list[str]:
    names = []
    for st in stages:
        for m in module_sources(st.module):
            if m not in names:
                names.append(m)
    if len(stages) > 1 and "pqhw_fifo" not in names:
        names.append("pqhw_fifo")
    if any(st.dwc for st in stages):
        names.append("pqhw_dwc")
    return names


def emit(graph: Graph, out_dir: Path) -> Design:
    """Write out_dir/rtl atomically (temporary directory, then rename) and describe the design."""
    stages = plan(graph)
    out_dir = Path(out_dir)
    final = out_dir / "rtl"
    with atomic_dir(final) as staging:
        modules = _modules(stages)
        for m in modules:
            shutil.copy(RTL_DIR / f"{m}.sv", staging / f"{m}.sv")
        mem_files = []
        for st in stages:
            for name, text in st.rtl.files.items():
                (staging / name).write_text(text)
                mem_files.append(name)
        (staging / f"{TOP}.sv").write_text(render_top(graph, stages))
    sources = [final / f"{m}.sv" for m in modules] + [final / f"{TOP}.sv"]
    return Design(rtl_dir=final, sources=sources, stages=stages, in_n=stages[0].in_n,
                  in_bits=stages[0].rtl.in_fmt.bits, out_bits=stages[-1].out_bits,
                  expected_cycles_per_frame=expected_cycles(graph), memory_files=mem_files)
