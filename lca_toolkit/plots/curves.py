"""Train and validation AUC against epoch, mean +/- std across runs per setting (Figure 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._data import PlotError, RunsLike, aggregate, all_nan, config_value, labelled_runs, split_by
from ._style import (
    METRIC_COLORS,
    axes_list,
    display_name,
    draw_series,
    marker_kw,
    new_figure,
    root_figure,
)

AUTO = "auto"
"""``group_by`` default: ``experiment.variant`` when every run has it, else all runs together."""

DEFAULT_GROUP_BY = "experiment.variant"
DEFAULT_METRICS: tuple[str, ...] = ("train_auc", "val_auc")
LINESTYLES: tuple[str, ...] = ("-", "--", "-.", ":")


def resolve_group_by(
    runs: Sequence[tuple[str, Any]], group_by: str | Sequence[str] | None
) -> str | list[str] | None:
    """``group_by`` with :data:`AUTO` replaced by ``experiment.variant`` or ``None``."""
    if group_by != AUTO:
        return group_by
    missing = object()
    has = all(config_value(r, DEFAULT_GROUP_BY, missing) is not missing for _, r in runs)
    return DEFAULT_GROUP_BY if has else None


def learning_curve_stats(
    runs: Sequence[tuple[str, Any]], metrics: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Mean, std (ddof=1) and count over runs per epoch of each metric a run has.

    Returns:
        metric -> frame with ``epoch``, ``<metric>/mean``, ``<metric>/std``, ``<metric>/n``;
        a metric no run has (or NaN everywhere) is absent.
    """
    frames = [(label, run.epochs()) for label, run in runs]
    out = {}
    for metric in metrics:
        having = [df for _, df in frames if metric in df and not all_nan(df[metric])]
        if having:
            out[metric] = aggregate(having, "epoch", [metric])
    return out


def plot_learning_curves(
    data: RunsLike,
    *,
    group_by: str | Sequence[str] | None = AUTO,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ax: Axes | Sequence[Axes] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Learning curves of a sweep: one panel per setting, mean over its runs +/- one std.

    Reads ``epochs/epoch`` and the metric arrays (``epochs/train_auc``, ``epochs/val_auc`` by
    default) and the config value at ``group_by``. In the paper's Figure 3 each panel holds ten
    runs of one view (``uni_cc``, ``uni_mlo``) trained with different learning rates: an earlier
    validation peak means the model overfits sooner.

    Runs are aligned on ``epoch``; the std is the sample std (ddof=1) over the runs that have
    the epoch, so a setting with one run shows no band.

    Args:
        data: runs or run store paths (one run works too).
        group_by: dotted config path(s) whose value splits runs into panels, e.g.
            ``experiment.variant``; ``None`` puts all runs in one panel; ``"auto"`` uses
            ``experiment.variant`` when every run has it, else ``None``.
        metrics: epoch metrics to draw in each panel; default train and validation AUC
            (malignant). Train is blue and validation orange, as in the paper.
        ax: ``None`` for a new figure; else one axes per setting.
        title: figure title (suptitle of a new figure); a default describes the grouping.
        figsize: size in inches of a new figure; 4.2 x 3.6 per panel by default.

    Returns:
        The figure drawn into.

    Raises:
        PlotError: a run lacks the ``group_by`` path, or a setting has none of the metrics.
    """
    runs = labelled_runs(data)
    if isinstance(metrics, str):
        metrics = [metrics]
    group_by = resolve_group_by(runs, group_by)
    settings = split_by(runs, group_by)
    n = len(settings)
    if ax is None:
        fig = new_figure(figsize or (4.2 * n, 3.6), ncols=n, sharey=True)
        axes = fig.axes
        if title is None:
            title = "Learning curves: mean ± std over runs" + (
                f", by {_path_text(group_by)}" if group_by is not None else ""
            )
        fig.suptitle(title)
    else:
        axes = axes_list(ax, n, f"plot_learning_curves with {n} settings")
    for (key, members), a in zip(settings.items(), axes, strict=True):
        stats = learning_curve_stats(members, metrics)
        if not stats:
            raise PlotError(
                f"runs {[str(r.path) for _, r in members]} have none of the epoch metrics "
                f"{list(metrics)}; pick metrics they have (see Run.epochs())"
            )
        for i, metric in enumerate(metrics):
            if metric not in stats:
                continue
            s = stats[metric]
            draw_series(
                a,
                s["epoch"],
                s[f"{metric}/mean"],
                std=s[f"{metric}/std"],
                color=METRIC_COLORS[i % len(METRIC_COLORS)],
                label=display_name(metric),
                linestyle=LINESTYLES[(i // len(METRIC_COLORS)) % len(LINESTYLES)],
                **marker_kw(len(s)),
            )
        name = key if group_by is None else _setting_name(key, group_by)
        a.set_title(f"{name} (n={len(members)} run{'s' if len(members) != 1 else ''})")
        a.set_xlabel("epoch")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.grid(True, alpha=0.3)
        a.legend()
    axes[0].set_ylabel(_ylabel(metrics))
    if ax is not None and title is not None:
        axes[0].set_title(title)
    return root_figure(axes[0])


def _setting_name(key: str, group_by: str | Sequence[str]) -> str:
    if isinstance(group_by, str):
        return display_name(key, group_by)
    return key


def _path_text(group_by: str | Sequence[str]) -> str:
    return group_by if isinstance(group_by, str) else " + ".join(group_by)


def _ylabel(metrics: Sequence[str]) -> str:
    if all("auc" in m for m in metrics):
        return "AUC"
    if all("loss" in m for m in metrics):
        return "loss"
    return "value"
