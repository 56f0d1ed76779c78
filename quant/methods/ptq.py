"""Pruning Ternary Quantization (paper 000) as named, resumable phases of `pqhw train`.

  float     (pretrained: true) the pretrained full-precision model Algorithm 1 starts from: plain weights,
            trained with training.optimizer / lr / batch_size and one cosine (the paper takes it from a zoo)
  pretrain  L2-normalised weights in the forward pass (gradient scaled by M_w, eq. 20-21), weight decay,
            trained to convergence
  prune     magnitude pruning of each ternarised layer to `sparsity`, then the resetting trick
            w = Quant(w, 0) (skipped with reset: false, the paper's STE-Only ablation), then training
  quantize  ternary weights with the learned threshold delta and the refined STE (eq. 22-25), LSQ
            activations

Each finished phase is saved to DIR/phases/<phase>.pt; with --resume, finished phases are loaded, not rerun.
variant: twn is the plain threshold-ternary baseline of the ablation (no normalisation, no pruning phase, no
reset: delta at the sparsity quantile of |w| each step, alpha = mean kept |w|, identity STE), trained for the
same total epochs.

The three PTQ phases train as Section 5 says, by default: SGD with momentum 0.9, lr 1e-3, batch 128, weight
decay 1e-4, cosine annealing restarted every 10 epochs (SGDR), from the pretrained float model, the first
layer kept in float, no gain on any layer, eq. 26's activation levels. Each is a method option (optimizer,
lr, momentum, batch_size, restart_epochs, pretrained, first_layer, last_layer, classifier_gain, act_levels);
a config that departs from the paper says so next to the option.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from common.errors import UserError
from quant.checkpoint import atomic_torch_save, load_torch
from quant.methods.ptq_layers import ternarize
from quant.methods.ptq_model import PTQNet
from quant.train import accuracy, seed_everything, train_epochs

PHASES = ("float", "pretrain", "prune", "quantize")


class Epochs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    float: int | None = Field(None, ge=1, description="pretrained float model; default: training.epochs")
    pretrain: int | None = Field(None, ge=1, description="default: training.epochs")
    prune: int | None = Field(None, ge=1)
    quantize: int | None = Field(None, ge=1)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["ptq"] = "ptq"
    variant: Literal["ptq", "twn"] = "ptq"
    sparsity: float = Field(0.7, ge=0, lt=1, description="fraction of each ternarised layer's weights pruned")
    reset: bool = Field(True, description="reset kept weights to {-1,+1} by sign after pruning")
    delta_init: float = Field(0.05, ge=0, description="initial delta as a fraction of mean |w| of kept weights")
    delta_lr: float = Field(1e-3, gt=0, description="learning rate of delta")
    weight_decay: float = Field(1e-4, ge=0, description="weight decay on the latent weights only (paper: 1e-4)")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="of the PTQ phases (paper: SGD)")
    lr: float = Field(1e-3, gt=0, description="initial learning rate of the PTQ phases (paper: 0.001)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (paper: 0.9)")
    batch_size: int = Field(128, ge=1, description="of the PTQ phases (paper: 128)")
    restart_epochs: int = Field(10, ge=0, description="cosine annealing restarted every N epochs (paper: 10, "
                                "SGDR); 0: one cosine over each phase")
    pretrained: bool = Field(True, description="start from a trained float model (paper: yes); false: the "
                             "L2-normalised phase starts from random weights")
    first_layer: Literal["float", "ternary", "config"] = Field(
        "float", description="float: kept in full precision (paper: the first conv is not quantized); "
        "ternary: PTQ ternarises it; config: trained with its config weight quantizer")
    last_layer: Literal["ternary", "float", "config"] = Field(
        "ternary", description="paper: ternary (Table 4's ablation keeps first and last in float)")
    classifier_gain: bool = Field(False, description="a learnable gain on the per-tensor normalised "
                                  "classifier (not in the paper)")
    act_levels: Literal["eq26", "lsq"] = Field(
        "eq26", description="unsigned activation levels: eq26 (paper) 0 .. 2^(k-1)-1; lsq 0 .. 2^k-1")
    epochs: Epochs = Epochs()


def build_model(run_cfg, mcfg: Config, image_shape, classes) -> nn.Module:
    return PTQNet(run_cfg, mcfg, image_shape, classes)


def export_model(run_cfg, mcfg: Config, model) -> nn.Module:
    from quant.methods.ptq_export import brevitas_net

    return brevitas_net(run_cfg, model)


def _phase_epochs(run_cfg, mcfg: Config) -> dict[str, int]:
    e = {p: getattr(mcfg.epochs, p) or run_cfg.training.epochs for p in PHASES}
    if mcfg.variant == "twn":  # no prune phase: the same total epochs go to threshold-ternary training
        e = {"float": e["float"], "pretrain": e["pretrain"], "quantize": e["prune"] + e["quantize"]}
    if not mcfg.pretrained:
        del e["float"]
    return e


def schedule(opt, epochs: int, restart_epochs: int):
    """Cosine annealing stepped once an epoch: restarted every `restart_epochs` (SGDR, the paper's 10), or
    one cosine over the phase when restart_epochs is 0."""
    if restart_epochs:
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=restart_epochs)
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))


def _optimizer(model: PTQNet, tc, mcfg: Config, epochs: int, phase: str = "quantize"):
    """The float phase trains as the project's float models do (training.optimizer, lr, one cosine); the
    PTQ phases with the method's optimizer, lr, momentum and restarts."""
    latent = [l.w.weight for l in model.ptq_layers()]
    deltas = [l.w.delta for l in model.ptq_layers()]
    kept = [l.weight for l in model.quant_layers() if not hasattr(l, "w")]
    special = {id(p) for p in latent + deltas + kept}
    rest = [p for p in model.parameters() if id(p) not in special]
    groups = [{"params": latent + kept, "weight_decay": mcfg.weight_decay},
              {"params": deltas, "weight_decay": 0.0, "lr": mcfg.delta_lr},
              {"params": rest, "weight_decay": 0.0}]
    if phase == "float":
        name, lr, momentum, restart = tc.optimizer, tc.lr, 0.9, 0
    else:
        name, lr, momentum, restart = mcfg.optimizer, mcfg.lr, mcfg.momentum, mcfg.restart_epochs
    if name == "adam":
        opt = torch.optim.Adam(groups, lr=lr)
    else:
        opt = torch.optim.SGD(groups, lr=lr, momentum=momentum)
    return opt, schedule(opt, epochs, restart)


def fit_phase(model: PTQNet, split, tc, mcfg: Config, epochs: int, seed: int, progress=None,
              label: str = "", phase: str = "quantize") -> float:
    """Trains one phase in place (cross-entropy, cosine schedule); returns the last batch loss. After every
    step the pruned weights stay zero and the thresholds stay non-negative."""
    opt, sched = _optimizer(model, tc, mcfg, epochs, phase)
    batch = tc.batch_size if phase == "float" else mcfg.batch_size

    def keep_constraints():
        with torch.no_grad():
            for l in model.ptq_layers():
                l.w.weight.mul_(l.w.mask)
                l.w.delta.clamp_(min=0.0)

    return train_epochs(model, split, opt, sched, epochs, batch, torch.Generator().manual_seed(seed),
                        progress, label, after_step=keep_constraints)


def prune_and_reset(model: PTQNet, sparsity: float, reset: bool) -> None:
    """Magnitude pruning of each ternarised layer (eq. 2-3: keep the top 1 - sparsity of |w|), then, with
    reset, w = Quant(w, 0): the kept weights become exactly -1 or +1 by their sign."""
    with torch.no_grad():
        for l in model.ptq_layers():
            w = l.w.weight
            k = int(round(sparsity * w.numel()))
            mask = torch.ones_like(w)
            if k > 0:
                order = w.abs().flatten().argsort(stable=True)
                mask.view(-1)[order[:k]] = 0.0
            l.w.mask.copy_(mask)
            w.mul_(mask)
            if reset:
                w.copy_(ternarize(w, 0.0))


def start_quantize(model: PTQNet, split, mcfg: Config) -> None:
    """Switch to ternary weights with delta = delta_init * mean kept |w|, and LSQ activations initialised on
    a training batch."""
    with torch.no_grad():
        for l in model.ptq_layers():
            w = l.w.weight * l.w.mask
            nz = w.abs()[l.w.mask > 0]
            l.w.delta.fill_(mcfg.delta_init * (nz.mean().item() if nz.numel() else 0.0))
            l.w.stage.fill_(1)
        seen = {}
        hooks = [a.register_forward_pre_hook(lambda m, inp: seen.setdefault(m, inp[0].detach()))
                 for a in model.acts()]
        model.eval()
        model(torch.as_tensor(split.x_train[:512], dtype=torch.float32))
        for h in hooks:
            h.remove()
        for a in model.acts():
            a.init_step(seen[a])


def layer_stats(model: PTQNet) -> dict:
    """Sparsity of the ternary codes per ternarised layer and overall, and each layer's delta."""
    sp, deltas, zeros, total = [], [], 0, 0
    for l in model.ptq_layers():
        q = l.w.codes() if int(l.w.stage) == 1 else l.w.weight.detach() * l.w.mask
        z = int((q == 0).sum())
        sp.append(round(z / q.numel(), 4))
        deltas.append(round(float(l.w.quantile_delta() if l.w.threshold == "quantile" else l.w.delta), 6))
        zeros, total = zeros + z, total + q.numel()
    return {"sparsity_per_layer": sp, "sparsity": round(zeros / max(total, 1), 4), "delta_per_layer": deltas}


def set_stage(model: PTQNet, stage: int) -> None:
    for l in model.ptq_layers():
        l.w.stage.fill_(stage)


def _run_phase(name, model, split, run_cfg, mcfg, epochs, index, progress):
    if name in ("float", "pretrain"):
        set_stage(model, -1 if name == "float" else 0)
    if name == "prune":
        prune_and_reset(model, mcfg.sparsity, mcfg.reset)
    if name == "quantize":
        start_quantize(model, split, mcfg)
    fit_phase(model, split, run_cfg.training, mcfg, epochs, run_cfg.training.seed + 1000 * index, progress,
              f"{run_cfg.name} {name}", name)


def train(run_cfg, mcfg: Config, model: PTQNet, split, out_dir, resume: bool = False, progress=None) -> dict:
    """Runs the phases in order; each one is saved, and skipped when resuming a run that finished it."""
    phase_dir = Path(out_dir) / "phases"
    phase_dir.mkdir(parents=True, exist_ok=True)
    config_json = run_cfg.model_dump(mode="json")
    epochs = _phase_epochs(run_cfg, mcfg)
    if not resume:
        for p in phase_dir.glob("*.pt"):
            p.unlink()
    phase_acc, resumed = {}, []
    for index, (name, n) in enumerate(epochs.items()):
        path = phase_dir / f"{name}.pt"
        if resume and path.is_file():
            saved = load_torch(path)
            if saved["config"] != config_json:
                raise UserError(f"{path}: phase was trained with another config; drop --resume or use a "
                                "fresh --out directory")
            model.load_state_dict(saved["state_dict"])
            phase_acc[name] = saved["test_accuracy"]
            resumed.append(name)
            continue
        seed_everything(run_cfg.training.seed + index)
        t0 = time.perf_counter()
        _run_phase(name, model, split, run_cfg, mcfg, n, index, progress)
        phase_acc[name] = accuracy(model, split.x_test, split.y_test)
        atomic_torch_save({"state_dict": model.state_dict(), "config": config_json, "phase": name,
                           "test_accuracy": phase_acc[name], "seconds": round(time.perf_counter() - t0, 3)},
                          path)
    stats = layer_stats(model)
    return {"method": "ptq", "variant": mcfg.variant, "reset": mcfg.reset, "sparsity_target": mcfg.sparsity,
            "phase_epochs": epochs, "phase_test_accuracy": phase_acc, "phases_resumed": resumed, **stats,
            "act_steps": [round(float(a.step), 6) for a in model.acts()]}
