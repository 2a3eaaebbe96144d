"""Verdicts on the paper's findings, computed from run stores (never typed by hand).

The rule (SPEC 10, one implementation: :mod:`lca_toolkit.stats`): for a statistic measured once
per run, the 95% interval is ``mean -+ (t_{0.975, n-1} * s / sqrt(n) + q)``, with ``s`` the
standard deviation over the ``n`` runs and ``q`` the half-width of the statistic's other error
source, added: for LCA statistics the mean over runs of the quadrature error estimate
(``lca/error_by_group``, propagated to the statistic), for test AUCs the test set's own sampling
error (DeLong). A finding is **reproduced** when the interval lies wholly on the paper's side of
the threshold, **not reproduced** when wholly on the other side, **inconclusive** otherwise; with
fewer than two runs nothing is decided. A statistic whose runs lack their error estimate is an
error (:class:`~lca_toolkit.errors.StatisticError`), never ``q = 0``.

A finding judged at several settings or in several parts is combined by one rule
(:func:`combine`): **reproduced** when every verdict is, **not reproduced** when at least one is
not reproduced, **inconclusive** otherwise.

The findings (paper sections 3 and 6):

* F1: the MLO column's gradient norm exceeds the CC column's for most steps
  (statistic: fraction of steps with ``grad_norm/mlo > grad_norm/cc``; threshold 0.5);
* F2: the MLO column's LCA exceeds the CC column's and is over 50% of the loss reduction in the
  first 5 epochs. Two statistics, both reported (threshold 0.5 each): the MLO column's share of
  the two columns' summed LCA (the paper compares the two columns, section 3 and Figure 4b), and
  the MLO column's LCA as a share of the whole loss change over those intervals (the measured
  ``loss_end - loss_start``, so the shared head and the residual are in the denominator);
* F3: uni-view MLO models reach their best validation AUC earlier and lower than CC models
  (statistics, paired by learning rate: CC minus MLO best validation AUC, and CC minus MLO epoch
  of the best validation AUC; both > 0). The replicate is the learning rate: Figure 3 trains one
  seed at each of ``n_lr`` rates drawn log-uniformly from the paper's range, and the claim is
  about the models of that range (the paper's Figure 3 averages over its rates), so the rates
  are independent draws from the population the claim is about;
* F4: the Shared ResNet and Modality Dropout beat the Joint ResNet (statistic, paired by seed:
  the row's test AUC minus the Joint ResNet's; > 0; ``q`` is the test set's error of the mean
  difference, from DeLong's covariance of every model's AUC on the same test breasts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lca_toolkit.errors import StatisticError
from lca_toolkit.stats import ABOVE, BELOW, Interval, t_interval

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
F2_EPOCHS = 5
QUADRATURE = "quadrature error estimate"
TEST_SET = "test set's DeLong error"


@dataclass(frozen=True)
class Verdict:
    """One finding judged in one setting.

    Attributes:
        finding: ``F1``...``F4``.
        where: the setting, e.g. ``cue-mlo, lr 1e-05``.
        statistic: what was measured, in words.
        values: the statistic per run.
        threshold: the paper's side is ``> threshold``.
        error: ``q``, the half-width of the statistic's other error source (0: none).
        error_kind: what ``error`` is (:data:`QUADRATURE`, :data:`TEST_SET`).
    """

    finding: str
    where: str
    statistic: str
    values: tuple[float, ...]
    threshold: float
    error: float = 0.0
    error_kind: str = ""

    @property
    def interval(self) -> Interval:
        return t_interval(self.values, extra=self.error)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return self.interval.mean

    @property
    def se(self) -> float:
        """Standard error of the mean over runs (sample std, ddof=1, over sqrt(n))."""
        return self.interval.se

    @property
    def margin(self) -> float:
        """The interval's half-width, ``t * se + error`` (NaN with fewer than two runs)."""
        return self.interval.margin

    @property
    def verdict(self) -> str:
        side = self.interval.side(self.threshold)
        return REPRODUCED if side == ABOVE else NOT_REPRODUCED if side == BELOW else INCONCLUSIVE

    def line(self) -> str:
        """One sentence for ``figures/README.md``."""
        error = f", {self.error_kind} {self.error:.3f}" if self.error else ""
        return (
            f"**{self.finding} {self.verdict}** ({self.where}): {self.statistic} "
            f"{self.mean:.3f} ± {self.se:.3f} (mean ± standard error over {self.n} runs; "
            f"threshold {self.threshold:g}, 95% interval half-width {self.margin:.3f} = "
            f"t {self.interval.t:.2f} x s.e.{error}).{self.limited_by()}"
        )

    def limited_by(self) -> str:
        """Why an inconclusive verdict is inconclusive, when the added error alone is the reason."""
        seeds = self.interval.t * self.se
        gap = abs(self.mean - self.threshold)
        if self.verdict != INCONCLUSIVE or not (self.error and seeds < gap <= self.margin):
            return ""
        return (
            f" The seeds alone would decide (the gap to the threshold, {gap:.3f}, exceeds "
            f"t x s.e., {seeds:.3f}), but not with the {self.error_kind} ({self.error:.3f}) "
            "added."
        )

    def row(self) -> dict[str, object]:
        return {
            "finding": self.finding,
            "where": self.where,
            "statistic": self.statistic,
            "mean": self.mean,
            "se": self.se,
            "n": self.n,
            "margin": self.margin,
            "verdict": self.verdict,
        }


def combine(parts: Sequence[Verdict]) -> str:
    """One finding over its settings and parts: reproduced only if every verdict is, not
    reproduced if any is not, inconclusive otherwise (and with no verdict at all)."""
    verdicts = [p.verdict for p in parts]
    if verdicts and all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if any(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return INCONCLUSIVE


COMBINE_RULE = (
    "A finding judged at several settings or in several parts is **reproduced** when every one "
    "of its verdicts is, **not reproduced** when at least one is not reproduced, and "
    "**inconclusive** otherwise."
)


# ---------------------------------------------------------------------------------- statistics
def _early_cutoff(run, epochs: int) -> float:
    """Last optimizer step of the first ``epochs`` epochs (epochs of equal length)."""
    steps = run.steps()
    trained = int(run.config.get("experiment", {}).get("n_epochs") or 0) or len(run.epochs())
    if trained <= epochs or len(steps) == 0:
        return math.inf
    return len(steps) * epochs / trained


def grad_norm_fraction(run, epochs: int = F2_EPOCHS) -> float:
    """F1's statistic: fraction of steps (first ``epochs`` epochs) with MLO's norm above CC's."""
    steps = run.steps()
    steps = steps[steps["step"] <= _early_cutoff(run, epochs)]
    cc, mlo = steps["grad_norm/cc"], steps["grad_norm/mlo"]
    ok = np.isfinite(cc) & np.isfinite(mlo)
    return float((mlo[ok] > cc[ok]).mean())


def _early_lca(run, groups: Sequence[str], epochs: int) -> pd.DataFrame:
    """The LCA intervals ending in the first ``epochs`` epochs; every group's estimates needed."""
    lca = run.lca()
    lca = lca[lca["end_step"] <= _early_cutoff(run, epochs)]
    columns = [f"error/{g}" for g in groups]
    if not set(columns) <= set(lca.columns) or lca[columns].isna().to_numpy().any():
        raise StatisticError(
            f"'{getattr(run, 'path', run)}' has LCA intervals without an error estimate "
            "(lca/error_by_group): its LCA statistics have no interval"
        )
    return lca


def lca_share(
    run, group: str = "mlo", other: str = "cc", epochs: int = F2_EPOCHS
) -> tuple[float, float]:
    """F2's first statistic for one run: ``group``'s share of the two columns' summed LCA.

    Returns:
        (share, error): ``share = g / (g + o)`` with ``g``, ``o`` the LCA of ``group`` and
        ``other`` summed over the intervals that end in the first ``epochs`` epochs, and the
        quadrature error of the share, propagated to first order from the per-group error
        estimates ``e_g``, ``e_o`` (each the sum over intervals):
        ``(e_g |1 - share| + e_o |share|) / |g + o|``.

    Raises:
        StatisticError: an interval has no error estimate.
    """
    lca = _early_lca(run, (group, other), epochs)
    g, o = float(lca[f"lca/{group}"].sum()), float(lca[f"lca/{other}"].sum())
    whole = g + o
    if not whole:
        return math.nan, math.nan
    share = g / whole
    e_g, e_o = float(lca[f"error/{group}"].sum()), float(lca[f"error/{other}"].sum())
    return share, (e_g * abs(1 - share) + e_o * abs(share)) / abs(whole)


def loss_change_share(run, group: str = "mlo", epochs: int = F2_EPOCHS) -> tuple[float, float]:
    """F2's second statistic: ``group``'s LCA over the measured loss change of the same
    intervals (``loss_end - loss_start`` summed), and its error ``e_g / |loss change|``: the loss
    change is measured, not integrated, so only the numerator carries quadrature error."""
    lca = _early_lca(run, (group,), epochs)
    change = float(lca["loss_change"].sum())
    if not change:
        return math.nan, math.nan
    return float(lca[f"lca/{group}"].sum()) / change, float(lca[f"error/{group}"].sum()) / abs(
        change
    )


def _mean_error(errors: Sequence[float]) -> float:
    return float(np.mean(errors)) if len(errors) else 0.0


# ---------------------------------------------------------------------------------- verdicts
def f1(runs: Sequence, where: str) -> Verdict:
    return Verdict(
        "F1",
        where,
        f"fraction of steps (first {F2_EPOCHS} epochs) with the MLO column's gradient norm above "
        "the CC column's",
        tuple(grad_norm_fraction(r) for r in runs),
        0.5,
    )


def f2(runs: Sequence, where: str) -> list[Verdict]:
    """F2's two readings: share of the two columns, and share of the whole loss change."""
    columns = [lca_share(r) for r in runs]
    whole = [loss_change_share(r) for r in runs]
    return [
        Verdict(
            "F2",
            where,
            f"MLO column's share of the two columns' summed LCA over the first {F2_EPOCHS} epochs",
            tuple(s for s, _ in columns),
            0.5,
            _mean_error([e for _, e in columns]),
            QUADRATURE,
        ),
        Verdict(
            "F2",
            where,
            f"MLO column's LCA as a share of the whole loss change over the first {F2_EPOCHS} "
            "epochs",
            tuple(s for s, _ in whole),
            0.5,
            _mean_error([e for _, e in whole]),
            QUADRATURE,
        ),
    ]


def _best(run) -> tuple[float, float]:
    """(best validation AUC, its epoch) of a run."""
    e = run.epochs()
    i = int(e["val_auc"].fillna(-1).to_numpy().argmax())
    return float(e["val_auc"].iloc[i]), float(e["epoch"].iloc[i])


def f3(cc_runs: Sequence, mlo_runs: Sequence, where: str) -> list[Verdict]:
    """Uni-view CC vs MLO, paired by position (the same learning rate: the replicate)."""
    cc = [_best(r) for r in cc_runs]
    mlo = [_best(r) for r in mlo_runs]
    return [
        Verdict(
            "F3",
            where,
            "best validation AUC, CC minus MLO (paired by learning rate; the rates are the "
            "replicates)",
            tuple(a[0] - b[0] for a, b in zip(cc, mlo, strict=True)),
            0.0,
        ),
        Verdict(
            "F3",
            where,
            "epoch of the best validation AUC, CC minus MLO (paired by learning rate; the rates "
            "are the replicates)",
            tuple(a[1] - b[1] for a, b in zip(cc, mlo, strict=True)),
            0.0,
        ),
    ]


def f4(table: pd.DataFrame, row: str, label: str, where: str, test_error: float) -> Verdict:
    """``row`` against the Joint ResNet, paired by seed; ``table`` has setting, seed, test_auc.

    Args:
        test_error: the test set's half-width of the mean paired difference (DeLong), added.
    """
    joint = table[table["setting"] == "joint"].set_index("seed")["test_auc"]
    other = table[table["setting"] == row].set_index("seed")["test_auc"]
    seeds = sorted(set(joint.index) & set(other.index))
    return Verdict(
        "F4",
        where,
        f"test AUC of {label} minus the Joint ResNet's (paired by seed)",
        tuple(float(other[s] - joint[s]) for s in seeds),
        0.0,
        test_error,
        TEST_SET,
    )


def table_rows(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    return pd.DataFrame([v.row() for v in verdicts])
