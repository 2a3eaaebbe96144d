"""The residual check: an LCA interval whose residual is a large part of its loss change is said so.

LCA splits an interval's loss change ``dL = L_E(end) - L_E(start)`` among the parameters; the
residual ``r = dL - sum LCA`` is what the quadrature missed. When ``|r|`` is a large part of
``|dL|`` the per-group numbers of that interval do not add up to the change they claim to
allocate, and a reader of the store would not know unless they looked at ``lca/residual``. So
the Tracker checks every interval against ``LcaConfig.residual_tol`` (a fraction of ``|dL|``,
stored with the run's config under ``tracker.lca.residual_tol``, where ``lca-plot``'s residual
figure reads it to mark such intervals) and warns, once per run, with the numbers of the first
such interval and what to change.

Pure functions and one small class; the Tracker only calls :meth:`ResidualCheck.check`.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np

from .lca_config import DEFAULT_RESIDUAL_TOL, LcaConfig
from .records import LcaRecord

__all__ = [
    "DEFAULT_RESIDUAL_TOL",
    "LcaResidualWarning",
    "ResidualCheck",
    "exceeding",
    "exceeds",
]


class LcaResidualWarning(UserWarning):
    """An LCA interval's residual exceeded ``residual_tol`` of its loss change (once per run)."""


def exceeds(residual: float, loss_change: float, tol: float | None) -> bool:
    """Whether ``|residual| > tol * |loss_change|`` (``tol=None``: never; NaN: never).

    Non-finite losses are the business of ``on_nonfinite``, not of this check.
    """
    if tol is None or not (math.isfinite(residual) and math.isfinite(loss_change)):
        return False
    return abs(residual) > tol * abs(loss_change)


def exceeding(residual: np.ndarray, loss_change: np.ndarray, tol: float | None) -> np.ndarray:
    """Boolean mask of the intervals for which :func:`exceeds` holds (for plots and readers)."""
    residual = np.asarray(residual, dtype=np.float64)
    loss_change = np.asarray(loss_change, dtype=np.float64)
    if tol is None:
        return np.zeros(residual.shape, dtype=bool)
    finite = np.isfinite(residual) & np.isfinite(loss_change)
    with np.errstate(invalid="ignore"):
        return finite & (np.abs(residual) > tol * np.abs(loss_change))


def advice(config: LcaConfig) -> str:
    """What to change so the residual shrinks, for the rule the run uses."""
    if config.quadrature == "adaptive":
        return (
            f"the adaptive rule stopped at its cap of {config.adaptive.max_panels} panels: "
            f"raise max_panels (lca-run: --max-panels {2 * config.adaptive.max_panels}), or "
            f"snapshot more often (a smaller lca_every than {config.every}, or a lower "
            "learning rate)"
        )
    return (
        f"measure with quadrature='adaptive' (lca-run: --quadrature adaptive), which refines "
        f"the {config.quadrature} rule until the residual is small, or snapshot more often "
        f"(a smaller lca_every than {config.every})"
    )


def message(record: LcaRecord, config: LcaConfig) -> str:
    """The warning's text: the interval, its numbers, the tolerance and the fix."""
    change = float(record.loss_end - record.loss_start)
    residual = float(record.residual)
    share = abs(residual) / abs(change) if change else math.inf
    return (
        f"LCA interval ({record.start_step}, {record.end_step}]: |residual| {abs(residual):.3g} "
        f"is {100 * share:.0f}% of |loss change| {abs(change):.3g} (tolerance "
        f"{100 * config.residual_tol:g}%, rule {config.quadrature}, {record.passes} gradient "
        f"passes), so its per-group LCA does not add up to the loss change. To fix: "
        f"{advice(config)}. Said once per run; every interval's residual is in the store "
        "(lca/residual) and lca-plot --kind residual marks the ones above the tolerance."
    )


_PACKAGE = str(Path(__file__).resolve().parent)


def _caller() -> int:
    """The ``stacklevel`` of the first frame outside lca_toolkit (the user's ``after_step()``,
    ``close()`` or trainer line), so the warning points at the user's code, whichever of the
    Tracker's methods measured the interval."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


class ResidualCheck:
    """Warns with :class:`LcaResidualWarning` about the first interval above the tolerance.

    Args:
        config: the run's LCA configuration (its ``residual_tol``, rule and panel cap).
        enabled: ``False`` on the ranks of a distributed run that do not write (one warning
            per run, not per rank).
    """

    def __init__(self, config: LcaConfig, *, enabled: bool = True) -> None:
        self.config = config
        self.enabled = enabled
        self.warned = False

    def check(self, record: LcaRecord) -> bool:
        """Check one interval; warn if it is the run's first above the tolerance.

        Returns:
            Whether this interval's residual exceeds the tolerance (warned or not).
        """
        change = float(record.loss_end - record.loss_start)
        over = exceeds(float(record.residual), change, self.config.residual_tol)
        if over and self.enabled and not self.warned:
            self.warned = True
            warnings.warn(message(record, self.config), LcaResidualWarning, stacklevel=_caller())
        return over
