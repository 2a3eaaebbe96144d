"""Cumulative LCA per group against iteration (Wu et al. 2020, Figures 4b, 6b and 7b)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._data import (
    RunsLike,
    aggregate,
    all_nan,
    check_same_groups,
    labelled_runs,
    require_lca,
    select_groups,
)
from ._style import (
    display_name,
    draw_band,
    draw_column,
    group_colors,
    marker_kw,
    new_figure,
    root_figure,
    set_title,
)

TOTAL = "total"
"""Name of the column holding the cumulative actual loss change."""

ERROR_PREFIX = "err/"
"""Prefix of the columns holding a group's cumulative error estimate (``err/<group>``)."""

LCA_YLABEL = "cumulative LCA (negative = helped)"


def cumulative_lca(run) -> pd.DataFrame:
    """Running sums over intervals of each group's LCA and of the actual loss change.

    Args:
        run: a :class:`~lca_toolkit.store.Run`.

    Returns:
        ``end_step``, one column per group (``Σ lca/<group>`` over the intervals up to and
        including that row), ``total`` (``Σ loss_change``; equals the sum of the group
        columns plus the summed residual) and ``err/<group>`` (``Σ error/<group>``: per-interval
        error estimates add up to an estimate of the error of the group's column). NaN entries
        are skipped in the LCA sums; an error sum is NaN from the first interval without an
        estimate on, since a sum that leaves an interval out estimates nothing. A first row of zeros at the
        first interval's ``start_step`` anchors every curve at the origin.
    """
    df = run.lca()
    out = pd.DataFrame({"end_step": df["end_step"]})
    for g in run.groups:
        out[g] = df[f"lca/{g}"].cumsum()
    out[TOTAL] = df["loss_change"].cumsum()
    for g in run.groups:
        out[ERROR_PREFIX + g] = df[f"error/{g}"].cumsum(skipna=False)
    if len(df):
        origin = pd.DataFrame({c: [0.0] for c in out.columns})
        origin["end_step"] = df["start_step"].iloc[0]
        out = pd.concat([origin.astype(out.dtypes.to_dict()), out], ignore_index=True)
    return out


def plot_cumulative_lca(
    data: RunsLike,
    *,
    groups: Sequence[str] | None = None,
    show_total: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 4.0),
) -> Figure:
    """How much of the loss change each group's movement is responsible for, so far.

    Reads ``lca/end_step``, ``lca/by_group`` (``(n_intervals, G)``), ``lca/loss_start``,
    ``lca/loss_end`` and, when stored, ``lca/error_by_group``. The y value at an interval's
    ``end_step`` is the sum of the group's LCA over all intervals up to it; **negative means the
    group helped** (its movement lowered the loss on the evaluation subset). The dashed black
    line is the actual cumulative loss change ``L(end) - L(first start)``, which the groups'
    curves add up to up to the residual.

    One run draws each group's curve with a translucent band of +/- its cumulative error
    estimate (the quadrature's, see :func:`cumulative_lca`) where the store has one. Several
    runs draw the mean over runs per ``end_step`` with a +/- one std band (ddof=1) instead;
    they must have the same groups. All-NaN groups are left out.

    Args:
        data: a run, runs, or run store path(s).
        groups: groups to draw, in this order; all by default.
        show_total: also draw the actual cumulative loss change.
        ax: axes to draw into; a new figure when ``None``.
        title: figure title; a default names the run(s).
        figsize: size in inches of a new figure.

    Returns:
        The figure drawn into.

    Raises:
        PlotError: unknown group, or a run without LCA intervals.
        RunMismatchError: several runs with different groups.
    """
    runs = labelled_runs(data)
    all_groups = check_same_groups(runs, "cumulative LCA")
    chosen = select_groups(groups, all_groups, runs[0][1])
    frames = []
    for _, run in runs:
        require_lca(run)
        frames.append(cumulative_lca(run))
    if ax is None:
        ax = new_figure(figsize).axes[0]
    colors = group_colors(all_groups)
    agg = aggregate(frames, "end_step", [*chosen, TOTAL]) if len(frames) > 1 else None
    markers = marker_kw(max(len(f) for f in frames))
    ax.axhline(0.0, color="0.6", linewidth=0.8, label="_zero")
    series = [(g, colors[g], display_name(g), {}) for g in chosen]
    if show_total:
        series.append((TOTAL, "black", "actual loss change", {"linestyle": "--"}))
    banded = False
    for column, color, label, kw in series:
        if all(all_nan(f[column]) for f in frames):
            continue
        draw_column(ax, frames, agg, column, "end_step", color=color, label=label, **markers, **kw)
        if agg is None and column != TOTAL:
            banded |= _draw_error_band(ax, frames[0], column, color, label)
    ax.set_xlabel("iteration (optimizer step at the end of the LCA interval)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(LCA_YLABEL)
    if title is None:
        who = runs[0][0] if len(runs) == 1 else f"mean ± std, {len(runs)} runs"
        title = f"Cumulative LCA per group — {who}"
    set_title(ax, title)
    ax.legend(title="group (band: ± error estimate)" if banded else "group")
    ax.grid(True, alpha=0.3)
    return root_figure(ax)


def _draw_error_band(ax: Axes, frame: pd.DataFrame, group: str, color: str, label: str) -> bool:
    """The group's cumulative LCA +/- its cumulative error estimate, where that is known.

    Returns whether a band was drawn: a store without estimates has only the anchor row's
    zero, and one point makes no band.
    """
    y = frame[group].to_numpy(dtype=np.float64)
    err = frame[ERROR_PREFIX + group].to_numpy(dtype=np.float64)
    where = np.isfinite(err) & np.isfinite(y)
    if where.sum() < 2:
        return False
    draw_band(
        ax, frame["end_step"].to_numpy(), y, err, color=color, label=f"_{label} ± error estimate"
    )
    return True
