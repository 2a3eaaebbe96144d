"""Claims about groups' LCA that hold up against seed noise and the LCA's quadrature error.

LCA is a quadrature, so every interval's per-group sum carries an error; the store keeps an
estimate of it (``lca/error_by_group``). Summed over intervals, the two groups' estimates are the
quadrature part ``q`` of the error of their difference (triangle inequality). Over several runs
(seeds), the difference's interval is the rule of :mod:`lca_toolkit.stats`: the 95% t interval
over the runs with the mean ``q`` added to its half-width. A summary may say that one group
lowered the loss more than another only when that interval excludes 0: :func:`compare_groups`.
One run has no spread over seeds, so it decides nothing.

Conditional learning speed (Wu et al., ICML 2022), the other per-group reading of a run, lives in
:mod:`lca_toolkit.learning_speed` and is re-exported here: :func:`learning_speed`,
:func:`learning_speed_ratio`.

Sign convention as everywhere: negative LCA means the group helped (lowered the loss on E), so
"a helped more than b" is an interval wholly below 0, verdict ``"a"``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from .errors import GroupError, StatisticError
from .learning_speed import learning_speed, learning_speed_ratio
from .stats import ABOVE, BELOW, Interval, t_interval
from .store import Run, open_run

RunLike = Run | str | os.PathLike[str]

__all__ = [
    "GroupComparison",
    "compare_groups",
    "group_totals",
    "learning_speed",
    "learning_speed_ratio",
]


@dataclass(frozen=True)
class GroupComparison:
    """Summed LCA of group ``a`` minus that of group ``b`` over runs, with its interval.

    Attributes:
        a, b: the group names.
        estimate: mean over runs of ``Σ lca/a - Σ lca/b`` (negative: ``a`` lowered the loss
            more).
        low, high: the 95% interval by the rule of :mod:`lca_toolkit.stats` (NaN for one run).
        n: the number of runs.
        verdict: ``"a"`` (interval below 0: a helped more), ``"b"`` (above 0) or
            ``"undecided"``.
        interval: the interval itself (per-run values, standard error, quadrature part).
    """

    a: str
    b: str
    estimate: float
    low: float
    high: float
    n: int
    verdict: str
    interval: Interval


def group_totals(run: RunLike) -> pd.DataFrame:
    """Each group's LCA and error estimate summed over all intervals of a run.

    Args:
        run: a :class:`~lca_toolkit.store.Run` or its store path.

    Returns:
        One row per group (index ``group``, store order) with ``lca`` (NaN intervals skipped, as
        in the cumulative plot) and ``error`` (NaN if any interval lacks an estimate: a sum that
        leaves an interval out estimates nothing).
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


def compare_groups(runs: RunLike | Sequence[RunLike], a: str, b: str) -> GroupComparison:
    """Whether group ``a``'s summed LCA differs from group ``b``'s, over one run or several.

    Args:
        runs: one run (a :class:`~lca_toolkit.store.Run` or store path) or a list of them, the
            seeds of one setting.
        a, b: group names of every run.

    Raises:
        GroupError: ``a`` or ``b`` is not a group of a run (the message lists them).
        StatisticError: a run has intervals without an error estimate (a store written before
            estimates were recorded): its quadrature error is unknown, not 0.
    """
    if isinstance(runs, (Run, str, os.PathLike)):
        runs = [runs]
    differences, errors = [], []
    for run in runs:
        run = run if isinstance(run, Run) else open_run(run)
        totals = group_totals(run)
        unknown = [g for g in (a, b) if g not in totals.index]
        if unknown:
            raise GroupError(
                f"compare_groups: {unknown} not among the groups {list(totals.index)} of "
                f"'{run.path}'"
            )
        error = totals.at[a, "error"] + totals.at[b, "error"]
        if not math.isfinite(error):
            raise StatisticError(
                f"compare_groups: '{run.path}' has LCA intervals without an error estimate "
                "(lca/error_by_group missing or NaN), so its quadrature error is unknown"
            )
        differences.append(totals.at[a, "lca"] - totals.at[b, "lca"])
        errors.append(error)
    interval = t_interval(differences, extra=sum(errors) / len(errors) if errors else 0.0)
    side = interval.side(0.0)
    verdict = "a" if side == BELOW else "b" if side == ABOVE else "undecided"
    return GroupComparison(
        a, b, interval.mean, interval.low, interval.high, interval.n, verdict, interval
    )
