"""Conditional learning speed per group and its log-ratio between groups (Wu et al., ICML 2022).

The numbers are those of :mod:`lca_toolkit.learning_speed`: per group, the cumulative
``||g||^2 / ||theta||^2`` of the group as a whole over the steps not skipped, and
``log(mu_a / mu_b)`` between two groups (positive: ``a`` has learned faster so far).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..learning_speed import learning_speed
from ._data import PlotError, RunsLike, aggregate, check_same_groups, labelled_runs, select_groups
from ._style import (
    axes_list,
    display_name,
    draw_column,
    group_colors,
    new_figure,
    root_figure,
    set_title,
)

SPEED_YLABEL = "cumulative Σ ‖g‖² / ‖θ‖²"
RATIO_YLABEL = r"$\log(\mu_a\,/\,\mu_b)$"


def ratio_pairs(
    groups: Sequence[str], pair: tuple[str, str] | None, all_groups: Sequence[str]
) -> list[tuple[str, str]]:
    """The ``(a, b)`` pairs of the log-ratio panel: ``pair`` alone when given, else every other
    drawn group against the first one (the single pair when two groups are drawn).

    Raises:
        PlotError: ``pair`` names a group the runs do not have, or the same group twice.
    """
    if pair is not None:
        a, b = pair
        unknown = [g for g in (a, b) if g not in all_groups]
        if unknown or a == b:
            why = f"{unknown} not among the groups {list(all_groups)}" if unknown else "same group"
            raise PlotError(f"pair {a},{b}: {why}; name two different groups")
        return [(a, b)]
    return [(g, groups[0]) for g in groups[1:]]


def plot_learning_speed(
    data: RunsLike,
    *,
    groups: Sequence[str] | None = None,
    pair: tuple[str, str] | None = None,
    log_y: bool | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 5.5),
) -> Figure:
    """Cumulative conditional learning speed of each group, and the log-ratio panel.

    Reads ``steps/step``, ``steps/skipped``, ``steps/grad_norm`` and ``steps/param_norm``.
    Top panel: one line per group. Bottom panel (when there is a pair to compare): Wu et al.'s
    ``d_speed = log(mu_a / mu_b)``, with a zero line; above zero ``a`` has learned faster.
    Several runs (seeds of one setting) draw the mean over runs per step with a +/- one std
    band; they must have the same groups.

    Args:
        data: a run, runs, or run store path(s).
        groups: groups to draw, in this order; all by default.
        pair: ``(a, b)`` for the log-ratio panel; by default every other drawn group against
            the first (no panel for one group and no pair).
        log_y: logarithmic y axis for the speeds; ``None``: when they span over two decades.
        ax: one axes (speeds only) or two (speeds, log-ratio); a new figure when ``None``.
        title: figure title; a default names the run(s).
        figsize: size in inches of a new figure.

    Returns:
        The figure drawn into.

    Raises:
        PlotError: unknown group or pair, or nothing finite to draw.
        StatisticError: a store without ``steps/param_norm`` (written before it was recorded).
    """
    runs = labelled_runs(data)
    all_groups = check_same_groups(runs, "learning speed")
    chosen = select_groups(groups, all_groups, runs[0][1])
    pairs = ratio_pairs(chosen, pair, all_groups)
    needed = list(dict.fromkeys([*chosen, *(g for p in pairs for g in p)]))
    frames = [_frame(run, needed, pairs) for _, run in runs]
    if all(f.empty for f in frames):
        raise PlotError(f"no steps recorded in {[str(r.path) for _, r in runs]}; nothing to plot")
    agg = aggregate(frames, "step", list(frames[0].columns[1:])) if len(frames) > 1 else None
    if ax is None:
        fig = new_figure(figsize, nrows=2 if pairs else 1, sharex=True)
        axes = list(fig.axes)
    else:
        axes = axes_list(ax, 2 if pairs else 1, "plot_learning_speed")
    colors = group_colors(all_groups)
    top = axes[0]
    for g in chosen:
        draw_column(top, frames, agg, g, "step", color=colors[g], label=display_name(g), lw=1.4)
    speeds = np.concatenate([f[chosen].to_numpy().ravel() for f in frames])
    positive = speeds[np.isfinite(speeds) & (speeds > 0)]
    if positive.size == 0:
        raise PlotError(f"no finite positive learning speed in groups {chosen}; nothing to plot")
    if log_y or (log_y is None and positive.max() > 100 * positive.min()):
        top.set_yscale("log")
    top.set_ylabel(SPEED_YLABEL)
    _legend(top, "group", len(chosen))
    if title is None:
        who = runs[0][0] if len(runs) == 1 else f"mean ± std, {len(runs)} runs"
        title = f"Conditional learning speed per group — {who}"
    set_title(top, title)
    if pairs:
        bottom = axes[1]
        for a, b in pairs:
            name = f"{display_name(a)} / {display_name(b)}"
            draw_column(bottom, frames, agg, f"{a} / {b}", "step", color=colors[a], label=name)
        bottom.axhline(0.0, color="0.5", linewidth=0.8, label="_zero")
        bottom.set_ylabel(f"{RATIO_YLABEL}\n(> 0: a learned faster)")
        _legend(bottom, "a / b", len(pairs))
    for a in axes:
        a.grid(True, alpha=0.3)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("iteration (optimizer step; skipped steps left out)")
    return root_figure(top)


def _frame(run, groups: list[str], pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """``step``, one cumulative speed column per group and one ``a / b`` log-ratio per pair."""
    speed = learning_speed(run, groups)
    out = pd.DataFrame({"step": speed.index.to_numpy()})
    for g in groups:
        out[g] = speed[g].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for a, b in pairs:
            out[f"{a} / {b}"] = np.log(speed[a].to_numpy()) - np.log(speed[b].to_numpy())
    return out


def _legend(ax: Any, title: str, entries: int) -> None:
    """Inside the axes for a few lines; beside them, where it hides no curve, for more."""
    if entries <= 3:
        ax.legend(title=title)
    else:
        ax.legend(title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
