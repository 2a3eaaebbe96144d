"""The verdict rule: reproduced, not reproduced or inconclusive, from numbers alone."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lca_toolkit.errors import StatisticError
from mammo_models.recipes.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    QUADRATURE,
    REPRODUCED,
    TEST_SET,
    Verdict,
    combine,
    f2,
    f4,
    lca_share,
    loss_change_share,
)

T_2 = 4.302653  # Student's t_{0.975} with 2 degrees of freedom, from a printed table


def _v(values, threshold=0.5, error=0.0) -> Verdict:
    return Verdict("F2", "here", "share", tuple(values), threshold, error, QUADRATURE)


def test_the_interval_is_t_times_the_standard_error_plus_the_quadrature():
    assert _v([0.60, 0.62, 0.64]).verdict == REPRODUCED  # margin 0.050 < gap 0.12
    assert _v([0.40, 0.38, 0.36]).verdict == NOT_REPRODUCED
    assert _v([0.45, 0.55, 0.65]).verdict == INCONCLUSIVE
    # gap 0.045 is beyond two standard errors (0.023) but not t x s.e. (0.050): undecided now
    assert _v([0.525, 0.545, 0.565]).verdict == INCONCLUSIVE
    v = _v([0.60, 0.62, 0.64], error=0.03)
    assert v.mean == pytest.approx(0.62)
    assert v.se == pytest.approx(0.02 / math.sqrt(3))
    assert v.margin == pytest.approx(T_2 * 0.02 / math.sqrt(3) + 0.03, rel=1e-6)  # added, not max
    assert _v([0.60, 0.62, 0.64], error=0.08).verdict == INCONCLUSIVE


def test_one_run_decides_nothing():
    assert _v([0.9]).verdict == INCONCLUSIVE and math.isnan(_v([0.9]).margin)
    assert _v([0.9, 0.92]).verdict == REPRODUCED  # two runs do decide: t with 1 d.o.f. = 12.7
    assert _v([0.5, 0.5, 0.5]).verdict == INCONCLUSIVE  # at the threshold itself


def test_parts_combine_by_one_rule_and_f4_adds_the_test_set_error():
    yes, no, maybe = _v([0.6, 0.62, 0.64]), _v([0.4, 0.38, 0.36]), _v([0.45, 0.55, 0.65])
    assert combine([yes, yes]) == REPRODUCED
    assert combine([yes, maybe]) == INCONCLUSIVE
    assert combine([yes, no]) == NOT_REPRODUCED
    assert combine([]) == INCONCLUSIVE
    table = pd.DataFrame(
        {
            "setting": ["joint"] * 3 + ["shared"] * 3,
            "seed": [0, 1, 2, 2, 1, 0],
            "test_auc": [0.70, 0.80, 0.90, 0.95, 0.84, 0.73],
        }
    )
    v = f4(table, "shared", "the Shared ResNet", "Table 1", test_error=0.0)
    assert v.values == pytest.approx((0.03, 0.04, 0.05))
    assert v.verdict == REPRODUCED
    # The same seeds with a 60-breast test set's error (about 0.07) decide nothing.
    noisy = f4(table, "shared", "the Shared ResNet", "Table 1", test_error=0.07)
    assert noisy.verdict == INCONCLUSIVE and noisy.error_kind == TEST_SET


class _FakeRun:
    """The parts of a run store that ``lca_share`` reads: 10 steps over 2 epochs, 3 intervals."""

    groups = ("cc", "mlo", "shared")
    config = {"experiment": {"n_epochs": 2}}

    def steps(self) -> pd.DataFrame:
        return pd.DataFrame({"step": range(1, 11)})

    def lca(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "end_step": [4, 8, 10],
                "lca/cc": [-0.10, -0.05, 9.0],
                "lca/mlo": [-0.20, -0.10, 9.0],
                "lca/shared": [-0.50, -0.50, 9.0],
                "error/cc": [0.01, 0.01, 9.0],
                "error/mlo": [0.02, 0.00, 9.0],
                "error/shared": [0.30, 0.30, 9.0],
                "loss_change": [-1.0, -0.7, 27.5],
            }
        )


def test_f2_is_read_both_ways_with_propagated_quadrature_errors():
    # first epoch only: steps <= 5, so the intervals ending at 4 (the one ending at 8 is epoch 2)
    share, error = lca_share(_FakeRun(), epochs=1)
    assert share == pytest.approx(0.20 / 0.30)  # the shared head is in neither sum
    assert error == pytest.approx((0.02 * (1 - 2 / 3) + 0.01 * 2 / 3) / 0.30)
    share, _ = lca_share(_FakeRun(), epochs=5)  # fewer epochs trained than asked: all of them
    assert share == pytest.approx(8.70 / 17.55)
    whole, error = loss_change_share(_FakeRun(), epochs=1)
    assert whole == pytest.approx(-0.20 / -1.0)  # the measured loss change of that interval
    assert error == pytest.approx(0.02 / 1.0)


def test_lca_statistics_without_estimates_are_an_error():
    class _Old(_FakeRun):
        def lca(self) -> pd.DataFrame:
            df = super().lca()
            df.loc[0, "error/mlo"] = math.nan
            return df

    with pytest.raises(StatisticError, match="without an error estimate"):
        lca_share(_Old(), epochs=1)
    with pytest.raises(StatisticError, match="without an error estimate"):
        f2([_Old(), _FakeRun()], "here")


def test_an_inconclusive_verdict_says_when_the_added_error_is_the_reason():
    limited = _v([0.58, 0.60, 0.62], error=0.15)  # gap 0.10 > t s.e. 0.050, < margin 0.20
    assert limited.verdict == INCONCLUSIVE
    assert "not with the quadrature error estimate (0.150) added" in limited.line()
    assert _v([0.45, 0.55, 0.65]).limited_by() == ""  # seed noise is the reason
    assert _v([0.60, 0.62, 0.64], error=0.05).limited_by() == ""  # decided


class _SeedRun:
    """A run with one LCA interval and four steps, for the contrasts (``checks``)."""

    def __init__(self, seed: int, mlo: float, above: int, gaps: list[float] | None = None) -> None:
        self.config = {"experiment": {"seed": seed, "n_epochs": 1}}
        self._mlo, self._above, self._gaps = mlo, above, gaps
        self.tables = [] if gaps is None else ["ablation"]

    def table(self, name: str) -> pd.DataFrame:
        assert name == "ablation" and self._gaps is not None
        cc = [0.1] * len(self._gaps)
        return pd.DataFrame(
            {"loss_contribution_cc": cc, "loss_contribution_mlo": [0.1 + g for g in self._gaps]}
        )

    def steps(self) -> pd.DataFrame:
        cc = [1.0] * 4
        return pd.DataFrame(
            {
                "step": [1, 2, 3, 4],
                "grad_norm/cc": cc,
                "grad_norm/mlo": [2.0] * self._above + [0.5] * (4 - self._above),
            }
        )

    def lca(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "end_step": [4],
                "lca/cc": [-(1 - self._mlo)],
                "lca/mlo": [-self._mlo],
                "error/cc": [0.005],
                "error/mlo": [0.005],
                "loss_change": [-1.0],
            }
        )


def test_planted_causes_are_contrasts_with_a_coded_sign_paired_by_seed():
    from mammo_models.recipes.checks import AGAINST, AS_PLANTED, UNDECIDED, contrasts

    balanced = [_SeedRun(s, m, 2) for s, m in ((0, 0.50), (1, 0.48), (2, 0.52))]
    # listed out of seed order: pairing is by seed, not by position
    cue_mlo = [_SeedRun(s, m, a) for s, m, a in ((2, 0.72, 3), (0, 0.70, 1), (1, 0.66, 4))]
    share, grad = contrasts(cue_mlo, balanced, "cue-mlo", "lr 1e-05")
    assert share.values == pytest.approx((0.20, 0.18, 0.20))
    assert share.error == pytest.approx(0.01)  # both runs' propagated estimates, averaged
    assert share.interval.margin == pytest.approx(
        4.302653 * 0.02 / 3 + 0.01, rel=1e-6
    )  # s.e. 0.02/3
    assert share.outcome == AS_PLANTED
    assert grad.values == pytest.approx((-0.25, 0.50, 0.25)) and grad.outcome == UNDECIDED
    # the same numbers on cue-cc, whose plant predicts the opposite sign
    assert contrasts(cue_mlo, balanced, "cue-cc", "x")[0].outcome == AGAINST
    assert contrasts(cue_mlo[:1], balanced, "cue-mlo", "x")[0].outcome == UNDECIDED  # one pair


def test_the_views_ablation_contributions_are_a_contrast_where_the_runs_recorded_them():
    from mammo_models.recipes.checks import AS_PLANTED, contrasts

    balanced = [_SeedRun(s, 0.5, 2, gaps=[0.0, 0.02]) for s in range(3)]  # mean gap 0.01
    cue_mlo = [_SeedRun(s, 0.7, 3, gaps=[g, g + 0.02]) for s, g in ((0, 0.2), (1, 0.3), (2, 0.25))]
    *_, ablation = contrasts(cue_mlo, balanced, "cue-mlo", "lr 1e-05")
    assert ablation.values == pytest.approx((0.2, 0.3, 0.25))  # (mean MLO - CC) minus balanced
    assert ablation.error == 0 and ablation.outcome == AS_PLANTED
    assert "input-ablation contribution" in ablation.line()
    old = [_SeedRun(s, 0.7, 3) for s in range(3)]  # stored before ablation was recorded
    assert len(contrasts(old, balanced, "cue-mlo", "x")) == 2
