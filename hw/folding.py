"""PE/SIMD per layer: the cheapest folding that reaches a target frame rate, or one the user gives.

Cost of a folding is its parallel lanes, the product of its PE and SIMD summed over the layers. Cycles come
from the one cycle model, hw.cycles: a layer's own cycles (its kind's `cycles()`), or more where the link in
front of it cannot deliver its input as fast as it reads (a producer's PE below an MVAU's SIMD stretches the
MVAU's first neuron fold). So layers are not folded one by one: each layer's folding is chosen against its
producer's output fold, and the cheapest combination whose every layer meets the budget in the pipeline is
found by dynamic programming along the chain (a layer's cycles depend only on its own folding and its
producer's). Nothing here names a layer kind: foldings come from `fold_options()`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from common.errors import UserError
from hw.cycles import expected_cycles_per_frame, layer_cycles, pipeline_cycles, stage_cycles  # noqa: F401
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


def _pipeline(layer, producer_fold: int | None) -> int:
    return pipeline_cycles(layer.cycles(), getattr(layer, "num_vectors", 1), layer.in_channels, layer.in_fold,
                           producer_fold)


def balanced_folding(graph: Graph, budget: int) -> list[dict]:
    """The cheapest folding (fewest lanes; then the earliest options of each layer's fold_options) whose every
    layer takes at most `budget` cycles per frame in the pipeline, stalls on its input link included.

    Dynamic programming along the chain: for each folding of layer i, the cheapest foldings of layers 0..i
    ending in it; a layer's pipeline cycles depend on its own folding and its producer's out_fold only, so
    per producer out_fold the cheapest prefix is all that is kept."""
    # per layer: (fold, folded layer) for every folding that meets the budget alone, cheapest first
    choices = []
    for layer in graph.layers:
        opts = [(o, f) for o in layer.fold_options() for f in (folded(layer, o),) if f.cycles() <= budget]
        if not opts:
            raise UserError(f"layer {layer.name}: cannot reach {budget} cycles per frame even fully unrolled")
        choices.append(opts)
    # best[out_fold] = (lanes, rank, chain of option indices) over the prefixes ending in that output fold
    best: dict[int | None, tuple] = {None: (0, 0, ())}
    for opts in choices:
        nxt: dict[int, tuple] = {}
        for j, (o, f) in enumerate(opts):
            cand = None
            for r, (cost, rank, chain) in best.items():
                if _pipeline(f, r) <= budget:
                    c = (cost + lanes(o), rank + j, chain + (j,))
                    if cand is None or c < cand:
                        cand = c
            if cand is not None and (f.out_fold not in nxt or cand < nxt[f.out_fold]):
                nxt[f.out_fold] = cand
        best = nxt
    # a fully unrolled producer never stalls its consumer, so some folding always meets a budget that every
    # layer meets alone
    _, _, chain = min(best.values())
    return [choices[i][j][0] for i, j in enumerate(chain)]


def with_folding(graph: Graph, folds: list[dict]) -> Graph:
    """A copy of the graph with one folding per layer (new layer objects; weight tables shared)."""
    return graph.model_copy(update={"layers": [folded(l, f) for l, f in zip(graph.layers, folds)]})


def fold_for_cycles(graph: Graph, budget: int) -> Graph:
    """A copy of the graph folded so that the pipeline takes at most `budget` cycles per frame, as cheaply as
    possible: every layer within the budget, each against its producer's output fold."""
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
    """The frame interval with every layer fully unrolled (no link stalls then: each beat is a whole vector)."""
    return max(_unrolled(l).cycles() for l in graph.layers)


def _alone_cycles(graph: Graph) -> set[int]:
    return {folded(l, o).cycles() for l in graph.layers for o in l.fold_options()}


def _stalled_cycles(graph: Graph, lo: int, hi: int) -> set[int]:
    """Pipeline cycles in [lo, hi] that some layer takes only because of its producer's output fold."""
    values = set()
    layers = graph.layers
    for prev, layer in zip(layers[:-1], layers[1:]):
        outs = {folded(prev, o).out_fold for o in prev.fold_options()}
        for o in layer.fold_options():
            f = folded(layer, o)
            if f.cycles() > hi:
                continue
            values |= {c for r in outs for c in (_pipeline(f, r),) if lo <= c <= hi and c != f.cycles()}
    return values


def reachable_cycles(graph: Graph) -> list[int]:
    """Every frame interval some folding gives, fastest first: each layer's cycles alone at each of its
    foldings, and the longer ones a layer takes behind a narrower producer."""
    floor = _floor(graph)
    alone = _alone_cycles(graph)
    return sorted(v for v in alone | _stalled_cycles(graph, floor, max(alone)) if v >= floor)


def _pressure(total: dict, resources, headroom: float) -> float:
    """The most used board resource as a fraction of what may be used (> 1: does not fit)."""
    limits = resources.limits()
    return max(total.get(k, 0) * (1 + headroom) / v if v else (float("inf") if total.get(k, 0) else 0.0)
               for k, v in limits.items())


def fit_at_budget(graph: Graph, budget: int, family: str, resources, headroom: float = HEADROOM):
    """(graph, estimate total, pressure) for a folding within `budget` cycles: the cheapest one, then layer by
    layer the option that lowers the pressure on the board most (trading LUTs for BRAM and back), keeping
    the pipeline (stalls on the links included) within the budget."""
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
                if expected_cycles_per_frame(trial) > budget:
                    continue  # its neighbour would stall beyond the budget
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
        floor = _floor(graph)
        budgets = sorted(v for v in _alone_cycles(graph) if v >= floor)
    last = None
    missed = budgets[0] - 1  # the largest budget tried that did not fit
    for budget in budgets:
        try:
            g, total, pressure = fit_at_budget(graph, budget, family, board.resources, headroom)
        except UserError:
            continue  # a layer cannot reach this interval at all
        if pressure <= 1.0:
            if target_fps is None:
                # a faster folding may lie between the last budget that did not fit and this folding's interval:
                # one whose layers meet the last budget alone but stall behind their producers
                for tighter in sorted(_stalled_cycles(graph, missed + 1, expected_cycles_per_frame(g) - 1)):
                    t_g, _, t_pressure = fit_at_budget(graph, tighter, family, board.resources, headroom)
                    if t_pressure <= 1.0:
                        return t_g
            return g
        missed = budget
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
