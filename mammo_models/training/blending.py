"""Gradient Blending's offline estimation phase (appendix C), run before the blended model trains.

Three models are trained on their own for ``blend_epochs`` epochs: uni-view CC, uni-view MLO and the
Joint ResNet (its fused head). After every epoch each is measured on the validation set (held-out)
and on a fixed subset of training breasts with the natural prevalence (the "train" side, measured
in eval mode so augmentation does not blur the overfitting gap). For every pair of consecutive
epochs, :func:`mammo_models.estimate_blend_weights` turns the change of each head's held-out metric
and of its held-out minus train gap into weights; the weights are averaged over all epoch pairs
(the paper's window [0, N]).

The estimation runs also measure each head on a fixed tenth of the validation set
(:data:`VAL_PART`, appendix C's ablation), from the same predictions, so one estimation gives
every weight set of Tables 4 and 5: metric loss or AUC, the window [0, N] or [0.9 N, N], the
whole or a tenth of the validation set (:func:`weight_set`). They are stored with the run
(``blend_estimation.histories``).

The three estimation runs are ordinary run stores under ``<out>.blend/``; one that finished with
exactly the same settings is reused (so a resumed Gradient Blending run gets the same weights), any
other is replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from lca_toolkit import open_run

from ..regularizers import HeadMetrics, average_blend_weights, estimate_blend_weights
from .config import BLEND_SIDE, ExperimentConfig, RecordConfig, RegularizerConfig

HEAD_VARIANTS: dict[str, str] = {"joint": "joint", "cc": "uni_cc", "mlo": "uni_mlo"}

VAL_PART = 0.1
"""Appendix C's ablation estimates the weights on 10% of the validation set."""

HELDOUTS: dict[str, str] = {"val": "val", "val_part": "val_part"}
"""Held-out sides of the estimation: the whole validation set, or its fixed tenth."""

LATE_WINDOW = 0.9
"""Appendix C's second window: the weights averaged over the epochs [0.9 N, N] only."""

WINDOWS: tuple[str, ...] = ("all", "late")
"""``all``: the epoch pairs of [0, N]; ``late``: those of [0.9 N, N] (at least the last)."""


def heldout_part(strata: np.ndarray, fraction: float = VAL_PART, seed: int = 0) -> np.ndarray:
    """Row positions of a fixed ``fraction`` of a split, stratified by class.

    ``strata`` holds one class key per row (e.g. ``2 * malignant + benign``); at least one row of
    every class present is kept, so both AUCs stay defined. The draw depends on ``seed`` only,
    so every epoch and every head of an estimation measures the same breasts.
    """
    strata = np.asarray(strata)
    rng = np.random.default_rng([seed, 0x0A11])
    chosen = [np.zeros(0, dtype=np.int64)]
    for value in np.unique(strata):
        pool = np.flatnonzero(strata == value)
        k = min(pool.size, max(1, round(fraction * pool.size)))
        chosen.append(rng.choice(pool, size=k, replace=False))
    return np.sort(np.concatenate(chosen))


def estimation_configs(config: ExperimentConfig) -> dict[str, ExperimentConfig]:
    """The three estimation runs of a Gradient Blending experiment, by head."""
    root = config.run_dir.side(BLEND_SIDE)
    base = replace(
        config,
        regularizer="none",
        regularizers=RegularizerConfig(),
        record=RecordConfig(lca=False),
        epochs=max(2, config.train_preset.blend_epochs),
        max_steps=None,
    )
    return {
        head: replace(base, variant=variant, out=root / f"{variant}.zarr")
        for head, variant in HEAD_VARIANTS.items()
    }


def weights_from_epochs(
    frames: dict[str, Any], metric: str, heldout: str = "val"
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Average of the per-epoch-pair weights, from each head's epoch metrics.

    Args:
        frames: head -> epochs DataFrame with ``<heldout>_<m>`` and ``train_subset_<m>`` columns.
        metric: ``loss`` or ``auc``.
        heldout: ``val`` (the whole validation set) or ``val_part`` (its tenth).

    Returns:
        ``(averaged weights, per-pair weights)``.
    """
    key = "loss" if metric == "loss" else "auc"
    side = HELDOUTS[heldout]
    n = min(len(f) for f in frames.values())
    history = []
    for e in range(n - 1):
        heads = {
            head: HeadMetrics(
                train_start=float(f[f"train_subset_{key}"].iloc[e]),
                heldout_start=float(f[f"{side}_{key}"].iloc[e]),
                train_end=float(f[f"train_subset_{key}"].iloc[e + 1]),
                heldout_end=float(f[f"{side}_{key}"].iloc[e + 1]),
            )
            for head, f in frames.items()
        }
        history.append(estimate_blend_weights(heads, metric=metric))
    return average_blend_weights(history), history


def history_key(metric: str, heldout: str = "val") -> str:
    """Key of one per-epoch-pair history in ``blend_estimation.histories``."""
    return metric if heldout == "val" else f"{metric}@{heldout}"


def window_weights(history: list[dict[str, float]], window: str) -> dict[str, float]:
    """Weights averaged over a window's epoch pairs (pair ``i`` spans epochs ``i`` to ``i + 1``)."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; expected one of {', '.join(WINDOWS)}")
    first = 0 if window == "all" else min(int(LATE_WINDOW * len(history)), len(history) - 1)
    return average_blend_weights(history[first:])


def weight_set(
    details: dict[str, Any],
    metric: str,
    window: str = "all",
    heldout: str = "val",
    swap: bool = False,
) -> tuple[float, float, float]:
    """``(w_joint, w_cc, w_mlo)`` of one of appendix C's weight sets, from a stored estimation.

    Args:
        details: the ``blend_estimation`` a Gradient Blending run stores in its config.
        metric: ``loss`` or ``auc``.
        window: ``all`` ([0, N]) or ``late`` ([0.9 N, N]).
        heldout: ``val`` or ``val_part`` (Table 5's tenth of the validation set).
        swap: exchange the CC and MLO weights (Table 5's "swapped").
    """
    histories = details.get("histories") or {
        history_key(details.get("metric", "loss")): details["per_epoch_pair"]
    }
    key = history_key(metric, heldout)
    if key not in histories:
        raise ValueError(
            f"this Gradient Blending estimation has no {key!r} weights (it has "
            f"{', '.join(sorted(histories))}); it was made before they were recorded: "
            "remove the run to estimate again"
        )
    w = window_weights(histories[key], window)
    cc, mlo = (w["mlo"], w["cc"]) if swap else (w["cc"], w["mlo"])
    return (w["joint"], cc, mlo)


def _finished_with(cfg: ExperimentConfig) -> bool:
    """A finished estimation run of exactly these settings (so a resumed run gets the same weights)."""
    wanted = cfg.to_dict()

    def same(run: Any) -> bool:
        stored = run.config.get("experiment", {})
        return {k: stored.get(k) for k in wanted} == wanted

    return cfg.run_dir.state(same) == "finished"


def estimate_by_training(
    config: ExperimentConfig, run: Callable[[ExperimentConfig], Any], echo: Callable[[str], None]
) -> tuple[tuple[float, float, float], dict[str, Any]]:
    """Train (or reuse) the three estimation runs and return ``(w_joint, w_cc, w_mlo)`` and details.

    Args:
        config: the Gradient Blending experiment.
        run: runs one estimation config (an ``Experiment`` with train-subset metrics).
        echo: progress messages.
    """
    frames = {}
    for head, cfg in estimation_configs(config).items():
        done = _finished_with(cfg)
        if not done and Path(cfg.out).exists():  # a run of other settings or an unfinished one
            cfg.run_dir.remove(owned=True)
        if not done:
            echo(
                f"gradient blending: estimation run for the {head} head ({cfg.variant}, {cfg.n_epochs} epochs)"
            )
            run(cfg)
        frames[head] = open_run(cfg.out).epochs()
    metric = config.regularizers.blend_metric
    weights, history = weights_from_epochs(frames, metric)
    histories = {
        history_key(m, side): weights_from_epochs(frames, m, side)[1]
        for m in ("loss", "auc")
        for side in HELDOUTS
        if all(f"{side}_{m}" in f for f in frames.values())
    }
    w = (weights["joint"], weights["cc"], weights["mlo"])
    echo("gradient blending weights (joint, cc, mlo): " + ", ".join(f"{x:.3f}" for x in w))
    details = {
        "metric": config.regularizers.blend_metric,
        "weights": weights,
        "per_epoch_pair": history,
        "histories": histories,
    }
    return w, details
