"""What each `pqhw analyze` command computes, as plain dicts: the CLI only parses, calls these, prints."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from common.errors import UserError
from quant.analysis import distributions as dists
from quant.analysis import empirical, layer_bounds, model_io, snr
from quant.analysis.grids import BITS, DEFAULT_GRID, GRIDS, prune_ratio

PAPER_NORMAL = {"snr_quant_int4_db": 19.1, "snr_prune_75_db": 5.6}
STUDENT_T_R = 10.0


def student_t_ranges(points: int) -> np.ndarray:
    """Truncation ranges r whose kurtosis (nu = 2) spans roughly 2.4 to 90, the model-zoo range and beyond."""
    return np.geomspace(2.0, 70.0, points)


def distributions(grid: str = DEFAULT_GRID, nu: float = 2.0, points: int = 12, bits: Iterable[int] = BITS,
                  samples: int = 0, advance: Callable[[], None] | None = None) -> dict:
    """Analytic SNR for the fixed distributions and the truncated Student-t sweep (Figures 1 and 2)."""
    bits = list(bits)
    fixed = [dists.normal(), dists.laplace(), dists.uniform(), dists.student_t(nu, STUDENT_T_R)]
    sweep = [dists.student_t(nu, float(r)) for r in student_t_ranges(points)]
    rows, sweep_rows = [], []
    for target, dlist in ((rows, fixed), (sweep_rows, sweep)):
        for d in dlist:
            for b in bits:
                row = snr.compare(d, b, grid)
                if samples:
                    mc = snr.monte_carlo(d, b, grid, samples, scale=row["quant_scale"])
                    row["snr_quant_mc_db"], row["snr_prune_mc_db"] = mc["snr_quant_db"], mc["snr_prune_db"]
                target.append(row)
                if advance is not None:
                    advance()
    normal = dists.normal()
    headline = {"snr_quant_int4_db": {g: snr.best_quant(normal, 4, g).snr_db for g in GRIDS},
                "snr_prune_75_db": snr.prune(normal, 0.75).snr_db, "default_grid": DEFAULT_GRID,
                "paper": PAPER_NORMAL}
    return {"grid": grid, "bits": bits, "rows": rows, "student_t_sweep": sweep_rows,
            "student_t_crossover": crossover(sweep_rows, bits), "normal_headline": headline}


def crossover(sweep_rows: list[dict], bits: Iterable[int]) -> list[dict]:
    """Per bit width, the kurtosis above which pruning beats quantization (log-linear interpolation)."""
    out = []
    for b in bits:
        rs = sorted((r for r in sweep_rows if r["bits"] == b), key=lambda r: r["kurtosis"])
        diff = [r["snr_quant_db"] - r["snr_prune_db"] for r in rs]
        k = None
        for i in range(1, len(rs)):
            if diff[i - 1] > 0 >= diff[i]:
                lk0, lk1 = np.log(rs[i - 1]["kurtosis"]), np.log(rs[i]["kurtosis"])
                k = float(np.exp(lk0 + (lk1 - lk0) * diff[i - 1] / (diff[i - 1] - diff[i])))
                break
        if k is None and rs and diff[0] <= 0:
            k = rs[0]["kurtosis"]
        out.append({"bits": b, "prune_ratio": prune_ratio(b), "prune_wins_above_kurtosis": k})
    return out


def model(path: str, grid: str = DEFAULT_GRID, bits: Iterable[int] = BITS, unsafe_pickle: bool = False,
          progress: Callable[[int], Callable[[], None]] | None = None) -> dict:
    """Per-tensor SNR and kurtosis of every weight tensor of a checkpoint or QONNX file (Figure 3)."""
    bits = list(bits)
    weights = model_io.load_weights(path, unsafe_pickle)
    advance = progress(len(weights)) if progress else None
    records = empirical.analyze_tensors(weights, bits, grid, advance)
    return {"source": str(path), "grid": grid, "bits": bits, "tensors": records,
            "regions": empirical.pruning_regions(records, bits)}


def layer_workload(model_arg: str, inputs: str | None, samples: int, epochs: int,
                   unsafe_pickle: bool = False) -> tuple[dict, dict, dict]:
    """(weights, inputs, description) for `analyze layers`: the built-in digits MLP or a model plus an .npz."""
    if model_arg == "digits":
        from quant.analysis import digits, finetune

        net, train_dl, test_dl = digits.trained_mlp(epochs=epochs)
        xs = digits.capture_inputs(net, train_dl, samples)
        weights = {k: v.detach().double().numpy() for k, v in net.state_dict().items() if v.dim() >= 2}
        return weights, xs, {"model": "digits MLP 64-64-64-10", "train_epochs": epochs,
                             "test_accuracy": finetune.accuracy(net, test_dl)}
    weights = model_io.load_weights(model_arg, unsafe_pickle)
    if inputs is None:
        raise UserError(f"layers {model_arg}: needs --inputs FILE.npz holding one array of layer inputs per "
                        f"weight tensor name (tensors: {', '.join(weights)}); or give MODEL as 'digits'")
    xs = _load_inputs(Path(inputs), weights, samples)
    return {k: weights[k] for k in xs}, xs, {"model": model_arg, "inputs": inputs}


def _load_inputs(path: Path, weights: dict, samples: int) -> dict:
    if not path.is_file():
        raise UserError(f"--inputs {path}: no such file; expected an .npz with one array per weight tensor name")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k], dtype=np.float64) for k in npz.files}
    except Exception as err:
        raise UserError(f"--inputs {path}: not a readable .npz file ({type(err).__name__}: {err})") from err
    out = {}
    for name, x in arrays.items():
        if name not in weights:
            continue
        n_in = int(np.prod(weights[name].shape[1:]))
        if x.shape[-1] != n_in or not np.all(np.isfinite(x)):
            raise UserError(f"--inputs {path}: array {name!r} has shape {list(x.shape)}; weight {name!r} "
                            f"{list(weights[name].shape)} needs finite rows of {n_in} inputs (last axis)")
        out[name] = x.reshape(-1, n_in)[:samples]
    if not out:
        raise UserError(f"--inputs {path}: no array is named after a weight tensor; arrays: "
                        f"{', '.join(arrays) or '(none)'}; weight tensors: {', '.join(weights)}")
    return out


def layers(weights: dict, inputs: dict, grid: str = DEFAULT_GRID, bits: Iterable[int] = BITS,
           rows: int | None = 4, chunk: int = 8, exact_max: int = 8, time_limit: float = 5.0,
           progress: Callable[[int], Callable[[], None]] | None = None) -> list[dict]:
    """Per-layer SNR ranges (Table 1 / Figure 4) for every weight tensor that has inputs."""
    bits = list(bits)
    advance = progress(len(inputs) * len(bits)) if progress else None
    return [layer_bounds.analyze_layer(name, weights[name], x, bits, grid, chunk, rows, exact_max, time_limit,
                                       advance) for name, x in inputs.items()]


def finetune_digits(bits: Iterable[int], epochs: int, pretrain_epochs: int, grid: str = DEFAULT_GRID,
                    lr: float = 1e-3, progress: Callable[[int], Callable[[], None]] | None = None) -> dict:
    """Table 1 on the built-in digits MLP: equal-size pruning vs quantization, equal fine-tuning epochs."""
    from quant.analysis import digits, finetune

    bits = list(bits)
    net, train_dl, test_dl = digits.trained_mlp(epochs=pretrain_epochs)
    advance = progress(len(bits)) if progress else None
    rows = finetune.compare_all(net, train_dl, test_dl, bits, epochs, lr, grid, advance)
    return {"config": "digits", "model": "digits MLP 64-64-64-10", "pretrain_epochs": pretrain_epochs,
            "epochs": epochs, "lr": lr, "grid": grid, "rows": rows}
