"""Progressive ADMM pruning and quantization (paper 002, Ye et al.) as resumable phases of `pqhw train`.

  pretrain            the network with float weights (the paper starts from a trained model)
  prune<s>.admm       ADMM regularisation (eq. 2-4): SGD on loss + sum_i rho_i/2 ||W_i - Z_i + U_i||^2 (the
                      penalty enters as a gradient term), and every `epochs_per_iteration` epochs
                      Z_i = Proj(W_i + U_i) (top magnitudes of step s's per-layer target), U_i += W_i - Z_i,
                      rho_i = min(init * factor^k, max)
  prune<s>.retrain    masked mapping and retraining: W_i = Proj(W_i), the zeros masked, the rest retrained
  quant<s>.admm       the same regularisation with Proj = nearest quantization level, for step s's layers
  quant<s>.retrain    masked mapping: the weights within epsilon * alpha of a level are mapped and fixed, the
                      others retrained, then all mapped; the layer is then fixed for the later steps

Progressive (section 5): each pruning step starts from the previous one's result, its pruned weights stay
pruned and only the rest are projected (targets per step, e.g. 0.8 then 0.92, per layer or one for all);
quantization goes by layer subsets, by default the paper's two steps: every layer but the first and the last,
then those two. Pruning comes first, then quantization of the nonzero weights (section 4.1).

Where this departs from the paper, and why:
- alpha, the level spacing of a layer, is fitted with the levels in each projection (admm_proj), since the
  paper fixes levels without saying how; the mapping for that alpha is exactly the nearest level.
- kept weights of a pruned layer are quantized onto the nonzero levels, so a pruning rate is reached exactly.
- activations are the config's Brevitas quantizers from the start (the accelerator is integer throughout);
  the paper quantizes weights only.
- U is not rescaled when rho grows (the paper's eq. 3 update U^k = U^(k-1) + W^k - Z^k as written).
- the optimizer is the config's (Adam by default) with a cosine schedule per phase; epochs are far fewer than
  the paper's 100-150 per step, for small networks on a small CPU.

DIR/admm_state.pt is written after every epoch (model with its ADMM buffers, optimizer, schedule, random
states, Brevitas statistics counters); --resume continues from it and gives the same weights.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from common.errors import UserError
from quant.checkpoint import atomic_torch_save, load_torch
from quant.methods.admm_model import AdmmNet, enforce, quantize_layer
from quant.methods.admm_proj import admm_update, prune_mask, project_quant, rho_at
from quant.methods.admm_shrink import export_net
from quant.train import accuracy, restore_counters, seed_everything, stats_counters, train_epochs
from quant.quantizers import weight_bits

STATE = "admm_state.pt"
TAKES_SHIFT = True  # every phase moves training images by training.shift, as plain training does


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rho(_Strict):
    init: float = Field(1.5e-3, gt=0, description="rho of the first ADMM iteration (paper: 1.5e-3)")
    factor: float = Field(2.0, ge=1, description="rho is multiplied by this after every ADMM iteration")
    max: float = Field(1.0, gt=0, description="rho never grows past this")


class Schedule(_Strict):
    iterations: int = Field(6, ge=1, description="ADMM iterations (Z, U and rho updates) per step")
    epochs_per_iteration: int = Field(2, ge=1)
    retrain_epochs: int = Field(6, ge=0, description="masked retraining epochs after the mapping")



class Prune(Schedule):
    structure: Literal["unstructured", "filter", "channel", "column"] = "unstructured"
    steps: list[Union[float, list[float]]] = Field(
        min_length=1, description="fraction of zero weights (structured: of zero groups) after each step: one "
        "value for every layer, or one per weight layer")

    @field_validator("steps")
    @classmethod
    def _fractions(cls, steps):
        for i, s in enumerate(steps):
            for v in (s if isinstance(s, list) else [s]):
                if not 0 <= v < 1:
                    raise ValueError(f"step {i}: {v} is not a fraction in [0, 1)")
        return steps


class Quantize(Schedule):
    iterations: int = Field(4, ge=1)
    steps: Union[Literal["paper"], list[list[int]]] = Field(
        "paper", description="weight-layer indices quantized in each step; paper: all but the first and last "
        "layer, then those two")
    epsilon: float = Field(0.1, ge=0, le=0.5, description="weights within epsilon * alpha of a level are "
                           "mapped first and fixed; the others are retrained, then mapped")
    finetune_epochs: int = Field(2, ge=0, description="after the last mapping: every weight fixed, batch norms "
                                 "and activation scales trained (no step of the paper follows the last mapping)")


class Config(_Strict):
    name: Literal["admm"] = "admm"
    pretrain_epochs: int | None = Field(None, ge=0, description="default: training.epochs")
    lr: float | None = Field(None, gt=0, description="learning rate of the ADMM and retraining phases "
                             "(default: training.lr)")
    rho: Rho = Rho()
    prune: Prune | None = None
    quantize: Quantize = Quantize()


def build_model(run_cfg, mcfg: Config, image_shape, classes) -> nn.Module:
    model = AdmmNet(run_cfg, image_shape, classes)
    plan(run_cfg, mcfg, len(model.quant_layers()))  # checks the steps against the layers
    return model


def export_model(run_cfg, mcfg: Config, model) -> nn.Module:
    return export_net(run_cfg, model)


@dataclass
class Phase:
    name: str
    kind: Literal["pretrain", "admm", "retrain", "finetune"]
    what: str = ""  # prune | quant
    epochs: int = 0
    sparsity: list[float] = field(default_factory=list)  # prune: per layer
    layers: list[int] = field(default_factory=list)  # quant: the step's layers


def _prune_targets(mcfg: Config, n: int) -> list[list[float]]:
    targets = []
    for i, s in enumerate(mcfg.prune.steps):
        t = s if isinstance(s, list) else [s] * n
        if len(t) != n:
            raise UserError(f"method.prune.steps.{i}: {len(t)} values for {n} weight layers")
        if targets and any(a < b for a, b in zip(t, targets[-1])):
            raise UserError(f"method.prune.steps.{i}: a step may not prune less than the step before "
                            f"({t} after {targets[-1]})")
        targets.append([float(v) for v in t])
    if mcfg.prune.structure == "filter" and targets[-1][-1] > 0:
        raise UserError("method.prune.steps: filter pruning of the last layer would remove classes; give the "
                        "last layer 0")
    return targets


def _quant_steps(mcfg: Config, n: int) -> list[list[int]]:
    if mcfg.quantize.steps == "paper":
        steps = [list(range(1, n - 1)), sorted({0, n - 1})]
        return [s for s in steps if s]
    seen = [i for s in mcfg.quantize.steps for i in s]
    if sorted(seen) != list(range(n)):
        raise UserError(f"method.quantize.steps: {mcfg.quantize.steps} must name every weight layer 0 .. {n - 1} "
                        "exactly once")
    return [list(s) for s in mcfg.quantize.steps if s]


def plan(run_cfg, mcfg: Config, n: int) -> list[Phase]:
    """The phases of a run, in order."""
    phases = [Phase("pretrain", "pretrain", epochs=run_cfg.training.epochs if mcfg.pretrain_epochs is None
                    else mcfg.pretrain_epochs)]
    for what, sched, steps in ((("prune", mcfg.prune, _prune_targets(mcfg, n)) if mcfg.prune else ("", None, [])),
                               ("quant", mcfg.quantize, _quant_steps(mcfg, n))):
        for s, target in enumerate(steps, start=1):
            kw = {"sparsity": target} if what == "prune" else {"layers": target}
            phases += [Phase(f"{what}{s}.admm", "admm", what, sched.iterations * sched.epochs_per_iteration, **kw),
                       Phase(f"{what}{s}.retrain", "retrain", what, sched.retrain_epochs, **kw)]
    if mcfg.quantize.finetune_epochs:
        phases.append(Phase("finetune", "finetune", epochs=mcfg.quantize.finetune_epochs))
    return phases


# ---- what the phases do to the layers -------------------------------------------------------------------

def _projection(model: AdmmNet, mcfg: Config, phase: Phase, i: int):
    layer = model.quant_layers()[i]
    if phase.what == "prune":
        return lambda v: v * prune_mask(v, phase.sparsity[i], mcfg.prune.structure, layer.mask)
    return lambda v: project_quant(v, model.levels[i], layer.mask)[0]


def _active(model: AdmmNet, phase: Phase) -> list[int]:
    """The layers a phase regularises or maps."""
    n = len(model.quant_layers())
    return list(range(n)) if phase.what == "prune" else phase.layers


def admm_start(model: AdmmNet, mcfg: Config, phase: Phase) -> None:
    """Z^0 = Proj(W^0), U^0 = 0, rho = rho.init on the phase's layers."""
    with torch.no_grad():
        for i in _active(model, phase):
            l = model.quant_layers()[i]
            l.Z.copy_(_projection(model, mcfg, phase, i)(l.weight.detach()))
            l.U.zero_()
            l.rho.fill_(mcfg.rho.init)


def admm_iteration(model: AdmmNet, mcfg: Config, phase: Phase, k: int) -> None:
    """After ADMM iteration k (0-based): Z, U updated (eq. 4 and the dual rule), rho for iteration k + 1."""
    with torch.no_grad():
        for i in _active(model, phase):
            l = model.quant_layers()[i]
            z, u = admm_update(l.weight.detach(), l.U, _projection(model, mcfg, phase, i))
            l.Z.copy_(z)
            l.U.copy_(u)
            l.rho.fill_(rho_at(k + 1, mcfg.rho.init, mcfg.rho.factor, mcfg.rho.max))


def residual(model: AdmmNet, mcfg: Config, phase: Phase) -> float:
    """||W - Proj(W)|| / ||W|| over the phase's layers: how close ADMM brought W to the constraint set."""
    num = den = 0.0
    with torch.no_grad():
        for i in _active(model, phase):
            w = model.quant_layers()[i].weight.detach()
            num += float(((w - _projection(model, mcfg, phase, i)(w)) ** 2).sum())
            den += float((w ** 2).sum())
    return (num / den) ** 0.5 if den else 0.0


def admm_end(model: AdmmNet, phase: Phase) -> None:
    with torch.no_grad():
        for l in model.quant_layers():
            l.rho.zero_()
            l.Z.zero_()
            l.U.zero_()


def mapping(model: AdmmNet, mcfg: Config, phase: Phase) -> None:
    """Masked mapping at the start of retraining. Pruning: W = Proj(W) and the zeros masked. Quantization:
    alpha fitted on W, the weights within epsilon * alpha of their level mapped and fixed."""
    with torch.no_grad():
        for i in _active(model, phase):
            l = model.quant_layers()[i]
            if phase.what == "prune":
                l.mask.copy_(prune_mask(l.weight, phase.sparsity[i], mcfg.prune.structure, l.mask))
                enforce(l)
                continue
            z, alpha = project_quant(l.weight.detach(), model.levels[i], l.mask)
            l.alpha.fill_(alpha)
            close = ((l.weight - z).abs() <= mcfg.quantize.epsilon * alpha) & (l.mask > 0)
            l.fixed.copy_(close.to(l.fixed.dtype))
            l.frozen.copy_(z * l.fixed)
            enforce(l)


def retrain_end(model: AdmmNet, phase: Phase) -> None:
    if phase.what == "quant":
        for i in phase.layers:
            quantize_layer(model.quant_layers()[i], model.levels[i])


def _hooks(model: AdmmNet, active: list[int]) -> list:
    """Gradient of the ADMM penalty, rho (W - Z + U), added on active layers; no gradient for pruned or
    fixed weights (their values are restored after every step as well)."""
    handles = []
    for i, l in enumerate(model.quant_layers()):
        def hook(g, l=l, on=i in active):
            if on:
                g = g + l.rho * (l.weight.detach() - l.Z + l.U)
            return g * l.mask * (1 - l.fixed)
        handles.append(l.weight.register_hook(hook))
    return handles


def _optimizer(model, tc, lr: float, epochs: int):
    if tc.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=tc.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=tc.weight_decay)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))


# ---- statistics -----------------------------------------------------------------------------------------

def layer_stats(run_cfg, model: AdmmNet) -> dict:
    """Zeros per layer and overall, pruning rate (weights / nonzeros), bits per layer and the compression of
    the nonzero weights at their bits against float32 (no index cost: unrolled constant-weight layers
    need none)."""
    zeros, nonzero_bits, total, per_layer, bits = 0, 0, 0, [], []
    for l, spec in zip(model.quant_layers(), run_cfg.model.layers):
        w = l.weight.detach()
        z = int((w == 0).sum())
        b = weight_bits(spec.weight)
        per_layer.append(round(z / w.numel(), 4))
        bits.append(b)
        zeros, total, nonzero_bits = zeros + z, total + w.numel(), nonzero_bits + (w.numel() - z) * b
    nonzero = total - zeros
    return {"sparsity_per_layer": per_layer, "sparsity": round(zeros / total, 4), "zeros": zeros,
            "nonzeros": nonzero, "pruning_rate": round(total / max(nonzero, 1), 2), "bits_per_layer": bits,
            "compression_nonzero_vs_float32": round(32 * total / max(nonzero_bits, 1), 2),
            "alpha_per_layer": [round(float(l.alpha), 8) for l in model.quant_layers()]}


# ---- the run --------------------------------------------------------------------------------------------

def _run_phase(model, split, run_cfg, mcfg, phase, index, out_dir, state, history, progress, config_json):
    tc = run_cfg.training
    lr = tc.lr if phase.kind == "pretrain" or mcfg.lr is None else mcfg.lr
    opt, sched = _optimizer(model, tc, lr, phase.epochs)
    gen = torch.Generator().manual_seed(tc.seed + 1000 * index)
    start = 0
    if state is None:
        seed_everything(tc.seed + index)
        if phase.kind == "admm":
            admm_start(model, mcfg, phase)
        elif phase.kind == "retrain":
            mapping(model, mcfg, phase)
    else:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start = state["epoch"]
    per_iter = (mcfg.prune if phase.what == "prune" else mcfg.quantize).epochs_per_iteration \
        if phase.kind == "admm" else 0
    layers = model.quant_layers()

    def finish_epoch(epoch: int) -> None:
        if per_iter and epoch % per_iter == 0:
            admm_iteration(model, mcfg, phase, epoch // per_iter - 1)
        if epoch == phase.epochs:
            _end(model, mcfg, phase, split, history)
        save(epoch)

    def save(epoch: int) -> None:
        atomic_torch_save({"state_dict": model.state_dict(), "config": config_json, "phase": index,
                           "epoch": epoch, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                           "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                           "counters": stats_counters(model), "history": history}, Path(out_dir) / STATE)

    handles = _hooks(model, _active(model, phase) if phase.kind == "admm" else [])
    try:
        if phase.epochs == 0:
            _end(model, mcfg, phase, split, history)
            save(0)
        else:
            train_epochs(model, split, opt, sched, phase.epochs, tc.batch_size, gen, progress,
                         f"{run_cfg.name} {phase.name}", start,
                         after_step=lambda: [enforce(l) for l in layers], on_epoch=finish_epoch, shift=tc.shift)
    finally:
        for h in handles:
            h.remove()


def _end(model, mcfg, phase, split, history) -> None:
    if phase.kind == "admm":
        history[f"{phase.name}:residual"] = round(residual(model, mcfg, phase), 5)
        admm_end(model, phase)
    elif phase.kind == "retrain":
        retrain_end(model, phase)
    history[phase.name] = accuracy(model, split.x_test, split.y_test)


def train(run_cfg, mcfg: Config, model: AdmmNet, split, out_dir, resume: bool = False, progress=None) -> dict:
    """Runs the phases in order, checkpointing every epoch; with resume, continues from DIR/admm_state.pt."""
    out_dir = Path(out_dir)
    phases = plan(run_cfg, mcfg, len(model.quant_layers()))
    config_json = run_cfg.model_dump(mode="json")
    path = out_dir / STATE
    first, state, history = 0, None, {}
    t0 = time.perf_counter()
    if resume and path.is_file():
        saved = load_torch(path)
        if saved["config"] != config_json:
            raise UserError(f"{path}: made with another config; drop --resume or use a fresh --out directory")
        model.load_state_dict(saved["state_dict"])
        restore_counters(model, saved["counters"])
        history = dict(saved["history"])
        first = saved["phase"]
        if saved["epoch"] >= phases[first].epochs:
            first += 1
        else:
            state = saved
    elif path.is_file():
        path.unlink()
    resumed = [p.name for p in phases[:first]]
    for index in range(first, len(phases)):
        _run_phase(model, split, run_cfg, mcfg, phases[index], index, out_dir, state, history, progress,
                   config_json)
        state = None
    for i, l in enumerate(model.quant_layers()):
        if int(l.quantized) != 1:
            raise RuntimeError(f"model.layers.{i}: no quantization step covered this layer")
    return {"method": "admm", "structure": mcfg.prune.structure if mcfg.prune else "none",
            "phase_epochs": {p.name: p.epochs for p in phases},
            "phase_test_accuracy": {k: v for k, v in history.items() if ":" not in k},
            "admm_residual": {k.split(":")[0]: v for k, v in history.items() if k.endswith(":residual")},
            "phases_resumed": resumed, "sparsity_target": mcfg.prune.steps[-1] if mcfg.prune else 0.0,
            "admm_seconds": round(time.perf_counter() - t0, 3), **layer_stats(run_cfg, model)}
