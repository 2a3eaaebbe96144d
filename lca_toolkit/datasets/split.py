"""Stratified, seeded train/validation/test splits of a labelled data set.

Every class keeps its share in each part (scikit-learn's ``train_test_split`` with ``stratify``),
and the same seed gives the same indices on every machine, so runs of different models on the
same data set (one per view, all views) are compared on the same test samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class Split:
    """Row indices of the three parts (sorted, disjoint, together every row once)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def stratified_split(
    labels: np.ndarray, *, val: float = 0.1, test: float = 0.3, seed: int = 0
) -> Split:
    """Split rows into train/val/test parts of the given fractions, stratified by ``labels``.

    Args:
        labels: ``(N,)`` class labels.
        val: fraction of all rows for validation (0 for none).
        test: fraction of all rows for test.
        seed: the shuffle's seed.

    Raises:
        ValueError: fractions outside [0, 1) or summing to 1 or more.
    """
    labels = np.asarray(labels)
    if not (0 <= val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"val={val} and test={test} must be fractions with val + test < 1")
    rows = np.arange(len(labels))
    n_val, n_test = round(val * len(rows)), round(test * len(rows))  # counts: no rounding drift
    rest, test_rows = train_test_split(
        rows, test_size=n_test, stratify=labels, random_state=seed, shuffle=True
    )
    val_rows = rows[:0]
    if n_val > 0:
        rest, val_rows = train_test_split(
            rest, test_size=n_val, stratify=labels[rest], random_state=seed + 1
        )
    return Split(train=np.sort(rest), val=np.sort(val_rows), test=np.sort(test_rows))
