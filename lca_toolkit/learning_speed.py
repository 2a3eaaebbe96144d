"""Conditional learning speed (Wu et al., ICML 2022): how fast each group moves relative to its size.

Wu, Jastrzebski, Cho and Geras, "Characterizing and overcoming the greedy nature of learning in
multi-modal deep neural networks" (ICML 2022), measure how much a multi-modal network learns
from each modality's branch by the branch's squared gradient norm relative to its squared
weight norm, summed over the steps so far:

    mu(theta_g; t) = sum_{s <= t} ||g_g(s)||^2 / ||theta_g(s)||^2

taken over the branch *as a whole* (all squared gradient entries of the group over all squared
parameter entries of the group: ``grad_norm^2 / param_norm^2`` of the store's rows), not the sum
of per-tensor ratios that ``steps/rel_sq_norm`` holds. Two branches are compared by

    d_speed(t) = log( mu(theta_a; t) / mu(theta_b; t) ),

positive when ``a`` has learned faster so far. This is the paper's definition as we read it
(the conditional learning speed, with d_speed the log of the ratio of the two branches'
cumulative sums from the first step); the paper uses it as a cheap proxy for the conditional
utilisation rate, not as that rate.

Conventions, easy to get wrong:

* The parameters are those the gradient was taken at (``param_norm`` is recorded before the
  optimizer step).
* Steps the GradScaler (or ``on_nonfinite="skip"``) skipped are excluded: they changed no weight,
  so their rows are left out of the sums and out of the frames.
* A step with ``||theta_g|| = 0`` (a group that is all zeros) adds nothing to ``g``'s sum, as
  zero tensors add nothing to ``rel_sq_norm``.
* A non-finite gradient norm in a step that was not skipped makes the sum non-finite from there
  on: the sum is unknown, not smaller.

Everything is computed from recorded rows, so it costs nothing during training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import GroupError, StatisticError
from .sinks import MemorySink
from .store import Run, open_run

RunLike = Run | str | os.PathLike[str]


def cumulative_speed(
    grad_norm: np.ndarray, param_norm: np.ndarray, skipped: np.ndarray | None = None
) -> np.ndarray:
    """Cumulative ``sum_s grad_norm^2 / param_norm^2`` down the rows (pure; see module doc).

    Args:
        grad_norm: ``(n, G)`` per-group gradient norms.
        param_norm: ``(n, G)`` per-group parameter norms at the same steps.
        skipped: ``(n,)`` rows to leave out of the sums (their output rows repeat the previous
            value); ``None`` for none.

    Returns:
        ``(n, G)`` float64 cumulative speeds.
    """
    g_sq = np.square(np.asarray(grad_norm, dtype=np.float64))
    p_sq = np.square(np.asarray(param_norm, dtype=np.float64))
    if g_sq.shape != p_sq.shape or g_sq.ndim != 2:
        raise ValueError(f"grad_norm {g_sq.shape} and param_norm {p_sq.shape} must be equal (n, G)")
    zero_theta = p_sq == 0
    ratio = np.divide(g_sq, p_sq, out=np.zeros_like(g_sq), where=~zero_theta)
    ratio[zero_theta & ~np.isfinite(g_sq)] = np.nan  # an all-zero group with a broken gradient
    if skipped is not None:
        ratio[np.asarray(skipped, dtype=bool)] = 0.0
    return np.cumsum(ratio, axis=0)


def has_param_norm(run: Run) -> bool:
    """Whether the store records ``steps/param_norm`` (stores written before it do not)."""
    return any(spec.name == "param_norm" for spec in run._step_specs())


def _rows(run: RunLike | MemorySink) -> tuple[str, list[str], pd.DataFrame]:
    """(name for errors, groups, wide step frame) of a store or an in-memory sink."""
    if isinstance(run, MemorySink):
        if not run.steps:
            return "the in-memory sink", list(run.groups), pd.DataFrame({"step": []})
        cols = {"step": run.step_array("step"), "skipped": run.step_array("skipped")}
        for metric in ("grad_norm", "param_norm"):
            values = run.step_array(metric)
            cols.update({f"{metric}/{g}": values[:, j] for j, g in enumerate(run.groups)})
        return "the in-memory sink", list(run.groups), pd.DataFrame(cols)
    run = run if isinstance(run, Run) else open_run(run)
    return f"'{run.path}'", list(run.groups), run.steps()


def learning_speed(run: RunLike | MemorySink, groups: Sequence[str] | None = None) -> pd.DataFrame:
    """Each group's cumulative conditional learning speed at every step that was not skipped.

    Args:
        run: a :class:`~lca_toolkit.store.Run`, its store path, or a ``MemorySink``
            (``Tracker(store=None).sink``).
        groups: the groups to compute, in this order; ``None`` for all, in store order.

    Returns:
        Index ``step`` (the steps not skipped), one float64 column per group (``columns.name`` is
        ``"group"``): ``sum over steps s <= step, s not skipped, of ||g||^2 / ||theta||^2`` of the
        group as a whole.

    Raises:
        GroupError: a group is not in the run (the message lists the run's groups).
        StatisticError: the store has no ``steps/param_norm`` (written before it was recorded),
            or lacks it at a step that was not skipped (rows from before a resume added it).
    """
    name, run_groups, steps = _rows(run)
    wanted = list(run_groups if groups is None else groups)
    unknown = [g for g in wanted if g not in run_groups]
    if unknown:
        raise GroupError(f"learning_speed: {unknown} not among the groups {run_groups} of {name}")
    if any(f"param_norm/{g}" not in steps.columns for g in wanted):
        raise StatisticError(
            f"learning_speed: {name} has no steps/param_norm (written before lca-toolkit "
            "recorded it); learning speed needs each group's ||theta||: record the run again"
        )
    kept = steps[~steps["skipped"].to_numpy(dtype=bool)]
    gn = kept[[f"grad_norm/{g}" for g in wanted]].to_numpy(dtype=np.float64)
    pn = kept[[f"param_norm/{g}" for g in wanted]].to_numpy(dtype=np.float64)
    missing = np.isnan(pn) & np.isfinite(gn)
    if missing.any():
        at = kept["step"].to_numpy()[missing.any(axis=1)]
        raise StatisticError(
            f"learning_speed: {name} has no param_norm at {len(at)} recorded step(s) "
            f"({int(at[0])}..{int(at[-1])}; rows written before a resume added it), so the "
            "cumulative speed is unknown"
        )
    return pd.DataFrame(
        cumulative_speed(gn, pn),
        index=pd.Index(kept["step"].to_numpy(dtype=np.int64), name="step"),
        columns=pd.Index(wanted, name="group"),
    )


def learning_speed_ratio(run: RunLike | MemorySink, a: str, b: str) -> pd.Series:
    """Wu et al.'s ``d_speed = log(mu_a / mu_b)`` at every step that was not skipped.

    Args:
        run: as for :func:`learning_speed`.
        a, b: two group names.

    Returns:
        Series indexed by ``step``, named ``"log(a/b)"``: the natural log of group ``a``'s
        cumulative speed over group ``b``'s. Positive: ``a`` has learned faster so far. NaN
        while both sums are 0, ``+-inf`` while one is.

    Raises:
        GroupError, StatisticError: as :func:`learning_speed`.
    """
    speed = learning_speed(run, [a, b])
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.log(speed[a].to_numpy()) - np.log(speed[b].to_numpy())
    return pd.Series(values, index=speed.index, name=f"log({a}/{b})")
