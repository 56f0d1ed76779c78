"""DJPQ (paper 001): differentiable joint pruning and quantization, and the baselines of its tables.

Every variant starts from the same float pre-training (the paper always compresses a pretrained model),
then:
  fixed    fixed-width quantization (fixed_bits: [w, a], e.g. 8/8, 4/4, 2/2), cross entropy only
  dq       mixed precision learned by DQ alone: CE + beta * BOPs, no gates
  vib_dq   two-stage: VIBNet pruning in float (eq. 13), then the gates frozen and DQ with CE + beta * BOPs
           (with fixed_bits set, the second stage is fixed-width quantization instead)
  djpq     eq. 17 in one stage: CE + gamma * sum log(1 + alpha) + beta * sum BOPs_l (soft pruning, eq. 19)
restrict: none (eq. 2 as is), integer (bit widths rounded up to integers), pow2 (Alg. 2: the nearest power
of two, 2, 4, 8) or pow2_up (the next power of two). restrict_after: train with restrict none and apply the
restriction to the trained widths only (paper footnote 2: DQ-restrict is DQ's learned widths upper rounded
to powers of two, no training under the restriction); without it, Alg. 2 runs in every forward pass (DJPQ-
restrict, Alg. 1).
gamma and beta rise linearly over `anneal_epochs` epochs; Adam with separate learning rates for weights
(and batch norm), gates and quantizer parameters (Alg. 1). Phases are checkpointed; --resume skips
finished ones.
"""
from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from common.errors import UserError
from quant import cost
from quant.checkpoint import atomic_torch_save, load_torch
from quant.djpq_net import DJPQNet
from quant.dq import HW_BITS, levels

# Resource-cost hook, for costs quant cannot compute itself (quant does not import hw): a callable
# cost(net, tau) -> scalar tensor, added to the loss in the quantizing phases with beta's linear warm-up; with
# `replaces_bops = True` it stands in place of the BOPs term, and its `report(net)` (if any) goes into the
# metrics as "resource_cost". None (the default): the loss is eq. 17 with BOPs, as in the paper.
_COST_FN = contextvars.ContextVar("djpq_cost_fn", default=None)


@contextlib.contextmanager
def resource_cost(cost_fn):
    """Trains every DJPQ run inside the block with `cost_fn` in its loss (pqhw.board_cost.BoardCost)."""
    token = _COST_FN.set(cost_fn)
    try:
        yield cost_fn
    finally:
        _COST_FN.reset(token)


# Float pre-training cache: the pre-training phase is the same for every variant of one model, seed and
# pre-training setting (the quantizers and gates are off, nothing in it draws from the global RNG), so a
# table of Table 1's rows trains it once a seed. A directory or None (the default: always trained).
_PRETRAIN_CACHE = contextvars.ContextVar("djpq_pretrain_cache", default=None)


@contextlib.contextmanager
def pretrain_cache(directory):
    """Runs inside the block load a finished float pre-training from `directory` when one with the same
    model, data, seed and pre-training options is there, and save theirs into it otherwise."""
    token = _PRETRAIN_CACHE.set(Path(directory))
    try:
        yield Path(directory)
    finally:
        _PRETRAIN_CACHE.reset(token)


def _pretrain_key(run_cfg, m: Config) -> str:
    import hashlib
    import json

    what = {"model": run_cfg.model.model_dump(mode="json"), "dataset": run_cfg.dataset.model_dump(mode="json"),
            "seed": run_cfg.training.seed, "batch_size": run_cfg.training.batch_size,
            "epochs": m.pretrain_epochs, "lr": m.pretrain_lr}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _float_state(net: DJPQNet) -> dict:
    """What pre-training changes: the weights and batch norms (not the quantizers' or gates' parameters)."""
    skip = {id(p) for p in net.quant_parameters() + net.gate_parameters()}
    skip |= {id(p) for q in net.weight_quantizers() + net.act_quantizers() for p in q.parameters()}
    skip |= {id(p) for g in net.gates() for p in g.parameters()}
    names = {n for n, p in net.named_parameters() if id(p) in skip}
    return {k: v.clone() for k, v in net.state_dict().items() if k not in names}


PHASES = {"fixed": ["pretrain", "fixed"], "dq": ["pretrain", "dq"], "vib_dq": ["pretrain", "vib", "quant"],
          "djpq": ["pretrain", "djpq"]}


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["djpq"]
    variant: Literal["fixed", "dq", "vib_dq", "djpq"] = "djpq"
    fixed_bits: tuple[int, int] | None = Field(None, description="[weight bits, activation bits]")
    restrict: Literal["none", "integer", "pow2", "pow2_up"] = "pow2"
    restrict_after: bool = Field(False, description="round the trained widths once, after training "
                                 "(DQ-restrict of the paper's footnote 2), instead of Alg. 2 in the loop")
    pow2_scale: bool = Field(False, description="weight steps rounded up to powers of two")
    init_weight_bits: int = Field(8, ge=2, le=16)
    init_act_bits: int = Field(8, ge=1, le=16)
    q_s_weight: float = Field(1e-4, ge=0)
    q_s_act: float = Field(1e-3, ge=0)
    act_percentile: float = Field(99.9, gt=50, le=100, description="initial activation q_m from calibration")
    pretrain_epochs: int = Field(20, ge=0)
    pretrain_lr: float = Field(0.01, gt=0)
    vib_epochs: int = Field(20, ge=1, description="first stage of vib_dq")
    gamma: float = Field(1e-3, ge=0)
    beta: float = Field(1e-6, ge=0)
    anneal_epochs: int = Field(5, ge=1)
    alpha_th: float = Field(1e-3, gt=0)
    tau: float = Field(1.0, gt=0)
    init_log_sigma2: float = -4.0
    lr_weights: float = Field(1e-3, gt=0)
    lr_gates: float = Field(0.05, gt=0)
    lr_quant: float = Field(0.01, gt=0, description="Adam step of q_m, d, t relative to their calibrated values")

    @model_validator(mode="after")
    def _check(self):
        if self.variant == "fixed" and self.fixed_bits is None:
            raise ValueError("variant fixed needs fixed_bits: [weight bits, activation bits]")
        if self.restrict_after and self.restrict == "none":
            raise ValueError("restrict_after needs a restrict to apply: integer, pow2 or pow2_up")
        if self.fixed_bits is not None:
            w, a = self.fixed_bits
            if not (2 <= w <= 8 and 1 <= a <= 8):
                raise ValueError(f"fixed_bits {list(self.fixed_bits)}: accepted weights 2..8, activations 1..8")
            if self.variant not in ("fixed", "vib_dq"):
                raise ValueError(f"fixed_bits applies to variants fixed and vib_dq, not {self.variant}")
        return self


def _quant_options(m: Config) -> dict:
    fw, fa = m.fixed_bits if m.fixed_bits is not None else (None, None)
    return dict(w_bits=m.init_weight_bits, a_bits=m.init_act_bits, q_s_w=m.q_s_weight, q_s_a=m.q_s_act,
                restrict=m.restrict, fixed_w=fw, fixed_a=fa, pow2_scale=m.pow2_scale, alpha_th=m.alpha_th,
                init_log_sigma2=m.init_log_sigma2)


def build_model(run_cfg, m: Config, image_shape, classes) -> DJPQNet:
    net = DJPQNet(run_cfg.model, image_shape, classes, _quant_options(m), run_cfg.dataset.input_bits)
    if _COST_FN.get() is not None and net.has_conv:  # refused here, before train_run writes anything
        raise UserError("model.layers.0: --fit-board prices linear DJPQ networks only and this one has conv "
                        "layers; train it with the BOPs loss (without --fit-board)")
    configure(net, PHASES[m.variant][-1])
    return net


def configure(net: DJPQNet, phase: str) -> None:
    """Which parts are live in a phase: quantizers, gates (sampled or frozen)."""
    quant = phase in ("fixed", "dq", "quant", "djpq")
    gates = phase in ("vib", "quant", "djpq")
    for q in net.weight_quantizers() + net.act_quantizers():
        q.enabled = quant
    for g in net.gates():
        g.enabled, g.frozen = gates, phase == "quant"


@torch.no_grad()
def calibrate(net: DJPQNet, x: torch.Tensor, m: Config) -> None:
    """Initial q_m and d before the first quantized epoch: weights from their largest magnitude, activations
    from a percentile of the float pre-activations; d so that eq. 3 / eq. 4 give the initial bit width."""
    for b in net.blocks:
        q = b.wq
        q.q_m.fill_(float(b.weight.abs().max()) + q.q_s)
        bits = q.fixed_bits or m.init_weight_bits
        q.d.fill_((float(q.q_m) - q.q_s) / levels(bits, True))
    was = net.training
    net.eval()
    h = net.prepare(x)
    for b in net.blocks:
        if b.hidden:
            pre = b.pre_activation(h)
            pos = pre[pre > 0]
            top = float(np.percentile(pos.numpy(), m.act_percentile)) if len(pos) else 1.0
            q = b.aq
            q.q_m.fill_(max(top, 10 * q.q_s + 1e-3))
            # eq. 4 gives exactly the initial width when (q_m - q_s) / d = 2^b; fixed widths use the grid itself
            q.d.fill_((float(q.q_m) - q.q_s) / (levels(q.fixed_bits, False) if q.fixed_bits else 2 ** m.init_act_bits))
            h = b.activate(pre)  # quantized if the phase quantizes, else the float ReLU (and pool)
    net.train(was)


def _optimizer(net: DJPQNet, m: Config, phase: str, lr_weights: float) -> torch.optim.Optimizer:
    groups = [{"params": net.weight_parameters(), "lr": lr_weights}]
    if phase in ("vib", "djpq"):
        groups.append({"params": net.gate_parameters(), "lr": m.lr_gates})
    if phase in ("fixed", "dq", "quant", "djpq"):
        # d of an 8-bit weight grid is ~100x smaller than an activation's q_m: one absolute Adam step size
        # would either freeze one or shake the other, so each parameter steps relative to its start value
        groups += [{"params": [p], "lr": m.lr_quant * max(abs(float(p.detach())), 1e-6)}
                   for p in net.quant_parameters()]
    return torch.optim.Adam(groups)


def _epoch_losses(net: DJPQNet, m: Config, phase: str, epoch: int):
    """gamma and beta of this epoch (linear warm-up), zero where the phase has no such term."""
    ramp = min(1.0, (epoch + 1) / m.anneal_epochs)
    gamma = m.gamma * ramp if phase in ("vib", "djpq") else 0.0
    beta = m.beta * ramp if phase in ("dq", "quant", "djpq") else 0.0
    return gamma, beta


def run_phase(net: DJPQNet, m: Config, phase: str, split, tc, progress=None) -> dict:
    """Trains one phase in place; returns the last epoch's loss parts."""
    from quant.train import show_epoch

    configure(net, phase)
    epochs = {"pretrain": m.pretrain_epochs, "vib": m.vib_epochs}.get(phase, tc.epochs)
    x = torch.as_tensor(split.x_train, dtype=torch.float32)
    y = torch.as_tensor(split.y_train)
    if phase != "pretrain" and phase != "vib" and not getattr(net, "_calibrated", False):
        calibrate(net, x, m)
    opt = _optimizer(net, m, phase, m.pretrain_lr if phase == "pretrain" else m.lr_weights)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    gen = torch.Generator().manual_seed(tc.seed + len(phase))
    ce_fn = nn.CrossEntropyLoss()
    task = progress.add_task(phase, total=epochs) if progress else None
    parts = {}
    cost_fn = _COST_FN.get() if phase in ("dq", "quant", "djpq") else None
    quantizers = [q for q in net.weight_quantizers() + net.act_quantizers() if q.enabled]
    for epoch in range(epochs):
        gamma, beta = _epoch_losses(net, m, phase, epoch)
        ramp = min(1.0, (epoch + 1) / m.anneal_epochs)
        if cost_fn is not None and getattr(cost_fn, "replaces_bops", False):
            beta = 0.0
        net.train()
        order = torch.randperm(len(x), generator=gen)
        seen = correct = 0
        loss_sum = 0.0
        for i in range(0, len(x), tc.batch_size):
            idx = order[i:i + tc.batch_size]
            if len(idx) < 2:
                continue
            opt.zero_grad()
            logits = net(x[idx])
            ce = ce_fn(logits, y[idx])
            kl = sum((g.kl() for g in net.gates()), ce.new_zeros(())) if gamma else ce.new_zeros(())
            bops = net.soft_bops(m.tau) if beta else ce.new_zeros(())
            loss = ce + gamma * kl + beta * bops  # eq. 17 (eq. 13 when beta = 0)
            if cost_fn is not None:
                res = ramp * cost_fn(net, m.tau)
                loss = loss + res
            loss.backward()
            opt.step()
            for q in quantizers:
                q.project_()
            seen += len(idx)
            correct += int((logits.detach().argmax(1) == y[idx]).sum())
            loss_sum += float(loss.detach()) * len(idx)
        sched.step()
        if not torch.isfinite(loss):
            raise UserError(f"method djpq, phase {phase}: training diverged at epoch {epoch + 1}; lower the "
                            "learning rates (method.lr_weights, lr_gates, lr_quant)")
        parts = {k: float(v.detach()) for k, v in (("loss", loss), ("ce", ce), ("kl", kl), ("bops_soft", bops))}
        if cost_fn is not None:
            parts["resource_cost"] = float(res.detach())
        if progress:  # the epoch's mean loss (eq. 17 with this epoch's gamma and beta) and training accuracy
            show_epoch(progress, task, f"djpq {phase}", epoch + 1, epochs, loss_sum / max(seen, 1),
                       correct / max(seen, 1))
    if phase != "pretrain" and phase != "vib":
        net._calibrated = True
    return parts


def _accuracy(net: nn.Module, split) -> float:
    from quant.train import accuracy

    return accuracy(net, split.x_test, split.y_test)


def report(net: DJPQNet) -> dict:
    """Per-layer bits, pruning ratios (eq. 18 on outputs, eq. 14 on weights), MACs, BOPs and ratios vs float."""
    rows = net.layer_costs()
    dense = net.dense_costs()
    p = [g.pruned_ratio() for g in net.gates()] + [0.0]
    s = cost.summary(rows, dense)
    w_bits = [b.wq.hw_bits() for b in net.blocks]
    a_bits = [q.hw_bits() for q in net.act_quantizers()]
    kept = net.kept_weights()
    return {
        "weight_bits_per_layer": w_bits,
        "act_bits_per_layer": a_bits,
        "weight_bits_continuous": [round(float(b.wq.continuous_bits()), 3) for b in net.blocks],
        "act_bits_continuous": [round(float(q.continuous_bits()), 3) for q in net.act_quantizers()],
        "t_per_layer": [round(float(b.wq._t()), 4) for b in net.blocks],
        "pruned_channels_ratio": [round(v, 4) for v in p],
        "layer_pruning_ratio": [round(cost.layerwise_pruning_ratio(p[i - 1] if i else 0.0, p[i]), 4)
                                for i in range(len(p))],
        "kept_channels": [r.out_channels for r in rows],
        "macs_per_layer": [r.macs for r in rows],
        "bops_per_layer": [r.bops for r in rows],
        "macs": s["macs"], "bops": s["bops"], "float_macs": cost.total_macs(dense),
        "float_bops": cost.total_bops(dense),
        "mac_compression": round(s["mac_compression"], 3), "bop_compression": round(s["bop_compression"], 3),
        "params": sum(kept),
        "weight_bits_total": int(sum(k * b for k, b in zip(kept, w_bits))),
        "hardware_runnable": all(b in HW_BITS for b in w_bits + a_bits),
    }


def train(run_cfg, m: Config, model: DJPQNet, split, out_dir: Path, resume: bool = False, progress=None) -> dict:
    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    phases = PHASES[m.variant]
    ckpt_path = out_dir / "djpq_phases.pt"
    done, results = [], {}
    if resume and ckpt_path.is_file():
        ckpt = load_torch(ckpt_path)
        if ckpt.get("config") != run_cfg.model_dump(mode="json"):
            raise UserError(f"{ckpt_path}: made with another config; drop --resume or use a fresh --out")
        done, results = ckpt["done"], ckpt["results"]
        configure(model, done[-1])
        model.load_state_dict(ckpt["state_dict"])
        model._calibrated = any(p not in ("pretrain", "vib") for p in done)
    quantizers = model.weight_quantizers() + model.act_quantizers()
    if m.restrict_after:  # trained unrestricted; the restriction is applied below, once
        for q in quantizers:
            q.restrict = "none"
    for phase in phases:
        if phase in done:
            continue
        cache = _PRETRAIN_CACHE.get() if phase == "pretrain" else None
        cached = cache / f"pretrain_{_pretrain_key(run_cfg, m)}.pt" if cache is not None else None
        if cached is not None and cached.is_file():
            configure(model, phase)
            model.load_state_dict(load_torch(cached)["state_dict"], strict=False)
            parts = {"cached": True}
        else:
            parts = run_phase(model, m, phase, split, run_cfg.training, progress)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                atomic_torch_save({"state_dict": _float_state(model), "config": cached.stem}, cached)
        results[phase] = {**parts, "test_accuracy": _accuracy(model, split)}
        done.append(phase)
        atomic_torch_save({"state_dict": model.state_dict(), "config": run_cfg.model_dump(mode="json"),
                           "done": done, "results": results}, ckpt_path)
    configure(model, phases[-1])
    if m.restrict_after:
        results["unrestricted"] = {"test_accuracy": _accuracy(model, split), **{
            k: v for k, v in report(model).items() if k in ("weight_bits_per_layer", "act_bits_per_layer", "bops")}}
        for q in quantizers:
            q.restrict = m.restrict
    out = {"method": "djpq", "variant": m.variant, "restrict": m.restrict, "restrict_after": m.restrict_after,
           "float_accuracy": results["pretrain"]["test_accuracy"], "phases": results}
    if "vib" in results:
        out["pruned_float_accuracy"] = results["vib"]["test_accuracy"]
    out.update(report(model))
    cost_fn = _COST_FN.get()
    if cost_fn is not None and hasattr(cost_fn, "report"):
        out["resource_cost"] = cost_fn.report(model)
    return out


def export_model(run_cfg, m: Config, model: DJPQNet) -> nn.Module:
    """The plain Brevitas network with pruned channels removed and learned bit widths as datatypes."""
    configure(model, PHASES[m.variant][-1])
    return model.to_brevitas()
