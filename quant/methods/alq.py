"""ALQ, Adaptive Loss-aware Quantization for multi-bit networks (paper 003, Qu et al.), as resumable phases.

Weights of every layer (first and last included) are sums of binary bases per group, w_g = B_g alpha_g with
B_g in {-1, +1}^(n x I_g), alpha_g >= 0 (eq. 2), grouped as `structures` says (Sec. 5.1: channel-wise or
sub-channel-wise for linear layers, kernel-, pixel- or channel-wise for convs). Activations are
x_ref + D gamma with I_x binary bases (Sec. 4). The pipeline is Alg. 5:

  pretrain       float training of the same network (Adam, cosine); its test accuracy is the float baseline
  init           Alg. 1: greedy bases + least-squares alpha per group (I_max bases, threshold sigma); the
                 activation quantizers start from a calibration batch
  init_bases     Alg. 3 (bases by eq. 19-20 then alpha by eq. 23) and Alg. 4 (alpha by AMSGrad, eq. 21)
  init_coords    to recover from the initialisation (B.3), `init_epochs`
  prune<r>       Alg. 2: pruning in the alpha domain to the r-th goal of the schedule M^r = M^(r-1)(1 - ratio)
                 (eq. 28), at the last round exactly to the target; the goal falls linearly over the
                 `prune_epochs` mini-batch iterations T; eq. 13 scores, per-layer top-k %, then globally
  bases<r>, coords<r>   Alg. 3 then Alg. 4 after each pruning (`round_epochs`)
  final_bases, final_coords   the extra optimising epochs after the last pruning (`final_epochs`)

Learning rates as App. B.2: bases 1e-3, coordinates 1e-4, each decayed by 0.1 after half of its epochs;
lambda = 1e-6 in eq. 23. Biases (and batch norm, if on) are float and trained by AMSGrad in every phase. Every
finished phase is checkpointed (DIR/alq_phases.pt, AMSGrad moments included); --resume skips finished phases.

Where this departs from the paper, and why:
- Budget: the paper retrains 10 epochs of bases and 20 of coordinates after each pruning and prunes 6 times
  on LeNet-5; the configs here use fewer epochs (2 shared cores). The schedule and all update rules are the
  paper's.
- Counting: the paper's schedule counts alpha (card(alpha)), equal to bits only when all groups have the
  same size. Here the schedule and the target count bits of the bases (n_l per alpha of layer l), so
  `target_bits` is the average weight bit width as metrics.json reports it; the last pruning round stops at
  the first removal that brings the bits to or below target_bits * N (exact when n_l divides the budget).
- Alg. 2's top-k: a layer offers at least as many candidates as the iteration removes, not only k % of its
  alpha. With the paper's sizes (10^4 alpha a layer, k = 1 %, ~0.1 % removed an iteration) that changes
  nothing; on small networks k % is one candidate a layer, every candidate got removed whatever its eq. 13
  score, and the small layers were emptied first. The last iteration considers every live alpha. A layer's
  last alpha is never removed, and with `keep_classes` (default) neither is the last basis of a classifier group: on
  small layers eq. 13 would otherwise empty whole classes (seen on digits: 3 of 10 classes gone, accuracy
  capped at 70 %), which the paper's LeNet-5 (20-50-500-10 -> 18-45-231-10) never did.
- Activations use the straight-through gradient of PACT (the step has none); weights use none (see
  alq_net.ALQAct). Batch norm is optional and off (alq_net says why).
- `pow2: true` (not in the paper) rounds every alpha and gamma to the nearest power of two in the forward
  pass and in eq. 13/19, so the xnor-popcount sums of a hardware layer are exact integers after a shift; the
  gradients of eq. 14 then update the unrounded alpha, a straight-through step the paper does not need.
- Hardware options (not in the paper; defaults keep the paper's behaviour; quant/methods/alq_export.py needs
  pow2, act_levels uniform and no classifier bias): `mantissa_bits: m` rounds alpha to an m-bit mantissa
  times a power of two instead (at most m shifted terms of one plane in hardware); `exp_window: W` keeps a
  layer's alpha within 2^-W of its largest (smaller live ones are raised to that floor), which bounds the
  integer weights; `act_levels: uniform` ties gamma_k = g 2^k and x_ref = sum gamma, so the levels are 0,
  2g, .., (2^I_x - 1) 2g (the paper fits x_ref and every gamma freely; free levels are not uniform and have
  no exact integer route yet) and takes the nearest level as Brevitas' QuantReLU does (round half to even,
  clamped); `classifier_bias: false` drops the last layer's float bias, which the integer logits cannot
  hold. On digits at 1 bit, power-of-two alpha is what costs accuracy (84.4 % against 95.6 % with real
  alpha); a 3-bit mantissa gets 94.7 % (README, ALQ in hardware).
- `prune_criterion: loss_per_bit` (not in the paper, default off) divides eq. 13 by the bits an alpha
  frees, for networks whose group sizes differ a lot.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from common.errors import UserError
from quant.checkpoint import atomic_torch_save, load_torch
from quant.methods import alq_bases as ab
from quant.methods.alq_net import ALQNet


class Epochs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bases: int = Field(0, ge=0, description="epochs of Alg. 3 (bases, with the eq. 23 alpha speedup)")
    coords: int = Field(0, ge=0, description="epochs of Alg. 4 (alpha only)")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["alq"]
    target_bits: float = Field(gt=0, description="average weight bits of the bases after the last pruning")
    max_bits: int = Field(6, ge=1, le=8, description="I_max of Alg. 1 (the paper: 6 for small networks)")
    sigma: float = Field(0.0, ge=0, description="Alg. 1 residual threshold ||eps / w||^2")
    structures: list[str] | None = Field(None, description="grouping per weight layer; default channel for "
                                         "linear, kernel for conv")
    act_bits: int = Field(2, ge=1, le=4, description="I_x, the activation bases of every hidden layer")
    act_momentum: float = Field(0.9, ge=0, lt=1, description="running average of x_ref and gamma")
    pretrain_epochs: int = Field(20, ge=1)
    pretrain_lr: float = Field(0.01, gt=0)
    init_epochs: Epochs = Epochs(bases=2, coords=2)
    round_epochs: Epochs = Epochs(bases=10, coords=20)
    final_epochs: Epochs = Epochs()
    prune_epochs: int = Field(1, ge=1, description="Alg. 2 runs over this many epochs of mini-batches (T)")
    prune_ratio: float = Field(0.4, gt=0, lt=1, description="eq. 28: each round removes this share of bits")
    topk_percent: float = Field(1.0, gt=0, le=100, description="Alg. 2's k: per-layer candidates in %")
    prune_criterion: Literal["loss", "loss_per_bit"] = "loss"
    keep_classes: bool = Field(True, description="every group of the classifier keeps at least one basis")
    lr_bases: float = Field(1e-3, gt=0)
    lr_coords: float = Field(1e-4, gt=0)
    lr_float: float = Field(1e-3, gt=0, description="AMSGrad on batch norm and the last bias")
    lr_decay: float = Field(0.1, gt=0, le=1, description="learning rates times this after half of a phase")
    alpha_l2: float = Field(1e-4, ge=0, description="L2 regularisation of alpha in Alg. 4")
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    batch_norm: bool = Field(False, description="BatchNorm before each hidden activation (see alq_net)")
    pow2: bool = Field(False, description="alpha and gamma rounded to powers of two (exact integer hardware)")
    exp_window: int | None = Field(None, ge=0, le=16, description="pow2: a layer's alpha within 2^-W of its "
                                   "largest (smaller ones raised to it), bounding the integer weights")
    mantissa_bits: int = Field(1, ge=1, le=4, description="pow2: alpha as m 2^e with an m-bit mantissa (1: powers "
                               "of two); hardware adds one shifted term per mantissa bit set")
    act_levels: Literal["free", "uniform"] = Field("free", description="uniform: gamma_k = g 2^k, x_ref = "
                                                   "sum gamma (levels 0, 2g, ..): unsigned integer activations")
    classifier_bias: bool = Field(True, description="the last layer's float bias (hardware needs it off)")

    @model_validator(mode="after")
    def _check(self):
        if self.target_bits > self.max_bits:
            raise ValueError(f"target_bits {self.target_bits} is above max_bits {self.max_bits}: pruning only "
                             "removes bases")
        if self.mantissa_bits > 1 and not self.pow2:
            raise ValueError("mantissa_bits rounds the coordinates of pow2; set pow2: true or drop mantissa_bits")
        if self.exp_window is not None and not self.pow2:
            raise ValueError("exp_window bounds power-of-two coordinates; set pow2: true or drop exp_window")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas {list(self.betas)}: each in [0, 1)")
        return self


def build_model(run_cfg, m: Config, image_shape, classes) -> ALQNet:
    return ALQNet(run_cfg.model, image_shape, classes, m)


def export_model(run_cfg, m: Config, model) -> nn.Module:
    """The Brevitas network equal to the trained ALQNet, integer for integer (quant.methods.alq_export)."""
    from quant.methods.alq_export import brevitas_net

    return brevitas_net(run_cfg, m, model)


# -------------------------------------------------------------------------------------------- schedule
def schedule(bits0: int, goal: int, ratio: float) -> list[int]:
    """Eq. 28 in bits: M^r = round(M^(r-1) (1 - ratio)) until the goal, the last entry being the goal."""
    out, m = [], bits0
    while m > goal:
        m = max(int(round(m * (1 - ratio))), goal)
        out.append(m)
    return out


def total_bits(net: ALQNet) -> int:
    return sum(w.basis_bits() for w in net.alq_weights())


def goal_bits(net: ALQNet, m: Config) -> int:
    return int(math.floor(m.target_bits * sum(w.weight.numel() for w in net.alq_weights()) + 1e-9))


def phase_names(m: Config, rounds: int | None) -> list[str]:
    names = ["pretrain", "init"]
    names += [p for p, e in (("init_bases", m.init_epochs.bases), ("init_coords", m.init_epochs.coords)) if e]
    if rounds is None:
        return names
    for r in range(1, rounds + 1):
        names.append(f"prune{r}")
        names += [f"{p}{r}" for p, e in (("bases", m.round_epochs.bases), ("coords", m.round_epochs.coords)) if e]
    names += [p for p, e in (("final_bases", m.final_epochs.bases), ("final_coords", m.final_epochs.coords)) if e]
    return names


# ------------------------------------------------------------------------------------------- training
def _loop(net: ALQNet, split, tc, epochs: int, seed: int, step, float_opt, label: str, progress=None,
          on_epoch=None) -> float:
    """Shuffled mini-batches; after each backward `step(epoch, iteration, total)` updates the ALQ parts,
    then the float parameters take their AMSGrad step. Returns the last batch loss."""
    from quant.train import show_epoch  # quant.train imports the methods

    x = torch.as_tensor(split.x_train, dtype=torch.float32)
    y = torch.as_tensor(split.y_train)
    gen = torch.Generator().manual_seed(seed)
    ce = nn.CrossEntropyLoss()
    per_epoch = sum(1 for i in range(0, len(x), tc.batch_size) if len(x) - i >= 2)
    total, it = epochs * per_epoch, 0
    loss = torch.zeros(())
    task = progress.add_task(label, total=epochs) if progress else None
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(0, len(x), tc.batch_size):
            idx = order[i:i + tc.batch_size]
            if len(idx) < 2:
                continue
            float_opt.zero_grad()
            logits = net(x[idx])
            loss = ce(logits, y[idx])
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.detach().argmax(1) == y[idx]).sum())
            seen += len(idx)
            loss.backward()
            it += 1
            step(epoch, it, total)
            float_opt.step()
        if not torch.isfinite(loss):
            raise UserError(f"method alq, phase {label}: training diverged at epoch {epoch + 1}; lower the "
                            "learning rates (method.lr_bases, lr_coords, lr_float, pretrain_lr)")
        if on_epoch:
            on_epoch()
        if progress:
            show_epoch(progress, task, label, epoch + 1, epochs, loss_sum / max(seen, 1), correct / max(seen, 1))
    return float(loss.detach())


def _decayed(lr: float, m: Config, epoch: int, epochs: int) -> float:
    return lr * m.lr_decay if epochs >= 2 and epoch >= epochs // 2 else lr


def _float_opt(net: ALQNet, m: Config):
    return torch.optim.Adam(net.float_parameters(), lr=m.lr_float, betas=m.betas, eps=m.eps, amsgrad=True)


def pretrain(net: ALQNet, m: Config, split, tc, seed: int, progress=None) -> float:
    """Float training of the whole network (weights, batch norm, bias): Adam with a cosine schedule."""
    opt = torch.optim.Adam(net.parameters(), lr=m.pretrain_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=m.pretrain_epochs)
    return _loop(net, split, tc, m.pretrain_epochs, seed, lambda *a: None, opt, "pretrain", progress,
                 on_epoch=sched.step)


@torch.no_grad()
def initialise(net: ALQNet, m: Config, split) -> None:
    """Alg. 1 on every layer; then the activation quantizers switch on and start from 512 training images."""
    for w in net.alq_weights():
        w.init(m.sigma)
    for a in net.acts():
        a.enabled.fill_(True)
    net.train()
    net(torch.as_tensor(split.x_train[:512], dtype=torch.float32))


def optimise(net: ALQNet, m: Config, split, tc, what: str, epochs: int, seed: int, label: str,
             progress=None) -> float:
    """Alg. 3 (what='bases') or Alg. 4 (what='coords') for `epochs` epochs."""
    weights = net.alq_weights()

    def step(epoch, it, total):
        if what == "bases":
            lr = _decayed(m.lr_bases, m, epoch, epochs)
            for w in weights:
                w.bases_step(lr, m.betas, m.eps)
        else:
            lr = _decayed(m.lr_coords, m, epoch, epochs)
            for w in weights:
                w.coords_step(lr, m.alpha_l2, m.betas, m.eps)

    return _loop(net, split, tc, epochs, seed, step, _float_opt(net, m), label, progress)


def prune(net: ALQNet, m: Config, split, tc, goal: int, seed: int, label: str, progress=None) -> float:
    """Alg. 2: over T iterations the counted bits fall linearly from where they are to `goal`."""
    weights = net.alq_weights()
    start = total_bits(net)
    keep = [False] * (len(weights) - 1) + [m.keep_classes]

    def step(epoch, it, total):
        scores = [w.prune_scores(m.lr_coords, m.betas, m.eps) for w in weights]
        if m.prune_criterion == "loss_per_bit":
            scores = [s / w.n for s, w in zip(scores, weights)]
        target = goal if it == total else int(round(start - (start - goal) * it / total))
        removed = ab.choose_pruned(scores, [w.mask for w in weights], [w.n for w in weights], total_bits(net),
                                   target, m.topk_percent, everything=it == total, keep_groups=keep)
        for w, r in zip(weights, removed):
            w.remove(r)

    return _loop(net, split, tc, m.prune_epochs, seed, step, _float_opt(net, m), label, progress)


def _accuracy(net: nn.Module, split) -> float:
    from quant.train import accuracy

    return accuracy(net, split.x_test, split.y_test)


def report(net: ALQNet, m: Config) -> dict:
    """Bits as Sec. 5.4.1 counts them: the bases, the per-group bit-width table, the float32 alpha."""
    ws = net.alq_weights()
    n = sum(w.weight.numel() for w in ws)
    basis = total_bits(net)
    table = sum(w.table_bits() for w in ws)
    alphas = sum(w.live_alphas() for w in ws)
    storage = basis + table + 32 * alphas
    hist = [torch.bincount(w.group_bits().long(), minlength=m.max_bits + 1).tolist() for w in ws]
    return {
        "params": n,
        "avg_weight_bits": round(basis / n, 4),
        "avg_weight_bits_with_table": round((basis + table) / n, 4),
        "act_bits": m.act_bits,
        "basis_bits": basis, "table_bits": table, "alpha_count": alphas, "alpha_bits": 32 * alphas,
        "storage_bits": storage, "storage_kib": round(storage / 8192, 2),
        "weight_bits_total": storage,
        "weight_bits_per_layer": [round(w.basis_bits() / w.weight.numel(), 4) for w in ws],
        "group_bits_histogram": hist,
        "group_size_per_layer": [w.n for w in ws],
        "structures": [w.structure for w in ws],
        "live_outputs_per_layer": [w.live_outputs() for w in ws],
        "act_x_ref": [round(float(a.x_ref), 5) for a in net.acts()],
        "act_gamma": [[round(float(g), 5) for g in a.coords()] for a in net.acts()],
        "pow2": m.pow2,
    }


def _run_phase(name: str, index: int, net: ALQNet, m: Config, split, tc, sched: list[int], progress) -> dict:
    seed = tc.seed + 1000 * index
    if name == "pretrain":
        return {"loss": pretrain(net, m, split, tc, seed, progress)}
    if name == "init":
        initialise(net, m, split)
        return {}
    if name.startswith("prune"):
        r = int(name[len("prune"):])
        return {"loss": prune(net, m, split, tc, sched[r - 1], seed, name, progress), "goal_bits": sched[r - 1]}
    what = "bases" if "bases" in name else "coords"
    group = m.init_epochs if name.startswith("init") else m.final_epochs if name.startswith("final") \
        else m.round_epochs
    return {"loss": optimise(net, m, split, tc, what, getattr(group, what), seed, name, progress)}


def train(run_cfg, m: Config, model: ALQNet, split, out_dir: Path, resume: bool = False, progress=None) -> dict:
    from quant.train import torch_threads

    out_dir = Path(out_dir)
    ckpt_path = out_dir / "alq_phases.pt"
    config_json = run_cfg.model_dump(mode="json")
    done, results, sched = [], {}, None
    if resume and ckpt_path.is_file():
        ckpt = load_torch(ckpt_path)
        if ckpt.get("config") != config_json:
            raise UserError(f"{ckpt_path}: made with another config; drop --resume or use a fresh --out")
        model.load_state_dict(ckpt["state_dict"])
        done, results, sched = ckpt["done"], ckpt["results"], ckpt["schedule"]
        for w in model.alq_weights():
            w.weight.requires_grad_(not bool(w.quantized))
    with torch_threads(run_cfg.training.threads):
        index = 0
        while True:
            names = phase_names(m, None if sched is None else len(sched))
            if index >= len(names):
                break
            name = names[index]
            if name not in done:
                out = _run_phase(name, index, model, m, split, run_cfg.training, sched or [], progress)
                for w in model.alq_weights():
                    w.sync_weight()
                results[name] = {**out, "test_accuracy": _accuracy(model, split),
                                 "avg_weight_bits": round(total_bits(model) / sum(w.weight.numel()
                                                                                 for w in model.alq_weights()), 4)}
                if name == "init":
                    sched = schedule(total_bits(model), goal_bits(model, m), m.prune_ratio)
                done.append(name)
                atomic_torch_save({"state_dict": model.state_dict(), "config": config_json, "done": done,
                                   "results": results, "schedule": sched}, ckpt_path)
            if name == "init" and sched is None:
                sched = schedule(total_bits(model), goal_bits(model, m), m.prune_ratio)
            index += 1
    out = {"method": "alq", "float_accuracy": results["pretrain"]["test_accuracy"],
           "target_bits": m.target_bits, "schedule_bits": sched, "phases": results}
    out.update(report(model, m))
    return out
