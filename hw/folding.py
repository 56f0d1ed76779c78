"""PE/SIMD per layer: the cheapest folding that reaches a target frame rate, or one the user gives.

Cost of a folding is its parallel lanes, the product of its PE and SIMD summed over the layers. Cycles come
from the one cycle model, hw.cycles: each layer's own cycles (its kind's `cycles()`); the links hw.emit
builds (width converter, then a FIFO of the consumer's beats) let every layer run at its own rate, so the
layers are folded one by one, each to its cheapest option within the budget. Nothing here names a layer
kind: foldings come from `fold_options()`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from common.errors import UserError
from hw.cycles import expected_cycles_per_frame, layer_cycles, stage_cycles  # noqa: F401
from hw.ir import Graph


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def lanes(fold: dict) -> int:
    """Parallel lanes of one layer's folding: PE x SIMD (PE for a kind folded by PE only)."""
    return math.prod(fold.values())


def folded(layer, fold: dict):
    """A copy of `layer` with `fold` applied (weights and thresholds shared, not copied)."""
    return layer.model_copy(update=fold)


def _fold_of(layer) -> dict:
    return {k: getattr(layer, k) for k in layer.fold_options()[0]}


def _unrolled(layer):
    return folded(layer, max(layer.fold_options(), key=lanes))


def balanced_folding(graph: Graph, budget: int) -> list[dict]:
    """The cheapest folding (fewest lanes, then the earliest of each layer's fold_options) whose every layer
    takes at most `budget` cycles per frame."""
    folds = []
    for layer in graph.layers:
        opts = [o for o in layer.fold_options() if folded(layer, o).cycles() <= budget]
        if not opts:
            raise UserError(f"layer {layer.name}: cannot reach {budget} cycles per frame even fully unrolled")
        folds.append(min(enumerate(opts), key=lambda io: (lanes(io[1]), io[0]))[1])
    return folds


def with_folding(graph: Graph, folds: list[dict]) -> Graph:
    """A copy of the graph with one folding per layer (new layer objects; weight tables shared)."""
    return graph.model_copy(update={"layers": [folded(l, f) for l, f in zip(graph.layers, folds)]})


def fold_for_cycles(graph: Graph, budget: int) -> Graph:
    """A copy of the graph folded so that the pipeline takes at most `budget` cycles per frame, as cheaply as
    possible: every layer within the budget."""
    if budget < 1:
        raise UserError(f"--target-fps asks for {budget} cycles per frame; at least 1 is needed "
                        "(lower --target-fps or raise --clock-mhz)")
    return with_folding(graph, balanced_folding(graph, budget))


def fold_for_fps(graph: Graph, target_fps: float, clock_mhz: float) -> Graph:
    if target_fps <= 0 or clock_mhz <= 0:
        raise UserError(f"--target-fps ({target_fps}) and --clock-mhz ({clock_mhz}) must be positive")
    return fold_for_cycles(graph, int(clock_mhz * 1e6 // target_fps))


def apply_folding_file(graph: Graph, path: Path) -> Graph:
    """Folding from JSON: {"LAYER_NAME": {"pe": P, "simd": S}, ...}; layers not named keep their folding."""
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
        options = layer.fold_options()
        accepted = {k: sorted({o[k] for o in options}) for k in options[0]}
        if not isinstance(fold, dict) or set(fold) - set(accepted):
            raise UserError(f"{path}: {name}: expected keys {sorted(accepted)}, got {fold!r}")
        for key, value in fold.items():
            if not isinstance(value, int) or isinstance(value, bool) or value not in accepted[key]:
                raise UserError(f"{path}: {name}.{key} = {value!r} does not divide {max(accepted[key])}; "
                                f"accepted: {accepted[key]}")
            setattr(layer, key, value)
    return g


def apply_to_finn(model, graph: Graph):
    """Sets the same folding (PE, SIMD) on FINN's HW nodes, so FINN's own analyses can be compared with ours."""
    from qonnx.custom_op.registry import getCustomOp

    by_name = {l.name: l for l in graph.layers}
    for node in model.graph.node:
        layer = by_name[node.name]
        inst = getCustomOp(node)
        for key, value in _fold_of(layer).items():
            inst.set_nodeattr(key.upper(), value)
    return model


def finn_exp_cycles(model) -> dict[str, int]:
    from finn.analysis.fpgadataflow.exp_cycles_per_layer import exp_cycles_per_layer

    return {k: int(v) for k, v in model.analysis(exp_cycles_per_layer).items()}


# Board-budget folding ------------------------------------------------------------------------------------
# Fraction of every board resource kept free beyond the estimate (the estimate's error, routing slack).
HEADROOM = 0.15


def layer_options(layer, budget: int) -> list[dict]:
    """Every folding of one layer that takes at most `budget` cycles per frame alone, fewest lanes first."""
    return [o for o in layer.fold_options() if folded(layer, o).cycles() <= budget]


def _floor(graph: Graph) -> int:
    """The frame interval with every layer fully unrolled."""
    return max(_unrolled(l).cycles() for l in graph.layers)


def _alone_cycles(graph: Graph) -> set[int]:
    return {folded(l, o).cycles() for l in graph.layers for o in l.fold_options()}


def reachable_cycles(graph: Graph) -> list[int]:
    """Every frame interval some folding gives, fastest first: each layer's cycles at each of its foldings
    that some folding of every other layer can match."""
    floor = _floor(graph)
    return sorted(v for v in _alone_cycles(graph) if v >= floor)


def _pressure(total: dict, resources, headroom: float) -> float:
    """The most used board resource as a fraction of what may be used (> 1: does not fit)."""
    limits = resources.limits()
    return max(total.get(k, 0) * (1 + headroom) / v if v else (float("inf") if total.get(k, 0) else 0.0)
               for k, v in limits.items())


def fit_at_budget(graph: Graph, budget: int, family: str, resources, headroom: float = HEADROOM):
    """(graph, estimate total, pressure) for a folding within `budget` cycles: the cheapest one, then layer by
    layer the option that lowers the pressure on the board most (trading LUTs for BRAM and back), keeping
    every layer within the budget."""
    from hw.estimate import estimate_total

    g = fold_for_cycles(graph, budget)
    total = estimate_total(g, family)
    best = _pressure(total, resources, headroom)
    improved = best > 1.0
    while improved:
        improved = False
        for i, layer in enumerate(graph.layers):
            for opt in layer_options(layer, budget):
                layers = list(g.layers)
                layers[i] = folded(layers[i], opt)
                trial = g.model_copy(update={"layers": layers})
                t = estimate_total(trial, family)
                p = _pressure(t, resources, headroom)
                if p < best - 1e-9:
                    g, total, best, improved = trial, t, p, True
        if best <= 1.0:
            break
    return g, total, best


def fold_for_board(graph: Graph, board, clock_mhz: float, target_fps: float | None = None,
                   headroom: float = HEADROOM, target_required: bool = True) -> Graph:
    """The highest-throughput folding whose estimate (wrapper included, `headroom` kept free) fits the board;
    with target_fps, the cheapest folding reaching it that fits, or (target_required False: a default target,
    not the user's) the fastest that fits when none reaching it does. UserError with needed vs available if
    none fits."""
    from hw.estimate import estimate_total, family_of

    if target_fps is not None and not target_required:
        try:
            return fold_for_board(graph, board, clock_mhz, target_fps, headroom)
        except UserError:
            return fold_for_board(graph, board, clock_mhz, None, headroom)

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
