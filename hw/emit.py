"""Write the stitched accelerator for one integer graph: DIR/rtl/pqhw_top.sv (Jinja2), copies of the
hand-written blocks it instantiates, and the weight/threshold memory files ($readmemh, relative names, so
simulators and synthesis read them from the rtl directory or their working directory).

Stream links. Layer i's output goes, where its PE differs from the next layer's input fold (SIMD), through
a width converter, then through a FIFO of the consumer's beats. FIFO depth = 2 x the consumer's beats per
input vector (minimum 2): an MVAU takes its input vector only during its first neuron fold and replays it
from its input buffer for the other folds, so the link must hold a whole vector while the consumer is busy
replaying the previous one, plus the vector being produced (for the FC layer after a conv part, whose
vector is the whole flattened feature map, that is two frames of it). With the converter in front, the
FIFO hands the consumer a whole beat of its own width every cycle: a layer never reads slower than its own
fold because its producer is narrower, so each layer runs at its own cycles (hw.cycles) and the frame
interval is the slowest layer's, as FINN's estimate has it. A consumer that takes its vector in one beat
from a collecting width converter gets no FIFO (one_beat_link): the converter's output register is that
buffer. Each MVAU and threshold unit also has an 8-beat output FIFO inside, filled by credit, so the MVAU
datapath never stalls mid-row; the measured interval is checked against hw.cycles in tests/hw.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from common.atomic import atomic_dir, write_json
from common.errors import UserError
from hw import kinds
from hw.cycles import expected_cycles_per_frame
from hw.ir import Graph
from hw.layer_rtl import LayerRTL, dtype_fmt, sv_param

RTL_DIR = Path(__file__).resolve().parent / "rtl"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TOP = "pqhw_top"
# The stream links between layers; the layer blocks' own modules come from their kinds (hw/kinds).
# A link FIFO of this many bits or more sits in block RAM (pqhw_fifo BLOCK): in distributed RAM it took
# 6 LUTs per 64 bits on ECP5 (SFC_1W1A's links 669 LUTs, 117 with block RAM, bench.lut_breakdown); the
# estimate counts its block RAMs, so folding for a board keeps them within the board's.
LINK_BLOCK_MIN_BITS = 512
LINK_MODULES = {"pqhw_fifo": [], "pqhw_dwc": []}


def module_sources(module: str) -> list[str]:
    """A block and the hand-written modules it instantiates (hw/rtl/<name>.sv), block first; one table for the
    emitter, the block testbenches and the synthesis benchmarks."""
    return [module] + {**LINK_MODULES, **kinds.rtl_depends()}[module]


@dataclass
class Stage:
    """One layer in the top: its block plus the link to the next layer."""
    name: str
    layer: Any
    rtl: LayerRTL
    fifo_depth: int = 0
    fifo_width: int = 0
    fifo_block: bool = False
    dwc: bool = False

    @property
    def layer_name(self) -> str:
        return self.layer.name

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
        return self.layer.summary(self.rtl.params)


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


def plan(graph: Graph) -> list[Stage]:
    """Map every layer onto its block, following the actual element format of each stream."""
    if not graph.layers:
        raise UserError("graph has no layers")
    last = graph.layers[-1]
    enders = ", ".join(sorted(name for name, k in kinds.KINDS.items() if k.ends_graph))
    if not last.ends_graph:
        raise UserError(f"layer {last.name}: the accelerator's output is a class index, so the graph must end "
                        f"in {enders} (got {last.kind})")
    fmt = dtype_fmt(graph.input_dtype)
    stages = []
    for i, layer in enumerate(graph.layers):
        if layer.ends_graph and i != len(graph.layers) - 1:
            raise UserError(f"layer {layer.name}: {layer.kind} must be the last layer")
        rtl = layer.rtl(fmt, f"l{i}")
        if i and layer.frame_in != graph.layers[i - 1].frame_out:
            raise UserError(f"layer {layer.name}: takes {layer.frame_in} elements a frame but layer "
                            f"{graph.layers[i - 1].name} produces {graph.layers[i - 1].frame_out}")
        stages.append(Stage(name=f"l{i}_{_ident(layer.name)}", layer=layer, rtl=rtl))
        fmt = rtl.out_fmt
    for prod, cons, layer in zip(stages[:-1], stages[1:], graph.layers[:-1]):
        # the consumer's input vector (a conv MVAU's window, an FC layer's whole flattened feature map), in
        # the consumer's beats: the FIFO sits behind the width converter
        beats_per_vector = -(-cons.layer.in_channels // cons.in_n)
        prod.fifo_width = cons.in_width
        prod.dwc = prod.out_n != cons.in_n
        prod.fifo_depth = 0 if one_beat_link(prod, cons, beats_per_vector) else max(2, 2 * beats_per_vector)
        # (read through two registers, a FIFO moves a beat a cycle from 4 beats deep; 2 would halve its rate)
        prod.fifo_block = prod.fifo_depth >= 4 and prod.fifo_depth * prod.fifo_width >= LINK_BLOCK_MIN_BITS
    return stages


def one_beat_link(prod: Stage, cons: Stage, beats_per_vector: int) -> bool:
    """A link needs no FIFO when the consumer takes its whole vector in one beat from a width converter that
    collects it: the converter's output register holds that vector while the consumer replays the one before,
    and it collects the next meanwhile, which is all the two-vector FIFO held (LFC_1W1A's two 1,024-bit links:
    3,100 LUTs of distributed RAM and 4,100 flip-flops, bench.lut_efficiency)."""
    return beats_per_vector == 1 and prod.dwc and cons.in_n % prod.out_n == 0


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


def emit(graph: Graph, out_dir: Path, provenance: dict | None = None) -> Design:
    """Write out_dir/rtl atomically (temporary directory, then rename) and describe the design; `provenance`
    (e.g. the sha256 of the graph.json it came from) is written beside the Verilog as rtl/provenance.json."""
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
        if provenance is not None:
            write_json(staging / "provenance.json", provenance)
    sources = [final / f"{m}.sv" for m in modules] + [final / f"{TOP}.sv"]
    return Design(rtl_dir=final, sources=sources, stages=stages, in_n=stages[0].in_n,
                  in_bits=stages[0].rtl.in_fmt.bits, out_bits=stages[-1].out_bits,
                  expected_cycles_per_frame=expected_cycles_per_frame(graph), memory_files=mem_files)
