"""Actual loss change against the summed LCA, and the residual, per interval (Figure 5)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..lca_config import DEFAULT_RESIDUAL_TOL
from ..residual_check import exceeding
from ._data import RunsLike, aggregate, config_value, labelled_runs, require_lca
from ._style import axes_list, draw_column, marker_kw, new_figure, root_figure

COLUMNS: dict[str, tuple[str, str, dict]] = {
    "loss_change": ("actual loss change L(end) − L(start)", "black", {}),
    "lca_sum": ("Σ LCA over all groups", "tab:red", {"linestyle": "--"}),
    "residual": ("residual = actual − Σ LCA", "tab:gray", {}),
}
"""Column -> (legend label, colour, line style) of the three series."""


def residual_frame(run) -> pd.DataFrame:
    """Per interval: ``end_step``, ``loss_change``, ``lca_sum`` and ``residual``.

    ``lca_sum`` sums ``lca/<group>`` over every group the run has (``bn_buffers`` included),
    so ``loss_change == lca_sum + residual`` to float64 rounding.
    """
    df = run.lca()
    lca_columns = [f"lca/{g}" for g in run.groups]
    return pd.DataFrame(
        {
            "end_step": df["end_step"],
            "loss_change": df["loss_change"],
            "lca_sum": df[lca_columns].sum(axis=1, skipna=False),
            "residual": df["residual"],
        }
    )


def residual_tolerance(run) -> float | None:
    """The run's ``residual_tol`` (stored in its config under ``tracker.lca``); stores written
    before it was recorded take the default."""
    return config_value(run, "tracker.lca.residual_tol", DEFAULT_RESIDUAL_TOL)


def _mark_over_tolerance(ax: Axes, frames: Sequence[pd.DataFrame], tols: list) -> None:
    """A red ring on each interval whose |residual| exceeds the run's tolerance of |loss change|."""
    label = "|residual| > tolerance × |loss change|"
    shown = set(t for t in tols if t is not None)
    if len(shown) == 1:
        label = f"|residual| > {100 * shown.pop():g}% of |loss change|"
    for df, tol in zip(frames, tols, strict=True):
        over = exceeding(df["residual"].to_numpy(), df["loss_change"].to_numpy(), tol)
        if over.any():
            ax.scatter(
                df["end_step"][over], df["residual"][over], s=60, facecolors="none",
                edgecolors="tab:red", linewidths=1.2, zorder=5, label=label,
            )  # fmt: skip
            label = "_" + label  # one legend entry for all runs


def plot_residual(
    data: RunsLike,
    *,
    ax: Axes | Sequence[Axes] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 5.5),
) -> Figure:
    """How well the allocation accounts for the loss change: a check on the quadrature.

    Reads ``lca/end_step``, ``lca/loss_start``, ``lca/loss_end``, ``lca/by_group`` and
    ``lca/residual``. Top panel: the actual loss change of each interval on the evaluation
    subset, ``L(end) - L(start)``, and the LCA summed over all groups; bottom panel: their
    difference, the residual. A residual small against the loss change means the per-group
    numbers can be trusted; a large one calls for a finer quadrature or a smaller ``lca_every``.
    Intervals whose ``|residual|`` exceeds the run's ``residual_tol`` of ``|loss change|`` (the
    tolerance the Tracker warned about, ``config.tracker.lca.residual_tol``) are ringed in red
    in the residual panel.

    Several runs draw the mean over runs per ``end_step`` with a +/- one std band (ddof=1).

    Args:
        data: a run, runs, or run store path(s).
        ax: ``None`` for a new figure with two stacked panels; two axes for the two panels;
            or one axes to draw all three series into.
        title: figure title; a default names the run(s).
        figsize: size in inches of a new figure.

    Returns:
        The figure drawn into.

    Raises:
        PlotError: a run without LCA intervals.
    """
    runs = labelled_runs(data)
    frames = []
    for _, run in runs:
        require_lca(run)
        frames.append(residual_frame(run))
    if ax is None:
        fig = new_figure(figsize, nrows=2, sharex=True)
        top, bottom = fig.axes
    else:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        top, bottom = axes_list(axes, 2, "plot_residual") if len(axes) != 1 else (axes[0],) * 2
    tols = [residual_tolerance(run) for _, run in runs]
    agg = aggregate(frames, "end_step", list(COLUMNS)) if len(frames) > 1 else None
    markers = marker_kw(max(len(f) for f in frames))
    for column, (label, color, kw) in COLUMNS.items():
        target = bottom if column == "residual" else top
        draw_column(
            target, frames, agg, column, "end_step", color=color, label=label, **markers, **kw
        )
    _mark_over_tolerance(bottom, frames, tols)
    if title is None:
        who = runs[0][0] if len(runs) == 1 else f"mean ± std, {len(runs)} runs"
        title = f"LCA completeness per interval — {who}"
    top.set_title(title)
    for a in {id(top): top, id(bottom): bottom}.values():
        a.axhline(0.0, color="0.6", linewidth=0.8, label="_zero")
        a.grid(True, alpha=0.3)
        a.legend()
    bottom.set_xlabel("iteration (optimizer step at the end of the LCA interval)")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_ylabel("loss change per interval")
    if bottom is not top:
        bottom.set_ylabel("residual")
    return root_figure(top)
