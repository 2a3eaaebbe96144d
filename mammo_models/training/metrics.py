"""AUC with scikit-learn, and NaN (with a warning) where it is undefined."""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.metrics import roc_auc_score


def auc(labels: np.ndarray, scores: np.ndarray, *, what: str = "AUC") -> float:
    """ROC AUC of ``scores`` against binary ``labels``; NaN with a warning for a single class.

    A validation split with no positive (or no negative) breast happens on small data sets; it
    must not stop a run, and NaN keeps it out of model selection.
    """
    labels = np.asarray(labels)
    if labels.size == 0 or np.unique(labels).size < 2:
        if labels.size == 0:
            why = "the split has no breast"
        else:
            value = labels.flat[0]
            kind = "positive" if not value else "negative"
            why = f"all {labels.size} labels are {value:g}, so the split has no {kind} breast"
        warnings.warn(f"{what} is undefined (NaN): {why}", stacklevel=2)
        return math.nan
    return float(roc_auc_score(labels, np.asarray(scores)))
