"""Checks of the instrument: does the measurement follow the cause planted in the testbed?

Each planted cause is judged as a contrast, coded rather than described: on the same learning
rate and seed, the statistic on testbed ``t`` minus the statistic on ``balanced`` (no planted
cause), paired by seed, with the sign the plant predicts (:data:`EXPECTED_SIGN`). The interval
is the verdict rule's (:mod:`lca_toolkit.stats`: 95% t over the seed pairs, plus for LCA the
summed quadrature error estimates of both runs of a pair, averaged over pairs). The outcome is
``as planted`` (the interval wholly on the expected side), ``against the plant`` (wholly on the
other) or ``undecided``. These say whether the toolkit's measurements can see a known cause; the
word "reproduced" is kept for the paper's findings.

Statistics: the MLO column's share of the two columns' summed LCA (F2's first reading), the
fraction of steps with the MLO column's gradient norm above the CC column's (F1's statistic) and,
where the runs recorded input ablation (``--ablation-every``), the MLO view's contribution to the
loss on E minus the CC view's, averaged over the measurements (the inputs' side of the question
the LCA asks of the columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lca_toolkit.stats import ABOVE, BELOW, Interval, t_interval

from .verdicts import F2_EPOCHS, QUADRATURE, grad_norm_fraction, lca_share

BASELINE = "balanced"
EXPECTED_SIGN: dict[str, int] = {"cue-mlo": +1, "cue-cc": -1, "lesion-mlo": +1, "mlo-blind": -1}
"""The sign of (testbed minus balanced) each plant predicts for both statistics: + where it makes
MLO the more useful view (a shortcut in MLO; lesions more conspicuous in MLO), - where it makes CC
the more useful one (a shortcut in CC; no lesion in MLO)."""
AS_PLANTED, AGAINST, UNDECIDED = "as planted", "against the plant", "undecided"


@dataclass(frozen=True)
class Check:
    """One contrast, ``testbed`` minus :data:`BASELINE`, paired by seed."""

    testbed: str
    where: str
    statistic: str
    values: tuple[float, ...]
    expected: int
    error: float = 0.0
    error_kind: str = ""

    @property
    def interval(self) -> Interval:
        return t_interval(self.values, extra=self.error)

    @property
    def outcome(self) -> str:
        side = self.interval.side(0.0)
        if side not in (ABOVE, BELOW):
            return UNDECIDED
        return AS_PLANTED if (side == ABOVE) == (self.expected > 0) else AGAINST

    def line(self) -> str:
        i = self.interval
        error = f", {self.error_kind} {self.error:.3f}" if self.error else ""
        return (
            f"**{self.outcome}** ({self.testbed} minus {BASELINE}, {self.where}): {self.statistic} "
            f"{i.mean:+.3f} ± {i.se:.3f} over {i.n} seed pairs (expected sign "
            f"{'+' if self.expected > 0 else '-'}; 95% half-width {i.margin:.3f}{error})."
        )


def _by_seed(runs: Sequence) -> dict[int, object]:
    return {int(r.config["experiment"]["seed"]): r for r in runs}


def ablation_gap(run) -> float | None:
    """The MLO view's Shapley contribution to the loss on E minus the CC view's, mean over the
    run's ablation measurements (positive: removing MLO costs more); ``None`` without them."""
    if "ablation" not in run.tables:
        return None
    table = run.table("ablation")
    return float((table["loss_contribution_mlo"] - table["loss_contribution_cc"]).mean())


def contrasts(planted: Sequence, baseline: Sequence, testbed: str, where: str) -> list[Check]:
    """The statistics' contrasts of ``testbed`` runs against ``balanced`` runs, paired by seed.

    Raises:
        KeyError: ``testbed`` has no coded expected sign (add it to :data:`EXPECTED_SIGN`).
        StatisticError: a run lacks LCA error estimates.
    """
    expected = EXPECTED_SIGN[testbed]
    a, b = _by_seed(planted), _by_seed(baseline)
    seeds = sorted(set(a) & set(b))
    shares = [(lca_share(a[s]), lca_share(b[s])) for s in seeds]
    fractions = [grad_norm_fraction(a[s]) - grad_norm_fraction(b[s]) for s in seeds]
    errors = [ea + eb for (_, ea), (_, eb) in shares]
    gaps = [(ablation_gap(a[s]), ablation_gap(b[s])) for s in seeds]
    ablation = []
    if gaps and all(None not in pair for pair in gaps):  # not in runs stored before ablation
        statistic = (
            "MLO view's input-ablation contribution to the loss on E minus the CC view's "
            "(mean over the measurements)"
        )
        values = tuple(ga - gb for ga, gb in gaps)  # type: ignore[operator]
        ablation.append(Check(testbed, where, statistic, values, expected))
    return [
        Check(
            testbed,
            where,
            f"MLO column's share of the two columns' summed LCA (first {F2_EPOCHS} epochs)",
            tuple(sa - sb for (sa, _), (sb, _) in shares),
            expected,
            sum(errors) / len(errors) if errors else 0.0,
            QUADRATURE,
        ),
        Check(
            testbed,
            where,
            f"fraction of steps (first {F2_EPOCHS} epochs) with the MLO column's gradient norm "
            "above the CC column's",
            tuple(fractions),
            expected,
        ),
        *ablation,
    ]
