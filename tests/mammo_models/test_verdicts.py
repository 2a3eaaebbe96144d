"""The verdict rule: reproduced, not reproduced or inconclusive, from numbers alone."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mammo_models.recipes.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    Verdict,
    combine,
    f4,
)


def _v(values, threshold=0.5, error=0.0) -> Verdict:
    return Verdict("F2", "here", "share", tuple(values), threshold, quadrature_error=error)


def test_mean_beyond_two_standard_errors_decides():
    assert _v([0.60, 0.62, 0.64]).verdict == REPRODUCED
    assert _v([0.40, 0.38, 0.36]).verdict == NOT_REPRODUCED
    assert _v([0.45, 0.55, 0.65]).verdict == INCONCLUSIVE  # mean 0.55, se 0.058: within 2 se
    v = _v([0.60, 0.62, 0.64])
    assert v.mean == pytest.approx(0.62)
    assert v.se == pytest.approx(0.02 / math.sqrt(3))
    assert v.margin == pytest.approx(2 * 0.02 / math.sqrt(3))


def test_quadrature_error_widens_the_margin_and_few_runs_never_decide():
    assert _v([0.60, 0.62, 0.64], error=0.15).verdict == INCONCLUSIVE
    assert _v([0.60, 0.62, 0.64], error=0.05).verdict == REPRODUCED
    assert _v([0.9, 0.9]).verdict == INCONCLUSIVE  # fewer than 3 runs
    # identical runs give a margin of 0: any gap decides, but none at the threshold itself
    assert _v([0.5, 0.5, 0.5]).verdict == INCONCLUSIVE


def test_parts_combine_and_f4_pairs_by_seed():
    yes, no, maybe = _v([0.6, 0.62, 0.64]), _v([0.4, 0.38, 0.36]), _v([0.45, 0.55, 0.65])
    assert combine([yes, yes]) == REPRODUCED
    assert combine([yes, maybe]) == INCONCLUSIVE
    assert combine([yes, no]) == NOT_REPRODUCED
    table = pd.DataFrame(
        {
            "setting": ["joint"] * 3 + ["shared"] * 3,
            "seed": [0, 1, 2, 2, 1, 0],
            "test_auc": [0.70, 0.80, 0.90, 0.93, 0.82, 0.71],
        }
    )
    v = f4(table, "shared", "the Shared ResNet", "Table 1")
    assert v.values == pytest.approx((0.01, 0.02, 0.03))
    assert v.verdict == REPRODUCED


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
            }
        )


def test_f2_share_is_of_the_two_columns_with_a_first_order_error_bound():
    from mammo_models.recipes.verdicts import lca_share

    # first epoch only: steps <= 5, so the intervals ending at 4 (the one ending at 8 is epoch 2)
    share, bound = lca_share(_FakeRun(), epochs=1)
    assert share == pytest.approx(0.20 / 0.30)  # the shared head is in neither sum
    assert bound == pytest.approx((0.02 * (1 - 2 / 3) + 0.01 * 2 / 3) / 0.30)
    share, bound = lca_share(_FakeRun(), epochs=5)  # fewer epochs trained than asked: all of them
    assert share == pytest.approx(8.70 / 17.55)


def test_an_inconclusive_verdict_says_when_the_quadrature_alone_is_the_reason():
    limited = _v([0.58, 0.60, 0.62], error=0.15)  # gap 0.10 > 2 se 0.023, < bound 0.15
    assert limited.verdict == INCONCLUSIVE
    assert "not the quadrature error bound (0.150)" in limited.line()
    assert _v([0.45, 0.55, 0.65]).limited_by() == ""  # seed noise is the reason
    assert _v([0.60, 0.62, 0.64], error=0.05).limited_by() == ""  # decided
