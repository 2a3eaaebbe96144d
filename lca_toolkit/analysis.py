"""Claims about groups' LCA that hold up against its quadrature error.

LCA is a quadrature, so every interval's per-group sum carries an error; the store keeps an
estimate of it (``lca/error_by_group``, conservative for smooth losses). Summed over intervals,
the estimates bound the error of a group's summed LCA (triangle inequality), and the two groups'
bounds added bound the error of their difference. A summary may say that one group's LCA exceeds
another's only when the difference is larger than that bound: :func:`compare_groups`.

Sign convention as everywhere: negative LCA means the group helped (lowered the loss on E), so
"a helped more than b" is ``difference < 0`` with ``supported`` true.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pandas as pd

from .errors import GroupError
from .store import Run, open_run


@dataclass(frozen=True)
class GroupComparison:
    """Summed LCA of group ``a`` minus that of group ``b``, with its error bound.

    Attributes:
        a, b: the group names.
        difference: ``Σ lca/a - Σ lca/b`` over all intervals.
        bound: ``Σ error/a + Σ error/b``; NaN when an interval has no estimate (a store written
            before estimates were recorded).
        supported: ``|difference| > bound``: the ordering of the two groups is not an artefact of
            the quadrature. False when the bound is NaN.
    """

    a: str
    b: str
    difference: float
    bound: float
    supported: bool


def group_totals(run: Run | str | os.PathLike[str]) -> pd.DataFrame:
    """Each group's LCA and error estimate summed over all intervals of a run.

    Args:
        run: a :class:`~lca_toolkit.store.Run` or its store path.

    Returns:
        One row per group (index ``group``, store order) with ``lca`` (NaN intervals skipped, as
        in the cumulative plot) and ``error`` (NaN if any interval lacks an estimate: a sum that
        leaves an interval out bounds nothing).
    """
    run = run if isinstance(run, Run) else open_run(run)
    df = run.lca()
    return pd.DataFrame(
        {
            "lca": [float(df[f"lca/{g}"].sum()) for g in run.groups],
            "error": [float(df[f"error/{g}"].sum(skipna=False)) for g in run.groups],
        },
        index=pd.Index(run.groups, name="group"),
    )


def compare_groups(run: Run | str | os.PathLike[str], a: str, b: str) -> GroupComparison:
    """Whether group ``a``'s summed LCA differs from group ``b``'s by more than the error bound.

    Raises:
        GroupError: ``a`` or ``b`` is not a group of the run (the message lists them).
    """
    totals = group_totals(run)
    unknown = [g for g in (a, b) if g not in totals.index]
    if unknown:
        raise GroupError(
            f"compare_groups: {unknown} not among the run's groups {list(totals.index)}"
        )
    difference = totals.at[a, "lca"] - totals.at[b, "lca"]
    bound = totals.at[a, "error"] + totals.at[b, "error"]
    supported = not math.isnan(bound) and abs(difference) > bound
    return GroupComparison(a, b, float(difference), float(bound), bool(supported))
