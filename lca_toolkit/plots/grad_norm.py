"""Per-group gradient norm against iteration (Wu et al. 2020, Figures 4a, 6a and 7a)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._data import (
    PlotError,
    RunsLike,
    aggregate,
    all_nan,
    check_same_groups,
    labelled_runs,
    select_groups,
    smooth,
)
from ._style import (
    RAW_ALPHA,
    display_name,
    draw_series,
    group_colors,
    new_figure,
    root_figure,
    set_title,
)

STEP_METRICS: dict[str, str] = {
    "grad_norm": "gradient norm ‖∂L/∂θ‖",
    "rel_sq_norm": "Σ ‖g‖² / ‖θ‖² over the group's tensors",
    "update_norm": "update norm ‖Δθ‖",
}
"""Per-group step arrays this plot can draw, with their axis labels."""


def plot_grad_norm(
    data: RunsLike,
    *,
    groups: Sequence[str] | None = None,
    metric: str = "grad_norm",
    smooth_window: int | None = None,
    smooth_kind: str = "ema",
    log_y: bool = False,
    show_raw: bool = True,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (7.0, 4.0),
) -> Figure:
    """Gradient norm of every parameter group at every optimizer step.

    Reads ``steps/step`` and ``steps/grad_norm`` (``(n_steps, G)``; or ``steps/rel_sq_norm`` /
    ``steps/update_norm`` with ``metric=``). A larger gradient norm of one group (the MLO
    column in the paper) hints that the loss depends more on it.

    One run draws one line per group. Several runs (seeds of one setting) draw the mean over
    runs per step with a +/- one std band (ddof=1); they must have the same groups. Series
    that are NaN everywhere (``bn_buffers``, which has no gradient) are left out; NaN at
    steps a GradScaler skipped leave a gap.

    Args:
        data: a run, runs, or run store path(s).
        groups: groups to draw, in this order; all by default.
        metric: ``grad_norm``, ``rel_sq_norm`` or ``update_norm``.
        smooth_window: smooth each run's series over this many steps before averaging
            (``None``: raw). See :func:`lca_toolkit.plots._data.smooth` for the exact
            definitions; a single run also shows the raw series faintly underneath.
        smooth_kind: ``ema`` (exponential moving average with span ``smooth_window``,
            bias-corrected at the start) or ``rolling`` (trailing mean of ``smooth_window``
            steps).
        log_y: logarithmic y axis (norms often span decades over training).
        show_raw: with smoothing and a single run, draw the raw series faintly too.
        ax: axes to draw into; a new figure when ``None``.
        title: figure title; a default names the run(s).
        figsize: size in inches of a new figure.

    Returns:
        The figure drawn into.

    Raises:
        PlotError: unknown metric or group, a run without steps, or nothing finite to draw.
        RunMismatchError: several runs with different groups.
    """
    if metric not in STEP_METRICS:
        raise PlotError(f"metric must be one of {list(STEP_METRICS)}, got {metric!r}")
    runs = labelled_runs(data)
    all_groups = check_same_groups(runs, "gradient norm")
    chosen = select_groups(groups, all_groups, runs[0][1])
    frames = []
    for label, run in runs:
        df = run.steps()
        if df.empty:
            raise PlotError(f"run '{run.path}' has no steps recorded; nothing to plot")
        frames.append((label, df))
    if ax is None:
        ax = new_figure(figsize).axes[0]
    colors = group_colors(all_groups)
    drawn = 0
    for g in chosen:
        column = f"{metric}/{g}"
        if all(all_nan(df[column]) for _, df in frames):
            continue
        drawn += 1
        if len(frames) == 1:
            df = frames[0][1]
            y = smooth(df[column], smooth_window, smooth_kind)
            if smooth_window not in (None, 1) and show_raw:
                ax.plot(
                    df["step"],
                    df[column],
                    color=colors[g],
                    alpha=RAW_ALPHA,
                    linewidth=0.6,
                    label=f"_{g} raw",
                )
            draw_series(ax, df["step"], y, color=colors[g], label=display_name(g), linewidth=1.2)
            continue
        smoothed = [
            pd.DataFrame({"step": df["step"], g: smooth(df[column], smooth_window, smooth_kind)})
            for _, df in frames
        ]
        agg = aggregate(smoothed, "step", [g])
        draw_series(
            ax,
            agg["step"],
            agg[f"{g}/mean"],
            std=agg[f"{g}/std"],
            color=colors[g],
            label=display_name(g),
            linewidth=1.2,
        )
    if drawn == 0:
        raise PlotError(
            f"no finite {metric} values in groups {chosen} of "
            f"{[str(r.path) for _, r in runs]}; nothing to plot"
        )
    ylabel = STEP_METRICS[metric]
    if smooth_window not in (None, 1):
        what = "EMA, span" if smooth_kind == "ema" else "rolling mean over"
        ylabel += f" ({what} {smooth_window} steps)"
    ax.set_xlabel("iteration (optimizer step)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    set_title(ax, title if title is not None else _title(metric, runs))
    ax.legend(title="group")
    ax.grid(True, alpha=0.3)
    return root_figure(ax)


def _title(metric: str, runs: list) -> str:
    name = {"grad_norm": "Gradient norm", "rel_sq_norm": "Relative squared norm"}.get(
        metric, "Update norm"
    )
    if len(runs) == 1:
        return f"{name} per group — {runs[0][0]}"
    return f"{name} per group — mean ± std, {len(runs)} runs"
