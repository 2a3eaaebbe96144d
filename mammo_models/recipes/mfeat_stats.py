"""The numbers and verdicts of the mfeat study, computed from its run stores (never typed).

Per view, over the seeds (mean and 95% interval by :func:`lca_toolkit.stats.t_interval`):

* test accuracy alone: the uni-view model's test accuracy after its last epoch;
* LCA share in the six-view model: the view's summed LCA over the summed LCA of all groups (the
  head included, shown apart), with the view's quadrature error estimate over ``|total|`` added
  to the interval;
* ablation contribution on the test rows (leave-one-out: the test loss with the view replaced by
  its mean minus the loss with every view; the same for accuracy, with the sign that makes a
  positive number mean the view helps), and the six-view model's accuracy with only that view.

Verdicts (SPEC section 10: :func:`lca_toolkit.analysis.compare_groups` over the seeds, the 95% t
interval of a difference of summed LCA with the quadrature error estimate added):

* V1 "the view with the largest LCA share is the one that is best alone": with ``b`` the view of
  the highest mean test accuracy alone, **holds** when ``compare_groups(runs, b, v)`` finds ``b``
  lowered the loss more than every other view ``v``; **does not hold** when it finds some view
  lowered it more than ``b``; **inconclusive** otherwise.
* V2 "the weakest view alone gets the smallest share": with ``w`` the view of the lowest mean
  test accuracy alone (``mor`` on the real data), **holds** when every other view lowered the
  loss more than ``w``; **does not hold** when ``w`` lowered it more than some view;
  **inconclusive** otherwise.

The agreement of the ablation ranking with the LCA ranking is a number, not a verdict: the
Spearman rank correlation over views between the loss contribution and ``-LCA`` (both: larger
is more help), per seed, then the mean over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from lca_toolkit import open_run
from lca_toolkit.analysis import GroupComparison, compare_groups, group_totals
from lca_toolkit.datasets.multiple_features import VIEWS
from lca_toolkit.stats import Interval, t_interval
from lca_toolkit.store import Run

from .mfeat import ABLATION, ALL, plan
from .settings import RecipeSettings

HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
HEAD = "head"


def runs_of(s: RecipeSettings, views: str) -> list[Run]:
    """The finished stores of ``views`` (a view name or ``"all"``), in seed order."""
    return [open_run(r.store(s)) for r in plan(s) if r.views == views]


def final_test_acc(run: Run) -> float:
    return float(run.epochs()["test_acc"].iloc[-1])


def alone(s: RecipeSettings) -> dict[str, Interval]:
    """Per view, the uni-view models' test accuracy over the seeds."""
    return {v: t_interval([final_test_acc(r) for r in runs_of(s, v)]) for v in VIEWS}


def shares(runs: Sequence[Run]) -> dict[str, Interval]:
    """Per group of the six-view model (views and head), its share of the summed LCA."""
    totals = [group_totals(r) for r in runs]
    out = {}
    for g in totals[0].index:
        values = [t.at[g, "lca"] / t["lca"].sum() for t in totals]
        error = np.mean([t.at[g, "error"] / abs(t["lca"].sum()) for t in totals])
        out[str(g)] = t_interval(values, extra=float(error))
    return out


def ablation_rows(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per seed: the ablation table of each six-view run (its one measurement)."""
    return pd.concat([r.table(ABLATION).iloc[[-1]] for r in runs], ignore_index=True)


def ablation(runs: Sequence[Run], kind: str) -> dict[str, Interval]:
    """Per view, ``<kind>_contribution_<view>`` (``kind``: loss or metric) over the seeds."""
    rows = ablation_rows(runs)
    return {v: t_interval(rows[f"{kind}_contribution_{v}"]) for v in VIEWS}


def only(runs: Sequence[Run]) -> dict[str, Interval]:
    """Per view, the six-view model's test accuracy with only that view (the others muted)."""
    rows = ablation_rows(runs)
    return {v: t_interval(rows[f"metric_only_{v}"]) for v in VIEWS}


def agreement(runs: Sequence[Run]) -> tuple[float, list[float]]:
    """Spearman over views of the ablation loss contribution against ``-LCA``, per seed, and
    its mean over seeds."""
    per_seed = []
    for run in runs:
        totals = group_totals(run)
        row = run.table(ABLATION).iloc[-1]
        lca_help = [-float(totals.at[v, "lca"]) for v in VIEWS]
        abl_help = [float(row[f"loss_contribution_{v}"]) for v in VIEWS]
        per_seed.append(float(spearmanr(lca_help, abl_help).statistic))
    return float(np.mean(per_seed)), per_seed


@dataclass(frozen=True)
class Claim:
    """One statement judged from the stores, with the comparisons it rests on."""

    name: str
    statement: str
    verdict: str
    comparisons: tuple[GroupComparison, ...]

    def line(self) -> str:
        parts = "; ".join(
            f"{c.a} − {c.b} {c.estimate:+.4f} [{c.low:+.4f}, {c.high:+.4f}] ({_said(c)})"
            for c in self.comparisons
        )
        return (
            f'**{self.name} {self.verdict}**: "{self.statement}". Summed LCA differences '
            f"(mean over {self.comparisons[0].n} seeds, 95% interval; negative: the first "
            f"lowered the loss more): {parts}."
        )


def _said(c: GroupComparison) -> str:
    return {"a": f"{c.a} more", "b": f"{c.b} more"}.get(c.verdict, "undecided")


def _judge(comparisons: Sequence[GroupComparison], want: str) -> str:
    """Holds when every comparison says ``want``, does not hold when one says the other."""
    verdicts = [c.verdict for c in comparisons]
    if verdicts and all(v == want for v in verdicts):
        return HOLDS
    other = "b" if want == "a" else "a"
    return DOES_NOT_HOLD if any(v == other for v in verdicts) else INCONCLUSIVE


def v1(runs: Sequence[Run], alone_acc: dict[str, Interval]) -> Claim:
    best = max(alone_acc, key=lambda v: alone_acc[v].mean)
    comps = tuple(compare_groups(list(runs), best, v) for v in VIEWS if v != best)
    return Claim(
        "V1",
        f"the view best alone ({best}, test accuracy {alone_acc[best].mean:.3f}) has the "
        "largest LCA share in the six-view model",
        _judge(comps, "a"),
        comps,
    )


def v2(runs: Sequence[Run], alone_acc: dict[str, Interval]) -> Claim:
    worst = min(alone_acc, key=lambda v: alone_acc[v].mean)
    comps = tuple(compare_groups(list(runs), v, worst) for v in VIEWS if v != worst)
    return Claim(
        "V2",
        f"the weakest view alone ({worst}, test accuracy {alone_acc[worst].mean:.3f}) has the "
        "smallest LCA share in the six-view model",
        _judge(comps, "a"),
        comps,
    )


@dataclass(frozen=True)
class Study:
    """Everything the page reports, from the stores."""

    alone: dict[str, Interval]
    six_view: Interval
    shares: dict[str, Interval]
    loss_contribution: dict[str, Interval]
    acc_contribution: dict[str, Interval]
    only_acc: dict[str, Interval]
    claims: tuple[Claim, Claim]
    agreement: float
    agreement_per_seed: list[float]


def study(s: RecipeSettings) -> Study:
    six = runs_of(s, ALL)
    acc = alone(s)
    mean, per_seed = agreement(six)
    return Study(
        alone=acc,
        six_view=t_interval([final_test_acc(r) for r in six]),
        shares=shares(six),
        loss_contribution=ablation(six, "loss"),
        acc_contribution=ablation(six, "metric"),
        only_acc=only(six),
        claims=(v1(six, acc), v2(six, acc)),
        agreement=mean,
        agreement_per_seed=per_seed,
    )


def interval_text(i: Interval, digits: int = 3) -> str:
    """``0.971 [0.962, 0.980]``, or the mean alone with one run."""
    if i.n < 2:
        return f"{i.mean:.{digits}f}"
    return f"{i.mean:.{digits}f} [{i.low:.{digits}f}, {i.high:.{digits}f}]"
