"""The verdict rule (t intervals, error sources added, nothing from one run) and DeLong's AUC
variance, against hand-computed intervals, a published example and a bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from lca_toolkit.errors import StatisticError
from lca_toolkit.stats import ABOVE, BELOW, UNDECIDED, delong, t_interval

T_2, T_4 = 4.302653, 2.776445
"""Student's t_{0.975} with 2 and 4 degrees of freedom, from a printed table."""


def test_interval_is_t_times_the_standard_error_plus_the_other_errors():
    v = t_interval([0.60, 0.62, 0.64])
    se = 0.02 / math.sqrt(3)
    assert v.mean == pytest.approx(0.62) and v.se == pytest.approx(se)
    assert v.t == pytest.approx(T_2, abs=1e-6)
    assert v.margin == pytest.approx(T_2 * se, rel=1e-6)  # 0.0497, not 2 se = 0.0231
    assert (v.low, v.high) == pytest.approx((0.62 - T_2 * se, 0.62 + T_2 * se), rel=1e-6)
    assert v.side(0.5) == ABOVE and v.side(0.58) == UNDECIDED and v.side(0.7) == BELOW

    w = t_interval([1.0, 2.0, 3.0, 4.0, 5.0], extra=0.25)  # s = sqrt(2.5)
    assert w.margin == pytest.approx(T_4 * math.sqrt(2.5) / math.sqrt(5) + 0.25, rel=1e-6)
    # The same gap decided by seeds alone is undecided once the quadrature part is added.
    assert t_interval([0.60, 0.62, 0.64], extra=0.08).side(0.5) == UNDECIDED


def test_one_run_decides_nothing_and_a_missing_error_is_not_zero():
    one = t_interval([0.9], extra=0.01)
    assert one.n == 1 and math.isnan(one.margin) and math.isnan(one.low)
    assert one.side(0.5) == UNDECIDED
    assert t_interval([]).side(0.0) == UNDECIDED
    for bad in (math.nan, -0.1):
        with pytest.raises(StatisticError, match="added error term"):
            t_interval([0.6, 0.7], extra=bad)
    assert t_interval([0.6, 0.7, 0.8], extra=math.inf).side(0.0) == UNDECIDED  # unbounded


# Hanley & McNeil (1982, Radiology 143:29, Table 1): 109 CT images rated 1 (definitely normal)
# to 5 (definitely abnormal); counts per rating. Published: area W = 0.893, SE(W) = 0.032.
HM_NORMAL = (33, 6, 6, 11, 2)
HM_ABNORMAL = (3, 2, 2, 11, 33)


def _hanley_mcneil():
    ratings = np.arange(1, 6)
    scores = np.r_[np.repeat(ratings, HM_NORMAL), np.repeat(ratings, HM_ABNORMAL)]
    labels = np.r_[np.zeros(sum(HM_NORMAL)), np.ones(sum(HM_ABNORMAL))]
    return labels, scores


def _slow_delong(labels, scores):
    """DeLong 1988 by its definition: placements from all m x n pairs (ties one half)."""
    scores = np.atleast_2d(scores)
    pos, neg = scores[:, labels == 1], scores[:, labels == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    cov = np.cov(v10) / pos.shape[1] + np.cov(v01) / neg.shape[1]
    return psi.mean(axis=(1, 2)), np.atleast_2d(cov)


def test_delong_on_hanley_and_mcneils_published_example():
    labels, scores = _hanley_mcneil()
    got = delong(labels, scores)
    assert got.aucs[0] == pytest.approx(0.893, abs=5e-4)  # published W
    se = math.sqrt(got.cov[0, 0])
    # Their SE uses an exponential approximation; DeLong's is the nonparametric one: same data,
    # 0.0307 against the published 0.032.
    assert se == pytest.approx(0.032, abs=0.002)
    aucs, cov = _slow_delong(labels, scores)
    np.testing.assert_allclose(got.aucs, aucs, rtol=1e-12)
    np.testing.assert_allclose(got.cov, cov, rtol=1e-12)


def _auc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each row (Mann-Whitney from midranks), for many bootstrap resamples at once."""
    ranks = rankdata(scores, axis=1)
    m = labels.sum(axis=1)
    n = labels.shape[1] - m
    return ((ranks * labels).sum(axis=1) - m * (m + 1) / 2) / (m * n)


def test_paired_delong_matches_the_pairwise_definition_and_a_bootstrap():
    rng = np.random.default_rng(3)
    n = 160
    labels = (rng.random(n) < 0.3).astype(int)
    shared = rng.normal(size=n)  # the two models share a component: correlated AUCs
    a = labels * 1.0 + shared + 0.6 * rng.normal(size=n)
    b = labels * 0.6 + shared + 0.6 * rng.normal(size=n)
    got = delong(labels, np.stack([a, b]))
    aucs, cov = _slow_delong(labels, np.stack([a, b]))
    np.testing.assert_allclose(got.aucs, aucs, rtol=1e-12)
    np.testing.assert_allclose(got.cov, cov, rtol=1e-12)
    np.testing.assert_allclose(got.aucs, [roc_auc_score(labels, a), roc_auc_score(labels, b)])
    assert got.cov[0, 1] > 0.3 * math.sqrt(got.cov[0, 0] * got.cov[1, 1])  # paired: correlated

    idx = rng.integers(0, n, (1000, n))  # bootstrap resamples of the test cases
    boot_a, boot_b = _auc_rows(labels[idx], a[idx]), _auc_rows(labels[idx], b[idx])
    boot_d = boot_a - boot_b
    assert math.sqrt(got.variance_of([1, 0])) == pytest.approx(np.std(boot_a), rel=0.12)
    paired = math.sqrt(got.variance_of([1, -1]))
    assert paired == pytest.approx(np.std(boot_d), rel=0.12)
    # Pairing matters: the unpaired sum of variances overstates the difference's error.
    assert paired < 0.8 * math.sqrt(got.cov[0, 0] + got.cov[1, 1])
    assert got.half_width([1, -1]) == pytest.approx(1.959964 * paired, rel=1e-6)


def test_delong_refuses_what_has_no_variance():
    with pytest.raises(StatisticError, match="at least 2 positives"):
        delong([0, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(StatisticError, match="3 scores per model for 2 labels"):
        delong([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(StatisticError, match="0 or 1"):
        delong([0, 2, 1, 0], [0.1, 0.2, 0.3, 0.4])
