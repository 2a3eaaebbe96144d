"""Measure what the synthetic testbed plants, so that its calibration is a number, not a claim.

The generator (:mod:`.synthetic`) hands over, per breast, what it drew; these functions turn it
into the ``calibration`` block of the data set's ``synthetic.json``:

* ``signal``: the integrated signal (sum over pixels of the brightness a component adds to the
  final, clipped image) of one lesion per view and of the shortcut cue, and their ratio;
* ``probe``: how easily the cue is learned: a logistic regression on block-averaged pixels of
  the cue view, trained for a few hundred iterations to say whether the cue is present, with its
  training and held-out AUC;
* ``heatmaps``: how much the imitated patch-classifier heatmaps alone know: the AUC of a
  per-breast score (the largest malignant-heatmap value over both views) for malignancy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

PROBE_CELLS = 8
"""The probe sees the cue view averaged over blocks of about width / 8 pixels."""
PROBE_ITERATIONS = 300
"""Optimiser iterations of the probe ("learned within a few hundred steps")."""


def block_mean(image: np.ndarray, cells: int = PROBE_CELLS) -> np.ndarray:
    """``image`` averaged over square blocks of ``max(1, width // cells)`` pixels (flattened)."""
    b = max(1, image.shape[1] // cells)
    h, w = image.shape[0] // b * b, image.shape[1] // b * b
    return image[:h, :w].reshape(h // b, b, w // b, b).mean(axis=(1, 3)).ravel()


@dataclass
class CalibrationSamples:
    """What the generator collects while drawing (one entry per breast unless stated)."""

    lesion_signal: dict[str, list[float]] = field(default_factory=lambda: {"CC": [], "MLO": []})
    cue_signal: list[float] = field(default_factory=list)
    probe_features: list[np.ndarray] = field(default_factory=list)
    probe_cue: list[bool] = field(default_factory=list)
    probe_train: list[bool] = field(default_factory=list)
    heat_score: list[float] = field(default_factory=list)
    malignant: list[bool] = field(default_factory=list)


def _auc(labels: list[bool], scores: Any) -> float | None:
    labels_arr = np.asarray(labels, dtype=bool)
    if labels_arr.all() or not labels_arr.any():
        return None
    return round(float(roc_auc_score(labels_arr, np.asarray(scores))), 4)


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 4) if values else None


def probe_aucs(samples: CalibrationSamples) -> dict[str, float | None]:
    """Training and held-out AUC of the cue-presence probe (None where a class is missing)."""
    x = np.stack(samples.probe_features)
    cue = np.asarray(samples.probe_cue, dtype=bool)
    train = np.asarray(samples.probe_train, dtype=bool)
    if cue[train].all() or not cue[train].any():
        return {"train_auc": None, "heldout_auc": None}
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
    x = (x - mean) / std
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(max_iter=PROBE_ITERATIONS).fit(x[train], cue[train])
    score = model.decision_function(x)
    return {
        "train_auc": _auc(cue[train].tolist(), score[train]),
        "heldout_auc": _auc(cue[~train].tolist(), score[~train]),
    }


def summarize(samples: CalibrationSamples, cue_view: str | None) -> dict[str, Any]:
    """The ``calibration`` block of ``synthetic.json``."""
    lesion = {v: _median(s) for v, s in samples.lesion_signal.items()}
    cue = _median(samples.cue_signal) if cue_view else None
    ratio = None
    if cue is not None and lesion.get(cue_view):
        ratio = round(cue / lesion[cue_view], 3)
    out: dict[str, Any] = {
        "signal": {"lesion": lesion, "cue": cue, "cue_to_lesion": ratio},
        "probe": {
            "what": f"logistic regression on block-averaged {cue_view} pixels (about "
            f"{PROBE_CELLS} blocks across), {PROBE_ITERATIONS} iterations, target: cue present",
            **(probe_aucs(samples) if cue_view else {"train_auc": None, "heldout_auc": None}),
        },
    }
    if samples.heat_score:
        out["heatmaps"] = {
            "what": "per-breast score: the largest malignant-heatmap value over both views",
            "malignant_auc": _auc(samples.malignant, samples.heat_score),
        }
    return out
