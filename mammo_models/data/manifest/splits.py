"""Patient-level train/val/test splits for manifests that do not give their own.

Whole patients move between splits, never single images or breasts, so that no patient's images
can leak from training into evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import DataConfigError
from .schema import DEFAULT_SPLIT_FRACTIONS, SPLITS


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, ...]:
    """How many of ``n`` patients go to each split: largest remainders, every non-zero fraction
    getting at least one patient when ``n`` allows it.

    Raises:
        DataConfigError: fractions negative, not three, or not summing to 1.
    """
    fr = tuple(float(f) for f in fractions)
    if len(fr) != len(SPLITS) or any(not (f >= 0) for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise DataConfigError(
            f"split_fractions must be {len(SPLITS)} non-negative numbers (train, val, test) "
            f"summing to 1; got {fractions!r}"
        )
    exact = [n * f for f in fr]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(fr)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fr):
        if f > 0 and counts[i] == 0:
            donor = max(range(len(fr)), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    return tuple(counts)


def assign_splits(
    images: pd.DataFrame,
    fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    seed: int = 0,
) -> pd.DataFrame:
    """Give every row a patient-level ``split``: train/val/test by a seeded permutation.

    Patients are sorted by id, permuted with ``numpy.random.default_rng(seed)`` and cut at the
    :func:`split_counts`, so the assignment depends only on the set of patient ids, the fractions
    and the seed (not on row order).

    Returns:
        A copy of ``images`` with the ``split`` column (over)written.
    """
    patients = np.array(sorted(set(images["patient_id"].tolist())), dtype=object)
    counts = split_counts(len(patients), fractions)
    perm = np.random.default_rng(seed).permutation(len(patients))
    assignment: dict[str, str] = {}
    start = 0
    for name, count in zip(SPLITS, counts, strict=True):
        for p in patients[perm[start : start + count]]:
            assignment[p] = name
        start += count
    out = images.copy()
    out["split"] = [assignment[p] for p in out["patient_id"].tolist()]
    return out
