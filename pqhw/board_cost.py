"""Board-targeted training: hw.estimate's calibrated resource estimate as a loss term of DJPQ.

Why here: quant may not import hw, and the estimate must stay the one hw.estimate computes (the one
`pqhw compile --board` folds and `pqhw bitstream` checks against), not a second model of it.

What the loss sees. At a refresh, the network's current integer form (kept channels, integer weights, the
hardware bit widths) is written as the hw.ir graph FINN's front-end makes of its export (MVAUs with
thresholds, a LabelSelect), folded by the folding rule of `pqhw compile --target-fps` (hw.folding:
fold_for_cycles, the cheapest folding within clock / fps cycles a frame) and priced by hw.estimate
(estimate_total, board wrapper included): E, per resource. Slopes are hw.estimate again, one step down in
each variable (a layer's weight bits and activation bits to the next lower width the restriction allows,
a quarter of its output channels fewer, those with the weakest gates: a single channel can change the
folding's divisors and with them the cost either way): g_i = max(0, E(n) - E(n - step_i)) / step_i, never
negative, so that the loss never pays for growing.
The term is E + sum_i g_i (x_i - x_i.detach()) over DQ's bit widths (their straight-through values) and the
kept-channel counts (hard count, gradient of eq. 19's soft count): its value is exactly hw.estimate of the
network's integer form at the refresh, its gradient the estimate's own finite differences. Between
refreshes (every `refresh_steps` optimizer steps, and whenever a bit width or channel count changes) the
value moves along those slopes.

Loss: weight * sum over resources of relu(E_r * (1 + HEADROOM) / limit_r - target): nothing while the
design fits the board with hw.folding's headroom (times `target`, a margin for the slopes' error), a push
down on whatever resource is over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from common.dtypes import smallest_dtype
from common.errors import UserError

RESOURCES = ("luts", "ffs", "brams", "dsps")


@dataclass
class LayerSpec:
    """One MVAU of the network's integer form: weights [out, in], bits of weights (None: last layer keeps
    its own), of its inputs and of its outputs (None: the logits)."""

    weights: np.ndarray
    w_bits: int
    in_bits: int
    out_bits: int | None


def _levels(bits: int, signed: bool) -> int:
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


def lower_bits(bits: int, restrict: str) -> int | None:
    """The next width below `bits` that DQ's restriction can give (None at the bottom, 2 bits)."""
    if bits <= 2:
        return None
    return bits // 2 if restrict in ("pow2", "pow2_up") else bits - 1


def higher_bits(bits: int, restrict: str) -> int:
    return bits * 2 if restrict in ("pow2", "pow2_up") else bits + 1


def requantized(w: np.ndarray, bits: int, new_bits: int) -> np.ndarray:
    """The same weights on a grid of `new_bits` bits (same range): round(w * L(new) / L(old))."""
    return np.round(w * (_levels(new_bits, True) / _levels(bits, True))).astype(np.int64)


def layer_graph(specs: list[LayerSpec], input_bits: int):
    """The hw.ir graph of an MLP of MVAUs (thresholds on hidden layers) and a LabelSelect, as hw.finn_import
    reads FINN's graph of such a network: smallest weight and accumulator datatypes of the actual integers,
    2^b - 1 thresholds per channel for UINT<b> outputs."""
    from hw.ir import Graph
    from hw.kinds.label_select import LabelSelect
    from hw.kinds.mvau import MVAU, exact_acc_range

    layers = []
    in_dt = f"UINT{input_bits}"
    for i, s in enumerate(specs):
        w = np.asarray(s.weights, dtype=np.int64)
        if np.isin(w, (-1, 0, 1)).all():
            mode, w_dt = "ternary", "INT2"
        else:
            mode, w_dt = "int", smallest_dtype(int(min(w.min(), -1)), int(w.max()))
        lo, hi = exact_acc_range(mode, w, in_dt)
        acc_dt = smallest_dtype(lo, hi)
        thresholds, out_dt = None, acc_dt
        if s.out_bits is not None:
            nt = _levels(s.out_bits, False)
            # evenly over the accumulator's reach; only their count and width enter the estimate
            t = np.linspace(lo, hi + 1, nt + 2)[1:-1].round().astype(np.int64)
            thresholds = np.tile(t, (w.shape[0], 1)).tolist()
            out_dt = f"UINT{s.out_bits}"
        layers.append(MVAU(name=f"MVAU_{i}", mode=mode, mh=w.shape[0], mw=w.shape[1], input_dtype=in_dt,
                           weight_dtype=w_dt, acc_dtype=acc_dt, output_dtype=out_dt, weights=w.tolist(),
                           thresholds=thresholds))
        in_dt = out_dt
    classes = specs[-1].weights.shape[0]
    layers.append(LabelSelect(name="LabelSelect_0", channels=classes, k=1, input_dtype=in_dt,
                              output_dtype=smallest_dtype(0, classes - 1)))
    return Graph(input_dtype=f"UINT{input_bits}", input_shape=[specs[0].weights.shape[1]], layers=layers)


class BoardCost:
    """The resource cost of a DJPQ network on `board` at `target_fps` (hook of quant.methods.djpq)."""

    replaces_bops = True

    def __init__(self, board: str, target_fps: float, clock_mhz: float | None = None, weight: float = 10.0,
                 target: float = 0.95, refresh_steps: int = 20, restrict: str = "pow2"):
        from boards.registry import get_board
        from hw.estimate import family_of
        from hw.folding import HEADROOM

        self.board = get_board(board)
        self.family = family_of(self.board.name)
        if not (target_fps > 0 and math.isfinite(target_fps)):
            raise UserError(f"--target-fps {target_fps:g}: must be a positive number of frames per second")
        self.target_fps = float(target_fps)
        self.clock_mhz = float(clock_mhz or self.board.clock.mhz)
        self.budget = int(self.clock_mhz * 1e6 // self.target_fps)
        if self.budget < 1:
            raise UserError(f"--target-fps {target_fps:g} asks for less than 1 cycle per frame at "
                            f"{self.clock_mhz:g} MHz ({self.board.name}); lower --target-fps")
        self.limits = {k: v for k, v in self.board.resources.limits().items() if k in RESOURCES}
        self.headroom = HEADROOM
        self.weight, self.target, self.refresh_steps, self.restrict = weight, target, refresh_steps, restrict
        self._anchor = None  # [key, steps since, E, slopes, variables]
        self.evaluations = 0
        self.report_cache = None

    # The network's integer form -------------------------------------------------------------------------
    @staticmethod
    def _kept(net) -> list[torch.Tensor]:
        from quant.djpq_net import _kept

        return [_kept(b.gate) if b.hidden else torch.arange(b.out_features) for b in net.blocks]

    def specs(self, net) -> list[LayerSpec]:
        """The integer weights of the kept channels and the hardware widths, as the export writes them."""
        specs = []
        with torch.no_grad():
            cols = torch.arange(net.blocks[0].in_features)
            in_bits = net.input_bits
            for b, rows in zip(net.blocks, self._kept(net)):
                w = torch.round(b.wq(b.weight) / b.wq.step())[rows][:, cols].numpy().astype(np.int64)
                out_bits = b.aq.hw_bits() if b.hidden else None
                specs.append(LayerSpec(w, b.wq.hw_bits(), in_bits, out_bits))
                in_bits, cols = out_bits, rows
        return specs

    def key(self, net) -> tuple:
        return tuple((b.wq.hw_bits(), b.aq.hw_bits() if b.hidden else 0, int(b.gate.keep_mask().sum())
                      if b.hidden else b.out_features) for b in net.blocks)

    # hw.estimate -----------------------------------------------------------------------------------------
    def estimate(self, specs: list[LayerSpec], input_bits: int) -> dict[str, float]:
        """hw.estimate's total (wrapper included) of the integer form at the folding for target_fps."""
        from hw.estimate import estimate_total
        from hw.folding import fold_for_cycles

        self.evaluations += 1
        g = fold_for_cycles(layer_graph(specs, input_bits), self.budget)
        total = estimate_total(g, self.family)
        return {k: float(total.get(k, 0)) for k in self.limits}

    def _variants(self, specs: list[LayerSpec], net) -> list[tuple[str, int, list[LayerSpec], float]]:
        """(variable, layer, specs one step away, signed step size) for every variable of the loss."""
        out = []
        for i, s in enumerate(specs):
            lo = lower_bits(s.w_bits, self.restrict)
            nb = lo if lo is not None else higher_bits(s.w_bits, self.restrict)
            v = [LayerSpec(x.weights, x.w_bits, x.in_bits, x.out_bits) for x in specs]
            v[i] = LayerSpec(requantized(s.weights, s.w_bits, nb), nb, s.in_bits, s.out_bits)
            out.append(("w", i, v, s.w_bits - nb))
            if s.out_bits is None:
                continue
            lo = lower_bits(s.out_bits, self.restrict)
            nb = lo if lo is not None else higher_bits(s.out_bits, self.restrict)
            v = list(specs)
            v[i] = LayerSpec(s.weights, s.w_bits, s.in_bits, nb)
            v[i + 1] = LayerSpec(specs[i + 1].weights, specs[i + 1].w_bits, nb, specs[i + 1].out_bits)
            out.append(("a", i, v, s.out_bits - nb))
            if s.weights.shape[0] > 1:  # a quarter of the channels fewer, those with the weakest gates
                drop = max(1, round(s.weights.shape[0] / 4))
                alpha = net.blocks[i].gate.log_alpha().detach()[self._kept(net)[i]]
                keep = np.sort(np.argsort(-alpha.numpy(), kind="stable")[:-drop])
                v = list(specs)
                v[i] = LayerSpec(s.weights[keep], s.w_bits, s.in_bits, s.out_bits)
                v[i + 1] = LayerSpec(specs[i + 1].weights[:, keep], specs[i + 1].w_bits, specs[i + 1].in_bits,
                                     specs[i + 1].out_bits)
                out.append(("c", i, v, float(drop)))
        return out

    def refresh(self, net) -> tuple[dict, dict]:
        """E and its slopes {(variable, layer): {resource: dE/dx}} at the network's integer form now."""
        specs = self.specs(net)
        e = self.estimate(specs, net.input_bits)
        slopes = {}
        for var, i, v, step in self._variants(specs, net):
            ev = self.estimate(v, net.input_bits)
            slopes[(var, i)] = {k: max(0.0, (e[k] - ev[k]) / step) for k in e}
        self._anchor = [self.key(net), 0, e, slopes, self._values(net, 1.0)]
        return e, slopes

    # The torch term -------------------------------------------------------------------------------------
    @staticmethod
    def _values(net, tau: float) -> dict:
        """The loss's variables: DQ bit widths (straight-through values) and kept-channel counts (hard count,
        gradient of the soft one)."""
        x = {}
        for i, b in enumerate(net.blocks):
            x[("w", i)] = b.wq.bits()
            if b.hidden:
                x[("a", i)] = b.aq.bits()
                soft = b.gate.channels * (1 - b.gate.soft_pruned_ratio(tau))
                x[("c", i)] = b.gate.keep_mask().sum() + (soft - soft.detach())
        return x

    def resources(self, net, tau: float = 1.0) -> dict[str, torch.Tensor]:
        """Estimated resources as tensors: hw.estimate's value at the anchor plus the slopes' move since."""
        a = self._anchor
        if a is None or a[0] != self.key(net) or a[1] >= self.refresh_steps:
            self.refresh(net)
            a = self._anchor
        a[1] += 1
        _, _, e, slopes, x0 = a
        x = self._values(net, tau)
        out = {}
        for k in e:
            t = net.blocks[0].weight.new_tensor(e[k])
            for var, g in slopes.items():
                t = t + g[k] * (x[var] - float(x0[var].detach()))
            out[k] = t
        return out

    def pressure_terms(self, res: dict[str, torch.Tensor]) -> torch.Tensor:
        terms = [torch.relu(res[k] * (1 + self.headroom) / lim - self.target) for k, lim in self.limits.items()
                 if lim]
        return sum(terms[1:], terms[0])

    def __call__(self, net, tau: float) -> torch.Tensor:
        return self.weight * self.pressure_terms(self.resources(net, tau))

    def report(self, net) -> dict:
        """The trained network's estimate at the target rate against what the board may use."""
        e = self.estimate(self.specs(net), net.input_bits)
        usable = {k: int(v / (1 + self.headroom)) for k, v in self.limits.items()}
        self.report_cache = {"board": self.board.name, "target_fps": self.target_fps, "clock_mhz": self.clock_mhz,
                "cycles_per_frame_budget": self.budget, "estimate": {k: round(v) for k, v in e.items()},
                "usable": usable, "fits": all(e[k] <= usable[k] for k in usable),
                "estimate_evaluations": self.evaluations}
        return self.report_cache
