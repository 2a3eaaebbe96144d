"""Verdicts on the paper's findings, computed from run stores (never typed by hand).

The rule (SPEC 10): a finding is **reproduced** when the mean of its statistic over at least
three runs lies on the paper's side of the threshold by more than the margin, **not reproduced**
when it lies on the other side by more than the margin, and **inconclusive** otherwise. The
margin is two standard errors of the mean over runs (seeds, or paired learning rates), and for
LCA comparisons at least the mean per-run error estimate of the quadrature as well
(``lca/error_by_group``), so that neither seed noise nor quadrature error can make a verdict.

The findings (paper sections 3 and 6):

* F1: the MLO column's gradient norm exceeds the CC column's for most steps
  (statistic: fraction of steps with ``grad_norm/mlo > grad_norm/cc``; threshold 0.5);
* F2: the MLO column contributes over 50% of the loss reduction (LCA) in the first 5 epochs
  (statistic: MLO's LCA divided by the CC and MLO columns' summed LCA over those epochs; 0.5).
  The paper compares the two columns ("summing the scalars computed with LCA over all elements of
  theta^MLO and theta^CC, we can compare their relative importance", section 3; Figure 4b plots
  only those two), so the shared head's LCA is in neither the numerator nor the denominator;
* F3: uni-view MLO models reach their best validation AUC earlier and lower than CC models
  (statistics, paired by learning rate: CC minus MLO best validation AUC, and CC minus MLO epoch
  of the best validation AUC; both > 0);
* F4: the Shared ResNet and Modality Dropout beat the Joint ResNet (statistic, paired by seed:
  the row's test AUC minus the Joint ResNet's; > 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
MIN_RUNS = 3
F2_EPOCHS = 5


@dataclass(frozen=True)
class Verdict:
    """One finding judged in one setting.

    Attributes:
        finding: ``F1``...``F4``.
        where: the setting, e.g. ``cue-mlo, lr 1e-05``.
        statistic: what was measured, in words.
        values: the statistic per run.
        threshold: the paper's side is ``> threshold``.
        quadrature_error: mean per-run error bound of the statistic (0 where not an LCA number).
    """

    finding: str
    where: str
    statistic: str
    values: tuple[float, ...]
    threshold: float
    quadrature_error: float = 0.0

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def se(self) -> float:
        """Standard error of the mean over runs (sample std, ddof=1, over sqrt(n))."""
        if self.n < 2:
            return math.nan
        return float(np.std(self.values, ddof=1) / math.sqrt(self.n))

    @property
    def margin(self) -> float:
        return max(2 * self.se, self.quadrature_error)

    @property
    def verdict(self) -> str:
        if self.n < MIN_RUNS or not math.isfinite(self.mean) or not math.isfinite(self.margin):
            return INCONCLUSIVE
        gap = self.mean - self.threshold
        if gap > self.margin:
            return REPRODUCED
        if -gap > self.margin:
            return NOT_REPRODUCED
        return INCONCLUSIVE

    def line(self) -> str:
        """One sentence for ``figures/README.md``."""
        error = (
            f", quadrature error bound {self.quadrature_error:.3f}" if self.quadrature_error else ""
        )
        return (
            f"**{self.finding} {self.verdict}** ({self.where}): {self.statistic} "
            f"{self.mean:.3f} ± {self.se:.3f} (mean ± standard error over {self.n} runs; "
            f"threshold {self.threshold:g}, margin {self.margin:.3f}{error}).{self.limited_by()}"
        )

    def limited_by(self) -> str:
        """Why an inconclusive verdict is inconclusive, when the quadrature alone is the reason."""
        gap = abs(self.mean - self.threshold)
        if self.verdict != INCONCLUSIVE or not 2 * self.se < gap <= self.quadrature_error:
            return ""
        return (
            f" Seed noise alone would decide (the gap to the threshold, {gap:.3f}, exceeds two "
            f"standard errors, {2 * self.se:.3f}), but not the quadrature error bound "
            f"({self.quadrature_error:.3f}): the LCA is not accurate enough here to say."
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
    """A finding with several parts: reproduced only if every part is, not if any part is not."""
    verdicts = [p.verdict for p in parts]
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if any(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return INCONCLUSIVE


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


def lca_share(
    run, group: str = "mlo", other: str = "cc", epochs: int = F2_EPOCHS
) -> tuple[float, float]:
    """F2's statistic for one run: ``group``'s share of the two columns' summed LCA.

    Returns:
        (share, bound): ``share = g / (g + o)`` with ``g``, ``o`` the LCA of ``group`` and
        ``other`` summed over the intervals that end in the first ``epochs`` epochs, and a bound
        on the quadrature error of the share, propagated to first order from the per-group error
        estimates ``e_g``, ``e_o`` (each the sum over intervals of the per-interval bound):
        ``(e_g |1 - share| + e_o |share|) / |g + o|``. NaN bound when the store has none.
    """
    lca = run.lca()
    lca = lca[lca["end_step"] <= _early_cutoff(run, epochs)]
    g, o = float(lca[f"lca/{group}"].sum()), float(lca[f"lca/{other}"].sum())
    whole = g + o
    if not whole:
        return math.nan, math.nan
    share = g / whole
    if not {f"error/{group}", f"error/{other}"} <= set(lca.columns):
        return share, math.nan
    e_g, e_o = float(lca[f"error/{group}"].sum()), float(lca[f"error/{other}"].sum())
    return share, (e_g * abs(1 - share) + e_o * abs(share)) / abs(whole)


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


def f2(runs: Sequence, where: str) -> Verdict:
    pairs = [lca_share(r) for r in runs]
    bounds = [b for _, b in pairs]
    return Verdict(
        "F2",
        where,
        f"MLO column's share of the two columns' summed LCA over the first {F2_EPOCHS} epochs",
        tuple(s for s, _ in pairs),
        0.5,
        quadrature_error=float(np.mean(bounds)) if all(map(math.isfinite, bounds)) else 0.0,
    )


def _best(run) -> tuple[float, float]:
    """(best validation AUC, its epoch) of a run."""
    e = run.epochs()
    i = int(e["val_auc"].fillna(-1).to_numpy().argmax())
    return float(e["val_auc"].iloc[i]), float(e["epoch"].iloc[i])


def f3(cc_runs: Sequence, mlo_runs: Sequence, where: str) -> list[Verdict]:
    """Uni-view CC vs MLO, paired by position (the same learning rate)."""
    cc = [_best(r) for r in cc_runs]
    mlo = [_best(r) for r in mlo_runs]
    return [
        Verdict(
            "F3",
            where,
            "best validation AUC, CC minus MLO (paired by learning rate)",
            tuple(a[0] - b[0] for a, b in zip(cc, mlo, strict=True)),
            0.0,
        ),
        Verdict(
            "F3",
            where,
            "epoch of the best validation AUC, CC minus MLO (paired by learning rate)",
            tuple(a[1] - b[1] for a, b in zip(cc, mlo, strict=True)),
            0.0,
        ),
    ]


def f4(table: pd.DataFrame, row: str, label: str, where: str) -> Verdict:
    """``row`` against the Joint ResNet, paired by seed; ``table`` has setting, seed, test_auc."""
    joint = table[table["setting"] == "joint"].set_index("seed")["test_auc"]
    other = table[table["setting"] == row].set_index("seed")["test_auc"]
    seeds = sorted(set(joint.index) & set(other.index))
    return Verdict(
        "F4",
        where,
        f"test AUC of {label} minus the Joint ResNet's (paired by seed)",
        tuple(float(other[s] - joint[s]) for s in seeds),
        0.0,
    )


def table_rows(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    return pd.DataFrame([v.row() for v in verdicts])
