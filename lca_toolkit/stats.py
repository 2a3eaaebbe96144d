"""The rule every verdict uses: a 95% t interval over runs with the other error sources added.

For a statistic measured once per run (seed), with mean ``m``, sample standard deviation ``s``
(ddof=1) over ``n`` runs and ``q >= 0`` the half-width of every other error source (the LCA's
quadrature error estimate, a test set's sampling error), the interval is

    m -+ (t_{0.975, n-1} * s / sqrt(n) + q)

with ``t`` Student's quantile (``scipy.stats.t.ppf``). The error sources are *added*: they are
independent, and a sum of half-widths covers whenever each part does, which ``max`` does not.
With ``n < 2`` there is no spread over seeds to judge by, so the interval is undefined (NaN) and
nothing is decided from it. A side is claimed only when the whole interval lies on it
(:meth:`Interval.side`).

Test AUCs carry the test set's own sampling error: :func:`delong` gives DeLong's variance of
every AUC of several models scored on one test set and their covariances (the fast algorithm of
Sun & Xu 2014, IEEE Signal Processing Letters 21(11)), so that a mean over seeds, or a difference
of two models on the same breasts (paired DeLong), has its variance as ``c^T S c``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

from .errors import StatisticError

CONFIDENCE = 0.95
"""Coverage of every interval of the rule."""

ABOVE, BELOW, UNDECIDED = "above", "below", "undecided"


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    """Student's two-sided quantile for a mean over ``n`` values (``n - 1`` degrees of freedom);
    NaN for ``n < 2``."""
    if n < 2:
        return math.nan
    return float(_scipy_stats.t.ppf(0.5 + confidence / 2, n - 1))


def z_quantile(confidence: float = CONFIDENCE) -> float:
    """The normal two-sided quantile (1.96 for 95%), for errors with a known variance."""
    return float(_scipy_stats.norm.ppf(0.5 + confidence / 2))


@dataclass(frozen=True)
class Interval:
    """A statistic over ``n`` runs and its interval by the rule of this module.

    Attributes:
        values: the statistic per run.
        extra: ``q``, the half-width of the other error sources, added to the seeds' part;
            ``inf`` where that error is known to be unbounded (a test set too small for
            DeLong's variance), so nothing is decided.
        confidence: the interval's coverage (0.95).
    """

    values: tuple[float, ...]
    extra: float = 0.0
    confidence: float = CONFIDENCE

    def __post_init__(self) -> None:
        if math.isnan(self.extra) or self.extra < 0:
            raise StatisticError(
                f"the added error term must be >= 0, got {self.extra!r} (a run without an "
                "error estimate has no interval; it does not count as 0)"
            )

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def se(self) -> float:
        """Standard error of the mean over runs, ``s / sqrt(n)``; NaN for ``n < 2``."""
        if self.n < 2:
            return math.nan
        return float(np.std(self.values, ddof=1) / math.sqrt(self.n))

    @property
    def t(self) -> float:
        return t_quantile(self.n, self.confidence)

    @property
    def margin(self) -> float:
        """The half-width ``t * se + extra``; NaN for ``n < 2`` (nothing decided)."""
        return self.t * self.se + self.extra

    @property
    def low(self) -> float:
        return self.mean - self.margin

    @property
    def high(self) -> float:
        return self.mean + self.margin

    def side(self, threshold: float = 0.0) -> str:
        """``above`` when the whole interval is above ``threshold``, ``below`` when wholly
        below, else ``undecided`` (always for ``n < 2`` or a non-finite value)."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return UNDECIDED
        if self.low > threshold:
            return ABOVE
        if self.high < threshold:
            return BELOW
        return UNDECIDED


def t_interval(
    values: Sequence[float], extra: float = 0.0, confidence: float = CONFIDENCE
) -> Interval:
    """The rule's interval for ``values`` (one per run) with ``extra`` added to its half-width."""
    return Interval(tuple(float(v) for v in values), float(extra), confidence)


# ------------------------------------------------------------------------------------ DeLong
@dataclass(frozen=True)
class AucCovariance:
    """AUCs of ``k`` models on one test set and DeLong's covariance matrix of them.

    Attributes:
        aucs: (k,) the empirical AUCs (ties count one half, as ``roc_auc_score``).
        cov: (k, k) DeLong's covariance; ``cov[i, i]`` is the variance of AUC ``i``.
    """

    aucs: np.ndarray
    cov: np.ndarray

    def variance_of(self, weights: Sequence[float]) -> float:
        """Variance of ``sum_i weights[i] * aucs[i]``: ``w^T S w``. A mean over seeds takes
        ``1/n`` each; a paired difference of two models ``(+1, -1)``."""
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != self.aucs.shape:
            raise StatisticError(f"{len(w)} weights for {len(self.aucs)} AUCs")
        return float(max(w @ self.cov @ w, 0.0))

    def half_width(self, weights: Sequence[float], confidence: float = CONFIDENCE) -> float:
        """``z * sqrt(variance_of(weights))``: the test set's part of an interval."""
        return z_quantile(confidence) * math.sqrt(self.variance_of(weights))


def delong(
    labels: Sequence[float], scores: Sequence[Sequence[float]] | np.ndarray
) -> AucCovariance:
    """DeLong's AUC covariance of one or more models scored on the same test cases.

    DeLong, DeLong & Clarke-Pearson (1988, Biometrics 44:837): with ``m`` positives and ``n``
    negatives, each positive's placement ``V10 = P(score > a random negative's)`` and each
    negative's ``V01 = P(a random positive's > score)`` (ties one half); the AUC is their mean
    and ``S = cov(V10)/m + cov(V01)/n`` over models. Computed with midranks (Sun & Xu 2014):
    ``O((m + n) log(m + n))`` per model instead of ``O(m n)``.

    Args:
        labels: (N,) 0/1 labels; both classes must occur, and at least two of each for a
            variance.
        scores: (N,) for one model or (k, N) for k models, higher = more likely positive.

    Raises:
        StatisticError: shapes disagree, labels are not 0/1, a class has fewer than 2 cases.
    """
    y = np.asarray(labels)
    x = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if x.shape[1] != y.shape[0]:
        raise StatisticError(f"{x.shape[1]} scores per model for {y.shape[0]} labels")
    if not np.isin(y, (0, 1)).all():
        raise StatisticError(f"labels must be 0 or 1, got {sorted(set(y.tolist()))[:5]}")
    pos, neg = x[:, y == 1], x[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise StatisticError(
            f"DeLong's variance needs at least 2 positives and 2 negatives, got {m} and {n}"
        )
    rank = _scipy_stats.rankdata
    tx = rank(pos, axis=1)  # midranks among positives
    ty = rank(neg, axis=1)  # midranks among negatives
    tz = rank(np.concatenate([pos, neg], axis=1), axis=1)  # midranks among all
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    v10 = (tz[:, :m] - tx) / n  # placement of each positive among the negatives
    v01 = 1.0 - (tz[:, m:] - ty) / m  # share of positives above each negative
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return AucCovariance(aucs, cov)
