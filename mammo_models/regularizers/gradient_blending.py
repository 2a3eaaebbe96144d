"""Gradient Blending (Wang et al. 2019), as used in Wu et al. (2020), section 6.2 and appendix C.

Training side: a blended model has two extra heads, ``Linear(512, 2)`` on ``h_cc`` and on
``h_mlo`` (built in :mod:`mammo_models.variants`), and is trained on
``w_joint * L_joint + w_cc * L_cc + w_mlo * L_mlo`` with weights fixed for the whole run
(:func:`mammo_models.per_sample_loss` reads them from the model outputs).

Estimation side (offline, "G-Blend"): for every head trained on its own, compare two checkpoints
(say epochs N and N + n):

* ``dG``: improvement of the held-out metric (a decrease of the loss, an increase of the AUC);
* ``dO``: change of the overfitting gap ``held-out - train`` of that metric;
* raw weight ``max(dG, 0) / max(dO ** 2, eps)``; weights normalised to sum 1.

A head that does not improve on held-out data gets weight 0; a head whose gap does not move is
capped by ``eps`` instead of dividing by zero; a non-finite input (for instance the AUC of a
one-class subset, NaN) makes that head's raw weight 0. If no head has a positive finite raw
weight, the weights are uniform. Because ``dO`` enters squared, the sign convention of the gap
does not matter; for the loss, ``held-out - train`` is positive when a model overfits.

The paper averages estimated weights over a window of epochs (table 4):
:func:`average_blend_weights` does that. The functions are pure functions of numbers, so a training
loop can feed them the metrics it records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from ..losses import BLEND_HEADS

METRICS: tuple[str, ...] = ("loss", "auc")
DEFAULT_EPS: float = 1e-6


@dataclass(frozen=True)
class HeadMetrics:
    """One head's metric on the training subset and the held-out set at two checkpoints.

    Attributes:
        train_start: training-subset metric at the earlier checkpoint.
        heldout_start: held-out metric at the earlier checkpoint.
        train_end: training-subset metric at the later checkpoint.
        heldout_end: held-out metric at the later checkpoint.
    """

    train_start: float
    heldout_start: float
    train_end: float
    heldout_end: float


def generalization_gain(m: HeadMetrics, metric: str) -> float:
    """``dG``: held-out improvement from start to end (loss decrease or AUC increase)."""
    _check_metric(metric)
    delta = m.heldout_end - m.heldout_start
    return -delta if metric == "loss" else delta


def overfitting_change(m: HeadMetrics) -> float:
    """``dO``: change of the ``held-out - train`` gap from start to end."""
    return (m.heldout_end - m.train_end) - (m.heldout_start - m.train_start)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"blend metric must be one of {METRICS}, got {metric!r}")


def _as_head_metrics(head: str, value: HeadMetrics | Iterable[float]) -> HeadMetrics:
    if isinstance(value, HeadMetrics):
        return value
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"metrics of head {head!r} must be a HeadMetrics or four numbers (train_start, "
            f"heldout_start, train_end, heldout_end), got {value!r}"
        ) from exc
    if len(numbers) != 4:
        raise ValueError(
            f"metrics of head {head!r} must be four numbers (train_start, heldout_start, "
            f"train_end, heldout_end), got {len(numbers)}"
        )
    return HeadMetrics(*numbers)


def estimate_blend_weights(
    metrics: Mapping[str, HeadMetrics | Iterable[float]],
    *,
    metric: str = "loss",
    eps: float = DEFAULT_EPS,
) -> dict[str, float]:
    """Offline G-Blend weights from each head's metrics at two checkpoints.

    Args:
        metrics: head name (e.g. ``"joint"``, ``"cc"``, ``"mlo"``) -> :class:`HeadMetrics` or
            the four numbers ``(train_start, heldout_start, train_end, heldout_end)``.
        metric: ``"loss"`` (lower is better) or ``"auc"`` (higher is better).
        eps: floor of ``dO ** 2``; bounds the weight of a head whose gap does not move.

    Returns:
        head -> weight, every weight finite and >= 0, summing to 1 (same key order as input).
    """
    _check_metric(metric)
    if not metrics:
        raise ValueError("estimate_blend_weights needs the metrics of at least one head")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    raw: dict[str, float] = {}
    for head, value in metrics.items():
        m = _as_head_metrics(head, value)
        gain = generalization_gain(m, metric)
        change = overfitting_change(m)
        w = max(gain, 0.0) / max(change * change, eps)
        raw[head] = w if math.isfinite(w) and w > 0.0 else 0.0
    return _normalise(raw)


def _normalise(raw: Mapping[str, float]) -> dict[str, float]:
    total = math.fsum(raw.values())
    if not (math.isfinite(total) and total > 0.0):
        return {head: 1.0 / len(raw) for head in raw}
    return {head: w / total for head, w in raw.items()}


def average_blend_weights(history: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of several weight estimates (e.g. one per epoch of a window), renormalised to 1.

    Non-finite entries count as 0; all heads of every estimate must be the same.
    """
    rows = list(history)
    if not rows:
        raise ValueError("average_blend_weights needs at least one weight estimate")
    heads = list(rows[0])
    for i, row in enumerate(rows):
        if set(row) != set(heads):
            raise ValueError(
                f"weight estimate {i} has heads {sorted(row)}, expected {sorted(heads)}"
            )
    mean = {}
    for head in heads:
        values = [float(r[head]) for r in rows]
        mean[head] = math.fsum(v for v in values if math.isfinite(v) and v > 0) / len(rows)
    return _normalise(mean)


def blend_weight_tensor(weights: Mapping[str, float]) -> torch.Tensor:
    """Validated (3,) float32 tensor in the order ``BLEND_HEADS`` = (joint, cc, mlo).

    The weights are used as given (not renormalised), so the paper's table values can be typed in.

    Raises:
        ValueError: a head is missing or unknown, a weight is negative or not finite, or all are 0.
    """
    keys = set(weights)
    if keys != set(BLEND_HEADS):
        raise ValueError(
            f"blend_weights must have exactly the keys {BLEND_HEADS}, got {sorted(keys)}"
        )
    values = []
    for head in BLEND_HEADS:
        w = weights[head]
        if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"blend_weights[{head!r}] must be a finite number >= 0, got {w!r}")
        values.append(float(w))
    if sum(values) <= 0:
        raise ValueError(f"blend_weights must not all be 0, got {dict(weights)}")
    return torch.tensor(values, dtype=torch.float32)


def equal_blend_weights() -> dict[str, float]:
    """(1/3, 1/3, 1/3): the default, and the best setting of the paper's table 5."""
    return {head: 1.0 / len(BLEND_HEADS) for head in BLEND_HEADS}
