"""The record of one input-ablation measurement, and records as a store table.

See :mod:`lca_toolkit.ablation` for what is measured and the sign convention (a positive
contribution means the modality lowers the loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import AblationError


def subset_label(removed: Sequence[str]) -> str:
    """Column label of a subset of removed modalities: ``'cc+mlo'``; ``'none'`` for the empty one."""
    return "+".join(removed) if removed else "none"


@dataclass(frozen=True)
class AblationResult:
    """One ablation measurement on E at optimizer step ``step``.

    Attributes:
        step: the optimizer step whose parameters were evaluated.
        modalities: the modality names, in the order given.
        exact: ``True``: Shapley values over all subsets; ``False``: leave-one-out (M > 4).
        n_eval: samples in E.
        loss: mean loss over E per evaluated subset of REMOVED modalities (a tuple of names in
            modality order; ``()`` is the full model).
        metric: the same for the metric (``None`` without one).
        contribution: per modality, the loss reduction it is responsible for (positive: it helps).
        metric_contribution: per modality, the metric gain it is responsible for (or ``None``).
        unimodal_loss: per modality, the loss with only that modality present.
        unimodal_metric: the same for the metric (or ``None``).
    """

    step: int
    modalities: tuple[str, ...]
    exact: bool
    n_eval: int
    loss: dict[tuple[str, ...], float]
    metric: dict[tuple[str, ...], float] | None
    contribution: dict[str, float]
    metric_contribution: dict[str, float] | None
    unimodal_loss: dict[str, float]
    unimodal_metric: dict[str, float] | None

    @property
    def method(self) -> str:
        """``'shapley'`` or ``'leave_one_out'``."""
        return "shapley" if self.exact else "leave_one_out"

    def contribution_of(self, name: str) -> float:
        """The contribution of modality ``name``.

        Raises:
            AblationError: no modality of that name (the message lists the ones there are).
        """
        if name not in self.contribution:
            raise AblationError(
                f"unknown modality {name!r}; this measurement has {list(self.modalities)}"
            )
        return self.contribution[name]

    def columns(self) -> dict[str, np.ndarray]:
        """This record as one table row (see :func:`ablation_columns`)."""
        row: dict[str, float] = {
            "step": self.step,
            "exact": int(self.exact),
            "n_eval": self.n_eval,
        }
        for kind, by_subset, by_name, only in (
            ("loss", self.loss, self.contribution, self.unimodal_loss),
            ("metric", self.metric, self.metric_contribution, self.unimodal_metric),
        ):
            if by_subset is None:
                continue
            for removed, v in by_subset.items():
                row[f"{kind}_without_{subset_label(removed)}"] = v
            for name in self.modalities:
                row[f"{kind}_only_{name}"] = only[name]
                row[f"{kind}_contribution_{name}"] = by_name[name]
        ints = ("step", "exact", "n_eval")
        return {
            k: np.array([v], dtype=np.int64 if k in ints else np.float64) for k, v in row.items()
        }


def ablation_columns(records: Sequence[AblationResult]) -> dict[str, np.ndarray]:
    """Records as table columns: 1-D arrays of one length, one row per record, ready for
    ``RunWriter.write_table`` / ``Tracker.write_table``.

    Columns: ``step``, ``exact`` (1 Shapley, 0 leave-one-out), ``n_eval``, then per kind (``loss``,
    and ``metric`` when measured) ``<kind>_without_<a+b>`` per evaluated subset (``none``: the full
    model), ``<kind>_only_<m>`` and ``<kind>_contribution_<m>`` per modality.

    Raises:
        AblationError: no records, or records with different columns (modalities or metric).
    """
    if not records:
        raise AblationError("ablation_columns needs at least one record")
    rows = [r.columns() for r in records]
    names = list(rows[0])
    for r, row in zip(records, rows, strict=True):
        if list(row) != names:
            raise AblationError(
                f"ablation record of step {r.step} has columns {sorted(set(row) ^ set(names))} "
                "that the first record does not share; records of one table come from one probe"
            )
    return {k: np.concatenate([row[k] for row in rows]) for k in names}


def ablation_frame(records: Sequence[AblationResult]) -> pd.DataFrame:
    """Records as a pandas frame (one row per measurement, the columns of :func:`ablation_columns`)."""
    return pd.DataFrame(ablation_columns(records))
