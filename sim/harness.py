"""Whole accelerators at simulator speed: the SystemVerilog harness (sim/hdl/pqhw_harness.sv.j2) around pqhw_top.

The harness reads the input beats from a $readmemh file, inserts seeded random input idle cycles and
output backpressure itself (xorshift32 generators, probabilities in 1/65536), captures every output beat
with the cycle it arrived at, and counts cycles, idle cycles and stall cycles; it runs a stress pass (all
vectors, idle and backpressure on) and then a rate pass (the first `rate_frames` vectors, neither).
cocotb (sim/tb_harness.py) only sets the configuration, raises `run` and waits for the harness to say it
has written its result files; this module writes the stimulus, renders and builds the harness, and turns
the files back into arrays. With probes, each layer's output stream during the stress pass is captured
too (`--per-layer`).

The clock: the harness clocks itself (on Verilator with `--timing`), and cocotb registers no per-cycle
callback at all; `self_clock=False` lets cocotb's Clock drive it instead. Measured (bench/sim_speed.py,
Verilator, TFC-sized xnor nets, cycles per CPU-second): self-clocked 1.43 M at 2,076 cycles a frame and
288 k at 64 cycles a frame (where the MVAU adder trees dominate: a standalone Verilator binary of the same
harness runs at the same rate), cocotb's Clock 0.76 M and 227 k, the per-cycle cocotb drivers 69 k.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from hw.layer_rtl import Fmt
from sim.runner import run

HARNESS = "pqhw_harness"
HDL_DIR = Path(__file__).resolve().parent / "hdl"
IN_FILE, OUT_FILE, CYC_FILE = "harness_in.memh", "harness_out.memh", "harness_cycles.memh"
CLOCK_NS = 10
# Memories are sized in frames, rounded up to a power of two and, while they stay small, up to
# SHARED_FRAMES, so that runs with different vector counts reuse one (cached) build.
SHARED_FRAMES = 16384
SHARED_BYTES = 32 << 20


@dataclass
class Probe:
    """One layer's output stream captured during the stress pass."""
    index: int
    layer: str
    n: int            # elements a beat
    fmt: Fmt
    beats: int        # beats a frame
    depth: int = 0

    @property
    def name(self) -> str:
        return f"p{self.index}"

    @property
    def width(self) -> int:
        return self.n * self.fmt.bits

    @property
    def file(self) -> str:
        return f"harness_l{self.index}.memh"


def _word_bytes(width: int) -> int:
    """Bytes Verilator stores a word of `width` bits in (C, S, I, Q data or 32-bit words)."""
    for limit, size in ((8, 1), (16, 2), (32, 4), (64, 8)):
        if width <= limit:
            return size
    return 4 * math.ceil(width / 32)


def frame_capacity(frames: int, bytes_per_frame: int) -> int:
    """Frames the harness memories hold: the next power of two >= frames, grown towards SHARED_FRAMES while
    the memories stay under SHARED_BYTES."""
    cap = 1 << max(0, frames - 1).bit_length()
    while cap < SHARED_FRAMES and 2 * cap * bytes_per_frame <= SHARED_BYTES:
        cap *= 2
    return cap


def hex_words(values: np.ndarray, bits: int) -> list[str]:
    """Rows of elements [beats, n] as hex words, element 0 in the low bits (two's complement)."""
    values = np.asarray(values, dtype=np.int64)
    beats, n = values.shape
    codes = values & ((1 << bits) - 1)
    bitmat = ((codes[:, :, None] >> np.arange(bits)) & 1).reshape(beats, n * bits)
    pad = (-bitmat.shape[1]) % 4
    if pad:
        bitmat = np.concatenate([bitmat, np.zeros((beats, pad), dtype=np.int64)], axis=1)
    nibbles = bitmat.reshape(beats, -1, 4) @ np.array([1, 2, 4, 8])
    digits = np.array(list("0123456789abcdef"))[nibbles[:, ::-1]]
    return ["".join(row) for row in digits]


def read_memh(path: Path, count: int) -> list[int | None]:
    """The first `count` words of a $writememh file; a word holding x or z bits is None."""
    words: list[int | None] = []
    if count <= 0 or not path.is_file():
        return words
    for line in path.read_text().splitlines():
        line = line.split("//", 1)[0].strip()
        for tok in line.split():
            if tok.startswith("@"):
                continue
            words.append(None if any(c in "xXzZ" for c in tok) else int(tok, 16))
            if len(words) == count:
                return words
    return words


def unpack_words(words: list[int | None], n: int, fmt: Fmt) -> np.ndarray:
    """Beats into elements [beats, n]; a beat with unknown bits becomes int64 min in every element."""
    bad = np.array([w is None for w in words], dtype=bool)
    nbytes = max(1, math.ceil(n * fmt.bits / 8))
    raw = b"".join((0 if w is None else w).to_bytes(nbytes, "little") for w in words)
    bitmat = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little").reshape(len(words), -1)
    bitmat = bitmat[:, : n * fmt.bits].reshape(len(words), n, fmt.bits).astype(np.int64)
    vals = bitmat @ (np.int64(1) << np.arange(fmt.bits, dtype=np.int64))
    if fmt.signed:
        vals = np.where(vals >> (fmt.bits - 1) & 1, vals - (np.int64(1) << fmt.bits), vals)
    vals[bad] = np.iinfo(np.int64).min
    return vals


def probes(design, inter: list[np.ndarray]) -> list[Probe]:
    """One probe per layer, from the reference's intermediate outputs (elements a frame)."""
    out = []
    for i, (st, ref) in enumerate(zip(design.stages, inter)):
        elements = math.prod(ref.shape[1:])
        out.append(Probe(index=i, layer=st.layer_name, n=st.out_n, fmt=st.rtl.out_fmt,
                         beats=math.ceil(elements / st.out_n)))
    return out


def render(design, in_depth: int, out_depth: int, probe_list: list[Probe], self_clock: bool) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HDL_DIR), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template(f"{HARNESS}.sv.j2").render(
        in_width=design.in_n * design.in_bits, out_bits=design.out_bits, in_depth=in_depth,
        out_depth=out_depth, probes=probe_list, self_clock=self_clock, half_period_ns=CLOCK_NS // 2,
        in_file=IN_FILE, out_file=OUT_FILE, cyc_file=CYC_FILE)


def build_args(sim: str, self_clock: bool) -> list[str]:
    """Verilator: only the signals the harness marks public (cocotb's runner makes every signal public,
    which stops Verilator from optimising the design); --timing for the harness's own clock."""
    if sim != "verilator":
        return []
    return ["--no-public-flat-rw"] + (["--timing"] if self_clock else [])


def first_layer_mismatch(probe_list: list[Probe], streams: list[np.ndarray], inter: list[np.ndarray]):
    """(layer index, vector index) of the earliest layer whose captured stream differs from the reference."""
    for p, got, ref in zip(probe_list, streams, inter):
        frames = len(ref)
        ref = ref.reshape(frames, -1)
        flat = got.reshape(-1)[: ref.size]
        if flat.size < ref.size:
            flat = np.concatenate([flat, np.full(ref.size - flat.size, np.iinfo(np.int64).min)])
        bad = np.nonzero((flat.reshape(ref.shape) != ref).any(axis=1))[0]
        if bad.size:
            return {"layer": p.index, "vector": int(bad[0])}
    return None


def steady_interval(ends) -> float:
    """Cycles between output frames over the second half of a run (after the pipeline has filled)."""
    ends = list(ends)
    if len(ends) < 4:
        return float(ends[-1] - ends[0]) / max(1, len(ends) - 1)
    half = len(ends) // 2
    return (ends[-1] - ends[half]) / (len(ends) - 1 - half)


class HarnessRun:
    """One run of x (integer inputs [N, elements]) through the design's pqhw_top inside the harness.

    Writes the stimulus and the rendered harness into run_dir; `sources`, `config` and `build_args` are what
    sim.runner builds and runs (test module tb_harness); `collect` turns the testbench's counters and the
    harness's files into the result: classes (stress pass, in order; None for a word with unknown bits),
    rate_classes, cycles_per_frame, latency_cycles, timeout, idle/stall/simulated cycles, the run's wall
    and CPU time, and with `inter` (the reference's intermediate outputs) first_layer_mismatch.
    """

    def __init__(self, design, x: np.ndarray, sim: str, run_dir: Path, *, seed: int, idle: float,
                 backpressure: float, rate_frames: int, timeout_cycles: int,
                 inter: list[np.ndarray] | None = None, self_clock: bool = True):
        self.run_dir = run_dir = Path(run_dir).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        n = self.frames = len(x)
        self.rate_frames = min(rate_frames, n)
        flat = np.asarray(x, dtype=np.int64).reshape(n, -1)
        per_frame = math.ceil(flat.shape[1] / design.in_n)
        pad = per_frame * design.in_n - flat.shape[1]
        if pad:
            flat = np.concatenate([flat, np.zeros((n, pad), dtype=np.int64)], axis=1)
        self.inter = inter
        self.probes = probes(design, inter) if inter is not None else []
        frame_bytes = (per_frame * _word_bytes(design.in_n * design.in_bits) + 8 + _word_bytes(design.out_bits)
                       + sum(p.beats * _word_bytes(p.width) for p in self.probes))
        self.capacity = cap = frame_capacity(n + self.rate_frames, frame_bytes)
        for p in self.probes:
            p.depth = cap * p.beats
        for name in (OUT_FILE, CYC_FILE, *(p.file for p in self.probes)):
            (run_dir / name).unlink(missing_ok=True)
        words = hex_words(flat.reshape(n * per_frame, design.in_n), design.in_bits)
        (run_dir / IN_FILE).write_text("\n".join(words) + "\n")
        sv = run_dir / f"{HARNESS}.sv"
        sv.write_text(render(design, cap * per_frame, cap, self.probes, self_clock))
        self.sources = [*design.sources, sv]
        self.build_args = build_args(sim, self_clock)
        self.config = {
            "self_clock": self_clock, "clock_ns": CLOCK_NS, "seed": seed & 0xFFFFFFFF,
            "idle": round(idle * 65536), "stall": round(backpressure * 65536),
            "stress_beats": n * per_frame, "stress_frames": n, "rate_beats": self.rate_frames * per_frame,
            "rate_frames": self.rate_frames, "timeout_cycles": timeout_cycles,
            "probes": [p.name for p in self.probes]}

    def collect(self, res: dict) -> dict:
        n, rate, cap = self.frames, self.rate_frames, self.capacity
        count = min(res["out_count"], cap)
        out = read_memh(self.run_dir / OUT_FILE, count)
        cycles = read_memh(self.run_dir / CYC_FILE, count)
        rate_ends = [c for c in cycles[n: n + rate] if c is not None]
        result = {
            "timeout": res["timeout"], "classes": out[:n], "rate_classes": out[n: n + rate],
            "out_beats": res["out_count"], "in_beats": res["in_count"], "sim_cycles": res["cycle"],
            "idle_cycles": res["idle_cycles"], "stall_cycles": res["stall_cycles"],
            "stress_cycles": res["stress_end"], "run_seconds": res["run_seconds"],
            "run_cpu_seconds": res["run_cpu_seconds"],
        }
        if len(rate_ends) == rate and not res["timeout"]:
            result["cycles_per_frame"] = steady_interval(rate_ends)
            result["latency_cycles"] = rate_ends[0] - res["rate_start"]
        if self.probes:
            streams = [unpack_words(read_memh(self.run_dir / p.file, min(c, p.depth)), p.n, p.fmt)
                       for p, c in zip(self.probes, res["probe_counts"])]
            result["first_layer_mismatch"] = first_layer_mismatch(self.probes, streams, self.inter)
        return result


def run_harness(design, x: np.ndarray, sim: str, build_root: Path, run_dir: Path, seed: int = 0,
                **kw) -> dict:
    """Build (cached) and run a HarnessRun; returns its collected result."""
    h = HarnessRun(design, x, sim, run_dir, seed=seed, **kw)
    res = run(sim, HARNESS, h.sources, {}, "tb_harness", build_root, h.run_dir, h.config, None, seed,
              build_args=h.build_args)
    return h.collect(res)
