"""PE/SIMD per layer: the cheapest folding that reaches a target frame rate, or one the user gives.

Cost of a folding is PE * SIMD (the parallel multipliers); cycles follow FINN's formula,
(MH/PE) * (MW/SIMD) * vectors for an MVAU and channels/PE for label select and thresholds.
"""
from __future__ import annotations

import json
from pathlib import Path

from common.errors import UserError
from hw.ir import Graph
from hw.kinds.mvau import MVAU


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def layer_cycles(layer) -> int:
    if isinstance(layer, MVAU):
        return (layer.mh // layer.pe) * (layer.mw // layer.simd) * layer.num_vectors
    return (layer.channels // layer.pe) * getattr(layer, "num_vectors", 1)


def expected_cycles_per_frame(graph: Graph) -> int:
    """The slowest layer sets the frame interval of a streaming pipeline."""
    return max(layer_cycles(l) for l in graph.layers)


def _cheapest_mvau(layer: MVAU, budget: int) -> tuple[int, int]:
    best = None
    for pe in divisors(layer.mh):
        for simd in divisors(layer.mw):
            cycles = (layer.mh // pe) * (layer.mw // simd) * layer.num_vectors
            if cycles <= budget:
                key = (pe * simd, pe, -simd)  # fewest lanes; then wider SIMD before more PEs, as FINN does
                if best is None or key < best[0]:
                    best = (key, pe, simd)
    if best is None:
        raise UserError(f"layer {layer.name}: cannot reach {budget} cycles per frame even fully unrolled")
    return best[1], best[2]


def fold_for_cycles(graph: Graph, budget: int) -> Graph:
    """A copy of the graph folded so that every layer takes at most `budget` cycles per frame."""
    if budget < 1:
        raise UserError(f"--target-fps asks for {budget} cycles per frame; at least 1 is needed "
                        "(lower --target-fps or raise --clock-mhz)")
    g = graph.model_copy(deep=True)
    for layer in g.layers:
        if isinstance(layer, MVAU):
            layer.pe, layer.simd = _cheapest_mvau(layer, budget)
        else:
            vectors = getattr(layer, "num_vectors", 1)
            layer.pe = next((d for d in divisors(layer.channels) if layer.channels // d * vectors <= budget),
                            layer.channels)
    return g


def fold_for_fps(graph: Graph, target_fps: float, clock_mhz: float) -> Graph:
    if target_fps <= 0 or clock_mhz <= 0:
        raise UserError(f"--target-fps ({target_fps}) and --clock-mhz ({clock_mhz}) must be positive")
    return fold_for_cycles(graph, int(clock_mhz * 1e6 // target_fps))


def apply_folding_file(graph: Graph, path: Path) -> Graph:
    """Folding from JSON: {"LAYER_NAME": {"pe": P, "simd": S}, ...}; layers not named keep PE=SIMD=1."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: folding file not found")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(spec, dict):
        raise UserError(f"{path}: a folding file maps layer names to {{'pe': P, 'simd': S}}")
    g = graph.model_copy(deep=True)
    by_name = {l.name: l for l in g.layers}
    for name, fold in spec.items():
        if name not in by_name:
            raise UserError(f"{path}: layer {name!r} is not in the graph; layers: {', '.join(by_name)}")
        layer = by_name[name]
        allowed = {"pe", "simd"} if isinstance(layer, MVAU) else {"pe"}
        if not isinstance(fold, dict) or set(fold) - allowed:
            raise UserError(f"{path}: {name}: expected keys {sorted(allowed)}, got {fold!r}")
        for key, value in fold.items():
            total = (layer.mh if key == "pe" else layer.mw) if isinstance(layer, MVAU) else layer.channels
            if not isinstance(value, int) or value < 1 or total % value:
                raise UserError(f"{path}: {name}.{key} = {value!r} does not divide {total}; "
                                f"accepted: {divisors(total)}")
            setattr(layer, key, value)
    return g


def apply_to_finn(model, graph: Graph):
    """Sets the same PE/SIMD on FINN's HW nodes, so FINN's own analyses can be compared with ours."""
    from qonnx.custom_op.registry import getCustomOp

    by_name = {l.name: l for l in graph.layers}
    for node in model.graph.node:
        layer = by_name[node.name]
        inst = getCustomOp(node)
        inst.set_nodeattr("PE", layer.pe)
        if isinstance(layer, MVAU):
            inst.set_nodeattr("SIMD", layer.simd)
    return model


def finn_exp_cycles(model) -> dict[str, int]:
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer

    return {k: int(v) for k, v in model.analysis(exp_cycles_per_layer).items()}


# Board-budget folding ------------------------------------------------------------------------------------
# Fraction of every board resource kept free beyond the estimate (the estimate's error, routing slack).
HEADROOM = 0.15


def layer_options(layer, budget: int) -> list[dict]:
    """Every folding of one layer that takes at most `budget` cycles per frame, fewest lanes first."""
    if isinstance(layer, MVAU):
        opts = [{"pe": pe, "simd": simd} for pe in divisors(layer.mh) for simd in divisors(layer.mw)
                if (layer.mh // pe) * (layer.mw // simd) * layer.num_vectors <= budget]
        return sorted(opts, key=lambda o: (o["pe"] * o["simd"], o["pe"], -o["simd"]))
    vectors = getattr(layer, "num_vectors", 1)
    return [{"pe": d} for d in divisors(layer.channels) if layer.channels // d * vectors <= budget]


def reachable_cycles(graph: Graph) -> list[int]:
    """Every frame interval some folding gives, fastest first (the slowest layer sets the interval)."""
    values = set()
    for layer in graph.layers:
        if isinstance(layer, MVAU):
            values |= {(layer.mh // pe) * (layer.mw // s) * layer.num_vectors
                       for pe in divisors(layer.mh) for s in divisors(layer.mw)}
        else:
            values |= {layer.channels // d * getattr(layer, "num_vectors", 1) for d in divisors(layer.channels)}
    floor = max(layer_cycles(_unrolled(l)) for l in graph.layers)  # the slowest layer fully unrolled
    return sorted(v for v in values if v >= floor)


def _unrolled(layer):
    l = layer.model_copy()
    l.pe = l.mh if isinstance(l, MVAU) else l.channels
    if isinstance(l, MVAU):
        l.simd = l.mw
    return l


def _pressure(total: dict, resources, headroom: float) -> float:
    """The most used board resource as a fraction of what may be used (> 1: does not fit)."""
    limits = resources.limits()
    return max(total.get(k, 0) * (1 + headroom) / v if v else (float("inf") if total.get(k, 0) else 0.0)
               for k, v in limits.items())


def fit_at_budget(graph: Graph, budget: int, family: str, resources, headroom: float = HEADROOM):
    """(graph, estimate total, pressure) for a folding within `budget` cycles: the cheapest one, then layer by
    layer the option that lowers the pressure on the board most (trading LUTs for BRAM and back)."""
    from hw.estimate import estimate_total

    g = fold_for_cycles(graph, budget)
    total = estimate_total(g, family)
    best = _pressure(total, resources, headroom)
    improved = best > 1.0
    while improved:
        improved = False
        for i, layer in enumerate(graph.layers):
            for opt in layer_options(layer, budget):
                trial = g.model_copy(deep=True)
                for key, value in opt.items():
                    setattr(trial.layers[i], key, value)
                t = estimate_total(trial, family)
                p = _pressure(t, resources, headroom)
                if p < best - 1e-9:
                    g, total, best, improved = trial, t, p, True
        if best <= 1.0:
            break
    return g, total, best


def fold_for_board(graph: Graph, board, clock_mhz: float, target_fps: float | None = None,
                   headroom: float = HEADROOM) -> Graph:
    """The highest-throughput folding whose estimate (wrapper included, `headroom` kept free) fits the board;
    with target_fps, the cheapest folding reaching it that fits. UserError with needed vs available if none."""
    from hw.estimate import estimate_total, family_of

    family = family_of(board.family)
    if target_fps is not None:
        if target_fps <= 0 or clock_mhz <= 0:
            raise UserError(f"--target-fps ({target_fps}) and --clock-mhz ({clock_mhz}) must be positive")
        budget = int(clock_mhz * 1e6 // target_fps)
        if budget < 1:
            raise UserError(f"--target-fps {target_fps:g} asks for less than 1 cycle per frame at {clock_mhz:g} MHz")
        budgets = [budget]
    else:
        budgets = reachable_cycles(graph)
    last = None
    for budget in budgets:
        try:
            g, total, pressure = fit_at_budget(graph, budget, family, board.resources, headroom)
        except UserError:
            continue  # a layer cannot reach this interval at all
        if pressure <= 1.0:
            return g
        last = (budget, estimate_total(fold_for_cycles(graph, budget), family))  # the cheapest, for the message
    if last is None:
        raise UserError(f"no folding reaches {budgets[0]} cycles per frame (--target-fps {target_fps:g} at "
                        f"{clock_mhz:g} MHz); lower --target-fps")
    budget, total = last
    r = board.resources
    limits = r.limits()
    need = ", ".join(f"{k} {int(total[k]):,} of {int(v / (1 + headroom)):,} usable ({v:,} on the board)"
                     for k, v in limits.items() if total.get(k, 0) * (1 + headroom) > v)
    what = f"reaching {target_fps:g} fps" if target_fps is not None else "of this network"
    raise UserError(f"no folding {what} fits board {board.name} ({board.device}) with {headroom:.0%} headroom: "
                    f"the cheapest at {budget} cycles/frame needs {need}; lower --target-fps or choose a larger "
                    f"board (`pqhw boards`)")
