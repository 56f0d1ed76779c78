"""Quantization-aware training of a config: progress, a checkpoint every epoch, resumable, deterministic."""
from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from common.atomic import clean_stale_staging
from common.cli_types import writable_dir
from common.errors import UserError
from quant.checkpoint import atomic_torch_save, load_torch, write_json
from quant.config import RunConfig
from quant.data import Split, load_dataset
from quant.export import classes_from_logits
from quant.layers import build_model
from quant.build import make_model
from quant.quantizers import weight_bits


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's CPU thread count for the duration of a run (training.threads; see TrainingConfig for why the
    default is 1), then back to what it was: the setting is process-wide, and a library call should not
    leave it changed for the caller."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def stats_counters(model: nn.Module) -> dict[str, tuple]:
    """Brevitas keeps the progress of its statistics-based scale initialisation (a step counter and a
    running buffer) outside the state dict; a resumed run needs both to continue identically."""
    return {name: (m.counter, m.buffer.clone() if hasattr(m, "buffer") else None)
            for name, m in model.named_modules() if isinstance(getattr(m, "counter", None), int)}


def restore_counters(model: nn.Module, counters: dict[str, tuple]) -> None:
    modules = dict(model.named_modules())
    for name, (counter, buffer) in counters.items():
        m = modules[name]
        m.counter = counter
        if buffer is not None and counter <= getattr(m, "collect_stats_steps", -1):
            m.buffer.copy_(buffer)
            with torch.no_grad():
                m.value.fill_(1.0)  # still collecting: the learned value is initialised from the buffer later


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = classes_from_logits(model(torch.as_tensor(x, dtype=torch.float32)).numpy())
    return float((pred == y).mean())


def _optimizer(model, tc):
    if tc.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=0.9, weight_decay=tc.weight_decay)


def random_shift(x: torch.Tensor, image_shape: tuple[int, ...], shift: int, gen: torch.Generator) -> torch.Tensor:
    """Each flat image [N, C*H*W] moved by its own random (dy, dx) in [-shift, shift], zeros shifted in: the
    pixels stay the integers the accelerator takes, and a 4,000-image training set stops being memorised."""
    n = len(x)
    c, h, w = image_shape
    padded = nn.functional.pad(x.reshape(n, c, h, w), (shift, shift, shift, shift))
    dy, dx = (torch.randint(0, 2 * shift + 1, (n, 1), generator=gen) for _ in range(2))
    rows = (dy + torch.arange(h))[:, :, None]  # [N, H, 1]
    cols = (dx + torch.arange(w))[:, None, :]  # [N, 1, W]
    moved = padded[torch.arange(n)[:, None, None], :, rows, cols]  # [N, H, W, C]
    return moved.permute(0, 3, 1, 2).reshape(n, -1)


def train_epochs(model: nn.Module, split: Split, opt, sched, epochs: int, batch_size: int, gen: torch.Generator,
                 progress: Progress | None = None, label: str = "train", start: int = 0, after_step=None,
                 on_epoch=None, shift: int = 0) -> float:
    """The one cross-entropy training loop: shuffled mini-batches, a scheduler step per epoch, a progress
    bar; `after_step()` runs after every optimizer step (e.g. to re-apply a pruning mask), `on_epoch(n)`
    after every epoch (e.g. to checkpoint); `shift` > 0 moves each training image randomly by up to that
    many pixels. Returns the last batch loss."""
    x = torch.as_tensor(split.x_train, dtype=torch.float32)
    y = torch.as_tensor(split.y_train)
    loss_fn = nn.CrossEntropyLoss()
    loss = torch.zeros(())
    task = progress.add_task(label, total=epochs, completed=start) if progress else None
    for epoch in range(start, epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        seen = correct = 0
        loss_sum = 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            opt.zero_grad()
            xb = random_shift(x[idx], split.image_shape, shift, gen) if shift else x[idx]
            logits = model(xb)
            loss = loss_fn(logits, y[idx])
            loss.backward()
            opt.step()
            seen += len(idx)
            correct += int((logits.detach().argmax(1) == y[idx]).sum())
            loss_sum += float(loss.detach()) * len(idx)
            if after_step:
                after_step()
        sched.step()
        if not torch.isfinite(loss):
            raise UserError(f"{label}: training diverged at epoch {epoch + 1} (loss {loss.item()}); "
                            "lower training.lr")
        if progress:
            show_epoch(progress, task, label, epoch + 1, epochs, loss_sum / max(seen, 1), correct / max(seen, 1))
        if on_epoch:
            on_epoch(epoch + 1)
    return float(loss.detach())


def epoch_line(label: str, epoch: int, epochs: int, loss: float, acc: float) -> str:
    """What the progress shows after an epoch: its number, mean training loss and training accuracy."""
    return f"{label} epoch {epoch}/{epochs} loss {loss:.3f} train acc {100 * acc:.1f} %"


def show_epoch(progress: Progress, task, label: str, epoch: int, epochs: int, loss: float, acc: float) -> None:
    """Advance the bar to `epoch` with its loss and accuracy; where no bar can be drawn (a log file, a pipe),
    print the same as one line an epoch, so a long run is never silent."""
    line = epoch_line(label, epoch, epochs, loss, acc)
    progress.update(task, completed=epoch, description=line)
    if not progress.console.is_terminal:
        progress.console.print(line, highlight=False, soft_wrap=True)


def fit(model: nn.Module, split: Split, tc, progress: Progress | None = None, label: str = "train",
        state: dict | None = None, on_epoch=None) -> None:
    """Trains in place; `state` (from a checkpoint) restores optimizer, schedule, epoch and RNG."""
    opt = _optimizer(model, tc)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=tc.epochs)
    start = 0
    gen = torch.Generator().manual_seed(tc.seed)
    if state:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        restore_counters(model, state.get("counters", {}))
        torch.set_rng_state(state["torch_rng"])
        start = state["epoch"]

    def checkpoint(epoch):
        on_epoch(epoch, {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                         "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                         "counters": stats_counters(model), "epoch": epoch})

    train_epochs(model, split, opt, sched, tc.epochs, tc.batch_size, gen, progress, label, start,
                 on_epoch=checkpoint if on_epoch else None, shift=tc.shift)


def weight_bits_total(cfg: RunConfig, model) -> int:
    return sum(l.weight.numel() * weight_bits(spec.weight)
               for l, spec in zip(model.quant_layers(), cfg.model.layers))


def _progress() -> Progress:
    """Training progress on stderr: `pqhw flow` keeps stdout for its step lines (and hides library chatter)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeRemainingColumn(), transient=True, console=Console(stderr=True))


def train_run(cfg: RunConfig, out_dir: Path, resume: bool = False, show_progress: bool = True) -> dict:
    out_dir = Path(out_dir)
    why = writable_dir(out_dir)
    if why:
        raise UserError(f"--out {out_dir}: {why}; give a directory that can be written")
    clean_stale_staging(out_dir / "checkpoint.pt")
    clean_stale_staging(out_dir / "model.pt")
    ckpt_path = out_dir / "checkpoint.pt"
    split = load_dataset(cfg.dataset)  # bad data is refused before --out exists: nothing is left behind
    seed_everything(cfg.training.seed)
    model = make_model(cfg, split.image_shape, split.classes)
    method, method_cfg = cfg.method_parts()
    state, elapsed = None, 0.0
    if resume and ckpt_path.is_file() and method is None:
        ckpt = load_torch(ckpt_path)
        if ckpt["config"] != cfg.model_dump(mode="json"):
            raise UserError(f"{ckpt_path}: checkpoint was made with another config; drop --resume or "
                            "use a fresh --out directory")
        model.load_state_dict(ckpt["state_dict"])
        state, elapsed = ckpt["train_state"], ckpt["train_seconds"]
    config_json = cfg.model_dump(mode="json")
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def save_checkpoint(epoch, train_state):
        atomic_torch_save({"state_dict": model.state_dict(), "config": config_json, "train_state": train_state,
                           "train_seconds": elapsed + time.perf_counter() - t0}, ckpt_path)

    with _progress() as progress, torch_threads(cfg.training.threads):
        shown = progress if show_progress else None
        if method is None:
            extra = {}
            fit(model, split, cfg.training, shown, cfg.name, state, save_checkpoint)
        else:
            extra = method.train(cfg, method_cfg, model, split, out_dir=out_dir, resume=resume, progress=shown)
        train_seconds = elapsed + time.perf_counter() - t0
        metrics = {
            "name": cfg.name,
            "test_accuracy": accuracy(model, split.x_test, split.y_test),
            "train_accuracy": accuracy(model, split.x_train, split.y_train),
            "train_seconds": round(train_seconds, 3),
            "epochs": cfg.training.epochs,
            "threads": cfg.training.threads,
            "params": sum(l.weight.numel() for l in model.quant_layers()),
            "weight_bits_total": weight_bits_total(cfg, model),
        }
        metrics.update(extra)
        if cfg.training.float_baseline:
            seed_everything(cfg.training.seed)
            fmodel = build_model(cfg.model, split.image_shape, split.classes, quantized=False)
            t_float = time.perf_counter()
            fit(fmodel, split, cfg.training, shown, f"{cfg.name} (float)")
            metrics["float_train_seconds"] = round(time.perf_counter() - t_float, 3)
            metrics["float_accuracy"] = accuracy(fmodel, split.x_test, split.y_test)
    metrics["compression_vs_float32"] = round(32 * metrics["params"] / metrics["weight_bits_total"], 2)
    atomic_torch_save({"state_dict": model.state_dict(), "config": config_json, "metrics": metrics},
                      out_dir / "model.pt")
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def load_for_analysis(config_path):
    """(trained float network, train batches, test batches) of a config's topology and dataset, for
    `pqhw analyze finetune CONFIG`: the paper's comparison starts from the uncompressed network."""
    from quant.config import load_config

    cfg = load_config(config_path)
    split = load_dataset(cfg.dataset)
    seed_everything(cfg.training.seed)
    model = build_model(cfg.model, split.image_shape, split.classes, quantized=False)
    with torch_threads(cfg.training.threads):
        fit(model, split, cfg.training)
    model.eval()

    def batches(x, y, batch_size, shuffle):
        ds = torch.utils.data.TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y))
        gen = torch.Generator().manual_seed(cfg.training.seed)
        return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen)

    return (model, batches(split.x_train, split.y_train, cfg.training.batch_size, True),
            batches(split.x_test, split.y_test, 512, False))
