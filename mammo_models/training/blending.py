"""Gradient Blending's offline estimation phase (appendix C), run before the blended model trains.

Three models are trained on their own for ``blend_epochs`` epochs: uni-view CC, uni-view MLO and the
Joint ResNet (its fused head). After every epoch each is measured on the validation set (held-out)
and on a fixed subset of training breasts with the natural prevalence (the "train" side, measured
in eval mode so augmentation does not blur the overfitting gap). For every pair of consecutive
epochs, :func:`mammo_models.estimate_blend_weights` turns the change of each head's held-out metric
and of its held-out minus train gap into weights; the weights are averaged over all epoch pairs
(the paper's window [0, N]).

The three estimation runs are ordinary run stores under ``<out>.blend/``; one that finished with
exactly the same settings is reused (so a resumed Gradient Blending run gets the same weights), any
other is replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from lca_toolkit import open_run

from ..regularizers import HeadMetrics, average_blend_weights, estimate_blend_weights
from .config import BLEND_SIDE, ExperimentConfig, RecordConfig, RegularizerConfig

HEAD_VARIANTS: dict[str, str] = {"joint": "joint", "cc": "uni_cc", "mlo": "uni_mlo"}


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
    frames: dict[str, Any], metric: str
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Average of the per-epoch-pair weights, from each head's epoch metrics.

    Args:
        frames: head -> epochs DataFrame with ``val_<m>`` and ``train_subset_<m>`` columns.
        metric: ``loss`` or ``auc``.

    Returns:
        ``(averaged weights, per-pair weights)``.
    """
    key = "loss" if metric == "loss" else "auc"
    n = min(len(f) for f in frames.values())
    history = []
    for e in range(n - 1):
        heads = {
            head: HeadMetrics(
                train_start=float(f[f"train_subset_{key}"].iloc[e]),
                heldout_start=float(f[f"val_{key}"].iloc[e]),
                train_end=float(f[f"train_subset_{key}"].iloc[e + 1]),
                heldout_end=float(f[f"val_{key}"].iloc[e + 1]),
            )
            for head, f in frames.items()
        }
        history.append(estimate_blend_weights(heads, metric=metric))
    return average_blend_weights(history), history


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
    weights, history = weights_from_epochs(frames, config.regularizers.blend_metric)
    w = (weights["joint"], weights["cc"], weights["mlo"])
    echo("gradient blending weights (joint, cc, mlo): " + ", ".join(f"{x:.3f}" for x in w))
    details = {
        "metric": config.regularizers.blend_metric,
        "weights": weights,
        "per_epoch_pair": history,
    }
    return w, details
